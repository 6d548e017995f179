//! The decode scheduler: one dedicated thread that owns the model and every
//! open stream, and batches the windows that are due into one `generate` call.
//!
//! Fairness: urgent windows (an utterance ended, a window must be trimmed)
//! go first, then the streams that waited longest since their last decode,
//! up to a batch limit. Under load each round simply takes longer, so every
//! stream decodes less often (with more new audio each time) instead of
//! failing, and the lag shows in its `lag_ms`.

use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::model::WhisperModel;
use super::stream::StreamState;

/// Windows decoded together at most; each costs one 30 s encoder pass.
const MAX_BATCH: usize = 8;
/// How often the scheduler looks for new audio when nothing is due.
const TICK: Duration = Duration::from_millis(50);

/// The scheduler's health, read by `readiness`.
#[derive(Debug, Default)]
pub struct Health {
    pub last_error: Option<String>,
    pub stopped: bool,
}

/// Runs until every registration sender is dropped and all streams are done.
pub fn run(model: WhisperModel, registrations: Receiver<StreamState>, health: Arc<Mutex<Health>>) {
    let mut streams: Vec<StreamState> = Vec::new();
    let mut open = true;
    loop {
        for stream in streams.iter_mut() {
            stream.ingest();
        }
        let batch = pick_batch(&streams);
        if !batch.is_empty() {
            decode_batch(&model, &mut streams, &batch, &health);
        }
        for stream in streams.iter_mut() {
            stream.deliver();
        }
        streams.retain(|s| {
            if s.is_done() {
                tracing::debug!(session_id = %s.session_id, "whisper stream closed");
            }
            !s.is_done()
        });
        let max_lag = streams
            .iter()
            .map(StreamState::lag_secs)
            .fold(0.0, f64::max);
        metrics::gauge!("auscult_whisper_lag_seconds").set(max_lag);
        metrics::gauge!("auscult_whisper_streams").set(streams.len() as f64);
        if !open && streams.is_empty() {
            break;
        }
        // Wait for a new stream only when nothing is due right away.
        let wait = if batch.is_empty() {
            TICK
        } else {
            Duration::ZERO
        };
        match registrations.recv_timeout(wait) {
            Ok(stream) => streams.push(stream),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => open = false,
        }
        while let Ok(stream) = registrations.try_recv() {
            streams.push(stream);
        }
    }
    health.lock().expect("health lock").stopped = true;
}

/// Indices of the streams to decode this round: urgent first, then oldest.
fn pick_batch(streams: &[StreamState]) -> Vec<usize> {
    let mut due: Vec<(super::stream::Due, Instant, usize)> = streams
        .iter()
        .enumerate()
        .filter_map(|(i, s)| s.due().map(|d| (d, s.last_decode, i)))
        .collect();
    due.sort();
    due.into_iter().take(MAX_BATCH).map(|(_, _, i)| i).collect()
}

fn decode_batch(
    model: &WhisperModel,
    streams: &mut [StreamState],
    batch: &[usize],
    health: &Mutex<Health>,
) {
    let windows: Vec<&[f32]> = batch.iter().map(|&i| streams[i].window()).collect();
    let lens: Vec<usize> = windows.iter().map(|w| w.len()).collect();
    match model.decode(&windows) {
        Ok(hypotheses) => {
            health.lock().expect("health lock").last_error = None;
            for ((&i, hypothesis), len) in batch.iter().zip(&hypotheses).zip(lens) {
                streams[i].apply(hypothesis, len);
            }
        }
        Err(err) => {
            tracing::error!(error = %err, batch = batch.len(), "whisper decode failed");
            health.lock().expect("health lock").last_error = Some(err.to_string());
            for &i in batch {
                streams[i].fail("speech recognition failed");
            }
        }
    }
}
