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

/// Windows decoded together at most. Each costs one 30 s encoder pass (about
/// 1 s of CPU on 2 cores, int8), so a bigger batch saves little and makes
/// every round, and the wait for an utterance's final, longer.
const MAX_BATCH: usize = 4;
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;
    use crate::engine::whisper::stream::Inbox;

    /// A stream that has heard a short pause and then `secs` of loud tone
    /// (speech to the VAD), `finish`ed or not, and last decoded `ago` before now.
    fn stream_with_speech(secs: f32, finish: bool, ago: Duration) -> StreamState {
        let tone = (0..(secs * 16_000.0) as usize).map(|i| 0.3 * (i as f32 * 0.07).sin());
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        {
            let mut inbox = inbox.lock().unwrap();
            inbox.audio.extend(vec![0.0; 4_800]);
            inbox.audio.extend(tone);
            inbox.finished = finish;
        }
        let (tx, _rx) = mpsc::channel(4);
        let mut stream = StreamState::new(
            "s".into(),
            inbox,
            tx,
            (Arc::new(AtomicU64::new(0)), Arc::default()),
        );
        stream.ingest();
        stream.last_decode = Instant::now() - ago;
        stream
    }

    #[test]
    fn urgent_windows_go_first_then_the_longest_waiting() {
        let streams = vec![
            stream_with_speech(2.0, false, Duration::from_secs(1)),
            stream_with_speech(2.0, false, Duration::from_secs(5)),
            stream_with_speech(0.5, false, Duration::from_secs(9)),
            stream_with_speech(2.0, true, Duration::ZERO),
            stream_with_speech(2.0, false, Duration::from_secs(3)),
        ];
        // Stream 2 has too little new speech to be due; 3 finished (urgent).
        assert_eq!(pick_batch(&streams), vec![3, 1, 4, 0]);
    }

    #[test]
    fn a_batch_never_exceeds_the_limit() {
        let streams: Vec<StreamState> = (0..10)
            .map(|i| stream_with_speech(2.0, false, Duration::from_secs(i)))
            .collect();
        assert_eq!(pick_batch(&streams), vec![9, 8, 7, 6]);
    }

    #[test]
    fn silent_streams_are_never_decoded() {
        let inbox = Arc::new(Mutex::new(Inbox::default()));
        inbox.lock().unwrap().audio.extend(vec![0.0; 16_000 * 5]);
        let (tx, _rx) = mpsc::channel(4);
        let mut stream = StreamState::new(
            "s".into(),
            inbox,
            tx,
            (Arc::new(AtomicU64::new(0)), Arc::default()),
        );
        stream.ingest();
        assert!(pick_batch(&[stream]).is_empty());
    }
}
