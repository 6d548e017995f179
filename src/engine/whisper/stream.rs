//! One session's streaming state on the scheduler thread: VAD-gated audio
//! window, decode schedule, agreement, and the transcript events it yields.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::mpsc;

use super::agreement::{Agreement, TimedWord};
use super::mel::{N_SAMPLES, SAMPLE_RATE};
use super::model::Hypothesis;
use super::vad::{FRAME, Vad, VadEvent};
use crate::engine::{Consumed, EngineEvent, TranscriptResult};
use crate::protocol::Word;

const RATE: usize = SAMPLE_RATE as usize;
/// New speech that makes a window due for another decode.
const DECODE_STEP: usize = RATE;
/// Audio kept from before the VAD onset so the first word is not clipped.
const PREROLL: usize = RATE * 3 / 10;
/// Past this a window is finalised and trimmed at its last committed word.
const TRIM_AT: usize = RATE * 24;

/// What the session's audio task hands over: appended, never blocked on.
#[derive(Debug, Default)]
pub struct Inbox {
    pub audio: Vec<f32>,
    pub total: u64,
    pub finished: bool,
    pub closed: bool,
}

/// Why a stream wants the model now; urgent ones are served first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Due {
    Urgent,
    Normal,
}

pub struct StreamState {
    pub session_id: String,
    inbox: Arc<Mutex<Inbox>>,
    events: mpsc::Sender<EngineEvent>,
    outbox: VecDeque<EngineEvent>,
    lag_ms: Arc<AtomicU64>,
    /// Audio decoded or judged silent, for the session's buffer limit.
    consumed: Arc<Consumed>,
    vad: Vad,
    /// Audio taken from the inbox but not yet judged by the VAD.
    unprocessed: VecDeque<f32>,
    /// Stream sample index of the next unprocessed sample.
    position: u64,
    preroll: VecDeque<f32>,
    window: Vec<f32>,
    window_start: u64,
    decoded_len: usize,
    utterance_over: bool,
    finishing: bool,
    agreement: Agreement,
    result_seq: u64,
    last_partial: String,
    pub last_decode: Instant,
    pub gone: bool,
}

impl StreamState {
    pub fn new(
        session_id: String,
        inbox: Arc<Mutex<Inbox>>,
        events: mpsc::Sender<EngineEvent>,
        (lag_ms, consumed): (Arc<AtomicU64>, Arc<Consumed>),
    ) -> Self {
        StreamState {
            session_id,
            inbox,
            events,
            outbox: VecDeque::new(),
            lag_ms,
            consumed,
            vad: Vad::default(),
            unprocessed: VecDeque::new(),
            position: 0,
            preroll: VecDeque::new(),
            window: Vec::new(),
            window_start: 0,
            decoded_len: 0,
            utterance_over: false,
            finishing: false,
            agreement: Agreement::default(),
            result_seq: 1,
            last_partial: String::new(),
            last_decode: Instant::now(),
            gone: false,
        }
    }

    /// Moves new audio through the VAD into the window. Stops (leaving audio
    /// queued, never dropped) while the window waits for its final decode.
    pub fn ingest(&mut self) {
        let (total, finished) = {
            let mut inbox = self.inbox.lock().expect("inbox lock");
            self.unprocessed.extend(inbox.audio.drain(..));
            self.gone |= inbox.closed && !inbox.finished;
            (inbox.total, inbox.finished)
        };
        while !self.utterance_over && self.window.len() < N_SAMPLES {
            let n = FRAME.min(self.unprocessed.len());
            if n < FRAME && !(finished && n > 0) {
                break;
            }
            let frame: Vec<f32> = self.unprocessed.drain(..n).collect();
            self.position += n as u64;
            self.push_frame(frame);
        }
        self.finishing = finished && self.unprocessed.is_empty();
        if self.finishing && !self.window.is_empty() {
            self.utterance_over = true;
        }
        if self.finishing && self.window.is_empty() && !self.utterance_over && !self.gone {
            self.outbox.push_back(EngineEvent::Finished);
            self.gone = true;
        }
        self.update_lag(total);
    }

    fn push_frame(&mut self, frame: Vec<f32>) {
        match self.vad.push_frame(&frame) {
            VadEvent::Silence => {
                self.preroll.extend(frame);
                let excess = self.preroll.len().saturating_sub(PREROLL);
                self.preroll.drain(..excess);
            }
            VadEvent::SpeechStart => {
                self.window_start = self.position - (frame.len() + self.preroll.len()) as u64;
                self.window.extend(self.preroll.drain(..));
                self.window.extend(frame);
            }
            VadEvent::Speech => self.window.extend(frame),
            VadEvent::SpeechEnd => {
                self.window.extend(frame);
                self.utterance_over = true;
            }
        }
    }

    /// Whether this stream wants a decode now, and how badly.
    pub fn due(&self) -> Option<Due> {
        if self.gone || self.window.is_empty() {
            return None;
        }
        if self.utterance_over || self.window.len() >= TRIM_AT {
            return Some(Due::Urgent);
        }
        (self.window.len() >= self.decoded_len + DECODE_STEP).then_some(Due::Normal)
    }

    /// The audio to decode now (the window, at most 30 s).
    pub fn window(&self) -> &[f32] {
        &self.window[..self.window.len().min(N_SAMPLES)]
    }

    /// Applies a decode of [`window`](Self::window) and queues the events it yields.
    pub fn apply(&mut self, hypothesis: &Hypothesis, decoded_len: usize) {
        self.last_decode = Instant::now();
        self.decoded_len = decoded_len;
        let offset = self.window_start as f64 / RATE as f64;
        let limit = decoded_len as f64 / RATE as f64;
        let words = if hypothesis.is_silence() {
            Vec::new()
        } else {
            hypothesis.words(offset, limit)
        };
        self.agreement.insert(words);
        if self.utterance_over {
            let words = self.agreement.take_final(true);
            self.emit_final(words);
            self.window.clear();
            self.window_start = self.position;
            self.decoded_len = 0;
            self.utterance_over = false;
        } else if self.window.len() >= TRIM_AT {
            let forced = self.window.len() >= N_SAMPLES;
            let words = self.agreement.take_final(forced);
            let cut = match words.last() {
                Some(last) if !forced => self.sample_at(last.end).min(decoded_len),
                _ => decoded_len,
            };
            if !words.is_empty() || forced {
                self.emit_final(words);
                self.window.drain(..cut);
                self.window_start += cut as u64;
                self.decoded_len = 0;
            }
        } else {
            self.emit_partial();
        }
    }

    fn sample_at(&self, secs: f64) -> usize {
        (secs * RATE as f64 - self.window_start as f64).max(0.0) as usize
    }

    fn emit_partial(&mut self) {
        let words: Vec<TimedWord> = self
            .agreement
            .committed()
            .iter()
            .chain(self.agreement.tentative())
            .cloned()
            .collect();
        let text = join(&words);
        if text.is_empty() || text == self.last_partial {
            return;
        }
        self.last_partial = text;
        self.outbox
            .push_back(EngineEvent::Transcript(self.result(&words, true)));
    }

    /// A final for the current result; skipped when nothing was said and no
    /// partial was shown under this result id.
    fn emit_final(&mut self, words: Vec<TimedWord>) {
        if words.is_empty() && self.last_partial.is_empty() {
            return;
        }
        let result = self.result(&words, false);
        self.outbox.push_back(EngineEvent::Transcript(result));
        self.result_seq += 1;
        self.last_partial.clear();
    }

    fn result(&self, words: &[TimedWord], is_partial: bool) -> TranscriptResult {
        let fallback = self.window_start as f64 / RATE as f64;
        TranscriptResult {
            result_id: format!("w-{}", self.result_seq),
            is_partial,
            start: words.first().map_or(fallback, |w| w.start),
            end: words.last().map_or(fallback, |w| w.end),
            text: join(words),
            words: words
                .iter()
                .map(|w| Word {
                    word: w.text.clone(),
                    start: w.start,
                    end: w.end,
                    confidence: None,
                })
                .collect(),
        }
    }

    /// Sends queued events without blocking; a full channel keeps them for
    /// the next round, a closed one ends the stream.
    pub fn deliver(&mut self) {
        while let Some(event) = self.outbox.pop_front() {
            match self.events.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(event)) => {
                    self.outbox.push_front(event);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.gone = true;
                    self.outbox.clear();
                    return;
                }
            }
        }
    }

    /// Done once it is gone and has nothing left to send.
    pub fn is_done(&self) -> bool {
        self.gone && self.outbox.is_empty()
    }

    pub fn fail(&mut self, message: &str) {
        self.outbox.push_back(EngineEvent::Failed {
            message: message.to_owned(),
        });
        self.gone = true;
    }

    /// Lag: audio received but not yet covered by a decode (or judged silent).
    fn update_lag(&self, total: u64) {
        let covered = if self.window.is_empty() {
            self.position
        } else {
            self.window_start + self.decoded_len as u64
        };
        let lag_ms = total.saturating_sub(covered) * 1000 / RATE as u64;
        self.lag_ms.store(lag_ms, Ordering::Relaxed);
        self.consumed.reached(covered);
    }

    pub fn lag_secs(&self) -> f64 {
        self.lag_ms.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

fn join(words: &[TimedWord]) -> String {
    words
        .iter()
        .map(|w| w.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}
