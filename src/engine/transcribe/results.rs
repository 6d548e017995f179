//! Transcribe's results mapped onto protocol v1, with service times mapped
//! back onto the session's audio (a stream may start mid-session, and
//! keepalive silence exists only on the service's side).

use aws_sdk_transcribestreaming::types::{ItemType, MedicalResult, Result as StdResult};

use crate::engine::TranscriptResult;
use crate::protocol::{Entity, Word};

/// One result, whichever operation produced it. Times are service seconds.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Segment {
    pub result_id: String,
    pub is_partial: bool,
    pub start: f64,
    pub end: f64,
    pub text: String,
    pub words: Vec<Word>,
    /// PHI/PII entities (finals only).
    pub entities: Vec<Entity>,
}

/// The medical and standard SDKs have separate result, item and entity types
/// with the same fields; one body serves both.
macro_rules! segment_from {
    ($r:expr) => {{
        let r = $r;
        let alt = r.alternatives?.into_iter().next()?;
        let words = alt
            .items
            .unwrap_or_default()
            .into_iter()
            .filter(|i| i.r#type != Some(ItemType::Punctuation))
            .map(|i| {
                word(
                    i.content,
                    i.start_time,
                    i.end_time,
                    i.confidence,
                    r.is_partial,
                )
            })
            .collect();
        let entities = alt
            .entities
            .unwrap_or_default()
            .into_iter()
            .map(|e| {
                entity(
                    e.category,
                    e.content,
                    e.start_time,
                    e.end_time,
                    e.confidence,
                )
            })
            .collect();
        Some(Segment {
            result_id: r.result_id?,
            is_partial: r.is_partial,
            start: r.start_time,
            end: r.end_time,
            text: alt.transcript.unwrap_or_default(),
            words,
            entities,
        })
    }};
}

pub(super) fn from_medical(r: MedicalResult) -> Option<Segment> {
    segment_from!(r)
}

pub(super) fn from_standard(r: StdResult) -> Option<Segment> {
    segment_from!(r)
}

fn entity(
    category: Option<String>,
    content: Option<String>,
    start: f64,
    end: f64,
    confidence: Option<f64>,
) -> Entity {
    Entity {
        category: category.unwrap_or_default(),
        start,
        end,
        content: content.unwrap_or_default(),
        confidence: confidence.map(|c| c as f32),
    }
}

fn word(
    content: Option<String>,
    start: f64,
    end: f64,
    confidence: Option<f64>,
    partial: bool,
) -> Word {
    Word {
        word: content.unwrap_or_default(),
        start,
        end,
        // The service gives confidence only on finals.
        confidence: if partial {
            None
        } else {
            confidence.map(|c| c as f32)
        },
    }
}

/// Maps one stream's service times onto session times.
#[derive(Debug, Default)]
pub(super) struct Timeline {
    /// Session seconds at which this stream's audio starts.
    pub offset: f64,
    /// Keepalive silence sent on this stream: (service start, seconds), in order.
    pub silence: Vec<(f64, f64)>,
}

impl Timeline {
    pub fn new(offset: f64) -> Self {
        Timeline {
            offset,
            silence: Vec::new(),
        }
    }

    pub fn to_session(&self, t: f64) -> f64 {
        let mut shift = 0.0;
        for &(at, len) in &self.silence {
            if t >= at + len {
                shift += len;
            } else if t > at {
                shift += t - at;
            }
        }
        self.offset + (t - shift).max(0.0)
    }

    /// The result (under the protocol `result_id`) and its entities, in session times.
    pub fn map(&self, result_id: String, s: Segment) -> (TranscriptResult, Vec<Entity>) {
        let entities = s
            .entities
            .into_iter()
            .map(|e| Entity {
                start: self.to_session(e.start),
                end: self.to_session(e.end),
                ..e
            })
            .collect();
        let result = TranscriptResult {
            result_id,
            is_partial: s.is_partial,
            start: self.to_session(s.start),
            end: self.to_session(s.end),
            text: s.text,
            words: s
                .words
                .into_iter()
                .map(|w| Word {
                    start: self.to_session(w.start),
                    end: self.to_session(w.end),
                    ..w
                })
                .collect(),
        };
        (result, entities)
    }
}

/// Protocol `result_id`s for one stream's results: `{stream}-{ResultId}`,
/// except that a partial left open by the previous stream (which failed
/// before its final) is continued by this stream's first result. That result
/// covers the same resent audio, so every partial the client saw gets its
/// final and no words are shown twice.
#[derive(Debug)]
pub(super) struct ResultIds {
    stream_no: u32,
    carried: Option<String>,
    continued_by: Option<String>,
}

impl ResultIds {
    pub fn new(stream_no: u32, carried: Option<String>) -> Self {
        ResultIds {
            stream_no,
            carried,
            continued_by: None,
        }
    }

    pub fn protocol_id(&mut self, service_id: &str) -> String {
        if let Some(carried) = &self.carried {
            let continued_by = self
                .continued_by
                .get_or_insert_with(|| service_id.to_owned());
            if continued_by == service_id {
                return carried.clone();
            }
        }
        format!("{}-{service_id}", self.stream_no)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_silence_and_the_stream_offset_are_taken_out_of_times() {
        let mut t = Timeline::new(10.0);
        t.silence.push((2.0, 0.1));
        t.silence.push((2.1, 0.1));
        assert_eq!(t.to_session(1.0), 11.0);
        assert!((t.to_session(2.05) - 12.0).abs() < 1e-9);
        assert!((t.to_session(3.0) - 12.8).abs() < 1e-9);
    }

    #[test]
    fn a_partial_left_open_is_continued_by_the_next_streams_first_result_only() {
        let mut ids = ResultIds::new(2, Some("1-a".into()));
        assert_eq!(ids.protocol_id("x"), "1-a");
        assert_eq!(ids.protocol_id("x"), "1-a");
        assert_eq!(ids.protocol_id("y"), "2-y");
        let mut fresh = ResultIds::new(3, None);
        assert_eq!(fresh.protocol_id("x"), "3-x");
    }
}
