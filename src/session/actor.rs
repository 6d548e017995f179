//! One session's state machine. It owns the spool, the resampler and the engine
//! stream, outlives any one connection (a dropped client can resume until the
//! idle timeout), and ends exactly once, storing everything it acknowledged.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::link::{ClientLink, Inbound};
use super::manager::Shared;
use super::revocation::Revocation;
use super::spool::{Spool, SpoolMeta};
use super::{closing, wall_clock_ms};
use crate::audio::{AudioFormat, StreamResampler};
use crate::engine::{
    EngineEvent, EngineInput, EngineStream, SharedEngine, StreamParams, TranscriptResult,
};
use crate::protocol::{
    AckMsg, ClientMsg, CloseCode, CloseReason, ErrorCode, Limits, ReadyMsg, ServerMsg, StartMsg,
    TranscriptMsg,
};
use crate::storage::{FinalSegment, SessionRecord};
use crate::telemetry;

/// Most inbound messages handled before one spool write and one ack.
const BATCH: usize = 32;

/// A request to move a live session onto a new connection (resume).
pub struct Attach {
    pub link: ClientLink,
    pub format: AudioFormat,
    pub offset_bytes: u64,
    /// The hash of the cookie login the new connection came with.
    pub login: Option<String>,
}

/// Everything a new session starts from.
pub(super) struct Opening {
    pub session_id: String,
    pub user_id: String,
    pub format: AudioFormat,
    pub engine: SharedEngine,
    pub start: StartMsg,
    pub link: ClientLink,
    pub attach_rx: mpsc::Receiver<Attach>,
    /// Ends the session from outside (user disabled, login ended).
    pub revoked: Revocation,
}

pub(super) struct Actor {
    shared: Arc<Shared>,
    pub(super) meta: SpoolMeta,
    pub(super) spool: Spool,
    resampler: StreamResampler,
    engine: EngineStream,
    backlog: VecDeque<Vec<f32>>,
    backlog_bytes: u64,
    /// Samples handed to the engine stream so far (its `consumed` trails this).
    handed: u64,
    link: Option<ClientLink>,
    attach_rx: mpsc::Receiver<Attach>,
    revoked: Revocation,
    write_buf: Vec<u8>,
    mono: Vec<f32>,
    pub(super) finals: Vec<FinalSegment>,
    finalized: HashSet<String>,
    /// Entities announced for finals not yet received, by result id.
    entities: HashMap<String, Vec<crate::protocol::Entity>>,
    /// The latest partial of each result whose final has not arrived.
    open_partials: Vec<TranscriptResult>,
    /// (seconds of audio received, when) for result-latency measurement.
    clock: VecDeque<(f64, Instant)>,
    started: Instant,
    last_audio: Instant,
    last_lag_sample: Instant,
    engine_done: bool,
    /// The engine said it finished, after decoding everything it was given.
    engine_finished: bool,
}

/// What woke the event loop.
enum Wake {
    End(CloseReason),
    /// An fsync of the spool failed.
    SpoolFailed,
    Inbound(Option<Inbound>),
    Engine(Option<EngineEvent>),
    EngineReady(Option<mpsc::OwnedPermit<EngineInput>>),
    Attach(Option<Attach>),
}

/// Whether the session goes on after handling a wake-up.
enum Step {
    Continue,
    End(CloseReason),
}

impl Actor {
    /// Creates the spool, the session row and the engine stream, then sends `ready`.
    /// On failure the client gets a fatal error and `None` comes back.
    pub(super) async fn open(shared: Arc<Shared>, o: Opening) -> Option<Actor> {
        let engine_rate = o.engine.engine_rate(o.format.sample_rate);
        let meta = SpoolMeta {
            session_id: o.session_id.clone(),
            user_id: o.user_id.clone(),
            engine: o.engine.name().to_owned(),
            language: o.start.language.clone(),
            format: o.format,
            engine_rate,
            started_at_ms: wall_clock_ms(),
        };
        let fail = |code: ErrorCode, message: &'static str, close: CloseCode| {
            let link = &o.link;
            async move {
                telemetry::client_error(code);
                let _ = link.send_last(ServerMsg::error(code, message, true)).await;
                link.close(close, code.as_str()).await;
            }
        };
        let Ok(resampler) = StreamResampler::new(o.format.sample_rate, engine_rate) else {
            fail(
                ErrorCode::UnsupportedSampleRate,
                "cannot resample this rate",
                CloseCode::BadStart,
            )
            .await;
            return None;
        };
        let params = StreamParams {
            session_id: o.session_id.clone(),
            language: o.start.language.clone(),
            sample_rate: engine_rate,
            specialty: o.start.specialty.clone(),
            mode: o.start.mode.clone(),
        };
        let engine = match o.engine.open(params).await {
            Ok(stream) => stream,
            Err(e) => {
                tracing::warn!(event = "engine_open_failed", session_id = %o.session_id, engine = %meta.engine, error = %e);
                fail(
                    ErrorCode::EngineUnavailable,
                    "the engine could not start a stream",
                    CloseCode::TryAgainLater,
                )
                .await;
                return None;
            }
        };
        let spool_dir = shared.settings.spool_dir.clone();
        let spool_meta = meta.clone();
        let spool =
            match tokio::task::spawn_blocking(move || Spool::create(&spool_dir, &spool_meta)).await
            {
                Ok(Ok(spool)) => spool,
                other => {
                    let error = match other {
                        Ok(Err(e)) => e.to_string(),
                        Err(e) => e.to_string(),
                        Ok(Ok(_)) => String::new(),
                    };
                    telemetry::storage_failure("spool", &o.session_id, &error);
                    fail(
                        ErrorCode::StorageFailed,
                        "cannot create the session's spool",
                        CloseCode::ServerError,
                    )
                    .await;
                    return None;
                }
            };
        let record = SessionRecord {
            id: meta.session_id.clone(),
            user_id: meta.user_id.clone(),
            engine: meta.engine.clone(),
            language: meta.language.clone(),
            encoding: o.format.encoding.as_str().to_owned(),
            channels: o.format.channels,
            input_rate: o.format.sample_rate,
            engine_rate,
            started_at_ms: meta.started_at_ms,
        };
        let stores = &shared.stores;
        if let Err(e) = stores
            .metadata
            .create_session(&record, &stores.instance_id, meta.started_at_ms)
            .await
        {
            // The spool's meta.json carries the same facts; the row is created at close.
            telemetry::storage_failure("metadata", &meta.session_id, &e);
        }
        shared.live.register(spool.live());
        telemetry::session_started(
            &meta.session_id,
            &meta.user_id,
            &meta.engine,
            o.format.sample_rate,
            o.format.encoding.as_str(),
            o.format.channels,
        );
        let now = Instant::now();
        let mut actor = Actor {
            resampler,
            engine,
            backlog: VecDeque::new(),
            backlog_bytes: 0,
            handed: 0,
            link: Some(o.link),
            attach_rx: o.attach_rx,
            revoked: o.revoked,
            write_buf: Vec::new(),
            mono: Vec::new(),
            finals: Vec::new(),
            finalized: HashSet::new(),
            entities: HashMap::new(),
            open_partials: Vec::new(),
            clock: VecDeque::new(),
            started: now,
            last_audio: now,
            last_lag_sample: now,
            engine_done: false,
            engine_finished: false,
            spool,
            meta,
            shared,
        };
        let ready = actor.ready(None);
        actor.send(ready).await;
        Some(actor)
    }

    fn ready(&self, resume_from_bytes: Option<u64>) -> ServerMsg {
        let s = &self.shared.settings;
        ServerMsg::Ready(ReadyMsg {
            session_id: self.meta.session_id.clone(),
            engine: self.meta.engine.clone(),
            input_rate: self.meta.format.sample_rate,
            engine_rate: self.meta.engine_rate,
            limits: Limits {
                max_duration_s: s.max_duration.as_secs(),
                idle_timeout_s: s.idle_timeout.as_secs(),
                max_message_bytes: s.max_message_bytes,
            },
            resume_from_bytes,
        })
    }

    /// Runs the session to its end, then closes and stores it.
    pub(super) async fn run(mut self) {
        let reason = self.event_loop().await;
        closing::close(self, reason).await;
    }

    async fn event_loop(&mut self) -> CloseReason {
        let settings = self.shared.settings.clone();
        let max_duration = tokio::time::sleep(settings.max_duration);
        let idle = tokio::time::sleep(settings.idle_timeout);
        tokio::pin!(max_duration, idle);
        let shutdown = self.shared.shutdown.clone();
        let revoked = self.revoked.clone();
        let spool_failed = self.spool.failed().clone();
        loop {
            let backlog_waiting = !self.backlog.is_empty();
            let engine_sender = self.engine.audio.clone();
            let wake = tokio::select! {
                () = shutdown.cancelled() => Wake::End(CloseReason::ServerShutdown),
                reason = revoked.revoked() => Wake::End(reason),
                () = spool_failed.cancelled() => Wake::SpoolFailed,
                msg = recv_link(&mut self.link) => Wake::Inbound(msg),
                event = self.engine.events.recv(), if !self.engine_done => Wake::Engine(event),
                permit = engine_sender.reserve_owned(), if backlog_waiting => Wake::EngineReady(permit.ok()),
                attach = self.attach_rx.recv() => Wake::Attach(attach),
                () = &mut idle => Wake::End(CloseReason::IdleTimeout),
                () = &mut max_duration => Wake::End(CloseReason::MaxDuration),
            };
            let step = match wake {
                Wake::End(reason) => Step::End(reason),
                Wake::SpoolFailed => self.spool_failed().await,
                Wake::Inbound(Some(first)) => {
                    let step = self.on_inbound(first).await;
                    idle.as_mut()
                        .reset((self.last_audio + settings.idle_timeout).into());
                    step
                }
                Wake::Inbound(None) => {
                    self.detach("client disconnected");
                    Step::Continue
                }
                Wake::Engine(event) => self.on_engine(event).await,
                Wake::EngineReady(permit) => {
                    if let (Some(permit), Some(chunk)) = (permit, self.backlog.pop_front()) {
                        let bytes = (chunk.len() * 4) as u64;
                        self.backlog_bytes -= bytes;
                        metrics::gauge!(telemetry::ENGINE_BACKLOG_BYTES).decrement(bytes as f64);
                        self.handed += chunk.len() as u64;
                        permit.send(EngineInput::Audio(chunk));
                    }
                    Step::Continue
                }
                Wake::Attach(Some(a)) => {
                    self.attach(a).await;
                    Step::Continue
                }
                Wake::Attach(None) => Step::Continue,
            };
            if let Step::End(reason) = step {
                return reason;
            }
        }
    }

    /// Handles one inbound message plus whatever else is already queued, then
    /// writes the batch's audio to the spool once and acknowledges it once.
    async fn on_inbound(&mut self, first: Inbound) -> Step {
        let mut step = self.handle(first).await;
        let mut handled = 1;
        while matches!(step, Step::Continue) && handled < BATCH {
            let Some(link) = self.link.as_mut() else {
                break;
            };
            let Some(next) = link.inbound.try_recv() else {
                break;
            };
            step = self.handle(next).await;
            handled += 1;
        }
        if let Err(e) = self.flush_spool() {
            telemetry::storage_failure("spool", &self.meta.session_id, &e);
            return self.spool_failed().await;
        }
        // Acks mean durable: none once the disk has failed to keep the audio.
        if self.spool.failed().is_cancelled() {
            return self.spool_failed().await;
        }
        self.ack();
        if self.waiting_bytes() > self.shared.settings.max_buffer_bytes {
            self.send_error(
                ErrorCode::BufferLimit,
                "the engine fell too far behind",
                true,
            )
            .await;
            return Step::End(CloseReason::BufferLimit);
        }
        step
    }

    async fn handle(&mut self, msg: Inbound) -> Step {
        match msg {
            Inbound::Binary(bytes) => {
                if let Err(e) = self.meta.format.check_frame(bytes.len()) {
                    self.send_error(e.code, &e.message, false).await;
                    return Step::Continue;
                }
                self.last_audio = Instant::now();
                self.write_buf.extend_from_slice(&bytes);
                self.shared.audio_frames.increment(1);
                self.shared.audio_bytes.increment(bytes.len() as u64);
                self.mono.clear();
                self.meta.format.decode_mono_into(&bytes, &mut self.mono);
                let mut out = Vec::with_capacity(
                    self.mono.len() * self.meta.engine_rate as usize / 8000 + 64,
                );
                self.resampler.push(&self.mono, &mut out);
                self.push_engine(out);
                Step::Continue
            }
            Inbound::Text(text) => match serde_json::from_str::<ClientMsg>(&text) {
                Ok(ClientMsg::Stop) => Step::End(CloseReason::ClientStop),
                Ok(ClientMsg::Start(_)) => {
                    self.send_error(
                        ErrorCode::AlreadyStarted,
                        "this connection already has a session",
                        false,
                    )
                    .await;
                    Step::Continue
                }
                Err(_) => {
                    let msg = "expected a JSON message with a known \"type\" (start, stop)";
                    self.send_error(ErrorCode::BadMessage, msg, false).await;
                    Step::Continue
                }
            },
            Inbound::TooBig => {
                self.send_error(
                    ErrorCode::MessageTooBig,
                    "message exceeds the maximum message size",
                    true,
                )
                .await;
                if let Some(link) = &self.link {
                    link.close(CloseCode::TooBig, "message_too_big").await;
                }
                self.detach("message too big");
                Step::Continue
            }
        }
    }

    /// The spool could not be written or fsynced: nothing more is
    /// acknowledged, the client hears why, and the session ends storing
    /// what it has (or keeping it for the retry).
    async fn spool_failed(&mut self) -> Step {
        self.send_error(
            ErrorCode::StorageFailed,
            "the server could not keep the audio safe on its disk; what was acknowledged is kept",
            true,
        )
        .await;
        Step::End(CloseReason::SpoolFailed)
    }

    /// Queues resampled audio for the engine without ever blocking the session.
    pub(super) fn push_engine(&mut self, chunk: Vec<f32>) {
        if chunk.is_empty() || self.engine_done {
            return;
        }
        if self.backlog.is_empty() {
            let samples = chunk.len() as u64;
            match self.engine.audio.try_send(EngineInput::Audio(chunk)) {
                Ok(()) => self.handed += samples,
                Err(mpsc::error::TrySendError::Full(EngineInput::Audio(chunk))) => {
                    self.queue_backlog(chunk)
                }
                Err(_) => {} // engine gone: its failure arrives as an event
            }
        } else {
            self.queue_backlog(chunk);
        }
    }

    fn queue_backlog(&mut self, chunk: Vec<f32>) {
        let bytes = (chunk.len() * 4) as u64;
        self.backlog_bytes += bytes;
        metrics::gauge!(telemetry::ENGINE_BACKLOG_BYTES).increment(bytes as f64);
        self.backlog.push_back(chunk);
    }

    fn flush_spool(&mut self) -> std::io::Result<()> {
        if self.write_buf.is_empty() {
            return Ok(());
        }
        self.spool.append(&self.write_buf)?;
        self.write_buf.clear();
        let secs = self.meta.format.duration_secs(self.spool.data_len());
        self.clock.push_back((secs, Instant::now()));
        if self.clock.len() > 4096 {
            self.clock.pop_front();
        }
        Ok(())
    }

    /// Audio accepted but not yet dealt with by the engine, in bytes of
    /// 32-bit samples at the engine's rate: the session's own backlog plus
    /// what waits inside the engine (its channel, inbox or resend buffer).
    fn waiting_bytes(&self) -> u64 {
        let inside = self.handed.saturating_sub(self.engine.consumed.samples());
        self.backlog_bytes + inside * 4
    }

    fn engine_lag_ms(&self) -> u64 {
        let backlog_ms = self.backlog_bytes / 4 * 1000 / u64::from(self.meta.engine_rate.max(1));
        backlog_ms + self.engine.lag_ms.load(Ordering::Relaxed)
    }

    fn ack(&mut self) {
        let durable = self.spool.data_len();
        let lag = self.engine_lag_ms();
        if self.last_lag_sample.elapsed() >= Duration::from_secs(1) {
            self.last_lag_sample = Instant::now();
            metrics::histogram!(telemetry::ENGINE_LAG).record(lag as f64 / 1000.0);
        }
        if let Some(link) = &self.link {
            let ack = AckMsg {
                received_bytes: durable,
                durable_bytes: durable,
                engine_lag_ms: Some(lag),
            };
            if link.try_send(ServerMsg::Ack(ack)).is_err() {
                self.detach("client stopped reading");
            }
        }
    }

    async fn on_engine(&mut self, event: Option<EngineEvent>) -> Step {
        match event {
            Some(EngineEvent::Transcript(result)) => {
                self.on_result(result).await;
                Step::Continue
            }
            Some(EngineEvent::Warning { code, message }) => {
                self.send_error(code, &message, false).await;
                Step::Continue
            }
            Some(EngineEvent::Entities {
                result_id,
                entities,
            }) => {
                self.entities.insert(result_id, entities);
                Step::Continue
            }
            Some(EngineEvent::Failed { message }) => {
                tracing::warn!(event = "engine_failed", session_id = %self.meta.session_id, engine = %self.meta.engine, error = %message);
                self.engine_done = true;
                self.send_error(ErrorCode::EngineFailed, "the speech engine failed", true)
                    .await;
                Step::End(CloseReason::EngineFailed)
            }
            Some(EngineEvent::Finished) | None => {
                self.engine_done = true;
                tracing::warn!(event = "engine_ended_early", session_id = %self.meta.session_id, engine = %self.meta.engine);
                self.send_error(
                    ErrorCode::EngineFailed,
                    "the speech engine ended the stream",
                    true,
                )
                .await;
                Step::End(CloseReason::EngineFailed)
            }
        }
    }

    /// Forwards a result, enforcing the protocol: a final is never revised.
    pub(super) async fn on_result(&mut self, mut r: TranscriptResult) {
        if self.finalized.contains(&r.result_id) {
            return;
        }
        round_times(&mut r);
        let kind = if r.is_partial { "partial" } else { "final" };
        if let Some(at) = self
            .clock
            .iter()
            .find(|(secs, _)| *secs >= r.end - 1e-6)
            .map(|(_, at)| *at)
        {
            metrics::histogram!(telemetry::ENGINE_RESULT_LATENCY, "engine" => self.meta.engine.clone(), "kind" => kind)
                .record(at.elapsed().as_secs_f64());
        }
        self.open_partials.retain(|p| p.result_id != r.result_id);
        if r.is_partial {
            self.open_partials.push(r.clone());
        } else {
            self.finalized.insert(r.result_id.clone());
            let entities = self.entities.remove(&r.result_id).unwrap_or_default();
            let redacted_text = crate::protocol::Entity::redacted_variant(&r.text, &entities);
            let segment = FinalSegment {
                seq: self.finals.len() as u32,
                result_id: r.result_id.clone(),
                start: r.start,
                end: r.end,
                text: r.text.clone(),
                words: r.words.clone(),
                entities,
                redacted_text,
            };
            if let Err(e) = self
                .shared
                .stores
                .metadata
                .add_segment(&self.meta.session_id, &segment)
                .await
            {
                telemetry::storage_failure("metadata", &self.meta.session_id, &e);
            }
            self.finals.push(segment);
        }
        let msg = ServerMsg::Transcript(TranscriptMsg {
            result_id: r.result_id,
            is_partial: r.is_partial,
            start: r.start,
            end: r.end,
            text: r.text,
            words: r.words,
        });
        self.send(msg).await;
    }

    async fn attach(&mut self, a: Attach) {
        if a.format != self.meta.format {
            telemetry::client_error(ErrorCode::BadStart);
            let msg = "resume must use the session's sample_rate, encoding and channels";
            let _ = a
                .link
                .send_last(ServerMsg::error(ErrorCode::BadStart, msg, true))
                .await;
            a.link.close(CloseCode::BadStart, "bad_start").await;
            return;
        }
        if let Some(old) = self.link.take() {
            old.close(CloseCode::Normal, "resumed elsewhere").await;
        }
        let resume_from = self.spool.data_len();
        tracing::info!(
            event = "session_resumed",
            session_id = %self.meta.session_id,
            client_offset = a.offset_bytes,
            resume_from
        );
        self.link = Some(a.link);
        // The session now follows the login of the connection it is on.
        if let Some(handle) = self.shared.sessions.get(&self.meta.session_id) {
            *handle.login.lock().unwrap_or_else(|e| e.into_inner()) = a.login;
        }
        self.send(self.ready(Some(resume_from))).await;
    }

    fn detach(&mut self, why: &'static str) {
        if self.link.take().is_some() {
            tracing::info!(event = "session_detached", session_id = %self.meta.session_id, why);
        }
    }

    /// Queues a message for the client without ever waiting: a client whose
    /// queue is full is not reading and is detached (it can resume).
    pub(super) async fn send(&mut self, msg: ServerMsg) {
        if let Some(link) = &self.link
            && link.send(msg).is_err()
        {
            self.detach("client stopped reading");
        }
    }

    /// A closing session's last messages, given a moment to find room.
    pub(super) async fn send_last(&mut self, msg: ServerMsg) {
        if let Some(link) = &self.link
            && link.send_last(msg).await.is_err()
        {
            self.detach("client stopped reading");
        }
    }

    pub(super) async fn send_error(&mut self, code: ErrorCode, message: &str, fatal: bool) {
        telemetry::client_error(code);
        self.send(ServerMsg::error(code, message, fatal)).await;
    }

    pub(super) fn link(&self) -> Option<&ClientLink> {
        self.link.as_ref()
    }

    pub(super) fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    pub(super) fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Flushes the resampler tail and the backlog into the engine, asks it to
    /// finish, and forwards its last results until it is done or `deadline` passes.
    pub(super) async fn drain_engine(&mut self, deadline: tokio::time::Instant) {
        if !self.engine_done {
            self.flush_engine(deadline).await;
        }
        self.close_open_partials().await;
    }

    /// Whether the transcript may miss words: the engine was given audio and
    /// did not finish it (it failed, or was still behind at the deadline).
    /// Said to the client before `stored`, and marked in the manifest.
    pub(super) async fn check_transcript(&mut self) -> bool {
        let incomplete = self.handed > 0 && !self.engine_finished;
        if incomplete {
            let undecoded = self.handed.saturating_sub(self.engine.consumed.samples());
            tracing::warn!(
                event = "transcript_incomplete",
                session_id = %self.meta.session_id,
                engine = %self.meta.engine,
                undecoded_secs = undecoded as f64 / f64::from(self.meta.engine_rate.max(1)),
            );
            self.send_error(
                ErrorCode::TranscriptIncomplete,
                "the engine could not transcribe all of the audio; the audio is stored whole",
                false,
            )
            .await;
        }
        incomplete
    }

    async fn flush_engine(&mut self, deadline: tokio::time::Instant) {
        let mut tail = Vec::new();
        self.resampler.finish(&mut tail);
        self.push_engine(tail);
        while let Some(chunk) = self.backlog.pop_front() {
            let bytes = (chunk.len() * 4) as u64;
            self.backlog_bytes -= bytes;
            metrics::gauge!(telemetry::ENGINE_BACKLOG_BYTES).decrement(bytes as f64);
            let sent = tokio::time::timeout_at(
                deadline,
                self.engine.audio.send(EngineInput::Audio(chunk)),
            )
            .await;
            if !matches!(sent, Ok(Ok(()))) {
                self.engine_done = true;
            }
        }
        let finish =
            tokio::time::timeout_at(deadline, self.engine.audio.send(EngineInput::Finish)).await;
        if !matches!(finish, Ok(Ok(()))) {
            self.engine_done = true;
        }
        while !self.engine_done {
            match tokio::time::timeout_at(deadline, self.engine.events.recv()).await {
                Ok(Some(EngineEvent::Transcript(r))) => self.on_result(r).await,
                // e.g. `engine_retrying` while a remote engine recovers its final results
                Ok(Some(EngineEvent::Warning { code, message })) => {
                    self.send_error(code, &message, false).await
                }
                Ok(Some(EngineEvent::Entities {
                    result_id,
                    entities,
                })) => {
                    self.entities.insert(result_id, entities);
                }
                Ok(Some(EngineEvent::Finished)) => {
                    self.engine_done = true;
                    self.engine_finished = true;
                }
                Ok(Some(EngineEvent::Failed { .. })) | Ok(None) => self.engine_done = true,
                Err(_) => {
                    tracing::warn!(event = "engine_flush_timeout", session_id = %self.meta.session_id, engine = %self.meta.engine);
                    self.engine_done = true;
                }
            }
        }
        metrics::gauge!(telemetry::ENGINE_BACKLOG_BYTES).decrement(self.backlog_bytes as f64);
        self.backlog_bytes = 0;
    }

    /// Every `result_id` ends with exactly one final: a partial the engine
    /// never finalized (it failed, or did not finish in time) becomes final
    /// as last shown, so the words the clinician saw are also stored.
    async fn close_open_partials(&mut self) {
        let open = std::mem::take(&mut self.open_partials);
        if open.is_empty() {
            return;
        }
        tracing::info!(event = "open_partials_finalized", session_id = %self.meta.session_id, count = open.len());
        for partial in open {
            self.on_result(TranscriptResult {
                is_partial: false,
                ..partial
            })
            .await;
        }
    }

    /// Stops accepting resumes: later attach attempts get `unknown_session`.
    pub(super) fn close_attach(&mut self) {
        self.attach_rx.close();
    }
}

/// Times go out in whole milliseconds: engines compute them in floating point
/// (`3.2700000000000005`), and clients and stored transcripts need no more.
fn round_times(r: &mut TranscriptResult) {
    let ms = |t: f64| (t * 1000.0).round() / 1000.0;
    r.start = ms(r.start);
    r.end = ms(r.end);
    for w in &mut r.words {
        w.start = ms(w.start);
        w.end = ms(w.end);
    }
}

async fn recv_link(link: &mut Option<ClientLink>) -> Option<Inbound> {
    match link {
        Some(l) => l.inbound.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Word;

    #[test]
    fn result_times_are_rounded_to_milliseconds() {
        let mut r = TranscriptResult {
            result_id: "r".into(),
            is_partial: true,
            start: 0.190_476_190_476,
            end: 3.270_000_000_000_000_5,
            text: "x".into(),
            words: vec![Word {
                word: "x".into(),
                start: 1.000_4,
                end: 1.000_6,
                confidence: None,
            }],
        };
        round_times(&mut r);
        assert_eq!((r.start, r.end), (0.19, 3.27));
        assert_eq!((r.words[0].start, r.words[0].end), (1.0, 1.001));
    }
}
