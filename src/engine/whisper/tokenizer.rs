//! Whisper's token vocabulary: turns generated token ids back into text
//! segments with their timestamps.
//!
//! The vocabulary comes from the model's `tokenizer.json` (GPT-2 byte-level
//! BPE plus Whisper's special tokens). Timestamp tokens are not listed there:
//! they are the ids after `<|notimestamps|>`, one per 20 ms.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;

pub const START_OF_TRANSCRIPT: &str = "<|startoftranscript|>";
const NO_TIMESTAMPS: &str = "<|notimestamps|>";
/// Seconds per timestamp token step.
const TIMESTAMP_STEP: f64 = 0.02;

#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a Whisper tokenizer.json: {why}")]
    Invalid { path: String, why: String },
}

#[derive(Deserialize)]
struct TokenizerFile {
    model: BpeModel,
    added_tokens: Vec<AddedToken>,
}

#[derive(Deserialize)]
struct BpeModel {
    vocab: HashMap<String, u32>,
}

#[derive(Deserialize)]
struct AddedToken {
    id: u32,
    content: String,
}

/// One stretch of text between two timestamp tokens, in seconds from the
/// start of the decoded window.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub text: String,
}

pub struct Tokenizer {
    /// Bytes of each ordinary token, by id; `None` for special tokens.
    tokens: Vec<Option<Vec<u8>>>,
    timestamp_begin: usize,
}

impl Tokenizer {
    pub fn load(path: &Path) -> Result<Self, TokenizerError> {
        let shown = path.display().to_string();
        let raw = std::fs::read(path).map_err(|source| TokenizerError::Read {
            path: shown.clone(),
            source,
        })?;
        let file: TokenizerFile =
            serde_json::from_slice(&raw).map_err(|e| TokenizerError::Invalid {
                path: shown.clone(),
                why: e.to_string(),
            })?;
        let invalid = |why: &str| TokenizerError::Invalid {
            path: shown.clone(),
            why: why.to_owned(),
        };
        let special = |name: &str| {
            file.added_tokens
                .iter()
                .find(|t| t.content == name)
                .map(|t| t.id)
        };
        special(START_OF_TRANSCRIPT).ok_or_else(|| invalid("no <|startoftranscript|> token"))?;
        let no_timestamps =
            special(NO_TIMESTAMPS).ok_or_else(|| invalid("no <|notimestamps|> token"))?;
        let unicode_to_byte = byte_decoder();
        let mut tokens = vec![None; no_timestamps as usize + 1];
        for (text, &id) in &file.model.vocab {
            let bytes: Option<Vec<u8>> = text
                .chars()
                .map(|c| unicode_to_byte.get(&c).copied())
                .collect();
            let slot = tokens
                .get_mut(id as usize)
                .ok_or_else(|| invalid("token id past <|notimestamps|>"))?;
            *slot = Some(bytes.ok_or_else(|| invalid("token outside the byte-level alphabet"))?);
        }
        for added in &file.added_tokens {
            if let Some(slot) = tokens.get_mut(added.id as usize) {
                *slot = None;
            }
        }
        Ok(Tokenizer {
            tokens,
            timestamp_begin: no_timestamps as usize + 1,
        })
    }

    /// Splits a generated sequence into timestamped segments. Text after the
    /// last timestamp (an unfinished segment) ends at `window_secs`.
    pub fn segments(&self, ids: &[usize], window_secs: f64) -> Vec<Segment> {
        let mut segments = Vec::new();
        let mut start: Option<f64> = None;
        let mut text: Vec<u8> = Vec::new();
        for &id in ids {
            if id >= self.timestamp_begin {
                let time = (id - self.timestamp_begin) as f64 * TIMESTAMP_STEP;
                match start {
                    Some(begin) if !text.is_empty() => {
                        segments.push(segment(begin, time.max(begin), &text));
                        text.clear();
                        start = None;
                    }
                    _ => start = Some(time),
                }
            } else if let Some(Some(bytes)) = self.tokens.get(id) {
                text.extend_from_slice(bytes);
                start.get_or_insert(segments.last().map_or(0.0, |s: &Segment| s.end));
            }
        }
        if !text.is_empty() {
            let begin = start.unwrap_or(0.0);
            segments.push(segment(begin, window_secs.max(begin), &text));
        }
        segments.retain(|s| !s.text.is_empty());
        segments
    }
}

fn segment(start: f64, end: f64, text: &[u8]) -> Segment {
    Segment {
        start,
        end,
        text: String::from_utf8_lossy(text).trim().to_owned(),
    }
}

/// GPT-2's `bytes_to_unicode`, inverted: the printable character that stands
/// for each byte in the vocabulary.
fn byte_decoder() -> HashMap<char, u8> {
    let printable = |b: u8| matches!(b, b'!'..=b'~' | 0xA1..=0xAC | 0xAE..=0xFF);
    let mut map = HashMap::new();
    let mut next = 256u32;
    for b in 0..=255u8 {
        let c = if printable(b) {
            char::from(b)
        } else {
            let c = char::from_u32(next).expect("valid code point");
            next += 1;
            c
        };
        map.insert(c, b);
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_tokenizer() -> Tokenizer {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        let json = r#"{"model":{"vocab":{"the":0,"\u0120patient":1,"\u0120reports":2,".":3}},
            "added_tokens":[{"id":4,"content":"<|endoftext|>"},{"id":5,"content":"<|startoftranscript|>"},
            {"id":6,"content":"<|notimestamps|>"}]}"#;
        std::fs::write(&path, json).unwrap();
        Tokenizer::load(&path).unwrap()
    }

    #[test]
    fn splits_text_at_timestamp_tokens() {
        let tok = tiny_tokenizer();
        // Timestamps start at id 7: id 7 + n is n * 20 ms.
        let ids = [7, 0, 1, 7 + 60, 7 + 60, 2, 3, 7 + 100, 4];
        let segments = tok.segments(&ids, 5.0);
        assert_eq!(
            segments,
            vec![
                Segment {
                    start: 0.0,
                    end: 1.2,
                    text: "the patient".into()
                },
                Segment {
                    start: 1.2,
                    end: 2.0,
                    text: "reports.".into()
                },
            ]
        );
    }

    #[test]
    fn an_unfinished_segment_ends_at_the_window_end() {
        let tok = tiny_tokenizer();
        let segments = tok.segments(&[7 + 50, 1, 2], 3.5);
        assert_eq!(
            segments,
            vec![Segment {
                start: 1.0,
                end: 3.5,
                text: "patient reports".into()
            }]
        );
    }

    #[test]
    fn the_byte_decoder_covers_every_byte_once() {
        let map = byte_decoder();
        assert_eq!(map.len(), 256);
        assert_eq!(map[&'\u{120}'], b' ');
        assert_eq!(map[&'a'], b'a');
    }
}
