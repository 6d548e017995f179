//! HTTP and WebSocket transport.
