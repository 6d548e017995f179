//! Properties of the text a session produces: PHI redaction of finals and
//! the SRT, WebVTT and plain-text exports.
//!
//! Shared by `tests/properties.rs` and the `redaction` and `exports` fuzz targets.

use auscult::export::{self, Segment};
use auscult::protocol::Entity;

const MARKER: &str = "[PHI]";

fn entity(content: &str) -> Entity {
    Entity {
        category: "NAME".to_owned(),
        start: 0.0,
        end: 1.0,
        content: content.to_owned(),
        confidence: None,
    }
}

/// `Entity::redact` documents that every entity's content is replaced where it
/// stands as whole words: so no whole-word occurrence of an entity is left in
/// the output, except inside a `[PHI]` marker.
///
/// Checked for entities that start and end with a letter or digit (for
/// content such as `-x`, "whole word" depends on the neighbours a marker
/// brings, and the function's choice there is not a leak).
pub fn redaction(text: &str, contents: &[String]) {
    let entities: Vec<Entity> = contents.iter().map(|c| entity(c)).collect();
    let variant = Entity::redacted_variant(text, &entities);
    if entities.is_empty() {
        assert_eq!(variant, None, "no entities, no redacted variant");
        return;
    }
    let out = variant.expect("entities give a redacted variant");
    assert_eq!(out, Entity::redact(text, &entities));
    if !contents
        .iter()
        .any(|c| !c.trim().is_empty() && text.contains(c.trim()))
    {
        assert_eq!(out, text, "nothing to redact leaves the text as it was");
    }
    let markers: Vec<(usize, usize)> = out
        .match_indices(MARKER)
        .map(|(at, m)| (at, at + m.len()))
        .collect();
    let word_char = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
    for content in contents {
        let content = content.trim();
        let edges = (content.chars().next(), content.chars().next_back());
        if !(word_char(edges.0) && word_char(edges.1)) {
            continue;
        }
        // Every occurrence, overlapping ones included.
        for (at, _) in out.char_indices() {
            let end = at + content.len();
            if !out[at..].starts_with(content)
                || word_char(out[..at].chars().next_back())
                || word_char(out[end..].chars().next())
            {
                continue;
            }
            assert!(
                markers.iter().any(|&(m0, m1)| m0 < end && at < m1),
                "entity {content:?} left whole in {out:?} (from {text:?})"
            );
        }
    }
}

/// A cue as the exports print it.
struct Printed<'a> {
    start_ms: u128,
    end_ms: u128,
    text: &'a str,
}

/// `HH:MM:SS<sep>mmm`, hours of two digits or more, as milliseconds.
fn timestamp(text: &str, sep: char) -> u128 {
    let (hms, ms) = text.split_once(sep).expect("milliseconds separator");
    let parts: Vec<&str> = hms.split(':').collect();
    assert_eq!(parts.len(), 3, "{text:?}");
    assert!(parts[0].len() >= 2 && parts[1].len() == 2 && parts[2].len() == 2 && ms.len() == 3);
    let n = |s: &str| s.parse::<u128>().expect("digits");
    let (h, m, s) = (n(parts[0]), n(parts[1]), n(parts[2]));
    assert!(m < 60 && s < 60, "{text:?}");
    ((h * 60 + m) * 60 + s) * 1000 + n(ms)
}

fn times(line: &str, sep: char) -> (u128, u128) {
    let (start, end) = line.split_once(" --> ").expect("a timing line");
    (timestamp(start, sep), timestamp(end, sep))
}

/// Cues start in order and never end before they start.
fn assert_ordered(cues: &[Printed]) {
    for (i, cue) in cues.iter().enumerate() {
        assert!(cue.start_ms <= cue.end_ms, "cue {i} ends before it starts");
        if i > 0 {
            assert!(
                cues[i - 1].start_ms <= cue.start_ms,
                "cue {i} starts earlier"
            );
        }
    }
}

/// SRT numbers its cues from 1, VTT escapes its markup characters, all three
/// exports hold the same cues in the same order with times that never go
/// back, and each cue's text is the final's words on one line.
pub fn exports(segments: &[Segment]) {
    let texts: Vec<String> = segments
        .iter()
        .map(|s| s.text.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|t| !t.is_empty())
        .collect();

    let srt = export::srt(segments);
    let lines: Vec<&str> = srt.split('\n').collect();
    assert_eq!(lines.len(), 4 * texts.len() + 1, "{srt:?}");
    let srt_cues: Vec<Printed> = lines
        .chunks_exact(4)
        .enumerate()
        .map(|(i, block)| {
            assert_eq!(block[0], (i + 1).to_string(), "SRT numbers from 1");
            assert_eq!(block[3], "", "a blank line ends each block");
            let (start_ms, end_ms) = times(block[1], ',');
            Printed {
                start_ms,
                end_ms,
                text: block[2],
            }
        })
        .collect();
    assert_ordered(&srt_cues);

    let vtt = export::vtt(segments);
    let body = vtt.strip_prefix("WEBVTT\n").expect("the WEBVTT header");
    let lines: Vec<&str> = body.split('\n').collect();
    assert_eq!(lines.len(), 3 * texts.len() + 1, "{vtt:?}");
    let vtt_cues: Vec<Printed> = lines
        .chunks_exact(3)
        .map(|cue| {
            assert_eq!(cue[0], "", "a blank line before each cue");
            let (start_ms, end_ms) = times(cue[1], '.');
            Printed {
                start_ms,
                end_ms,
                text: cue[2],
            }
        })
        .collect();
    assert_ordered(&vtt_cues);

    let txt = export::txt(segments);
    let lines: Vec<&str> = txt.lines().collect();
    assert_eq!(lines.len(), texts.len(), "{txt:?}");
    for (i, text) in texts.iter().enumerate() {
        let (srt, vtt) = (&srt_cues[i], &vtt_cues[i]);
        assert_eq!(srt.text, text);
        assert!(!vtt.text.contains(['<', '>']), "{:?}", vtt.text);
        assert!(
            vtt.text.match_indices('&').all(|(at, _)| {
                ["&amp;", "&lt;", "&gt;"]
                    .iter()
                    .any(|e| vtt.text[at..].starts_with(e))
            }),
            "every & in VTT text starts an escape: {:?}",
            vtt.text
        );
        let unescaped = vtt
            .text
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&");
        assert_eq!(&unescaped, text);
        assert_eq!((srt.start_ms, srt.end_ms), (vtt.start_ms, vtt.end_ms));
        let (stamp, line) = lines[i].split_once("] ").expect("`[mm:ss] text`");
        let (mm, ss) = stamp
            .strip_prefix('[')
            .and_then(|s| s.split_once(':'))
            .expect("[mm:ss");
        assert!(mm.len() >= 2 && ss.len() == 2, "{stamp:?}");
        let secs = mm.parse::<u128>().unwrap() * 60 + ss.parse::<u128>().unwrap();
        assert!(ss.parse::<u8>().unwrap() < 60, "{stamp:?}");
        assert_eq!(secs, srt.start_ms / 1000, "TXT shows the cue's start");
        assert_eq!(line, text);
    }
}
