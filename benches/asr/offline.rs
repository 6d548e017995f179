//! The offline reference: the same model and engine in this process, given a
//! whole clip at once and then `Finish`, so each utterance is decoded once
//! with all of its audio (no streaming, no partials).

use std::time::Duration;

use auscult::config::WhisperConfig;
use auscult::engine::whisper::WhisperEngine;
use auscult::engine::{Engine, EngineEvent, EngineInput, StreamParams};

use crate::clips::RATE;

pub fn load(config: &WhisperConfig) -> anyhow::Result<WhisperEngine> {
    Ok(WhisperEngine::load(config)?)
}

/// The finals' text for `samples` decoded in one go.
pub async fn transcribe(engine: &WhisperEngine, samples: &[f32]) -> anyhow::Result<String> {
    let params = StreamParams {
        session_id: "offline".into(),
        language: "en-US".into(),
        sample_rate: RATE,
        specialty: None,
        mode: None,
    };
    let mut stream = engine.open(params).await?;
    stream
        .audio
        .send(EngineInput::Audio(samples.to_vec()))
        .await?;
    stream.audio.send(EngineInput::Finish).await?;
    let mut finals = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(120), stream.events.recv())
            .await
            .map_err(|_| anyhow::anyhow!("offline decode timed out"))?
            .ok_or_else(|| anyhow::anyhow!("engine stream closed"))?;
        match event {
            EngineEvent::Transcript(r) if !r.is_partial => finals.push(r.text),
            EngineEvent::Transcript(_)
            | EngineEvent::Warning { .. }
            | EngineEvent::Entities { .. } => {}
            EngineEvent::Failed { message } => anyhow::bail!("offline decode failed: {message}"),
            EngineEvent::Finished => break,
        }
    }
    Ok(finals.join(" "))
}
