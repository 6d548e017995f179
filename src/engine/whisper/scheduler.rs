//! The decode pool: every open stream, and the worker threads that decode
//! their due windows in batches, each worker with its own model replica.
//!
//! Partials come from windows encoded at their own length; the final of an
//! ended utterance, which is what gets stored, from a window of at least
//! 10 s (short windows of short utterances cost accuracy); a pass that loops
//! is decoded again in the full 30 s window the model was trained on.
//!
//! Fairness: urgent windows (an utterance ended, a window must be cut) go
//! first, then the streams that waited longest since their last decode. The
//! due streams are shared out among the idle workers. Under load each round
//! takes longer, so every stream decodes less often (with more new audio
//! each time) instead of failing, and the lag shows in its `lag_ms`; the
//! engine admits only as many streams as it can hold in time.

use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::model::{Decoder, Hypothesis, ModelError, Pass, Request};
use super::stream::{Due, StreamState};

/// Windows one worker decodes together at most.
const MAX_BATCH: usize = 8;
/// How often a worker looks for new audio when nothing is due.
const TICK: Duration = Duration::from_millis(20);

/// The scheduler's health, read by `readiness`.
#[derive(Debug, Default)]
pub struct Health {
    pub last_error: Option<String>,
    pub stopped: bool,
}

#[derive(Default)]
pub struct Pool {
    streams: Vec<StreamState>,
    /// False once the engine is dropped: workers leave when the streams are done.
    pub open: bool,
    workers: usize,
    busy: usize,
}

/// What the workers share.
pub struct Shared {
    pub pool: Mutex<Pool>,
    pub wake: Condvar,
    pub health: Mutex<Health>,
}

impl Shared {
    pub fn new(workers: usize) -> Arc<Self> {
        Arc::new(Shared {
            pool: Mutex::new(Pool {
                open: true,
                workers,
                ..Pool::default()
            }),
            wake: Condvar::new(),
            health: Mutex::new(Health::default()),
        })
    }

    pub fn lock(&self) -> MutexGuard<'_, Pool> {
        self.pool.lock().expect("decode pool lock")
    }

    pub fn register(&self, stream: StreamState) {
        self.lock().streams.push(stream);
        self.wake.notify_one();
    }

    /// Lets the workers leave once every stream is done.
    pub fn close(&self) {
        self.lock().open = false;
        self.wake.notify_all();
    }

    /// Waits up to `wait` for every worker to leave (after [`Shared::close`]);
    /// whether they all did.
    pub fn wait_workers_gone(&self, wait: std::time::Duration) -> bool {
        let deadline = std::time::Instant::now() + wait;
        let mut pool = self.lock();
        while pool.workers > 0 {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return false;
            }
            pool = self
                .wake
                .wait_timeout(pool, left)
                .expect("decode pool lock")
                .0;
        }
        true
    }
}

/// One window taken for decoding.
struct Job {
    stream: u64,
    audio: Vec<f32>,
    /// [`Pass::Final`] for an ended utterance, whose final is stored.
    pass: Pass,
}

/// A decode worker: runs until the pool is closed and empty.
pub fn run(mut decoder: impl Decoder, shared: Arc<Shared>) {
    loop {
        let jobs = {
            let mut pool = shared.lock();
            loop {
                pool.tick();
                if !pool.open && pool.streams.is_empty() {
                    pool.workers -= 1;
                    if pool.workers == 0 {
                        shared.health.lock().expect("health lock").stopped = true;
                    }
                    shared.wake.notify_all();
                    return;
                }
                let jobs = pool.take_batch();
                if !jobs.is_empty() {
                    pool.busy += 1;
                    break jobs;
                }
                pool = shared
                    .wake
                    .wait_timeout(pool, TICK)
                    .expect("decode pool lock")
                    .0;
            }
        };
        let outcome = decode_guarded(&mut decoder, &jobs);
        let mut pool = shared.lock();
        pool.busy -= 1;
        match outcome {
            Ok(hypotheses) => {
                shared.health.lock().expect("health lock").last_error = None;
                for (job, hypothesis) in jobs.iter().zip(&hypotheses) {
                    if let Some(stream) = pool.find(job.stream) {
                        stream.apply(hypothesis, job.audio.len());
                    }
                }
            }
            Err(err) => {
                tracing::error!(error = %err, batch = jobs.len(), "whisper decode failed");
                shared.health.lock().expect("health lock").last_error = Some(err.to_string());
                for job in &jobs {
                    if let Some(stream) = pool.find(job.stream) {
                        stream.fail("speech recognition failed");
                    }
                }
            }
        }
        pool.tick();
        drop(pool);
        // Another stream may have become due while this batch ran.
        shared.wake.notify_one();
    }
}

/// Decodes the batch; a window whose pass looped is decoded again the robust
/// way, padded to 30 s, and that result is kept.
fn decode_guarded(decoder: &mut impl Decoder, jobs: &[Job]) -> Result<Vec<Hypothesis>, ModelError> {
    let requests: Vec<Request<'_>> = jobs
        .iter()
        .map(|j| Request {
            audio: &j.audio,
            pass: j.pass,
        })
        .collect();
    let mut hypotheses = decoder.decode(&requests)?;
    let looped: Vec<usize> = (0..hypotheses.len())
        .filter(|&i| jobs[i].pass != Pass::Full && hypotheses[i].repeats())
        .collect();
    if looped.is_empty() {
        return Ok(hypotheses);
    }
    metrics::counter!("auscult_whisper_fallback_decodes_total").increment(looped.len() as u64);
    tracing::debug!(
        windows = looped.len(),
        "whisper pass repeated itself; decoding again padded to 30 s"
    );
    let again: Vec<Request<'_>> = looped
        .iter()
        .map(|&i| Request {
            audio: &jobs[i].audio,
            pass: Pass::Full,
        })
        .collect();
    for (i, hypothesis) in looped.into_iter().zip(decoder.decode(&again)?) {
        hypotheses[i] = hypothesis;
    }
    Ok(hypotheses)
}

impl Pool {
    fn find(&mut self, id: u64) -> Option<&mut StreamState> {
        self.streams.iter_mut().find(|s| s.id == id)
    }

    /// Moves new audio in, sends what is ready, forgets finished streams.
    fn tick(&mut self) {
        for stream in self.streams.iter_mut() {
            stream.ingest();
            stream.deliver();
        }
        self.streams.retain(|s| {
            if s.is_done() {
                tracing::debug!(session_id = %s.session_id, "whisper stream closed");
            }
            !s.is_done()
        });
        let max_lag = self
            .streams
            .iter()
            .map(StreamState::lag_secs)
            .fold(0.0, f64::max);
        metrics::gauge!("auscult_whisper_lag_seconds").set(max_lag);
        metrics::gauge!("auscult_whisper_streams").set(self.streams.len() as f64);
    }

    /// Takes this worker's share of the due windows: urgent first, then the
    /// longest waiting, split evenly among the workers not decoding now.
    fn take_batch(&mut self) -> Vec<Job> {
        let picked = pick(&self.streams, self.workers.saturating_sub(self.busy).max(1));
        picked
            .into_iter()
            .map(|i| {
                let stream = &mut self.streams[i];
                stream.in_flight = true;
                Job {
                    stream: stream.id,
                    audio: stream.window().to_vec(),
                    pass: stream.pass(),
                }
            })
            .collect()
    }
}

/// Indices of the streams one of `idle` workers should decode now.
fn pick(streams: &[StreamState], idle: usize) -> Vec<usize> {
    let mut due: Vec<(Due, Instant, usize)> = streams
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.due().map(|d| (d, s.last_decode, i)))
        .collect();
    due.sort();
    let share = due.len().div_ceil(idle).clamp(1, MAX_BATCH);
    due.into_iter().take(share).map(|(_, _, i)| i).collect()
}

#[cfg(test)]
#[path = "scheduler_tests.rs"]
mod tests;
