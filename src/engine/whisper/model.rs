//! The loaded Whisper model: CTranslate2 weights plus the tokenizer and the
//! log-mel front end, decoding a batch of audio windows in one `generate` call.
//!
//! Windows are encoded at their own length plus padding, not padded to 30 s:
//! the encoder's cost follows the audio. Calls block; they belong on a decode
//! worker thread, never on an async worker.

use std::path::{Path, PathBuf};
use std::time::Instant;

use ct2rs::sys::{ComputeType, Config, Device, StorageView, Whisper, WhisperOptions};

use super::agreement::{TimedWord, normalize};
use super::mel::{HOP, LogMel, N_FRAMES, N_MELS, SAMPLE_RATE};
use super::tokenizer::{START_OF_PREV, START_OF_TRANSCRIPT, Segment, Tokenizer};

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
    /// Generation stopped at its length cap (a sign of a loop).
    pub truncated: bool,
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
    /// to their length. The last word of every segment but the last is
    /// marked: its end is a timestamp the model chose, a safe place to cut.
    /// No word starts before `floor` (where the VAD heard speech begin): the
    /// model often dates the first segment at the window's start.
    pub fn words(&self, offset: f64, limit: f64, floor: f64) -> Vec<TimedWord> {
        let mut out = Vec::new();
        let closed = self.segments.len().saturating_sub(1);
        for (index, segment) in self.segments.iter().enumerate() {
            let end = segment.end.min(limit);
            let start = segment.start.max(floor).min(end);
            let parts: Vec<&str> = segment.text.split_whitespace().collect();
            let weight: usize = parts.iter().map(|p| p.chars().count() + 1).sum();
            let mut at = start;
            for part in parts {
                let span = (end - start) * (part.chars().count() + 1) as f64 / weight.max(1) as f64;
                out.push(TimedWord {
                    text: part.to_owned(),
                    start: offset + at,
                    end: offset + at + span,
                    ends_segment: false,
                });
                at += span;
            }
            if index < closed
                && let Some(last) = out.last_mut()
            {
                last.ends_segment = true;
            }
        }
        out
    }

    /// Whether the pass looped: it ran into its length cap, a segment says
    /// again the first three or more words of an earlier one, or a stretch of
    /// words repeats back to back (a word 4 times, 2–4 words 3 times, 5 or
    /// more words twice: people repeat themselves, not whole sentences).
    pub fn repeats(&self) -> bool {
        if self.truncated {
            return true;
        }
        let words: Vec<String> = self
            .segments
            .iter()
            .flat_map(|s| s.text.split_whitespace())
            .map(normalize)
            .collect();
        // A segment that says again the start of an earlier one.
        let segment_words: Vec<Vec<String>> = self
            .segments
            .iter()
            .map(|s| s.text.split_whitespace().map(normalize).collect())
            .collect();
        let echoes = segment_words.iter().enumerate().any(|(k, later)| {
            later.len() >= 3
                && segment_words[..k]
                    .iter()
                    .any(|earlier| earlier.starts_with(later))
        });
        if echoes {
            return true;
        }
        let len = words.len();
        (1..=len / 2).any(|n| {
            let times = match n {
                1 => 4,
                2..=4 => 3,
                _ => 2,
            };
            (0..len.saturating_sub(n * times - 1)).any(|at| {
                (1..times).all(|k| words[at..at + n] == words[at + k * n..at + (k + 1) * n])
            })
        })
    }
}

/// How much encoder window a decode pays for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pass {
    /// A partial: the audio plus [`SHORT_PAD`].
    Short,
    /// The final of an ended utterance, which is what gets stored: like a
    /// short pass but never under [`FINAL_WINDOW`].
    Final,
    /// Padded to the full 30 s window the model was trained on: slowest but
    /// most robust; the fallback for a pass that repeated itself.
    Full,
}

/// One window to decode: 16 kHz mono audio of at most 30 s.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub audio: &'a [f32],
    pub pass: Pass,
}

/// Decodes batches of windows. The scheduler and the streams only see this,
/// so their logic is tested with a scripted decoder.
pub trait Decoder: Send {
    fn decode(&mut self, requests: &[Request<'_>]) -> Result<Vec<Hypothesis>, ModelError>;
}

/// Zero padding after a short window's audio: without it the decoder, which
/// was trained on 30 s windows, loops on speech that runs close to the edge.
/// Measured on espeak-ng sentences ending 0.2 s before the window's end: with
/// 1 s of padding 6 of 12 short windows repeated their sentence, with 3 s none.
pub const SHORT_PAD: usize = SAMPLE_RATE as usize * 3;
/// The least encoder window a final is decoded in. Short utterances decoded
/// in their own few seconds were misheard more often than in a 30 s window;
/// against 30 s finals on the same day (`scripts/bench-asr.sh`), 10 s ones
/// brought the worst final after an utterance from 1.65 s to 1.07–1.33 s and
/// the single-stream WER from 5.4 % to 3.3 %.
pub const FINAL_WINDOW: usize = SAMPLE_RATE as usize * 10;
/// Generated tokens allowed per second of audio (speech needs about 4 with
/// timestamps), plus a fixed allowance, within the decoder's 448-token context.
const TOKENS_PER_SEC: f64 = 8.0;
const TOKENS_BASE: usize = 12;
const MAX_TOKENS: usize = 224;
/// A segment must start this much before the audio ends to be believed.
const PADDING_SLACK: f64 = 0.1;

pub struct WhisperModel {
    whisper: Whisper,
    tokenizer: Tokenizer,
    mel: LogMel,
    /// The tokens before the audio's text: the prompt, then the start of
    /// transcript (and, for a multilingual model, English transcription).
    prompt: Vec<String>,
}

impl WhisperModel {
    /// Loads the CTranslate2 model in `dir` with `threads` intra-op threads
    /// (0 = one per core) and the decoder prompt `prompt` (empty: none).
    pub fn load(
        dir: &Path,
        threads: usize,
        compute_type: &str,
        prompt: &str,
    ) -> Result<Self, ModelError> {
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
        if whisper.n_mels() != N_MELS {
            return Err(broken(format!(
                "expected a Whisper model with {N_MELS} mel bins, this one has {}",
                whisper.n_mels()
            )));
        }
        let mut tokens = Vec::new();
        if !prompt.is_empty() {
            tokens.push(START_OF_PREV.to_owned());
            tokens.extend(tokenizer.token_strings(&tokenizer.encode(&format!(" {prompt}"))));
        }
        tokens.push(START_OF_TRANSCRIPT.to_owned());
        if whisper.is_multilingual() {
            tokens.extend(["<|en|>".to_owned(), "<|transcribe|>".to_owned()]);
        }
        Ok(WhisperModel {
            whisper,
            tokenizer,
            mel: LogMel::new(),
            prompt: tokens,
        })
    }

    /// One `generate` call for windows of one pass, padded to the same
    /// number of frames.
    fn generate(
        &self,
        requests: &[Request<'_>],
        pass: Pass,
    ) -> Result<Vec<Hypothesis>, ModelError> {
        let longest = requests.iter().map(|r| r.audio.len()).max().unwrap_or(0);
        let samples = match pass {
            Pass::Short => longest + SHORT_PAD,
            Pass::Final => (longest + SHORT_PAD).max(FINAL_WINDOW),
            Pass::Full => N_FRAMES * HOP,
        };
        let frames = samples.div_ceil(HOP).min(N_FRAMES);
        let mut features: Vec<f32> = Vec::with_capacity(requests.len() * N_MELS * frames);
        for request in requests {
            features.extend(self.mel.features_for(request.audio, frames));
        }
        let shape = [requests.len(), N_MELS, frames];
        let view = StorageView::new(&shape, &mut features, Device::CPU)
            .map_err(|e| ModelError::Decode(e.to_string()))?;
        let secs = longest as f64 / f64::from(SAMPLE_RATE);
        let cap = (TOKENS_BASE + (secs * TOKENS_PER_SEC).ceil() as usize).min(MAX_TOKENS);
        let options = WhisperOptions {
            beam_size: 1,
            return_scores: true,
            return_no_speech_prob: true,
            max_length: cap,
            ..WhisperOptions::default()
        };
        let prompts = vec![self.prompt.clone(); requests.len()];
        let results = self
            .whisper
            .generate(&view, &prompts, &options)
            .map_err(|e| ModelError::Decode(e.to_string()))?;
        Ok(results
            .into_iter()
            .zip(requests)
            .map(|(result, request)| {
                let secs = request.audio.len() as f64 / f64::from(SAMPLE_RATE);
                let ids = result
                    .sequences_ids
                    .first()
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let mut segments = self.tokenizer.segments(ids, secs);
                // Text the model placed in the padding after the audio is
                // its own invention (typically the last sentence again).
                segments.retain(|s| s.start < secs - PADDING_SLACK);
                Hypothesis {
                    segments,
                    no_speech_prob: result.no_speech_prob,
                    avg_logprob: result.scores.first().copied().unwrap_or(0.0),
                    truncated: ids.len() + 1 >= cap,
                }
            })
            .collect())
    }
}

impl Decoder for WhisperModel {
    /// Windows of one pass in one call; full ones one per call: a 30 s window's
    /// attention alone takes about 54 MB while it decodes (1,500² scores ×
    /// 6 heads), so a batch of them would multiply the server's peak memory
    /// for no gain in speed on the CPU.
    fn decode(&mut self, requests: &[Request<'_>]) -> Result<Vec<Hypothesis>, ModelError> {
        if requests.is_empty() {
            return Ok(Vec::new());
        }
        let started = Instant::now();
        let mut out = vec![Hypothesis::default(); requests.len()];
        for pass in [Pass::Short, Pass::Final, Pass::Full] {
            let (index, part): (Vec<usize>, Vec<Request<'_>>) = requests
                .iter()
                .enumerate()
                .filter(|(_, r)| r.pass == pass)
                .map(|(i, r)| (i, *r))
                .unzip();
            if part.is_empty() {
                continue;
            }
            let per_call = if pass == Pass::Full { 1 } else { part.len() };
            for (index, part) in index.chunks(per_call).zip(part.chunks(per_call)) {
                for (&i, hypothesis) in index.iter().zip(self.generate(part, pass)?) {
                    out[i] = hypothesis;
                }
            }
        }
        let audio_secs: f64 =
            requests.iter().map(|r| r.audio.len() as f64).sum::<f64>() / f64::from(SAMPLE_RATE);
        let decode_secs = started.elapsed().as_secs_f64();
        metrics::histogram!("auscult_whisper_batch_size").record(requests.len() as f64);
        if audio_secs > 0.0 {
            metrics::histogram!("auscult_whisper_decode_rtf").record(decode_secs / audio_secs);
        }
        tracing::debug!(
            batch = requests.len(),
            audio_secs,
            decode_secs,
            "whisper batch decoded"
        );
        Ok(out)
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
