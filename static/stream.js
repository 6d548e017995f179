// One recording's connection to `/v1/stream` (docs/protocol.md), kept whole
// across dropped connections.
//
// Every captured byte is kept in the page until an `ack` says the server made
// it durable. When the connection drops, capture goes on into that buffer and
// the stream reconnects with `resume: {session_id, offset_bytes}` (the last
// durable count); the server's `ready.resume_from_bytes` says how much it
// holds, and everything after that is sent again, so the stored audio has no
// gap and no duplicate.
//
// Events (CustomEvent, details in brackets):
//   state      {state}  connecting | live | reconnecting | stopping | saved | ended | failed
//   ready      {ready message, resumed}
//   ack        {ack message}
//   transcript {transcript message}
//   notice     {error message}   a non-fatal server error
//   end        {outcome, reason, code, message, stored, sessionId}   once, at the end

const BACKOFF_MS = [250, 500, 1000, 2000, 3000];
/** Pause sending while this much is queued in the socket (a slow uplink). */
const HIGH_WATER_BYTES = 1 << 20;
/** How long to keep trying before the server's idle timeout is known. */
const DEFAULT_IDLE_TIMEOUT_S = 300;

export class LiveStream extends EventTarget {
  constructor(url) {
    super();
    this.url = url;
    this.startMessage = null;
    this.chunks = []; // {offset, bytes} captured and not yet durable on the server
    this.produced = 0; // bytes captured
    this.sent = 0; // bytes sent (absolute offset) on the current connection
    this.durable = 0; // the last ack's durable_bytes
    this.sessionId = null;
    this.socket = null;
    this.ready = false;
    this.state = 'idle';
    this.finishing = false;
    this.stopSent = false;
    this.stopEverSent = false;
    this.stored = null;
    this.fatal = null;
    this.ended = false;
    this.attempt = 0;
    this.lostAt = null;
    this.retryTimer = null;
    this.pumpTimer = null;
    this.idleTimeoutS = DEFAULT_IDLE_TIMEOUT_S;
  }

  /** Opens the session: `start` is the protocol's start message. */
  begin(start) {
    this.startMessage = { type: 'start', ...start };
    this.connect();
  }

  /** Queues one captured s16le frame (an ArrayBuffer) and sends what it can. */
  push(buffer) {
    if (this.ended || buffer.byteLength === 0) return;
    this.chunks.push({ offset: this.produced, bytes: new Uint8Array(buffer) });
    this.produced += buffer.byteLength;
    this.pump();
  }

  /** Capture is over: send everything still buffered, then `stop`. */
  finish() {
    this.finishing = true;
    if (this.state === 'live') this.setState('stopping');
    this.pump();
  }

  /** Gives up at once (the page is closing). */
  abort() {
    this.end('failed', { reason: 'aborted' });
  }

  /** Bytes captured but not yet acknowledged as durable. */
  get buffered() {
    return this.produced - this.durable;
  }

  setState(state) {
    if (this.state === state) return;
    this.state = state;
    this.emit('state', { state });
  }

  emit(type, detail) {
    this.dispatchEvent(new CustomEvent(type, { detail }));
  }

  connect() {
    this.retryTimer = null;
    if (this.ended) return;
    this.setState(this.sessionId ? 'reconnecting' : 'connecting');
    let socket;
    try {
      socket = new WebSocket(this.url);
    } catch {
      this.connectionLost(false);
      return;
    }
    socket.binaryType = 'arraybuffer';
    this.socket = socket;
    this.ready = false;
    this.stopSent = false;
    let opened = false;
    socket.addEventListener('open', () => {
      opened = true;
      const start = { ...this.startMessage };
      if (this.sessionId) start.resume = { session_id: this.sessionId, offset_bytes: this.durable };
      socket.send(JSON.stringify(start));
    });
    socket.addEventListener('message', (event) => {
      if (socket === this.socket && typeof event.data === 'string') this.onMessage(JSON.parse(event.data));
    });
    socket.addEventListener('close', (event) => {
      if (socket === this.socket) this.onClose(event, opened);
    });
  }

  onMessage(msg) {
    switch (msg.type) {
      case 'ready': {
        const resumed = this.sessionId !== null;
        this.sessionId = msg.session_id;
        if (msg.limits && msg.limits.idle_timeout_s) this.idleTimeoutS = msg.limits.idle_timeout_s;
        // What the server already holds is never sent again.
        const held = msg.resume_from_bytes ?? 0;
        this.durable = Math.max(this.durable, held);
        this.sent = held;
        this.dropDurable();
        this.ready = true;
        this.attempt = 0;
        this.lostAt = null;
        this.setState(this.finishing ? 'stopping' : 'live');
        this.emit('ready', { ready: msg, resumed });
        this.pump();
        break;
      }
      case 'ack':
        this.durable = Math.max(this.durable, msg.durable_bytes);
        this.dropDurable();
        this.emit('ack', { ack: msg });
        break;
      case 'transcript':
        this.emit('transcript', { transcript: msg });
        break;
      case 'error':
        if (msg.fatal) this.fatal = msg;
        else this.emit('notice', { error: msg });
        break;
      case 'stored':
        this.stored = msg;
        break;
      case 'closed':
        this.end(this.stored ? 'saved' : 'ended', { reason: msg.reason });
        break;
      default:
        break;
    }
  }

  dropDurable() {
    let keep = 0;
    while (keep < this.chunks.length) {
      const c = this.chunks[keep];
      if (c.offset + c.bytes.byteLength > this.durable) break;
      keep++;
    }
    if (keep > 0) this.chunks.splice(0, keep);
  }

  /** Sends every buffered byte past `sent`, then `stop` once capture is over. */
  pump() {
    const socket = this.socket;
    if (!socket || !this.ready || socket.readyState !== WebSocket.OPEN) return;
    for (const chunk of this.chunks) {
      const end = chunk.offset + chunk.bytes.byteLength;
      if (end <= this.sent) continue;
      if (socket.bufferedAmount > HIGH_WATER_BYTES) {
        if (!this.pumpTimer) {
          this.pumpTimer = setTimeout(() => {
            this.pumpTimer = null;
            this.pump();
          }, 50);
        }
        return;
      }
      const from = Math.max(0, this.sent - chunk.offset);
      socket.send(from === 0 ? chunk.bytes : chunk.bytes.subarray(from));
      this.sent = end;
    }
    if (this.finishing && !this.stopSent && this.sent === this.produced) {
      socket.send(JSON.stringify({ type: 'stop' }));
      this.stopSent = true;
      this.stopEverSent = true;
      this.setState('stopping');
    }
  }

  onClose(event, opened) {
    this.ready = false;
    if (this.ended) return;
    if (this.fatal && this.fatal.code === 'unknown_session' && this.stopEverSent) {
      // The connection dropped after `stop`: the server finished the session
      // without us; it is in the history once stored.
      this.end('ended', { code: 'stop_unconfirmed' });
    } else if (this.fatal) {
      this.end('failed', { code: this.fatal.code, message: this.fatal.message });
    } else if (event.code === 1013) {
      this.end('failed', { code: 'server_at_capacity' });
    } else if (event.code === 4400 || event.code === 1008) {
      this.end('failed', { code: 'bad_start', message: event.reason });
    } else {
      this.connectionLost(opened);
    }
  }

  /** The connection dropped (or never opened): find out why, then retry. */
  async connectionLost(opened) {
    this.socket = null;
    if (this.lostAt === null) this.lostAt = Date.now();
    // Capture goes on into the buffer either way, session or not yet.
    this.setState('reconnecting');
    if (!opened) {
      // A refused upgrade is an HTTP error the WebSocket API hides; asking
      // the same URL over plain HTTP gets the same refusal with its code.
      const refusal = await probe(this.url);
      if (this.ended) return;
      if (refusal && refusal.status === 401) {
        this.end('failed', { code: 'unauthorized' });
        return;
      }
      if (refusal && refusal.code === 'server_at_capacity' && !this.sessionId) {
        this.end('failed', { code: 'server_at_capacity' });
        return;
      }
      if (refusal && refusal.status === 403) {
        this.end('failed', { code: refusal.code });
        return;
      }
    }
    // The server keeps a session resumable for its idle timeout; past that it is gone.
    if (Date.now() - this.lostAt > this.idleTimeoutS * 1000) {
      this.end('failed', { code: 'connection_lost' });
      return;
    }
    const delay = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt++;
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  end(outcome, { reason = null, code = null, message = null } = {}) {
    if (this.ended) return;
    this.ended = true;
    clearTimeout(this.retryTimer);
    clearTimeout(this.pumpTimer);
    if (this.socket && this.socket.readyState <= WebSocket.OPEN) this.socket.close(1000);
    this.socket = null;
    this.setState(outcome);
    this.emit('end', { outcome, reason, code, message, stored: this.stored, sessionId: this.sessionId });
  }
}

/** The HTTP refusal `/v1/stream` gives right now, or null (unreachable, or no refusal). */
async function probe(wsUrl) {
  const url = wsUrl.replace(/^ws/, 'http');
  try {
    const response = await fetch(url, { credentials: 'same-origin', cache: 'no-store' });
    if (response.status !== 401 && response.status !== 403 && response.status !== 503) return null;
    let code = `http_${response.status}`;
    try {
      code = (await response.json()).error.code || code;
    } catch {
      // not a JSON refusal
    }
    return { status: response.status, code };
  } catch {
    return null;
  }
}

/** The WebSocket URL of `/v1/stream` on this page's origin. */
export function streamUrl() {
  const scheme = window.location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${window.location.host}/v1/stream`;
}
