//! Transcript exports: a session's final segments as plain text, SRT or WebVTT
//! (the stored `transcript.json` itself is the JSON export).

use std::fmt::Write;

use serde::Deserialize;

/// The export formats of `GET /v1/sessions/{id}/transcript?format=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Txt,
    Srt,
    Vtt,
}

impl Format {
    pub fn parse(name: &str) -> Option<Format> {
        Some(match name {
            "json" => Format::Json,
            "txt" => Format::Txt,
            "srt" => Format::Srt,
            "vtt" => Format::Vtt,
            _ => return None,
        })
    }

    /// The file extension, which is also the format's name.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Json => "json",
            Format::Txt => "txt",
            Format::Srt => "srt",
            Format::Vtt => "vtt",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Txt => "text/plain; charset=utf-8",
            Format::Srt => "application/x-subrip; charset=utf-8",
            Format::Vtt => "text/vtt; charset=utf-8",
        }
    }
}

/// One final as stored in `transcript.json` (other fields are ignored).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Segment {
    pub start: f64,
    pub end: f64,
    pub text: String,
}

/// The part of a stored `transcript.json` the exports need.
#[derive(Debug, Deserialize)]
pub struct StoredTranscript {
    pub segments: Vec<Segment>,
}

/// One cue: a final with printable text and times that are valid for every
/// format (not negative, start never before the previous cue's, end ≥ start).
struct Cue {
    start_ms: u64,
    end_ms: u64,
    text: String,
}

/// Finals with text become cues, in order; empty ones are left out (a cue
/// without text would end an SRT block early).
fn cues(segments: &[Segment]) -> Vec<Cue> {
    let mut out: Vec<Cue> = Vec::with_capacity(segments.len());
    for s in segments {
        let text = s.text.split_whitespace().collect::<Vec<_>>().join(" ");
        if text.is_empty() {
            continue;
        }
        let previous = out.last().map_or(0, |c| c.start_ms);
        let start_ms = millis(s.start).max(previous);
        let end_ms = millis(s.end).max(start_ms);
        out.push(Cue {
            start_ms,
            end_ms,
            text,
        });
    }
    out
}

/// Seconds to whole milliseconds; negative or non-finite times are 0.
fn millis(secs: f64) -> u64 {
    if secs.is_finite() && secs > 0.0 {
        (secs * 1000.0).round() as u64
    } else {
        0
    }
}

/// One final per line: `[mm:ss] text` (minutes keep counting past 59).
pub fn txt(segments: &[Segment]) -> String {
    let mut out = String::new();
    for cue in cues(segments) {
        let secs = cue.start_ms / 1000;
        let _ = writeln!(out, "[{:02}:{:02}] {}", secs / 60, secs % 60, cue.text);
    }
    out
}

/// SubRip: numbered cues from 1, `HH:MM:SS,mmm --> HH:MM:SS,mmm`, a blank line after each.
pub fn srt(segments: &[Segment]) -> String {
    let mut out = String::new();
    for (i, cue) in cues(segments).iter().enumerate() {
        let _ = write!(
            out,
            "{}\n{} --> {}\n{}\n\n",
            i + 1,
            timestamp(cue.start_ms, ','),
            timestamp(cue.end_ms, ','),
            cue.text
        );
    }
    out
}

/// WebVTT: the `WEBVTT` header, then `HH:MM:SS.mmm --> HH:MM:SS.mmm` cues
/// with their text escaped (`&`, `<`, `>` are markup in cue text).
pub fn vtt(segments: &[Segment]) -> String {
    let mut out = String::from("WEBVTT\n");
    for cue in cues(segments) {
        let text = cue
            .text
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;");
        let _ = write!(
            out,
            "\n{} --> {}\n{text}\n",
            timestamp(cue.start_ms, '.'),
            timestamp(cue.end_ms, '.')
        );
    }
    out
}

/// `HH:MM:SS<sep>mmm`; hours keep counting past 99.
fn timestamp(ms: u64, sep: char) -> String {
    let (secs, ms) = (ms / 1000, ms % 1000);
    format!(
        "{:02}:{:02}:{:02}{sep}{ms:03}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(start: f64, end: f64, text: &str) -> Segment {
        Segment {
            start,
            end,
            text: text.to_owned(),
        }
    }

    #[test]
    fn timestamps_carry_hours_minutes_seconds_and_milliseconds() {
        assert_eq!(timestamp(0, ','), "00:00:00,000");
        assert_eq!(timestamp(1_005, '.'), "00:00:01.005");
        assert_eq!(timestamp(61_250, ','), "00:01:01,250");
        assert_eq!(timestamp(3_723_456, '.'), "01:02:03.456");
        assert_eq!(timestamp(360_000_000, ','), "100:00:00,000");
        assert_eq!(millis(1.0005), 1001, "rounded to the nearest millisecond");
        assert_eq!(millis(-2.0), 0);
        assert_eq!(millis(f64::NAN), 0);
    }

    #[test]
    fn srt_numbers_cues_from_one_with_comma_milliseconds() {
        let out = srt(&[seg(0.0, 1.5, "hello there"), seg(1.5, 3.25, "second")]);
        assert_eq!(
            out,
            "1\n00:00:00,000 --> 00:00:01,500\nhello there\n\n\
             2\n00:00:01,500 --> 00:00:03,250\nsecond\n\n"
        );
    }

    #[test]
    fn vtt_has_its_header_dot_milliseconds_and_escaped_text() {
        let out = vtt(&[seg(0.25, 1.0, "a <b> & c"), seg(62.0, 63.5, "d")]);
        assert_eq!(
            out,
            "WEBVTT\n\n00:00:00.250 --> 00:00:01.000\na &lt;b&gt; &amp; c\n\n\
             00:01:02.000 --> 00:01:03.500\nd\n"
        );
    }

    #[test]
    fn txt_is_one_line_per_final_with_its_start() {
        let out = txt(&[seg(5.9, 7.0, "one"), seg(125.0, 126.0, "two")]);
        assert_eq!(out, "[00:05] one\n[02:05] two\n");
        assert_eq!(txt(&[seg(3_700.0, 3_701.0, "late")]), "[61:40] late\n");
    }

    #[test]
    fn an_empty_transcript_renders_empty_documents() {
        assert_eq!(txt(&[]), "");
        assert_eq!(srt(&[]), "");
        assert_eq!(vtt(&[]), "WEBVTT\n");
    }

    #[test]
    fn empty_finals_are_skipped_and_numbering_stays_consecutive() {
        let out = srt(&[
            seg(0.0, 1.0, "a"),
            seg(1.0, 2.0, "  \n "),
            seg(2.0, 3.0, "b"),
        ]);
        assert!(out.starts_with("1\n"), "{out}");
        assert!(
            out.contains("\n\n2\n00:00:02,000 --> 00:00:03,000\nb\n"),
            "{out}"
        );
        assert!(!out.contains("\n3\n"), "{out}");
    }

    #[test]
    fn line_breaks_in_text_cannot_end_a_cue_early() {
        let out = srt(&[seg(0.0, 1.0, "first\n\nsecond line")]);
        assert_eq!(
            out,
            "1\n00:00:00,000 --> 00:00:01,000\nfirst second line\n\n"
        );
    }

    #[test]
    fn times_are_repaired_so_cues_are_monotonic_and_never_end_before_they_start() {
        let out = vtt(&[seg(2.0, 1.0, "backwards"), seg(1.5, 4.0, "early")]);
        assert_eq!(
            out,
            "WEBVTT\n\n00:00:02.000 --> 00:00:02.000\nbackwards\n\n\
             00:00:02.000 --> 00:00:04.000\nearly\n"
        );
    }

    #[test]
    fn formats_parse_by_name() {
        for f in [Format::Json, Format::Txt, Format::Srt, Format::Vtt] {
            assert_eq!(Format::parse(f.extension()), Some(f));
        }
        assert_eq!(Format::parse("pdf"), None);
        assert_eq!(Format::parse("SRT"), None);
    }

    #[test]
    fn a_stored_transcript_parses_ignoring_other_fields() {
        let doc = r#"{"session_id":"s","text":"x","segments":[
            {"seq":0,"result_id":"r","start":0.5,"end":1.0,"text":"x","words":[]}]}"#;
        let t: StoredTranscript = serde_json::from_str(doc).unwrap();
        assert_eq!(t.segments, vec![seg(0.5, 1.0, "x")]);
    }
}
