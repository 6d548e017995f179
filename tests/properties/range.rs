//! Properties of `Range` header parsing for audio downloads, checked against
//! a model of RFC 9110 §14 written from the grammar, not from the code.
//!
//! Shared by `tests/properties.rs` and the `range` fuzz target.

use auscult::transport::api::range::{self, RangeRequest};

/// What `header` must resolve to on an object of `size` bytes.
///
/// `bytes=first-last`, `bytes=first-` or `bytes=-suffix`, with optional
/// whitespace around the unit, the `=` and the spec, and a case-insensitive
/// unit. Positions past `u64::MAX` are well formed and saturate (as
/// `range.rs` documents). Anything else, including several ranges and
/// `last < first`, is served whole.
fn model(header: &str, size: u64) -> RangeRequest {
    use RangeRequest::{Partial, Unsatisfiable, Whole};
    let Some((unit, spec)) = header.trim().split_once('=') else {
        return Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return Whole;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Whole;
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let value = |s: &str| s.parse::<u64>().unwrap_or(u64::MAX);
    let from = |start: u64, end: u64| {
        if start >= size {
            Unsatisfiable
        } else {
            Partial(start..end)
        }
    };
    match (first, last) {
        ("", n) if digits(n) => match value(n) {
            0 => Unsatisfiable,
            _ if size == 0 => Unsatisfiable,
            n => Partial(size - n.min(size)..size),
        },
        (a, "") if digits(a) => from(value(a), size),
        (a, b) if digits(a) && digits(b) => {
            if value(b) < value(a) {
                Whole
            } else {
                from(value(a), value(b).min(size.saturating_sub(1)) + 1)
            }
        }
        _ => Whole,
    }
}

/// Any span returned lies inside the object and matches the model; a 416
/// comes only from a well-formed range no byte satisfies.
pub fn range(header: &str, size: u64) {
    let got = range::resolve(Some(header), size);
    if let RangeRequest::Partial(span) = &got {
        assert!(
            span.start < span.end && span.end <= size,
            "{header:?} on {size} bytes gave {span:?}"
        );
        assert_eq!(
            range::content_range(span, size),
            format!("bytes {}-{}/{size}", span.start, span.end - 1)
        );
    }
    assert_eq!(got, model(header, size), "{header:?} on {size} bytes");
    assert_eq!(range::resolve(None, size), RangeRequest::Whole);
}
