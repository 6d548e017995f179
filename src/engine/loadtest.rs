//! `loadtest`: a load-testing engine that does no speech recognition.
//!
//! It counts the audio it receives and, for every second of audio, reports the
//! count as a partial and then a final. It exists so the load generator can
//! measure the server without a speech model; it is never the default engine.

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use async_trait::async_trait;
use tokio::sync::mpsc;

use super::{
    Consumed, Engine, EngineError, EngineEvent, EngineInput, EngineStream, Readiness,
    STREAM_CHANNEL_DEPTH, StreamParams, TranscriptResult,
};

pub const NAME: &str = "loadtest";

/// The rate the load-test engine asks for (the same as the speech engines').
const RATE: u32 = 16_000;

#[derive(Debug, Default)]
pub struct LoadTestEngine;

impl LoadTestEngine {
    pub fn new() -> Self {
        LoadTestEngine
    }
}

#[async_trait]
impl Engine for LoadTestEngine {
    fn name(&self) -> &str {
        NAME
    }

    fn engine_rate(&self, _input_rate: u32) -> u32 {
        RATE
    }

    async fn open(&self, params: StreamParams) -> Result<EngineStream, EngineError> {
        let (audio_tx, audio_rx) = mpsc::channel(STREAM_CHANNEL_DEPTH);
        let (events_tx, events_rx) = mpsc::channel(STREAM_CHANNEL_DEPTH);
        let consumed = Arc::new(Consumed::default());
        tokio::spawn(run(
            params.sample_rate,
            audio_rx,
            events_tx,
            Arc::clone(&consumed),
        ));
        Ok(EngineStream {
            audio: audio_tx,
            events: events_rx,
            lag_ms: Arc::new(AtomicU64::new(0)),
            consumed,
        })
    }

    async fn readiness(&self) -> Readiness {
        Readiness::ready("load-test engine (no speech recognition)")
    }
}

/// The stream task: ends when the session drops its sender or after `Finish`.
async fn run(
    rate: u32,
    mut audio: mpsc::Receiver<EngineInput>,
    events: mpsc::Sender<EngineEvent>,
    consumed: Arc<Consumed>,
) {
    let rate = u64::from(rate.max(1));
    let mut samples: u64 = 0;
    let mut reported_secs: u64 = 0;
    while let Some(input) = audio.recv().await {
        match input {
            EngineInput::Audio(chunk) => {
                samples += chunk.len() as u64;
                consumed.reached(samples);
                while samples / rate > reported_secs {
                    reported_secs += 1;
                    if emit(&events, reported_secs, reported_secs as f64, samples)
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            EngineInput::Finish => {
                let end = samples as f64 / rate as f64;
                if end > reported_secs as f64 {
                    let _ = emit(&events, reported_secs + 1, end, samples).await;
                }
                let _ = events.send(EngineEvent::Finished).await;
                return;
            }
        }
    }
}

async fn emit(
    events: &mpsc::Sender<EngineEvent>,
    index: u64,
    end: f64,
    samples: u64,
) -> Result<(), mpsc::error::SendError<EngineEvent>> {
    let start = (index - 1) as f64;
    let text = format!("{samples} samples received");
    for is_partial in [true, false] {
        events
            .send(EngineEvent::Transcript(TranscriptResult {
                result_id: format!("r-{index}"),
                is_partial,
                start,
                end,
                text: text.clone(),
                words: Vec::new(),
            }))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_each_second_then_the_remainder_on_finish() {
        let engine = LoadTestEngine::new();
        let mut stream = engine
            .open(StreamParams {
                session_id: "s".into(),
                language: "en-US".into(),
                sample_rate: 16_000,
                specialty: None,
                mode: None,
            })
            .await
            .unwrap();
        // 2.5 s of audio in 100 ms chunks.
        for _ in 0..25 {
            stream
                .audio
                .send(EngineInput::Audio(vec![0.0; 1600]))
                .await
                .unwrap();
        }
        stream.audio.send(EngineInput::Finish).await.unwrap();
        let mut finals = Vec::new();
        loop {
            match stream.events.recv().await.unwrap() {
                EngineEvent::Transcript(t) if !t.is_partial => {
                    finals.push((t.result_id, t.end, t.text))
                }
                EngineEvent::Finished => break,
                _ => {}
            }
        }
        assert_eq!(finals.len(), 3);
        assert_eq!(finals[0].0, "r-1");
        assert_eq!(finals[1].2, "32000 samples received");
        assert_eq!(finals[2].1, 2.5);
        assert_eq!(finals[2].2, "40000 samples received");
    }
}
