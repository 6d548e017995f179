//! The transport-free connection between a client and a session: what the
//! client sent (already split into text/binary by the transport) and what the
//! session wants sent back. WebSocket and Socket.IO transports both adapt to this.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::protocol::{CloseCode, ServerMsg};

/// Depth of the inbound channel: about 6 s of 100 ms frames before the
/// transport stops reading (TCP back-pressure reaches the client).
pub const INBOUND_DEPTH: usize = 64;
/// Depth of the outbound channel.
pub const OUTBOUND_DEPTH: usize = 256;
/// How long the session waits on a client that does not read before treating it as gone.
const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// A message from the client.
#[derive(Debug)]
pub enum Inbound {
    Text(String),
    Binary(Bytes),
    /// A message larger than the limit arrived; the transport dropped it.
    TooBig,
}

/// Something for the transport to send.
#[derive(Debug)]
pub enum Outbound {
    Msg(ServerMsg),
    /// Send a close frame and end the connection.
    Close(CloseCode, &'static str),
}

/// One attached client connection, as the session sees it.
pub struct ClientLink {
    pub inbound: mpsc::Receiver<Inbound>,
    pub outbound: mpsc::Sender<Outbound>,
}

/// The transport's ends of a new link.
pub struct TransportEnds {
    pub inbound: mpsc::Sender<Inbound>,
    pub outbound: mpsc::Receiver<Outbound>,
}

/// Makes a connected pair: the transport keeps [`TransportEnds`], the session gets the [`ClientLink`].
pub fn pair() -> (ClientLink, TransportEnds) {
    let (in_tx, in_rx) = mpsc::channel(INBOUND_DEPTH);
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_DEPTH);
    (
        ClientLink {
            inbound: in_rx,
            outbound: out_tx,
        },
        TransportEnds {
            inbound: in_tx,
            outbound: out_rx,
        },
    )
}

/// The client went away or stopped reading.
#[derive(Debug)]
pub struct Gone;

impl ClientLink {
    /// Sends a message, waiting briefly if the client is slow.
    pub async fn send(&self, msg: ServerMsg) -> Result<(), Gone> {
        self.outbound
            .send_timeout(Outbound::Msg(msg), SEND_TIMEOUT)
            .await
            .map_err(|_| Gone)
    }

    /// Sends a message only if there is room right now (acks: a newer one follows).
    pub fn try_send(&self, msg: ServerMsg) -> Result<(), Gone> {
        match self.outbound.try_send(Outbound::Msg(msg)) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Gone),
        }
    }

    pub async fn close(&self, code: CloseCode, reason: &'static str) {
        let _ = self
            .outbound
            .send_timeout(Outbound::Close(code, reason), SEND_TIMEOUT)
            .await;
    }
}
