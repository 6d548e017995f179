//! The wire protocol v1: typed client and server messages, error codes, close reasons.
//!
//! Everything here is transport-free: the WebSocket and Socket.IO transports both
//! carry these same JSON bodies (see `docs/protocol.md`).

mod codes;

pub use codes::{CloseCode, CloseReason, ErrorCode};
use serde::{Deserialize, Serialize};

/// The protocol version spoken by this server.
pub const PROTOCOL_VERSION: u32 = 1;

/// A text message from the client.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMsg {
    Start(StartMsg),
    Stop,
}

/// The `start` message that opens (or resumes) a session.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct StartMsg {
    pub sample_rate: u32,
    pub encoding: String,
    #[serde(default = "default_channels")]
    pub channels: u16,
    #[serde(default = "default_language")]
    pub language: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub specialty: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume: Option<ResumeRequest>,
}

fn default_channels() -> u16 {
    1
}

fn default_language() -> String {
    "en-US".to_owned()
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
pub struct ResumeRequest {
    pub session_id: String,
    pub offset_bytes: u64,
}

/// A message from the server. Serialized as one JSON text frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    Ready(ReadyMsg),
    Transcript(TranscriptMsg),
    Ack(AckMsg),
    Error(ErrorMsg),
    Stored(StoredMsg),
    Closed(ClosedMsg),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReadyMsg {
    pub session_id: String,
    pub engine: String,
    pub input_rate: u32,
    pub engine_rate: u32,
    pub limits: Limits,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resume_from_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    pub max_duration_s: u64,
    pub idle_timeout_s: u64,
    pub max_message_bytes: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TranscriptMsg {
    pub result_id: String,
    pub is_partial: bool,
    pub start: f64,
    pub end: f64,
    pub text: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub words: Vec<Word>,
}

/// Protected health information (or PII) the engine found in a final, with
/// its time span. Stored in `transcript.json`; never logged.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entity {
    pub category: String,
    pub start: f64,
    pub end: f64,
    pub content: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
}

impl Entity {
    /// `text` with every entity's content replaced by `[PHI]`, where it
    /// stands as whole words: "45" is redacted in "aged 45," but not in
    /// "145 mg".
    pub fn redact(text: &str, entities: &[Entity]) -> String {
        let mut out = text.to_owned();
        for e in entities {
            out = replace_words(&out, e.content.trim(), "[PHI]");
        }
        out
    }

    /// The redacted variant stored beside `text`: only when there are entities.
    pub fn redacted_variant(text: &str, entities: &[Entity]) -> Option<String> {
        (!entities.is_empty()).then(|| Entity::redact(text, entities))
    }
}

/// `text` with each occurrence of `find` that is not part of a longer word replaced.
fn replace_words(text: &str, find: &str, with: &str) -> String {
    if find.is_empty() {
        return text.to_owned();
    }
    let is_word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(find) {
        let end = at + find.len();
        let before = rest[..at].chars().next_back().or(out.chars().next_back());
        let after = rest[end..].chars().next();
        if is_word(before) || is_word(after) {
            // Part of a longer word: step one character only, so an
            // overlapping occurrence that stands alone ("1 1" in "11 1 1")
            // is still found and redacted.
            let step = at + rest[at..].chars().next().map_or(1, char::len_utf8);
            out.push_str(&rest[..step]);
            rest = &rest[step..];
        } else {
            out.push_str(&rest[..at]);
            out.push_str(with);
            rest = &rest[end..];
        }
    }
    out.push_str(rest);
    out
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Word {
    pub word: String,
    pub start: f64,
    pub end: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confidence: Option<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AckMsg {
    pub received_bytes: u64,
    pub durable_bytes: u64,
    /// How far the engine's results trail the audio received, when the engine reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_lag_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorMsg {
    pub code: ErrorCode,
    pub message: String,
    pub fatal: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredMsg {
    pub session_id: String,
    pub audio: String,
    pub transcript: String,
    pub duration_s: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClosedMsg {
    pub reason: CloseReason,
}

impl ServerMsg {
    pub fn error(code: ErrorCode, message: impl Into<String>, fatal: bool) -> Self {
        ServerMsg::Error(ErrorMsg {
            code,
            message: message.into(),
            fatal,
        })
    }

    /// Serializes to the JSON text sent on the wire.
    pub fn to_json(&self) -> String {
        // Serializing these plain structs cannot fail: no maps with non-string keys,
        // no custom serializers that error.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"type":"error","code":"internal","message":"encoding failed","fatal":true}"#
                .to_owned()
        })
    }
}

#[cfg(test)]
mod tests {
    fn entity(content: &str) -> super::Entity {
        super::Entity {
            category: "PHI".into(),
            start: 0.0,
            end: 1.0,
            content: content.into(),
            confidence: None,
        }
    }

    #[test]
    fn entities_are_redacted_as_whole_words_only() {
        let text = "Jane Roe, aged 45, takes 145 mg; Jane's chart.";
        assert_eq!(
            super::Entity::redact(text, &[entity("Jane Roe"), entity("45")]),
            "[PHI], aged [PHI], takes 145 mg; Jane's chart."
        );
        assert_eq!(
            super::Entity::redact("w2 w22 w2", &[entity("w2")]),
            "[PHI] w22 [PHI]"
        );
        assert_eq!(
            super::Entity::redact("no entity", &[entity("")]),
            "no entity"
        );
    }

    /// Found by the `redaction` fuzz target: a match kept because it is part
    /// of a longer word used to hide an overlapping match that stands alone.
    #[test]
    fn an_entity_overlapping_a_longer_word_is_still_redacted_where_it_stands_alone() {
        assert_eq!(
            super::Entity::redact("11 1 1", &[entity("1 1")]),
            "11 [PHI]"
        );
        assert_eq!(
            super::Entity::redact("Re\0e\0e;e", &[entity("e\0e")]),
            "Re\0[PHI];e"
        );
    }

    use super::*;

    #[test]
    fn start_message_parses_with_defaults() {
        let msg: ClientMsg =
            serde_json::from_str(r#"{"type":"start","sample_rate":48000,"encoding":"pcm_s16le"}"#)
                .unwrap();
        let ClientMsg::Start(start) = msg else {
            panic!("expected start")
        };
        assert_eq!(start.channels, 1);
        assert_eq!(start.language, "en-US");
        assert_eq!(start.resume, None);
    }

    #[test]
    fn stop_message_parses() {
        let msg: ClientMsg = serde_json::from_str(r#"{"type":"stop"}"#).unwrap();
        assert_eq!(msg, ClientMsg::Stop);
    }

    #[test]
    fn ack_serializes_without_lag_when_unknown() {
        let json = ServerMsg::Ack(AckMsg {
            received_bytes: 10,
            durable_bytes: 8,
            engine_lag_ms: None,
        })
        .to_json();
        assert_eq!(
            json,
            r#"{"type":"ack","received_bytes":10,"durable_bytes":8}"#
        );
    }

    #[test]
    fn closed_serializes_reason_in_snake_case() {
        let json = ServerMsg::Closed(ClosedMsg {
            reason: CloseReason::ServerShutdown,
        })
        .to_json();
        assert_eq!(json, r#"{"type":"closed","reason":"server_shutdown"}"#);
    }
}
