//! Tests that need the real model (installed by `scripts/fetch-model.sh`) and
//! `espeak-ng` for synthetic speech. They fail, never skip, when either is missing.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::mel::SAMPLE_RATE;
use super::model::{Decoder, Pass, Request, WhisperModel};
use super::{FETCH_SCRIPT, WhisperEngine};
use crate::audio::StreamResampler;
use crate::config::WhisperConfig;
use crate::engine::{Engine, EngineEvent, EngineInput, StreamParams, TranscriptResult};

fn model_dir() -> PathBuf {
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

fn config() -> WhisperConfig {
    WhisperConfig::new(model_dir())
}

/// Speech synthesised by espeak-ng, resampled from its 22.05 kHz to 16 kHz.
fn espeak(text: &str) -> Vec<f32> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("speech.wav");
    let status = std::process::Command::new("espeak-ng")
        .arg("-w")
        .arg(&path)
        .arg(text)
        .status()
        .expect("espeak-ng must be installed (Debian package espeak-ng)");
    assert!(status.success());
    let bytes = std::fs::read(&path).unwrap();
    let wav = crate::audio::wav::parse(&bytes).expect("espeak-ng writes a WAV file");
    assert_eq!((wav.channels, wav.bits_per_sample), (1, 16));
    let data = &bytes[wav.data_offset..(wav.data_offset + wav.data_len).min(bytes.len())];
    let samples: Vec<f32> = data
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect();
    let mut resampler = StreamResampler::new(wav.sample_rate, SAMPLE_RATE).unwrap();
    let mut out = Vec::new();
    resampler.push(&samples, &mut out);
    resampler.finish(&mut out);
    out
}

fn silence(secs: f32) -> Vec<f32> {
    vec![0.0; (secs * SAMPLE_RATE as f32) as usize]
}

fn faint_noise(secs: f32) -> Vec<f32> {
    let mut seed = 0x9e37_79b9u32;
    (0..(secs * SAMPLE_RATE as f32) as usize)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            0.01 * (seed as f32 / u32::MAX as f32 * 2.0 - 1.0)
        })
        .collect()
}

#[test]
fn an_offline_decode_of_synthetic_speech_is_accurate() {
    let mut model = WhisperModel::load(&model_dir(), 0, "int8", "").unwrap();
    let text = "the patient reports chest pain and shortness of breath";
    let audio = espeak(text);
    let started = Instant::now();
    let hypothesis = model
        .decode(&[Request {
            audio: &audio,
            pass: Pass::Short,
        }])
        .unwrap()
        .remove(0);
    let elapsed = started.elapsed().as_secs_f64();
    let heard: Vec<&str> = hypothesis
        .segments
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    let heard = heard.join(" ");
    eprintln!(
        "decode of {:.1} s took {elapsed:.2} s: {heard:?}",
        audio.len() as f64 / 16_000.0
    );
    assert!(
        crate::eval::word_error_rate(text, &heard) <= 0.15,
        "heard {heard:?}"
    );
    assert!(!hypothesis.is_silence());
}

/// Streams `audio` in 100 ms chunks (faster than real time), then collects
/// every transcript event until `Finished`.
async fn stream(engine: &WhisperEngine, audio: &[f32]) -> Vec<TranscriptResult> {
    let params = StreamParams {
        session_id: "test".into(),
        language: "en-US".into(),
        sample_rate: SAMPLE_RATE,
        specialty: None,
        mode: None,
    };
    let mut stream = engine.open(params).await.unwrap();
    let audio = audio.to_vec();
    let sender = stream.audio.clone();
    let feeder = tokio::spawn(async move {
        for chunk in audio.chunks(1600) {
            sender
                .send(EngineInput::Audio(chunk.to_vec()))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        sender.send(EngineInput::Finish).await.unwrap();
    });
    let mut results = Vec::new();
    loop {
        let event = tokio::time::timeout(Duration::from_secs(120), stream.events.recv()).await;
        match event.expect("engine answers").expect("engine stream open") {
            EngineEvent::Transcript(result) => results.push(result),
            EngineEvent::Finished => break,
            other => panic!("unexpected event {other:?}"),
        }
    }
    feeder.await.unwrap();
    results
}

/// Checks the protocol rules and returns the finals' text.
fn finals_text(results: &[TranscriptResult], duration: f64) -> String {
    let mut finalised: HashMap<&str, bool> = HashMap::new();
    let mut finals = Vec::new();
    for r in results {
        assert!(
            !finalised
                .get(r.result_id.as_str())
                .copied()
                .unwrap_or(false),
            "{} revised after its final",
            r.result_id
        );
        assert!(
            r.start <= r.end && r.end <= duration + 0.5,
            "times {}..{} past {duration}",
            r.start,
            r.end
        );
        finalised.insert(&r.result_id, !r.is_partial);
        if !r.is_partial {
            finals.push(r);
        }
    }
    assert!(
        finalised.values().all(|f| *f),
        "every result id ends with a final"
    );
    assert!(
        finals.windows(2).all(|w| w[0].start <= w[1].start),
        "finals in time order"
    );
    finals
        .iter()
        .map(|r| r.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streamed_speech_becomes_accurate_finals_with_times() {
    let engine = WhisperEngine::load(&config()).unwrap();
    let first = "the patient reports chest pain since this morning";
    let second = "her blood pressure is normal and the lungs are clear";
    let mut audio = silence(1.0);
    audio.extend(espeak(first));
    audio.extend(silence(2.0));
    let second_at = audio.len() as f64 / 16_000.0;
    audio.extend(espeak(second));
    audio.extend(silence(1.0));
    let duration = audio.len() as f64 / 16_000.0;
    let results = stream(&engine, &audio).await;
    let text = finals_text(&results, duration);
    let reference = format!("{first} {second}");
    let error = crate::eval::word_error_rate(&reference, &text);
    eprintln!("WER {error:.3}");
    assert!(error <= 0.15, "WER {error:.2}: heard {text:?}");
    let finals: Vec<&TranscriptResult> = results.iter().filter(|r| !r.is_partial).collect();
    assert!(finals.len() >= 2, "one final per utterance at least");
    assert!(
        finals[0].start >= 0.5 && finals[0].start < 2.0,
        "first utterance starts near 1 s: {}",
        finals[0].start
    );
    let last = finals.last().unwrap();
    assert!(
        (last.start - second_at).abs() < 1.5,
        "second utterance near {second_at}: {}",
        last.start
    );
    assert!(
        results.iter().any(|r| r.is_partial),
        "partials come before finals"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_seconds_of_silence_or_faint_noise_produce_no_text() {
    let engine = WhisperEngine::load(&config()).unwrap();
    for (name, audio) in [
        ("silence", silence(10.0)),
        ("faint noise", faint_noise(10.0)),
    ] {
        let results = stream(&engine, &audio).await;
        assert!(
            results.iter().all(|r| r.text.trim().is_empty()),
            "{name} produced {results:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_streams_all_get_their_finals() {
    let engine = WhisperEngine::load(&config()).unwrap();
    let texts = [
        "she has no drug allergies",
        "the wound is healing well",
        "follow up in two weeks",
    ];
    let runs = texts.iter().map(|text| {
        let mut audio = silence(0.5);
        audio.extend(espeak(text));
        audio.extend(silence(1.0));
        let duration = audio.len() as f64 / 16_000.0;
        let engine = &engine;
        async move {
            let results = stream(engine, &audio).await;
            for r in &results {
                eprintln!(
                    "{} partial={} {:.2}-{:.2} {:?}",
                    r.result_id, r.is_partial, r.start, r.end, r.text
                );
            }
            (finals_text(&results, duration), *text)
        }
    });
    let started = Instant::now();
    let heard_all = futures_util::future::join_all(runs).await;
    let elapsed = started.elapsed();
    // Each stream must hear what the model hears in its own clip decoded
    // alone (a stream given another's windows, or losing some, would not):
    // the model's own mistakes on a clip (it hears "dealing" for "healing"
    // in one of these voices) are not the streams'.
    let mut model = WhisperModel::load(&model_dir(), 0, "int8", "").unwrap();
    for (heard, text) in heard_all {
        let mut audio = silence(0.5);
        audio.extend(espeak(text));
        audio.extend(silence(1.0));
        let alone = model
            .decode(&[Request {
                audio: &audio,
                pass: Pass::Final,
            }])
            .unwrap()
            .remove(0);
        let alone: Vec<&str> = alone.segments.iter().map(|s| s.text.as_str()).collect();
        let alone = alone.join(" ");
        assert!(
            crate::eval::word_error_rate(&alone, &heard) <= 0.15,
            "heard {heard:?} for {text:?}, alone the model hears {alone:?}"
        );
        assert!(
            crate::eval::word_error_rate(text, &heard) <= 0.25,
            "heard {heard:?} for {text:?}"
        );
    }
    eprintln!(
        "three concurrent streams done in {:.1} s",
        elapsed.as_secs_f64()
    );
}

#[test]
fn a_missing_model_names_the_fetch_script() {
    let err = WhisperModel::load(std::path::Path::new("/nonexistent/whisper"), 1, "int8", "")
        .err()
        .unwrap();
    assert!(err.to_string().contains(FETCH_SCRIPT), "{err}");
}
