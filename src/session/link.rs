//! The transport-free connection between a client and a session: what the
//! client sent (already split into text/binary by the transport) and what the
//! session wants sent back. WebSocket and Socket.IO transports both adapt to this.
//!
//! Both directions are bounded so one client cannot make the server hold
//! more than a few messages for it: inbound by bytes (about two messages of
//! the maximum size; the transport stops reading, and TCP back-pressure
//! reaches the client), outbound by count (a client that stops reading is
//! detached, not queued for).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

use crate::protocol::{CloseCode, ServerMsg};

/// Most inbound messages queued at once, however small.
pub const INBOUND_DEPTH: usize = 64;
/// Inbound bytes queued at once, in maximum-size messages.
pub const INBOUND_MESSAGES_OF_BYTES: usize = 2;
/// Depth of the outbound channel. A client that reads keeps it near empty;
/// one that lets it fill is not reading and is detached.
pub const OUTBOUND_DEPTH: usize = 256;
/// How long a closing session waits to queue its last words for a slow client.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A message from the client.
#[derive(Debug)]
pub enum Inbound {
    Text(String),
    Binary(Bytes),
    /// A message larger than the limit arrived; the transport dropped it.
    TooBig,
}

impl Inbound {
    fn len(&self) -> usize {
        match self {
            Inbound::Text(t) => t.len(),
            Inbound::Binary(b) => b.len(),
            Inbound::TooBig => 0,
        }
    }
}

/// Something for the transport to send.
#[derive(Debug)]
pub enum Outbound {
    Msg(ServerMsg),
    /// Send a close frame and end the connection.
    Close(CloseCode, &'static str),
}

/// A queued inbound message with its share of the byte budget, given back
/// when the session takes the message.
type Queued = (Inbound, OwnedSemaphorePermit);

/// The session's end of the inbound queue.
pub struct InboundRx {
    rx: mpsc::Receiver<Queued>,
}

impl InboundRx {
    pub async fn recv(&mut self) -> Option<Inbound> {
        self.rx.recv().await.map(|(msg, _budget)| msg)
    }

    pub fn try_recv(&mut self) -> Option<Inbound> {
        self.rx.try_recv().ok().map(|(msg, _budget)| msg)
    }
}

/// The transport's end of the inbound queue.
pub struct InboundTx {
    tx: mpsc::Sender<Queued>,
    budget: Arc<Semaphore>,
    budget_bytes: usize,
}

impl InboundTx {
    /// Queues a message, waiting while the queue holds its byte budget
    /// (the transport reads nothing more meanwhile). `Err` when the session
    /// is gone.
    pub async fn send(&self, msg: Inbound) -> Result<(), Gone> {
        let bytes = msg.len().clamp(1, self.budget_bytes) as u32;
        let budget = Arc::clone(&self.budget)
            .acquire_many_owned(bytes)
            .await
            .map_err(|_| Gone)?;
        self.tx.send((msg, budget)).await.map_err(|_| Gone)
    }
}

/// One attached client connection, as the session sees it.
pub struct ClientLink {
    pub inbound: InboundRx,
    pub outbound: mpsc::Sender<Outbound>,
}

/// The transport's ends of a new link.
pub struct TransportEnds {
    pub inbound: InboundTx,
    pub outbound: mpsc::Receiver<Outbound>,
}

/// Makes a connected pair for messages of at most `max_message_bytes`: the
/// transport keeps [`TransportEnds`], the session gets the [`ClientLink`].
pub fn pair(max_message_bytes: usize) -> (ClientLink, TransportEnds) {
    let budget_bytes = (INBOUND_MESSAGES_OF_BYTES * max_message_bytes)
        .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let (in_tx, in_rx) = mpsc::channel(INBOUND_DEPTH);
    let (out_tx, out_rx) = mpsc::channel(OUTBOUND_DEPTH);
    (
        ClientLink {
            inbound: InboundRx { rx: in_rx },
            outbound: out_tx,
        },
        TransportEnds {
            inbound: InboundTx {
                tx: in_tx,
                budget: Arc::new(Semaphore::new(budget_bytes)),
                budget_bytes,
            },
            outbound: out_rx,
        },
    )
}

/// The client went away or stopped reading.
#[derive(Debug)]
pub struct Gone;

impl ClientLink {
    /// Queues a message without waiting: a client whose queue is full is not
    /// reading, and the session must never stall for it.
    pub fn send(&self, msg: ServerMsg) -> Result<(), Gone> {
        self.outbound.try_send(Outbound::Msg(msg)).map_err(|_| Gone)
    }

    /// Queues a message only if there is room right now, and is content when
    /// there is not (acks: a newer one follows).
    pub fn try_send(&self, msg: ServerMsg) -> Result<(), Gone> {
        match self.outbound.try_send(Outbound::Msg(msg)) {
            Ok(()) | Err(mpsc::error::TrySendError::Full(_)) => Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(Gone),
        }
    }

    /// Sends a session's last words (`stored`, `closed`, an error before
    /// closing), waiting briefly for room.
    pub async fn send_last(&self, msg: ServerMsg) -> Result<(), Gone> {
        self.outbound
            .send_timeout(Outbound::Msg(msg), CLOSE_TIMEOUT)
            .await
            .map_err(|_| Gone)
    }

    pub async fn close(&self, code: CloseCode, reason: &'static str) {
        let _ = self
            .outbound
            .send_timeout(Outbound::Close(code, reason), CLOSE_TIMEOUT)
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_inbound_queue_holds_about_two_maximum_messages_of_bytes() {
        let (mut link, ends) = pair(1024);
        let big = || Inbound::Binary(Bytes::from(vec![0u8; 1024]));
        ends.inbound.send(big()).await.unwrap();
        ends.inbound.send(big()).await.unwrap();
        // A third waits until the session takes one.
        let third = tokio::time::timeout(Duration::from_millis(100), ends.inbound.send(big()));
        assert!(third.await.is_err(), "a third full message was queued");
        assert!(link.inbound.try_recv().is_some());
        tokio::time::timeout(Duration::from_secs(1), ends.inbound.send(big()))
            .await
            .expect("room once one was taken")
            .unwrap();
    }

    #[tokio::test]
    async fn a_full_outbound_queue_means_the_client_is_gone() {
        let (link, _ends) = pair(1024);
        for _ in 0..OUTBOUND_DEPTH {
            link.send(ServerMsg::Closed(crate::protocol::ClosedMsg {
                reason: crate::protocol::CloseReason::ClientStop,
            }))
            .unwrap();
        }
        let more = ServerMsg::Closed(crate::protocol::ClosedMsg {
            reason: crate::protocol::CloseReason::ClientStop,
        });
        assert!(link.send(more).is_err());
    }
}
