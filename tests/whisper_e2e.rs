//! Issue 3, end to end: real speech through `/v1/stream` and the real Whisper
//! tiny.en engine, at the client rates the protocol tests (8, 16, 48 kHz).
//! Every test also checks the partial/final rules on every transcript event
//! and that what was stored is exactly what was sent and received.
//!
//! Audio is paced at twice real time: the engine still sees a live stream
//! (100 ms frames arriving over seconds), the suite stays short.
#![cfg(feature = "whisper")]

mod common;

use auscult::eval::{word_error_rate as wer, words as normalized_words};
use auscult::protocol::{CloseReason, ErrorCode};
use common::speech::{
    assert_transcript_stored, checked_finals, joined_text, noise_s16, offline_text, send_paced,
    shared_whisper, silence_s16, speech_s16,
};
use common::{Enc, TestApp, WsClient};

const FRAME_MS: u64 = 100;
const SPEED: f64 = 1.0;
const MAX_WER: f64 = 0.15;

async fn whisper_app() -> TestApp {
    TestApp::spawn_with(&[], vec![shared_whisper()]).await
}

/// Two utterances with a pause between them (so the stream has two results),
/// with silence around them, as mono s16le at `rate`.
fn dictation(rate: u32, first: &str, second: &str) -> Vec<u8> {
    let mut pcm = speech_s16(first, rate, 0.5, 1.5);
    pcm.extend(speech_s16(second, rate, 0.0, 1.0));
    pcm
}

/// What one session heard: its finals (checked against the protocol's
/// rules) and their text, after checking the stored audio and transcript.
struct Heard {
    text: String,
    finals: usize,
}

/// Streams `pcm` (mono s16le at `rate`) in real time, stops, and checks
/// everything the session sent and stored.
async fn transcribe(app: &TestApp, rate: u32, pcm: &[u8]) -> Heard {
    let mut client: WsClient = app.connect_ws().await;
    let ready = client.start(rate, Enc::S16, 1).await;
    assert_eq!(ready.engine, "whisper");
    send_paced(&mut client, pcm, rate, FRAME_MS, SPEED).await;
    let ending = client.stop_and_collect().await;
    assert_eq!(ending.close_code, Some(1000), "{:?}", ending.msgs);
    assert!(ending.errors().is_empty(), "errors: {:?}", ending.errors());
    let audio_secs = pcm.len() as f64 / 2.0 / f64::from(rate);
    let finals = checked_finals(&client.log, audio_secs);
    let stored = app.stored("local", &ready.session_id).await;
    stored.assert_audio(pcm, Enc::S16, rate, 1);
    stored.assert_status("stored", "client_stop");
    assert_transcript_stored(&stored, &finals);
    Heard {
        text: joined_text(&finals),
        finals: finals.len(),
    }
}

async fn dictation_is_transcribed_at(rate: u32, first: &str, second: &str) {
    let app = whisper_app().await;
    let heard = transcribe(&app, rate, &dictation(rate, first, second)).await;
    let reference = format!("{first} {second}");
    let error = wer(&reference, &heard.text);
    eprintln!(
        "{rate} Hz: WER {error:.3} over {} finals: {:?}",
        heard.finals, heard.text
    );
    assert!(
        error <= MAX_WER,
        "WER {error:.2} at {rate} Hz: heard {:?} for {reference:?}",
        heard.text
    );
    app.stop().await;
}

/// At telephone bandwidth tiny.en mishears espeak-ng's voice: an offline
/// decode of the same 8 kHz audio (full 30 s windows, no streaming) gets
/// "the lungs are clear" as "malone my clear" and "is normal" sometimes as
/// "abnormal", while the 16 kHz audio is right. So the bound here is what
/// streaming adds: the 8 kHz session must be as good as the model's own
/// offline reading of the same audio (plus one word in ten), on the same
/// sentences as at 16 kHz, including the one a browser once got as nonsense.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dictation_at_8_khz_is_as_accurate_as_the_model_offline() {
    let rate = 8_000;
    let (first, second) = (
        "her blood pressure is normal and the lungs are clear",
        "the patient reports chest pain radiating to the left arm",
    );
    let app = whisper_app().await;
    let pcm = dictation(rate, first, second);
    let heard = transcribe(&app, rate, &pcm).await;
    let offline = offline_text(&shared_whisper(), &pcm, rate).await;
    let reference = format!("{first} {second}");
    let (streamed, model) = (wer(&reference, &heard.text), wer(&reference, &offline));
    eprintln!(
        "8000 Hz: WER {streamed:.3} streamed {:?}, {model:.3} offline {offline:?}",
        heard.text
    );
    assert!(
        streamed <= model + 0.1,
        "streaming at 8 kHz lost accuracy: WER {streamed:.2} ({:?}) against {model:.2} offline ({offline:?})",
        heard.text
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dictation_at_16_khz_is_transcribed_accurately() {
    dictation_is_transcribed_at(
        16_000,
        "her blood pressure is normal and the lungs are clear",
        "the wound is healing well",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dictation_at_48_khz_is_transcribed_accurately() {
    dictation_is_transcribed_at(
        48_000,
        "the patient reports chest pain and shortness of breath",
        "there is no sign of infection",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_seconds_of_silence_or_faint_noise_produce_no_text() {
    let app = whisper_app().await;
    let rate = 16_000;
    let silence = silence_s16(rate, 10.0);
    let noise = noise_s16(rate, 10.0, 0.003);
    let (quiet, faint) = tokio::join!(
        transcribe(&app, rate, &silence),
        transcribe(&app, rate, &noise)
    );
    for (name, heard) in [("silence", quiet), ("faint noise", faint)] {
        assert!(
            heard.text.is_empty() && heard.finals == 0,
            "{name} produced {} finals: {:?}",
            heard.finals,
            heard.text
        );
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sessions_at_once_each_get_their_own_text() {
    let app = whisper_app().await;
    let rate = 16_000;
    let a = (
        "her blood pressure is normal and the lungs are clear. \
         the wound is healing well. there is no sign of infection.",
        "lungs wound infection",
    );
    let b = (
        "the patient reports chest pain and shortness of breath. \
         she has no drug allergies. call me if the pain gets worse.",
        "chest breath allergies",
    );
    let pcm_a = speech_s16(a.0, rate, 0.5, 1.0);
    let pcm_b = speech_s16(b.0, rate, 0.5, 1.0);
    let (heard_a, heard_b) = tokio::join!(
        transcribe(&app, rate, &pcm_a),
        transcribe(&app, rate, &pcm_b)
    );
    for ((reference, _), (heard, other)) in [(a, (&heard_a, b.1)), (b, (&heard_b, a.1))] {
        let error = wer(reference, &heard.text);
        eprintln!("WER {error:.3}: {:?}", heard.text);
        assert!(
            error <= MAX_WER,
            "WER {error:.2}: heard {:?} for {reference:?}",
            heard.text
        );
        let words = normalized_words(&heard.text);
        for distinctive in other.split_whitespace() {
            assert!(
                !words.iter().any(|w| w == distinctive),
                "{distinctive:?} from the other session in {:?}",
                heard.text
            );
        }
    }
    app.stop().await;
}

fn event(id: &str, is_partial: bool, start: f64, end: f64) -> auscult::protocol::ServerMsg {
    auscult::protocol::ServerMsg::Transcript(auscult::protocol::TranscriptMsg {
        result_id: id.into(),
        is_partial,
        start,
        end,
        text: format!("{id} {is_partial}"),
        words: Vec::new(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_waiting_inside_whisper_counts_toward_the_buffer_limit() {
    // A minute of speech at once, far faster than the engine decodes: the
    // audio piles up in the engine's inbox, and the limit (5 s of engine
    // audio) must fire there, storing what was sent.
    let app = TestApp::spawn_with(
        &[("AUSCULT_MAX_BUFFER_BYTES", "320000")],
        vec![shared_whisper()],
    )
    .await;
    let sentence = "the patient reports chest pain radiating to the left arm since this morning. ";
    let pcm = speech_s16(&sentence.repeat(12), 16_000, 0.2, 0.2);
    assert!(
        pcm.len() > 16_000 * 2 * 30,
        "at least half a minute of speech"
    );
    let mut client: WsClient = app.connect_ws().await;
    let ready = client.start(16_000, Enc::S16, 1).await;
    for frame in pcm.chunks(3200) {
        if !client.try_send_binary(frame).await {
            break;
        }
    }
    let e = client.expect_error(ErrorCode::BufferLimit).await;
    assert!(e.fatal);
    let end = client.collect_until_close().await;
    assert_eq!(end.closed_reason(), CloseReason::BufferLimit);
    let stored = app.stored("local", &ready.session_id).await;
    let n = stored.wav.data.len();
    assert!(
        n as u64 >= client.last_durable(),
        "stored {n} < acknowledged"
    );
    assert!(
        stored.wav.data == pcm[..n],
        "the stored audio is what was sent"
    );
    stored.assert_status("stored", "buffer_limit");
    app.stop().await;
}

#[test]
fn the_transcript_checker_accepts_partials_then_one_final() {
    let log = [
        event("r-1", true, 0.5, 1.0),
        event("r-1", false, 0.5, 1.5),
        event("r-2", false, 2.0, 3.0),
    ];
    assert_eq!(checked_finals(&log, 3.0).len(), 2);
}

#[test]
#[should_panic(expected = "after its final")]
fn the_transcript_checker_rejects_an_event_after_a_final() {
    checked_finals(
        &[event("r-1", false, 0.5, 1.5), event("r-1", true, 0.5, 1.6)],
        3.0,
    );
}

#[test]
#[should_panic(expected = "without a final")]
fn the_transcript_checker_rejects_a_result_left_partial() {
    checked_finals(&[event("r-1", true, 0.5, 1.5)], 3.0);
}

#[test]
#[should_panic(expected = "outside")]
fn the_transcript_checker_rejects_times_past_the_audio() {
    checked_finals(&[event("r-1", false, 2.0, 9.0)], 3.0);
}
