//! The loaded Whisper model: CTranslate2 weights plus the tokenizer and the
//! log-mel front end, decoding a batch of audio windows in one `generate` call.
//!
//! Calls block for the length of a full encoder pass; they belong on the
//! scheduler thread, never on an async worker.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ct2rs::sys::{ComputeType, Config, Device, StorageView, Whisper, WhisperOptions};

use super::agreement::TimedWord;
use super::mel::{LogMel, N_FRAMES, N_MELS, SAMPLE_RATE};
use super::tokenizer::{START_OF_TRANSCRIPT, Segment, Tokenizer};

/// Script that installs the model; named in every "model missing" error.
pub const FETCH_SCRIPT: &str = "scripts/fetch-model.sh";

/// Above this no-speech probability, with a low average log-probability, a
/// window is treated as silence (openai-whisper's `no_speech_threshold`).
const NO_SPEECH_THRESHOLD: f32 = 0.6;
const LOGPROB_THRESHOLD: f32 = -1.0;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(
        "Whisper model not found in {dir} (missing {file}); install it with `{FETCH_SCRIPT} {dir}`"
    )]
    Missing { dir: String, file: &'static str },
    #[error("Whisper model in {dir} is unusable ({why}); reinstall it with `{FETCH_SCRIPT} {dir}`")]
    Broken { dir: String, why: String },
    #[error("unknown compute type {0:?} (expected int8, int8_float32, int16, float32 or default)")]
    ComputeType(String),
    #[error("Whisper decode failed: {0}")]
    Decode(String),
}

/// What one window decoded to.
#[derive(Debug, Clone, Default)]
pub struct Hypothesis {
    /// Segments with times relative to the window start.
    pub segments: Vec<Segment>,
    pub no_speech_prob: f32,
    pub avg_logprob: f32,
}

impl Hypothesis {
    /// Whisper's own verdict that the window holds no speech.
    pub fn is_silence(&self) -> bool {
        self.segments.is_empty()
            || (self.no_speech_prob > NO_SPEECH_THRESHOLD && self.avg_logprob < LOGPROB_THRESHOLD)
    }

    /// Words with times in seconds from the stream start, for a window that
    /// begins at `offset` and holds `limit` seconds of audio. The model gives
    /// segment times; a segment's span is shared by its words in proportion
    /// to their length.
    pub fn words(&self, offset: f64, limit: f64) -> Vec<TimedWord> {
        let mut out = Vec::new();
        for segment in &self.segments {
            let (start, end) = (segment.start.min(limit), segment.end.min(limit));
            let parts: Vec<&str> = segment.text.split_whitespace().collect();
            let weight: usize = parts.iter().map(|p| p.chars().count() + 1).sum();
            let mut at = start;
            for part in parts {
                let span = (end - start) * (part.chars().count() + 1) as f64 / weight.max(1) as f64;
                out.push(TimedWord {
                    text: part.to_owned(),
                    start: offset + at,
                    end: offset + at + span,
                });
                at += span;
            }
        }
        out
    }
}

pub struct WhisperModel {
    whisper: Whisper,
    tokenizer: Tokenizer,
    mel: LogMel,
    options: WhisperOptions,
}

impl WhisperModel {
    /// Loads the CTranslate2 model in `dir` with `threads` intra-op threads
    /// (0 = one per core).
    pub fn load(dir: &Path, threads: usize, compute_type: &str) -> Result<Self, ModelError> {
        let shown = dir.display().to_string();
        for file in [
            "model.bin",
            "config.json",
            "tokenizer.json",
            "vocabulary.txt",
        ] {
            if !dir.join(file).is_file() {
                return Err(ModelError::Missing { dir: shown, file });
            }
        }
        let broken = |why: String| ModelError::Broken {
            dir: shown.clone(),
            why,
        };
        let tokenizer =
            Tokenizer::load(&dir.join("tokenizer.json")).map_err(|e| broken(e.to_string()))?;
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            threads
        };
        let config = Config {
            device: Device::CPU,
            compute_type: parse_compute_type(compute_type)?,
            num_threads_per_replica: threads,
            ..Config::default()
        };
        let whisper =
            Whisper::new(PathBuf::from(dir), config).map_err(|e| broken(format!("{e:#}")))?;
        if whisper.is_multilingual() || whisper.n_mels() != N_MELS {
            return Err(broken(
                "expected the English-only tiny.en model with 80 mel bins".into(),
            ));
        }
        let options = WhisperOptions {
            beam_size: 1,
            return_scores: true,
            return_no_speech_prob: true,
            max_length: 224,
            ..WhisperOptions::default()
        };
        Ok(WhisperModel {
            whisper,
            tokenizer,
            mel: LogMel::new(),
            options,
        })
    }

    /// Decodes each window (16 kHz mono, at most 30 s) in one batched call.
    pub fn decode(&self, windows: &[&[f32]]) -> Result<Vec<Hypothesis>, ModelError> {
        if windows.is_empty() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let mut features: Vec<f32> = Vec::with_capacity(windows.len() * N_MELS * N_FRAMES);
        for window in windows {
            features.extend(self.mel.features(window));
        }
        let shape = [windows.len(), N_MELS, N_FRAMES];
        let view = StorageView::new(&shape, &mut features, Device::CPU)
            .map_err(|e| ModelError::Decode(e.to_string()))?;
        let prompts = vec![vec![START_OF_TRANSCRIPT]; windows.len()];
        let results = self
            .whisper
            .generate(&view, &prompts, &self.options)
            .map_err(|e| ModelError::Decode(e.to_string()))?;
        let hypotheses = results
            .into_iter()
            .zip(windows)
            .map(|(result, window)| {
                let secs = window.len() as f64 / f64::from(SAMPLE_RATE);
                let ids = result
                    .sequences_ids
                    .first()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                Hypothesis {
                    segments: self.tokenizer.segments(ids, secs),
                    no_speech_prob: result.no_speech_prob,
                    avg_logprob: result.scores.first().copied().unwrap_or(0.0),
                }
            })
            .collect();
        let audio_secs: f64 =
            windows.iter().map(|w| w.len() as f64).sum::<f64>() / f64::from(SAMPLE_RATE);
        let decode_secs = started.elapsed().as_secs_f64();
        metrics::histogram!("auscult_whisper_batch_size").record(windows.len() as f64);
        if audio_secs > 0.0 {
            metrics::histogram!("auscult_whisper_decode_rtf").record(decode_secs / audio_secs);
        }
        tracing::debug!(
            batch = windows.len(),
            audio_secs,
            decode_secs,
            "whisper batch decoded"
        );
        Ok(hypotheses)
    }
}

fn parse_compute_type(name: &str) -> Result<ComputeType, ModelError> {
    Ok(match name.to_ascii_lowercase().as_str() {
        "int8" => ComputeType::INT8,
        "int8_float32" => ComputeType::INT8_FLOAT32,
        "int16" => ComputeType::INT16,
        "float32" => ComputeType::FLOAT32,
        "default" | "auto" => ComputeType::DEFAULT,
        _ => return Err(ModelError::ComputeType(name.to_owned())),
    })
}
