//! The pool's logic with a scripted decoder: which windows go first, how the
//! due streams are shared out, and the guard against passes that loop.

use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;

use super::*;
use crate::engine::EngineEvent;
use crate::engine::whisper::stream::{Inbox, Reporting};
use crate::engine::whisper::tokenizer::Segment;

/// Syllable-like bursts of a voiced tone (speech to the VAD).
fn speech_like(secs: f32) -> Vec<f32> {
    (0..(secs * 16_000.0) as usize)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            let envelope = if (t * 4.0).fract() < 0.7 { 1.0 } else { 0.05 };
            envelope * 0.3 * (2.0 * std::f32::consts::PI * 180.0 * t).sin()
        })
        .collect()
}

struct Harness {
    stream: StreamState,
    inbox: Arc<Mutex<Inbox>>,
    events: mpsc::Receiver<EngineEvent>,
}

fn harness(id: u64) -> Harness {
    let inbox = Arc::new(Mutex::new(Inbox::default()));
    let (tx, rx) = mpsc::channel(256);
    let stream = StreamState::new(
        (id, format!("s{id}")),
        inbox.clone(),
        Reporting {
            events: tx,
            lag_ms: Arc::new(AtomicU64::new(0)),
            consumed: Arc::default(),
        },
        Arc::new(tokio::sync::Semaphore::new(1))
            .try_acquire_owned()
            .unwrap(),
        Duration::from_millis(500),
    );
    Harness {
        stream,
        inbox,
        events: rx,
    }
}

impl Harness {
    fn push(&mut self, audio: &[f32]) {
        let mut inbox = self.inbox.lock().unwrap();
        inbox.total += audio.len() as u64;
        inbox.audio.extend_from_slice(audio);
    }

    fn finish(&mut self) {
        self.inbox.lock().unwrap().finished = true;
    }

    /// A stream that has heard a short pause and `secs` of speech,
    /// `finish`ed or not, last decoded `ago` before now.
    fn with_speech(id: u64, secs: f32, finish: bool, ago: Duration) -> StreamState {
        let mut h = harness(id);
        h.push(&vec![0.0; 4_800]);
        h.push(&speech_like(secs));
        if finish {
            h.finish();
        }
        h.stream.ingest();
        h.stream.last_decode = Instant::now() - ago;
        h.stream
    }
}

fn texts(events: &mut mpsc::Receiver<EngineEvent>) -> (Vec<String>, Vec<String>) {
    let (mut partials, mut finals) = (Vec::new(), Vec::new());
    while let Ok(event) = events.try_recv() {
        if let EngineEvent::Transcript(r) = event {
            if r.is_partial {
                partials.push(r.text);
            } else {
                finals.push(r.text);
            }
        }
    }
    (partials, finals)
}

#[test]
fn urgent_windows_go_first_then_the_longest_waiting() {
    let streams = vec![
        Harness::with_speech(0, 2.0, false, Duration::from_secs(1)),
        Harness::with_speech(1, 2.0, false, Duration::from_secs(5)),
        Harness::with_speech(2, 0.3, false, Duration::from_secs(9)),
        Harness::with_speech(3, 2.0, true, Duration::ZERO),
        Harness::with_speech(4, 2.0, false, Duration::from_secs(3)),
    ];
    // Stream 2 has too little speech to be due; 3 finished (urgent).
    assert_eq!(pick(&streams, 1), vec![3, 1, 4, 0]);
}

#[test]
fn due_streams_are_shared_out_among_idle_workers() {
    let streams: Vec<StreamState> = (0..10)
        .map(|i| Harness::with_speech(i, 2.0, false, Duration::from_secs(i)))
        .collect();
    assert_eq!(pick(&streams, 2), vec![9, 8, 7, 6, 5]);
    assert_eq!(pick(&streams, 1).len(), MAX_BATCH);
}

#[test]
fn silent_streams_are_never_decoded() {
    let mut h = harness(0);
    h.push(&vec![0.0; 16_000 * 5]);
    h.stream.ingest();
    assert!(pick(&[h.stream], 1).is_empty());
}

/// Answers every window with `full` when padded to 30 s and `short`
/// otherwise (partials and finals), and records each call's pass.
struct Scripted {
    short: Vec<&'static str>,
    full: Vec<&'static str>,
    calls: Arc<Mutex<Vec<(usize, Pass)>>>,
}

fn hypothesis(words: &[&str], secs: f64) -> Hypothesis {
    Hypothesis {
        segments: vec![Segment {
            start: 0.0,
            end: secs,
            text: words.join(" "),
        }],
        no_speech_prob: 0.0,
        avg_logprob: -0.2,
        truncated: false,
    }
}

impl Decoder for Scripted {
    fn decode(&mut self, requests: &[Request<'_>]) -> Result<Vec<Hypothesis>, ModelError> {
        let mut calls = self.calls.lock().unwrap();
        Ok(requests
            .iter()
            .map(|r| {
                calls.push((r.audio.len(), r.pass));
                let secs = r.audio.len() as f64 / 16_000.0;
                let words = if r.pass == Pass::Full {
                    &self.full
                } else {
                    &self.short
                };
                hypothesis(words, secs)
            })
            .collect())
    }
}

#[test]
fn a_pass_that_loops_is_decoded_again_padded_and_that_result_is_kept() {
    let looping = "the patient reports chest pain the patient reports chest pain the patient reports chest pain";
    let right = "the patient reports chest pain";
    let calls = Arc::new(Mutex::new(Vec::new()));
    let mut decoder = Scripted {
        short: looping.split(' ').collect(),
        full: right.split(' ').collect(),
        calls: calls.clone(),
    };
    assert!(hypothesis(&decoder.short, 3.0).repeats());
    assert!(!hypothesis(&decoder.full, 3.0).repeats());
    let jobs = [Job {
        stream: 1,
        audio: speech_like(3.0),
        pass: Pass::Short,
    }];
    let out = decode_guarded(&mut decoder, &jobs).unwrap();
    assert_eq!(out[0].segments[0].text, right);
    assert_eq!(
        *calls.lock().unwrap(),
        vec![(48_000, Pass::Short), (48_000, Pass::Full)]
    );

    // Through a whole stream: partials never show the loop, and the final,
    // whose own pass loops too, is decoded again padded and says it once.
    calls.lock().unwrap().clear();
    let mut h = harness(1);
    h.push(&vec![0.0; 4_800]);
    h.push(&speech_like(3.0));
    h.push(&vec![0.0; 16_000]);
    h.finish();
    let shared = Shared::new(1);
    shared.register(h.stream);
    shared.close();
    run(decoder, Arc::clone(&shared));
    let (partials, finals) = texts(&mut h.events);
    assert_eq!(finals, vec![right.to_owned()]);
    assert!(
        partials.iter().all(|p| !p.contains("pain the")),
        "{partials:?}"
    );
    let passes: Vec<Pass> = calls.lock().unwrap().iter().map(|c| c.1).collect();
    assert!(
        passes.windows(2).any(|w| w == [Pass::Final, Pass::Full]),
        "{passes:?}"
    );
}

#[test]
fn repetition_guard_spares_ordinary_speech() {
    for ordinary in [
        "no no I do not smoke",
        "the pain is worse worse at night",
        "take one tablet in the morning and one tablet in the evening",
    ] {
        assert!(
            !hypothesis(&ordinary.split(' ').collect::<Vec<_>>(), 4.0).repeats(),
            "{ordinary}"
        );
    }
    for looped in ["no no no no no", "thank you thank you thank you"] {
        assert!(
            hypothesis(&looped.split(' ').collect::<Vec<_>>(), 4.0).repeats(),
            "{looped}"
        );
    }
    let echo = |texts: &[&str]| Hypothesis {
        segments: texts
            .iter()
            .map(|t| Segment {
                start: 0.0,
                end: 1.0,
                text: (*t).into(),
            })
            .collect(),
        ..hypothesis(&[], 1.0)
    };
    assert!(echo(&["Follow up in two weeks.", "Follow up in"]).repeats());
    assert!(!echo(&["Follow up in two weeks.", "Call us if it gets worse."]).repeats());
    let mut cut_short = hypothesis(&["the", "patient"], 4.0);
    cut_short.truncated = true;
    assert!(cut_short.repeats());
}

/// An engine far behind: the whole utterance is decoded only after 30 s of
/// speech arrived, and the model transcribes only its first part each pass.
/// Nothing is cut unheard: every scripted word reaches a final.
#[test]
fn a_stream_far_behind_loses_no_words() {
    struct FirstHalf;
    impl Decoder for FirstHalf {
        fn decode(&mut self, requests: &[Request<'_>]) -> Result<Vec<Hypothesis>, ModelError> {
            // One word per second of audio, but only for the first 10 s of
            // any window: a model that stops early in long windows.
            Ok(requests
                .iter()
                .map(|r| {
                    let secs = (r.audio.len() / 16_000).min(10);
                    let segments = (0..secs)
                        .map(|i| Segment {
                            start: i as f64,
                            end: i as f64 + 0.9,
                            text: format!("w{i}"),
                        })
                        .collect();
                    Hypothesis {
                        segments,
                        no_speech_prob: 0.0,
                        avg_logprob: -0.2,
                        truncated: false,
                    }
                })
                .collect())
        }
    }
    let mut h = harness(1);
    h.push(&vec![0.0; 4_800]);
    h.push(&speech_like(26.0));
    h.push(&vec![0.0; 16_000]);
    h.finish();
    let shared = Shared::new(1);
    shared.register(h.stream);
    shared.close();
    run(FirstHalf, Arc::clone(&shared));
    let (_, finals) = texts(&mut h.events);
    let words: usize = finals.iter().map(|f| f.split_whitespace().count()).sum();
    // 26 s of speech at one word a second (the words restart in each window).
    assert!(words >= 25, "{words} words in {finals:?}");
}
