//! Client events in arrival order.
//!
//! socketioxide runs every async event handler as its own task, so two
//! `audio` events read together could run in either order, and each would
//! cost a task. [`Enqueue`] is a handler of its own kind instead: called
//! synchronously as each packet is read, it decodes the event and appends it
//! to the socket's [`Feed`], which the pump reads in order. No task per event.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, Event as EventName, TryData};
use socketioxide::handler::{FromMessageParts, MessageHandler, Value};
use socketioxide::socket::Socket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// One client event, decoded.
pub enum ClientEvent {
    /// `start` with its JSON argument (`None`: not JSON the parser could
    /// read) and the acknowledgement that answers it, if the client asked.
    Start {
        body: Option<serde_json::Value>,
        ack: Option<AckSender>,
    },
    /// `audio` with its binary attachment (`None`: there was none).
    Audio(Option<Bytes>),
    Stop,
    /// An `audio` attachment over the maximum message size, or more unread
    /// input than the feed holds: dropped, and the session is told.
    TooBig,
    /// Any other event name.
    Unknown,
}

/// The socket's ordered event queue, bounded by bytes (a semaphore of
/// bytes, as the session link's inbound queue is): a client that sends
/// faster than its session takes audio is cut off with `message_too_big`
/// (its session stays resumable) instead of the server holding its input.
#[derive(Clone)]
pub struct Feed {
    tx: mpsc::UnboundedSender<Queued>,
    budget: Arc<Semaphore>,
    overflowed: Arc<AtomicBool>,
    max_message_bytes: usize,
}

/// A queued event and its share of the feed's byte budget, given back when
/// the permit is dropped (once the session has taken the event); `None` for
/// the `TooBig` that cuts an overflowing client off.
pub struct Queued {
    pub event: ClientEvent,
    pub budget: Option<OwnedSemaphorePermit>,
}

impl Feed {
    /// A feed for messages of at most `max_message_bytes`, holding at most
    /// `max_queued_bytes` the pump has not handed on yet.
    pub fn new(
        max_message_bytes: usize,
        max_queued_bytes: usize,
    ) -> (Feed, mpsc::UnboundedReceiver<Queued>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let permits = max_queued_bytes.clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
        let feed = Feed {
            tx,
            budget: Arc::new(Semaphore::new(permits)),
            overflowed: Arc::default(),
            max_message_bytes,
        };
        (feed, rx)
    }

    fn push(&self, event: ClientEvent) {
        if self.overflowed.load(Ordering::Acquire) {
            return;
        }
        let bytes = match &event {
            ClientEvent::Audio(Some(b)) => b.len(),
            _ => 0,
        };
        let event = match event {
            ClientEvent::Audio(Some(b)) if b.len() > self.max_message_bytes => ClientEvent::TooBig,
            other => other,
        };
        let permit = u32::try_from(bytes)
            .ok()
            .and_then(|n| Arc::clone(&self.budget).try_acquire_many_owned(n).ok());
        let event = if permit.is_some() {
            event
        } else {
            self.overflowed.store(true, Ordering::Release);
            ClientEvent::TooBig
        };
        let _ = self.tx.send(Queued {
            event,
            budget: permit,
        });
    }
}

/// The handler that queues every event in order (see the module
/// documentation): the socket's fallback, so every event name reaches it.
#[derive(Clone, Copy)]
pub struct Enqueue;

/// [`Enqueue`]'s own marker among socketioxide's handler kinds.
pub struct Inline;

impl MessageHandler<LocalAdapter, Inline> for Enqueue {
    fn call(&self, s: Arc<Socket<LocalAdapter>>, mut v: Value, ack_id: Option<i64>) {
        let Some(feed) = s.extensions.get::<Feed>() else {
            return;
        };
        let name = EventName::from_message_parts(&s, &mut v, &ack_id).map(|e| e.0);
        let event = match name.as_deref() {
            Ok("start") => {
                let TryData(body) =
                    TryData::<serde_json::Value>::from_message_parts(&s, &mut v, &ack_id)
                        .unwrap_or_else(|never| match never {});
                let ack =
                    ack_id.and_then(|_| AckSender::from_message_parts(&s, &mut v, &ack_id).ok());
                ClientEvent::Start {
                    body: body.ok(),
                    ack,
                }
            }
            Ok("audio") => {
                let TryData(audio) = TryData::<Bytes>::from_message_parts(&s, &mut v, &ack_id)
                    .unwrap_or_else(|never| match never {});
                ClientEvent::Audio(audio.ok())
            }
            Ok("stop") => ClientEvent::Stop,
            _ => ClientEvent::Unknown,
        };
        feed.push(event);
    }
}
