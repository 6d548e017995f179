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
use super::link::{ClientLink, Inbound, TransportEnds};
use super::revocation::Revocation;
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
    /// Sessions one user may hold, live or awaiting resume.
    pub max_sessions_per_user: usize,
    pub idle_timeout: Duration,
    /// How long a connection may take to send its `start`.
    pub start_timeout: Duration,
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
            max_sessions_per_user: config.max_sessions_per_user,
            idle_timeout: config.idle_timeout,
            start_timeout: config.start_timeout,
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
    /// Ends the session from outside: its user was disabled, its login ended.
    pub revoke: Revocation,
    /// The hash of the cookie login its connection came with (the latest
    /// one, after a resume): when that login ends, so does the session.
    pub login: std::sync::Mutex<Option<String>>,
}

pub(super) struct Shared {
    pub settings: SessionSettings,
    pub engines: EngineRegistry,
    pub stores: Stores,
    pub sessions: DashMap<String, SessionHandle>,
    /// Sessions admitted (live or being set up); the capacity check counts these.
    pub admitted: AtomicUsize,
    /// Sessions admitted per user (an entry only while it is above zero).
    pub per_user: DashMap<String, usize>,
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
                per_user: DashMap::new(),
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

    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.shared
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

    /// The session entry every transport goes through before it takes a
    /// connection over (a WebSocket upgrade, a Socket.IO connect): refuses
    /// while the server drains, and at capacity unless `user_id` owns a live
    /// session (a resume takes no new slot; a new session is still refused
    /// after `start` when no slot is free).
    pub fn check_entry(&self, user_id: &str) -> Result<(), EntryRefusal> {
        let refused = if self.is_shutting_down() {
            EntryRefusal::Shutdown
        } else if self.at_capacity() && !self.has_session_for(user_id) {
            EntryRefusal::AtCapacity
        } else {
            return Ok(());
        };
        telemetry::connection_refused(refused.code().as_str());
        Err(refused)
    }

    /// Opens a client connection of `user_id` on the session layer: the
    /// session side runs as a tracked task (it waits for `start`, then starts
    /// or resumes a session), the transport keeps the returned ends. `login`
    /// is the hash of the cookie login the connection came with.
    pub fn open(&self, user_id: String, login: Option<String>) -> TransportEnds {
        let (link, ends) = super::link::pair(self.shared.settings.max_message_bytes);
        let shared = Arc::clone(&self.shared);
        self.shared
            .tracker
            .spawn(async move { serve(shared, user_id, login, link).await });
        ends
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

/// Why [`SessionManager::check_entry`] turned a connection away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryRefusal {
    Shutdown,
    AtCapacity,
}

impl EntryRefusal {
    pub fn code(self) -> ErrorCode {
        match self {
            EntryRefusal::Shutdown => ErrorCode::ServerShutdown,
            EntryRefusal::AtCapacity => ErrorCode::ServerAtCapacity,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            EntryRefusal::Shutdown => "server is shutting down",
            EntryRefusal::AtCapacity => "server is at capacity, try again later",
        }
    }
}

/// Reserves a session slot, on the server and for its user; released by
/// dropping the guard.
pub(super) struct Admission {
    shared: Arc<Shared>,
    user_id: String,
}

impl Drop for Admission {
    fn drop(&mut self) {
        self.shared.admitted.fetch_sub(1, Ordering::AcqRel);
        self.shared.per_user.remove_if_mut(&self.user_id, |_, n| {
            *n -= 1;
            *n == 0
        });
        metrics::gauge!(telemetry::SESSIONS_ACTIVE).decrement(1.0);
    }
}

/// Why no slot was given.
enum Full {
    Server,
    User,
}

/// Takes a slot for `user_id` if both the server and the user (live
/// sessions plus those awaiting resume) are below their limits.
fn admit(shared: &Arc<Shared>, user_id: &str) -> Result<Admission, Full> {
    let max = shared.settings.max_sessions;
    let won = shared
        .admitted
        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < max).then_some(n + 1)
        })
        .is_ok();
    if !won {
        return Err(Full::Server);
    }
    // The user's count is checked and taken under its map entry's lock, so
    // two parallel starts of one user cannot both pass.
    let user_full = {
        let mut count = shared.per_user.entry(user_id.to_owned()).or_insert(0);
        let full = *count >= shared.settings.max_sessions_per_user;
        if !full {
            *count += 1;
        }
        full
    };
    if user_full {
        shared.admitted.fetch_sub(1, Ordering::AcqRel);
        shared.per_user.remove_if(user_id, |_, n| *n == 0);
        return Err(Full::User);
    }
    metrics::gauge!(telemetry::SESSIONS_ACTIVE).increment(1.0);
    Ok(Admission {
        shared: Arc::clone(shared),
        user_id: user_id.to_owned(),
    })
}

/// Refuses a connection with an error event and a close code.
async fn refuse(link: &ClientLink, code: ErrorCode, message: &str, close: CloseCode) {
    telemetry::client_error(code);
    let _ = link.send_last(ServerMsg::error(code, message, true)).await;
    link.close(close, code.as_str()).await;
}

/// A non-fatal error for a client that has not started yet (dropped if it
/// does not read: its start deadline ends it anyway).
fn warn(link: &ClientLink, code: ErrorCode, message: &str) {
    telemetry::client_error(code);
    let _ = link.send(ServerMsg::error(code, message, false));
}

/// A connection before its `start`: waits for it, answers bad input, then
/// starts a new session or hands the connection to the session it resumes.
async fn serve(shared: Arc<Shared>, user_id: String, login: Option<String>, mut link: ClientLink) {
    // Counted from the connection, whatever else the client sends meanwhile.
    let deadline = tokio::time::sleep(shared.settings.start_timeout);
    tokio::pin!(deadline);
    let start = loop {
        let msg = tokio::select! {
            msg = link.inbound.recv() => msg,
            () = &mut deadline => {
                let msg = "no start message within the start timeout";
                refuse(&link, ErrorCode::StartTimeout, msg, CloseCode::Policy).await;
                return;
            }
            () = shared.shutdown.cancelled() => {
                refuse(&link, ErrorCode::ServerShutdown, EntryRefusal::Shutdown.message(), CloseCode::GoingAway).await;
                return;
            }
        };
        let Some(msg) = msg else { return };
        match msg {
            Inbound::Text(text) => match serde_json::from_str::<ClientMsg>(&text) {
                Ok(ClientMsg::Start(start)) => break start,
                Ok(ClientMsg::Stop) => {
                    warn(&link, ErrorCode::NotStarted, "stop before start");
                }
                Err(_) => {
                    let msg = "expected a JSON message with a known \"type\" (start, stop)";
                    warn(&link, ErrorCode::BadMessage, msg);
                }
            },
            Inbound::Binary(_) => {
                let msg = "audio before start: send a start message first";
                warn(&link, ErrorCode::NotStarted, msg);
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
                (user_id, login),
                link,
                format,
                resume.session_id,
                resume.offset_bytes,
            )
            .await
        }
        None => new_session(&shared, (user_id, login), link, format, start).await,
    }
}

async fn resume_session(
    shared: &Arc<Shared>,
    (user_id, login): (String, Option<String>),
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
            login,
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
    (user_id, login): (String, Option<String>),
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
    let admission = match admit(shared, &user_id) {
        Ok(admission) => admission,
        Err(Full::Server) => {
            let msg = EntryRefusal::AtCapacity.message();
            let code = CloseCode::TryAgainLater;
            return refuse(&link, ErrorCode::ServerAtCapacity, msg, code).await;
        }
        Err(Full::User) => {
            tracing::info!(event = "user_at_capacity", user_id = %user_id);
            let msg = "you already have the most sessions one user may hold at once";
            return refuse(&link, ErrorCode::UserAtCapacity, msg, CloseCode::Policy).await;
        }
    };
    let session_id = uuid::Uuid::now_v7().to_string();
    let (attach_tx, attach_rx) = mpsc::channel(4);
    let revoked = Revocation::default();
    shared.sessions.insert(
        session_id.clone(),
        SessionHandle {
            user_id: user_id.clone(),
            attach: attach_tx,
            revoke: revoked.clone(),
            login: std::sync::Mutex::new(login),
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
