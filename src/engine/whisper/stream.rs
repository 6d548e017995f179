//! One session's streaming state in the decode pool: VAD-gated audio window,
//! decode schedule, agreement, and the transcript events it yields.
//!
//! Nothing heard is dropped unheard: audio leaves the window only when a
//! decode has covered it, and never past the last word a final took unless
//! the model found no words in the rest. An engine that is behind is late.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, mpsc};

use super::agreement::{Agreement, TimedWord};
use super::mel::{N_SAMPLES, SAMPLE_RATE};
use super::model::{Hypothesis, Pass, SHORT_PAD};
use super::vad::{FRAME, Vad, VadEvent};
use crate::engine::{Consumed, EngineEvent, TranscriptResult};
use crate::protocol::Word;

const RATE: usize = SAMPLE_RATE as usize;
/// Speech (with the preroll) before the first decode of an utterance.
const FIRST_DECODE: usize = RATE * 8 / 10;
/// New speech that makes a window due for another decode.
const DECODE_STEP: usize = RATE / 2;
/// Audio kept from before the VAD onset: the VAD starts late on soft onsets
/// ("her" began 0.35 s before it fired), and the decoder needs some quiet
/// before the first word (with 0.15 s it misheard whole sentences that it
/// got right with 0.5 s).
const PREROLL: usize = RATE;
/// How early speech may begin before the VAD fires on it.
const ONSET_SLACK: usize = RATE * 4 / 10;
/// Past this a window is cut after its last committed segment, with a final
/// for the words before the cut: later passes decode only what is new.
const SOFT_TRIM: usize = RATE * 8;
/// Past this a window is cut after its last committed word even inside a
/// segment, and the decode is urgent.
const HARD_TRIM: usize = RATE * 20;
/// The longest window: with its padding it fills the encoder's 30 s.
const FULL: usize = N_SAMPLES - SHORT_PAD;
/// Audio left after an ended utterance's last word beyond this (the endpoint
/// pause plus slack for word times) is decoded again on its own before it is
/// let go: the pass may have stopped short of it.
const TAIL_SLACK: usize = RATE;

/// A tail cut must move the window on by at least this, so that a pass that
/// keeps finding a word at its very start cannot hold the stream in place.
const MIN_CUT: usize = RATE / 4;

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

/// The handles a stream reports through, shared with the session's side.
pub struct Reporting {
    pub events: mpsc::Sender<EngineEvent>,
    pub lag_ms: Arc<AtomicU64>,
    /// Audio decoded or judged silent, for the session's buffer limit.
    pub consumed: Arc<Consumed>,
}

pub struct StreamState {
    pub id: u64,
    pub session_id: String,
    inbox: Arc<Mutex<Inbox>>,
    report: Reporting,
    outbox: VecDeque<EngineEvent>,
    /// The stream's place among those the engine admits, given back when dropped.
    _slot: OwnedSemaphorePermit,
    vad: Vad,
    /// Audio taken from the inbox but not yet judged by the VAD.
    unprocessed: VecDeque<f32>,
    /// Stream sample index of the next unprocessed sample.
    position: u64,
    preroll: VecDeque<f32>,
    window: Vec<f32>,
    window_start: u64,
    /// Where in the window the VAD heard speech start (0 after a cut).
    onset: usize,
    decoded_len: usize,
    utterance_over: bool,
    agreement: Agreement,
    result_seq: u64,
    last_partial: String,
    pub last_decode: Instant,
    /// A worker is decoding this stream's window.
    pub in_flight: bool,
    pub gone: bool,
}

impl StreamState {
    pub fn new(
        (id, session_id): (u64, String),
        inbox: Arc<Mutex<Inbox>>,
        report: Reporting,
        slot: OwnedSemaphorePermit,
        endpoint: Duration,
    ) -> Self {
        StreamState {
            id,
            session_id,
            inbox,
            report,
            outbox: VecDeque::new(),
            _slot: slot,
            vad: Vad::with_endpoint(endpoint),
            unprocessed: VecDeque::new(),
            position: 0,
            preroll: VecDeque::new(),
            window: Vec::new(),
            window_start: 0,
            onset: 0,
            decoded_len: 0,
            utterance_over: false,
            agreement: Agreement::default(),
            result_seq: 1,
            last_partial: String::new(),
            last_decode: Instant::now(),
            in_flight: false,
            gone: false,
        }
    }

    /// Moves new audio through the VAD into the window. Stops (leaving audio
    /// queued, never dropped) while the window waits for its final decode or
    /// is full.
    pub fn ingest(&mut self) {
        let (total, finished) = {
            let mut inbox = self.inbox.lock().expect("inbox lock");
            self.unprocessed.extend(inbox.audio.drain(..));
            self.gone |= inbox.closed && !inbox.finished;
            (inbox.total, inbox.finished)
        };
        while !self.utterance_over && self.window.len() < FULL {
            let n = FRAME.min(self.unprocessed.len());
            if n < FRAME && !(finished && n > 0) {
                break;
            }
            let frame: Vec<f32> = self.unprocessed.drain(..n).collect();
            self.position += n as u64;
            self.push_frame(frame);
        }
        let finishing = finished && self.unprocessed.is_empty();
        if finishing && !self.window.is_empty() {
            self.utterance_over = true;
        }
        if finishing && self.window.is_empty() && !self.in_flight && !self.gone {
            self.outbox.push_back(EngineEvent::Finished);
            self.gone = true;
        }
        self.update_lag(total);
    }

    fn push_frame(&mut self, frame: Vec<f32>) {
        match self.vad.push_frame(&frame) {
            VadEvent::Silence if self.window.is_empty() => {
                self.preroll.extend(frame);
                let excess = self.preroll.len().saturating_sub(PREROLL);
                self.preroll.drain(..excess);
            }
            // The VAD is quiet but the window still holds audio a final did
            // not take (a tail being decoded again): keep it contiguous.
            VadEvent::Silence | VadEvent::Speech => self.window.extend(frame),
            VadEvent::SpeechStart => {
                if self.window.is_empty() {
                    self.window_start = self.position - (frame.len() + self.preroll.len()) as u64;
                    self.onset = self.preroll.len();
                    self.window.extend(self.preroll.drain(..));
                }
                self.window.extend(frame);
            }
            VadEvent::SpeechEnd => {
                self.window.extend(frame);
                self.utterance_over = true;
            }
        }
    }

    /// Whether this stream wants a decode now, and how badly.
    pub fn due(&self) -> Option<Due> {
        if self.gone || self.in_flight || self.window.is_empty() {
            return None;
        }
        let fresh = self.window.len() > self.decoded_len;
        if self.utterance_over || (self.window.len() >= HARD_TRIM && fresh) {
            return Some(Due::Urgent);
        }
        let step = if self.decoded_len == 0 {
            FIRST_DECODE
        } else {
            self.decoded_len + DECODE_STEP
        };
        (self.window.len() >= step).then_some(Due::Normal)
    }

    /// The pass the next decode needs: an ended utterance's final, or a partial.
    pub fn pass(&self) -> Pass {
        if self.utterance_over {
            Pass::Final
        } else {
            Pass::Short
        }
    }

    /// The audio to decode now: the whole window.
    pub fn window(&self) -> &[f32] {
        &self.window
    }

    /// Applies a decode of the first `decoded_len` samples of the window and
    /// queues the events it yields.
    pub fn apply(&mut self, hypothesis: &Hypothesis, decoded_len: usize) {
        self.in_flight = false;
        self.last_decode = Instant::now();
        self.decoded_len = decoded_len;
        let offset = self.window_start as f64 / RATE as f64;
        let limit = decoded_len as f64 / RATE as f64;
        let words = if hypothesis.is_silence() {
            Vec::new()
        } else {
            let floor = self.onset.saturating_sub(ONSET_SLACK) as f64 / RATE as f64;
            hypothesis.words(offset, limit, floor)
        };
        if self.utterance_over && decoded_len == self.window.len() {
            self.end_utterance(words);
            return;
        }
        self.agreement.insert(words);
        if decoded_len >= SOFT_TRIM {
            self.trim();
        } else {
            self.emit_partial();
        }
    }

    /// The whole ended utterance was decoded: its final is that decode,
    /// which heard all of it (the partials before it heard less; what they
    /// agreed on was for showing). Audio well past the last word goes round
    /// again on its own.
    fn end_utterance(&mut self, words: Vec<TimedWord>) {
        let words = self.agreement.finish_with(words);
        let heard_to = words.last().map(|w| self.sample_at(w.end));
        self.emit_final(words);
        match heard_to {
            Some(end)
                if end >= MIN_CUT
                    && self.decoded_len.saturating_sub(end) > self.tail_allowance() =>
            {
                self.cut(end);
            }
            _ => {
                self.window.clear();
                self.window_start = self.position;
                self.decoded_len = 0;
                self.utterance_over = false;
            }
        }
    }

    /// A long window is cut after its last committed segment (or, past the
    /// hard limit, its last committed word; full and with nothing agreed, its
    /// last word), with a final for the words before the cut.
    fn trim(&mut self) {
        let committed = self.agreement.committed();
        let at_segment = committed.iter().rposition(|w| w.ends_segment);
        let take = match at_segment {
            Some(i) => Some(i + 1),
            None if self.decoded_len >= HARD_TRIM && !committed.is_empty() => Some(committed.len()),
            None => None,
        };
        let words = match take {
            Some(n) => self.agreement.take_committed(n),
            None if self.decoded_len >= FULL => self.agreement.take_final(),
            None => {
                self.emit_partial();
                return;
            }
        };
        let cut = match words.last() {
            Some(last) => self.sample_at(last.end).min(self.decoded_len),
            // A full window the model heard no words in: nothing to keep.
            None => self.decoded_len,
        };
        self.emit_final(words);
        self.cut(cut);
        self.emit_partial();
    }

    /// Drops the first `samples` of the window (covered by a final).
    fn cut(&mut self, samples: usize) {
        let samples = samples.min(self.window.len());
        self.window.drain(..samples);
        self.window_start += samples as u64;
        self.onset = self.onset.saturating_sub(samples);
        self.decoded_len = 0;
        if self.window.is_empty() {
            self.utterance_over = false;
        }
    }

    /// Silence an ended utterance may hold after its last word: the endpoint
    /// pause plus slack for word times.
    fn tail_allowance(&self) -> usize {
        self.vad.endpoint_samples() + TAIL_SLACK
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
            match self.report.events.try_send(event) {
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

    /// Done once it is gone, not being decoded, and has nothing left to send.
    pub fn is_done(&self) -> bool {
        self.gone && !self.in_flight && self.outbox.is_empty()
    }

    pub fn fail(&mut self, message: &str) {
        self.in_flight = false;
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
        self.report.lag_ms.store(lag_ms, Ordering::Relaxed);
        self.report.consumed.reached(covered);
    }

    pub fn lag_secs(&self) -> f64 {
        self.report.lag_ms.load(Ordering::Relaxed) as f64 / 1000.0
    }
}

fn join(words: &[TimedWord]) -> String {
    words
        .iter()
        .map(|w| w.text.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}
