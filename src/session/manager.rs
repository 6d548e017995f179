//! The session registry: admits connections, enforces the session limit,
//! routes resumes to their live session (owner only), and drains everything on
//! shutdown.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Stores;
use super::actor::{self, Attach};
use super::link::{ClientLink, Inbound};
use super::spool::LiveSpools;
use crate::audio::AudioFormat;
use crate::config::Config;
use crate::engine::EngineRegistry;
use crate::protocol::{ClientMsg, CloseCode, ErrorCode, ServerMsg, StartMsg};
use crate::telemetry;

/// The limits and places every session works with.
#[derive(Debug, Clone)]
pub struct SessionSettings {
    pub max_sessions: usize,
    pub idle_timeout: Duration,
    pub max_duration: Duration,
    pub max_buffer_bytes: u64,
    pub max_message_bytes: usize,
    pub spool_dir: std::path::PathBuf,
    /// How long a closing session waits for its engine's last finals.
    pub engine_flush_timeout: Duration,
}

impl SessionSettings {
    pub fn from_config(config: &Config) -> Self {
        SessionSettings {
            max_sessions: config.max_sessions,
            idle_timeout: config.idle_timeout,
            max_duration: config.max_duration,
            max_buffer_bytes: config.max_buffer_bytes,
            max_message_bytes: config.max_message_bytes,
            spool_dir: config.spool_dir(),
            engine_flush_timeout: Duration::from_secs(10).min(config.shutdown_grace / 2),
        }
    }
}

/// What the manager keeps about a live session: who owns it and how to hand it a new connection.
pub(super) struct SessionHandle {
    pub user_id: String,
    pub attach: mpsc::Sender<Attach>,
    /// Ends the session `access_revoked` (its user was disabled).
    pub revoke: CancellationToken,
}

pub(super) struct Shared {
    pub settings: SessionSettings,
    pub engines: EngineRegistry,
    pub stores: Stores,
    pub sessions: DashMap<String, SessionHandle>,
    /// Sessions admitted (live or being set up); the capacity check counts these.
    pub admitted: AtomicUsize,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    pub live: LiveSpools,
    /// Hot-path counters, registered once (the macros look the series up on every call).
    pub audio_frames: metrics::Counter,
    pub audio_bytes: metrics::Counter,
}

#[derive(Clone)]
pub struct SessionManager {
    shared: Arc<Shared>,
}

impl SessionManager {
    pub fn new(
        settings: SessionSettings,
        engines: EngineRegistry,
        stores: Stores,
        live: LiveSpools,
    ) -> Self {
        SessionManager {
            shared: Arc::new(Shared {
                settings,
                engines,
                stores,
                sessions: DashMap::new(),
                admitted: AtomicUsize::new(0),
                shutdown: CancellationToken::new(),
                tracker: TaskTracker::new(),
                live,
                audio_frames: metrics::counter!(telemetry::AUDIO_FRAMES),
                audio_bytes: metrics::counter!(telemetry::AUDIO_BYTES),
            }),
        }
    }

    pub fn settings(&self) -> &SessionSettings {
        &self.shared.settings
    }

    pub fn engines(&self) -> &EngineRegistry {
        &self.shared.engines
    }

    /// Sessions currently admitted.
    pub fn active(&self) -> usize {
        self.shared.admitted.load(Ordering::Acquire)
    }

    pub fn at_capacity(&self) -> bool {
        self.active() >= self.shared.settings.max_sessions
    }

    /// Whether `user_id` owns a live session (which a new connection may resume
    /// even when the server is at capacity: resuming takes no new slot).
    pub fn has_session_for(&self, user_id: &str) -> bool {
        self.shared.sessions.iter().any(|h| h.user_id == user_id)
    }

    /// Runs a connection's I/O as a tracked task, so shutdown waits until its
    /// last messages (`stored`, `closed`, the close frame) are flushed.
    pub fn track_connection<F>(
        &self,
        io: F,
    ) -> impl std::future::Future<Output = ()> + Send + use<F>
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.shared.tracker.track_future(io)
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shared.shutdown.is_cancelled()
    }

    /// Ends the live sessions of users who were disabled (on any instance:
    /// `auscult users disable` only writes the database). Their audio so far
    /// is stored as for any close; the session ends `access_revoked`.
    /// Returns how many sessions were ended.
    pub async fn revoke_disabled_users(&self) -> Result<usize, crate::storage::StorageError> {
        let recording: std::collections::HashSet<String> = self
            .shared
            .sessions
            .iter()
            .map(|s| s.user_id.clone())
            .collect();
        if recording.is_empty() {
            return Ok(0);
        }
        let disabled: std::collections::HashSet<String> = self
            .shared
            .stores
            .metadata
            .list_users()
            .await?
            .into_iter()
            .filter(|u| u.disabled && recording.contains(&u.username))
            .map(|u| u.username)
            .collect();
        let mut ended = 0;
        for session in self.shared.sessions.iter() {
            if disabled.contains(&session.user_id) && !session.revoke.is_cancelled() {
                tracing::warn!(event = "session_access_revoked", session_id = %session.key(), user_id = %session.user_id);
                session.revoke.cancel();
                ended += 1;
            }
        }
        Ok(ended)
    }

    /// Every `interval` until `stop`: [`SessionManager::revoke_disabled_users`].
    pub async fn run_revocation(self, interval: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.revoke_disabled_users().await {
                crate::telemetry::storage_failure("metadata", "revocation", &e);
            }
        }
    }

    /// Hands a new client connection to the session layer, as a tracked task.
    pub fn accept(&self, user_id: String, link: ClientLink) {
        let shared = Arc::clone(&self.shared);
        self.shared
            .tracker
            .spawn(async move { serve(shared, user_id, link).await });
    }

    /// Asks every session to flush and close, then waits up to `grace` for them.
    /// Returns whether all finished in time.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.shared.shutdown.cancel();
        self.shared.tracker.close();
        tokio::time::timeout(grace, self.shared.tracker.wait())
            .await
            .is_ok()
    }
}

/// Reserves a session slot; released by dropping the guard.
pub(super) struct Admission {
    shared: Arc<Shared>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.shared.admitted.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!(telemetry::SESSIONS_ACTIVE).decrement(1.0);
    }
}

fn admit(shared: &Arc<Shared>) -> Option<Admission> {
    let max = shared.settings.max_sessions;
    let won = shared
        .admitted
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok();
    if won {
        metrics::gauge!(telemetry::SESSIONS_ACTIVE).increment(1.0);
    }
    won.then(|| Admission {
        shared: Arc::clone(shared),
    })
}

/// Refuses a connection with an error event and a close code.
async fn refuse(link: &ClientLink, code: ErrorCode, message: &str, close: CloseCode) {
    telemetry::client_error(code);
    let _ = link.send(ServerMsg::error(code, message, true)).await;
    link.close(close, code.as_str()).await;
}

/// A connection before its `start`: waits for it, answers bad input, then
/// starts a new session or hands the connection to the session it resumes.
async fn serve(shared: Arc<Shared>, user_id: String, mut link: ClientLink) {
    let deadline = tokio::time::sleep(shared.settings.idle_timeout);
    tokio::pin!(deadline);
    let start = loop {
        let msg = tokio::select! {
            msg = link.inbound.recv() => msg,
            () = &mut deadline => {
                refuse(&link, ErrorCode::IdleTimeout, "no start message received", CloseCode::Normal).await;
                return;
            }
            () = shared.shutdown.cancelled() => {
                refuse(&link, ErrorCode::ServerShutdown, "server is shutting down", CloseCode::GoingAway).await;
                return;
            }
        };
        let Some(msg) = msg else { return };
        match msg {
            Inbound::Text(text) => match serde_json::from_str::<ClientMsg>(&text) {
                Ok(ClientMsg::Start(start)) => break start,
                Ok(ClientMsg::Stop) => {
                    telemetry::client_error(ErrorCode::NotStarted);
                    let _ = link
                        .send(ServerMsg::error(
                            ErrorCode::NotStarted,
                            "stop before start",
                            false,
                        ))
                        .await;
                }
                Err(_) => {
                    telemetry::client_error(ErrorCode::BadMessage);
                    let msg = "expected a JSON message with a known \"type\" (start, stop)";
                    let _ = link
                        .send(ServerMsg::error(ErrorCode::BadMessage, msg, false))
                        .await;
                }
            },
            Inbound::Binary(_) => {
                telemetry::client_error(ErrorCode::NotStarted);
                let msg = "audio before start: send a start message first";
                let _ = link
                    .send(ServerMsg::error(ErrorCode::NotStarted, msg, false))
                    .await;
            }
            Inbound::TooBig => {
                let msg = "message exceeds the maximum message size";
                refuse(&link, ErrorCode::MessageTooBig, msg, CloseCode::TooBig).await;
                return;
            }
        }
    };
    let format = match AudioFormat::new(&start.encoding, start.sample_rate, start.channels) {
        Ok(f) => f,
        Err(e) => return refuse(&link, e.code, &e.message, CloseCode::BadStart).await,
    };
    match start.resume.clone() {
        Some(resume) => {
            resume_session(
                &shared,
                user_id,
                link,
                format,
                resume.session_id,
                resume.offset_bytes,
            )
            .await
        }
        None => new_session(&shared, user_id, link, format, start).await,
    }
}

async fn resume_session(
    shared: &Arc<Shared>,
    user_id: String,
    link: ClientLink,
    format: AudioFormat,
    session_id: String,
    offset_bytes: u64,
) {
    // Someone else's session looks exactly like a missing one.
    let attach = shared
        .sessions
        .get(&session_id)
        .filter(|h| h.user_id == user_id)
        .map(|h| h.attach.clone());
    let Some(attach) = attach else {
        let msg = "no live session with that id for this user";
        return refuse(&link, ErrorCode::UnknownSession, msg, CloseCode::BadStart).await;
    };
    if let Err(mpsc::error::SendError(back)) = attach
        .send(Attach {
            link,
            format,
            offset_bytes,
        })
        .await
    {
        let msg = "the session has already ended";
        refuse(
            &back.link,
            ErrorCode::UnknownSession,
            msg,
            CloseCode::BadStart,
        )
        .await;
    }
}

async fn new_session(
    shared: &Arc<Shared>,
    user_id: String,
    link: ClientLink,
    format: AudioFormat,
    start: StartMsg,
) {
    let Some(engine) = shared.engines.get(start.engine.as_deref()) else {
        let name = start
            .engine
            .as_deref()
            .unwrap_or(shared.engines.default_name());
        let msg = format!("engine {name:?} is not available on this server");
        return refuse(&link, ErrorCode::UnknownEngine, &msg, CloseCode::BadStart).await;
    };
    let Some(admission) = admit(shared) else {
        let msg = "server is at capacity, try again later";
        return refuse(
            &link,
            ErrorCode::ServerAtCapacity,
            msg,
            CloseCode::TryAgainLater,
        )
        .await;
    };
    let session_id = uuid::Uuid::now_v7().to_string();
    let (attach_tx, attach_rx) = mpsc::channel(4);
    let revoked = CancellationToken::new();
    shared.sessions.insert(
        session_id.clone(),
        SessionHandle {
            user_id: user_id.clone(),
            attach: attach_tx,
            revoke: revoked.clone(),
        },
    );
    let opened = actor::Actor::open(
        Arc::clone(shared),
        actor::Opening {
            session_id: session_id.clone(),
            user_id,
            format,
            engine,
            start,
            link,
            attach_rx,
            revoked,
        },
    )
    .await;
    if let Some(actor) = opened {
        actor.run().await;
    }
    shared.sessions.remove(&session_id);
    drop(admission);
}
