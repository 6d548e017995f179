//! A whole recording through an engine in one go: all of its audio, then
//! `Finish`, and the finals that come back. The offline reference the speech
//! benchmark and tests compare live sessions with (the same model with all
//! of the audio at once: no pacing, no partials shown).

use std::time::Duration;

use super::{Engine, EngineError, EngineEvent, EngineInput, StreamParams, TranscriptResult};
use crate::audio::StreamResampler;

/// Why a whole-recording decode gave no transcript.
#[derive(Debug, thiserror::Error)]
pub enum WholeError {
    #[error(transparent)]
    Open(#[from] EngineError),
    #[error("no resampler from {from} Hz to {to} Hz: {why}")]
    Rate { from: u32, to: u32, why: String },
    #[error("the engine stream closed before it finished")]
    Closed,
    #[error("the engine did not finish within {0:?}")]
    TimedOut(Duration),
    #[error("the engine failed: {0}")]
    Failed(String),
}

/// The finals of `samples` (mono, in [-1, 1], at `rate`), resampled to the
/// engine's rate and decoded in one stream. `timeout` bounds the wait for
/// each event.
pub async fn transcribe_whole(
    engine: &dyn Engine,
    samples: &[f32],
    rate: u32,
    timeout: Duration,
) -> Result<Vec<TranscriptResult>, WholeError> {
    let engine_rate = engine.engine_rate(rate);
    let audio = if engine_rate == rate {
        samples.to_vec()
    } else {
        let mut resampler =
            StreamResampler::new(rate, engine_rate).map_err(|e| WholeError::Rate {
                from: rate,
                to: engine_rate,
                why: e.to_string(),
            })?;
        let mut audio = Vec::new();
        resampler.push(samples, &mut audio);
        resampler.finish(&mut audio);
        audio
    };
    let params = StreamParams {
        session_id: "whole".into(),
        language: "en-US".into(),
        sample_rate: engine_rate,
        specialty: None,
        mode: None,
    };
    let mut stream = engine.open(params).await?;
    for input in [EngineInput::Audio(audio), EngineInput::Finish] {
        stream
            .audio
            .send(input)
            .await
            .map_err(|_| WholeError::Closed)?;
    }
    let mut finals = Vec::new();
    loop {
        let event = tokio::time::timeout(timeout, stream.events.recv())
            .await
            .map_err(|_| WholeError::TimedOut(timeout))?
            .ok_or(WholeError::Closed)?;
        match event {
            EngineEvent::Transcript(r) if !r.is_partial => finals.push(r),
            EngineEvent::Transcript(_)
            | EngineEvent::Warning { .. }
            | EngineEvent::Entities { .. } => {}
            EngineEvent::Failed { message } => return Err(WholeError::Failed(message)),
            EngineEvent::Finished => return Ok(finals),
        }
    }
}

/// The finals' texts joined by spaces.
pub fn joined(finals: &[TranscriptResult]) -> String {
    finals
        .iter()
        .map(|r| r.text.as_str())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::LoadTestEngine;

    #[tokio::test]
    async fn a_whole_recording_is_resampled_to_the_engine_rate_and_comes_back_as_finals() {
        // 2.5 s at 8 kHz: the load-test engine (16 kHz) reports each second
        // of what it received, then the rest at `Finish`.
        let audio: Vec<f32> = (0..20_000).map(|i| (i as f32 * 0.05).sin() * 0.3).collect();
        let finals = transcribe_whole(
            &LoadTestEngine::new(),
            &audio,
            8_000,
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        assert_eq!(finals.len(), 3, "{finals:?}");
        assert!(finals.iter().all(|r| !r.is_partial));
        let end = finals.last().unwrap().end;
        assert!((end - 2.5).abs() < 0.05, "ends at {end} s");
        assert_eq!(joined(&finals).matches("samples received").count(), 3);
    }
}
