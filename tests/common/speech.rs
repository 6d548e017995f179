//! Speech for end-to-end tests of the real Whisper engine: espeak-ng voices
//! converted by sox to the client's rate, a word error rate, a real-time
//! sender, and a checker for the protocol's partial/final rules.
//!
//! Needs `espeak-ng`, `sox` and the model (`scripts/fetch-model.sh`); a test
//! that lacks one of them fails and says what is missing, it never skips.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use auscult::config::WhisperConfig;
use auscult::engine::SharedEngine;
use auscult::engine::whisper::{FETCH_SCRIPT, WhisperEngine};
use auscult::protocol::{ServerMsg, TranscriptMsg};

use super::client::{WsClient, transcripts};
use super::stored::StoredSession;

/// The model directory: `AUSCULT_WHISPER_MODEL_DIR` or `models/whisper-tiny.en`.
pub fn whisper_model_dir() -> PathBuf {
    let dir = std::env::var_os("AUSCULT_WHISPER_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/whisper-tiny.en")
        });
    assert!(
        dir.join("model.bin").is_file(),
        "no Whisper model in {}: run {FETCH_SCRIPT}",
        dir.display()
    );
    dir
}

/// One Whisper engine per test binary: loading and warming it takes seconds.
/// Blocks while it loads, so call it from a multi-thread runtime.
pub fn shared_whisper() -> SharedEngine {
    static ENGINE: OnceLock<SharedEngine> = OnceLock::new();
    ENGINE
        .get_or_init(|| {
            let config = WhisperConfig::new(whisper_model_dir());
            let engine = tokio::task::block_in_place(|| WhisperEngine::load(&config))
                .expect("the Whisper model loads");
            Arc::new(engine)
        })
        .clone()
}

/// A Whisper engine of its own that admits `max_streams` live streams, for
/// the tests of admission and overload (the shared one admits the default).
pub fn whisper_admitting(max_streams: usize) -> SharedEngine {
    let mut config = WhisperConfig::new(whisper_model_dir());
    config.max_streams = max_streams;
    let engine = tokio::task::block_in_place(|| WhisperEngine::load(&config))
        .expect("the Whisper model loads");
    Arc::new(engine)
}

/// The model's own reading of `pcm` (mono s16le at `rate`): resampled to
/// the engine's rate the way a session does, handed over whole, finished, and
/// its finals joined. The reference for what streaming adds or loses.
pub async fn offline_text(engine: &SharedEngine, pcm: &[u8], rate: u32) -> String {
    use auscult::engine::whole;
    let samples: Vec<f32> = pcm
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect();
    let finals = whole::transcribe_whole(
        engine.as_ref(),
        &samples,
        rate,
        std::time::Duration::from_secs(120),
    )
    .await
    .expect("the offline decode finishes");
    whole::joined(&finals)
}

/// `text` spoken by espeak-ng as mono s16le at `rate`, with `pad_before` and
/// `pad_after` seconds of digital silence around it.
pub fn speech_s16(text: &str, rate: u32, pad_before: f64, pad_after: f64) -> Vec<u8> {
    let dir = tempfile::tempdir().expect("temp dir");
    let wav = dir.path().join("speech.wav");
    let status = Command::new("espeak-ng")
        .arg("-w")
        .arg(&wav)
        .arg(text)
        .status()
        .expect("espeak-ng must be installed (Debian package espeak-ng)");
    assert!(status.success(), "espeak-ng failed on {text:?}");
    let out = Command::new("sox")
        .arg(&wav)
        .args(["-t", "raw", "-e", "signed-integer", "-b", "16", "-c", "1"])
        .args(["-r", &rate.to_string(), "-"])
        .args(["pad", &pad_before.to_string(), &pad_after.to_string()])
        .output()
        .expect("sox must be installed (Debian package sox)");
    assert!(
        out.status.success(),
        "sox failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// `secs` of digital silence, mono s16le.
pub fn silence_s16(rate: u32, secs: f64) -> Vec<u8> {
    vec![0; (f64::from(rate) * secs) as usize * 2]
}

/// `secs` of uniform noise of peak `amplitude` (full scale 1.0), mono s16le.
pub fn noise_s16(rate: u32, secs: f64, amplitude: f64) -> Vec<u8> {
    let mut seed = 0x2545_f491_u32;
    (0..(f64::from(rate) * secs) as usize)
        .flat_map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            let v = amplitude * (f64::from(seed) / f64::from(u32::MAX) * 2.0 - 1.0);
            ((v * 32767.0) as i16).to_le_bytes()
        })
        .collect()
}

/// Sends mono s16le `pcm` at `rate` in `frame_ms` frames, paced at `speed` ×
/// real time, reading (and logging) server messages between frames the way a
/// live client does.
pub async fn send_paced(client: &mut WsClient, pcm: &[u8], rate: u32, frame_ms: u64, speed: f64) {
    let frame_bytes = (u64::from(rate) * frame_ms / 1000) as usize * 2;
    let period = Duration::from_secs_f64(frame_ms as f64 / 1000.0 / speed);
    let started = tokio::time::Instant::now();
    for (k, chunk) in pcm.chunks(frame_bytes).enumerate() {
        client.send_binary(chunk).await;
        let next = started + period * (k as u32 + 1);
        client
            .drain_for(next.saturating_duration_since(tokio::time::Instant::now()))
            .await;
    }
}

/// Checks the protocol's rules on every transcript event of a session whose
/// audio lasted `audio_secs`, and returns its finals in order:
/// each result id has zero or more partials, then exactly one final, then
/// nothing; `0 ≤ start ≤ end ≤ audio_secs` (plus a little slack).
pub fn checked_finals(log: &[ServerMsg], audio_secs: f64) -> Vec<TranscriptMsg> {
    const SLACK_SECS: f64 = 0.5;
    let mut finalised: HashMap<&str, bool> = HashMap::new();
    let mut finals = Vec::new();
    for t in transcripts(log) {
        assert!(
            !finalised
                .get(t.result_id.as_str())
                .copied()
                .unwrap_or(false),
            "{} sent after its final: {t:?}",
            t.result_id
        );
        assert!(
            0.0 <= t.start && t.start <= t.end && t.end <= audio_secs + SLACK_SECS,
            "times {}..{} outside 0..{audio_secs} s: {t:?}",
            t.start,
            t.end
        );
        for w in &t.words {
            assert!(
                w.start <= w.end && w.end <= audio_secs + SLACK_SECS,
                "word times outside the audio: {t:?}"
            );
        }
        finalised.insert(&t.result_id, !t.is_partial);
        if !t.is_partial {
            finals.push(t.clone());
        }
    }
    let open: Vec<&&str> = finalised
        .iter()
        .filter(|(_, f)| !**f)
        .map(|(r, _)| r)
        .collect();
    assert!(open.is_empty(), "result ids without a final: {open:?}");
    finals
}

/// The finals' text as the protocol defines the session transcript.
pub fn joined_text(finals: &[TranscriptMsg]) -> String {
    finals
        .iter()
        .map(|f| f.text.trim())
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Asserts the stored transcript is exactly the finals the client received.
pub fn assert_transcript_stored(stored: &StoredSession, finals: &[TranscriptMsg]) {
    assert_eq!(
        stored.transcript["text"],
        joined_text(finals).as_str(),
        "stored transcript text is the finals received"
    );
    let received: Vec<(String, String)> = finals
        .iter()
        .map(|f| (f.result_id.clone(), f.text.clone()))
        .collect();
    assert_eq!(
        stored.transcript_segments(),
        received,
        "stored segments are the finals received"
    );
}
