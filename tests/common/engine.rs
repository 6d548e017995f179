//! A deterministic test engine: one word per `word_ms` of audio, cumulative
//! partials while a segment grows, a final when it completes, and a final for
//! whatever is left when the session finishes. It can also fail after some
//! audio, or never read its input (a stalled engine).

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use async_trait::async_trait;
use auscult::engine::{
    Consumed, Engine, EngineError, EngineEvent, EngineInput, EngineStream, Readiness,
    STREAM_CHANNEL_DEPTH, StreamParams, TranscriptResult,
};
use auscult::protocol::Word;
use tokio::sync::mpsc;

pub const SCRIPTED: &str = "scripted";
const RATE: u32 = 16_000;

#[derive(Debug, Clone)]
pub struct ScriptedEngine {
    name: String,
    word_ms: u64,
    words_per_segment: u64,
    fail_after_ms: Option<u64>,
    never_read: bool,
}

impl Default for ScriptedEngine {
    fn default() -> Self {
        ScriptedEngine {
            name: SCRIPTED.to_owned(),
            word_ms: 250,
            words_per_segment: 4,
            fail_after_ms: None,
            never_read: false,
        }
    }
}

impl ScriptedEngine {
    pub fn new() -> Self {
        Self::default()
    }

    /// One word per `ms` of audio (a chatty engine: many transcript messages).
    pub fn word_ms(mut self, ms: u64) -> Self {
        self.word_ms = ms.max(1);
        self
    }

    /// Reports `Failed` once this much audio has arrived.
    pub fn failing_after_ms(mut self, ms: u64) -> Self {
        self.fail_after_ms = Some(ms);
        self
    }

    /// Never reads its audio channel, so the session's backlog grows.
    pub fn stalled(mut self) -> Self {
        self.never_read = true;
        self
    }

    pub fn shared(self) -> auscult::engine::SharedEngine {
        Arc::new(self)
    }
}

#[async_trait]
impl Engine for ScriptedEngine {
    fn name(&self) -> &str {
        &self.name
    }

    fn engine_rate(&self, _input_rate: u32) -> u32 {
        RATE
    }

    async fn open(&self, params: StreamParams) -> Result<EngineStream, EngineError> {
        let (audio_tx, audio_rx) = mpsc::channel(STREAM_CHANNEL_DEPTH);
        let (events_tx, events_rx) = mpsc::channel(STREAM_CHANNEL_DEPTH);
        let script = self.clone();
        let consumed = Arc::new(Consumed::default());
        if self.never_read {
            tokio::spawn(async move {
                // Hold the audio receiver unread until the session goes away.
                let _unread = audio_rx;
                events_tx.closed().await;
            });
        } else {
            let consumed = Arc::clone(&consumed);
            tokio::spawn(script.run(params.sample_rate, audio_rx, events_tx, consumed));
        }
        Ok(EngineStream {
            audio: audio_tx,
            events: events_rx,
            lag_ms: Arc::new(AtomicU64::new(0)),
            consumed,
        })
    }

    async fn readiness(&self) -> Readiness {
        Readiness::ready("scripted test engine")
    }
}

type Events = mpsc::Sender<EngineEvent>;

impl ScriptedEngine {
    async fn run(
        self,
        rate: u32,
        mut audio: mpsc::Receiver<EngineInput>,
        events: Events,
        consumed: Arc<Consumed>,
    ) {
        let rate = u64::from(rate.max(1));
        let mut samples = 0u64;
        let mut words_done = 0u64;
        while let Some(input) = audio.recv().await {
            match input {
                EngineInput::Audio(chunk) => {
                    samples += chunk.len() as u64;
                    consumed.reached(samples);
                    let ms = samples * 1000 / rate;
                    if self.fail_after_ms.is_some_and(|limit| ms >= limit) {
                        let message = "scripted failure".to_owned();
                        let _ = events.send(EngineEvent::Failed { message }).await;
                        return;
                    }
                    while (words_done + 1) * self.word_ms <= ms {
                        words_done += 1;
                        let done_segment = words_done.is_multiple_of(self.words_per_segment);
                        if self.emit(&events, words_done, !done_segment).await.is_err() {
                            return;
                        }
                    }
                }
                EngineInput::Finish => {
                    let ms = samples * 1000 / rate;
                    // A partly heard word, or a segment with partials, still gets its final.
                    let in_segment = words_done % self.words_per_segment;
                    if ms > words_done * self.word_ms || in_segment > 0 {
                        let last = if ms > words_done * self.word_ms {
                            words_done + 1
                        } else {
                            words_done
                        };
                        let _ = self.emit(&events, last, false).await;
                    }
                    let _ = events.send(EngineEvent::Finished).await;
                    return;
                }
            }
        }
    }

    /// Emits the current segment's words up to word number `last` (1-based).
    async fn emit(&self, events: &Events, last: u64, is_partial: bool) -> Result<(), ()> {
        let segment = (last - 1) / self.words_per_segment;
        let first = segment * self.words_per_segment + 1;
        let secs = |w: u64| (w * self.word_ms) as f64 / 1000.0;
        let words: Vec<Word> = (first..=last)
            .map(|w| Word {
                word: format!("w{w}"),
                start: secs(w - 1),
                end: secs(w),
                confidence: Some(0.9),
            })
            .collect();
        let text = words
            .iter()
            .map(|w| w.word.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        let result = TranscriptResult {
            result_id: format!("seg-{segment}"),
            is_partial,
            start: secs(first - 1),
            end: secs(last),
            text,
            words,
        };
        events
            .send(EngineEvent::Transcript(result))
            .await
            .map_err(|_| ())
    }
}
