//! HTTP `Range` requests (RFC 9110 §14) on one object: a single byte range
//! is served as 206, anything this server does not serve in part (no range,
//! another unit, several ranges, bad syntax) as the whole object.

use std::ops::Range;

/// What a request's `Range` header asks of an object of a known size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeRequest {
    /// The whole object (200).
    Whole,
    /// The bytes `start..end` (end exclusive), all inside the object (206).
    Partial(Range<u64>),
    /// A well-formed range no byte of the object satisfies (416).
    Unsatisfiable,
}

/// Resolves `Range: bytes=a-b | a- | -n` against an object of `size` bytes.
pub fn resolve(header: Option<&str>, size: u64) -> RangeRequest {
    let Some(spec) = header.and_then(single_byte_range) else {
        return RangeRequest::Whole;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return RangeRequest::Whole;
    };
    match (number(first), number(last)) {
        // `-n`: the last n bytes.
        (None, Some(n)) if first.is_empty() => {
            if n == 0 || size == 0 {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial(size.saturating_sub(n)..size)
            }
        }
        // `a-` and `a-b`; an end past the object is clamped to it.
        (Some(a), last_pos) if last.is_empty() || last_pos.is_some() => {
            let end = last_pos.map_or(size, |b| b.saturating_add(1).min(size));
            if last_pos.is_some_and(|b| b < a) {
                RangeRequest::Whole // invalid: ignored, as RFC 9110 allows
            } else if a >= size {
                RangeRequest::Unsatisfiable
            } else {
                RangeRequest::Partial(a..end)
            }
        }
        _ => RangeRequest::Whole,
    }
}

/// The one range spec of a `bytes=` header; `None` for other units and for
/// several ranges (served whole).
fn single_byte_range(header: &str) -> Option<&str> {
    let header = header.trim();
    let (unit, spec) = header.split_once('=')?;
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return None;
    }
    Some(spec.trim())
}

/// A non-empty run of ASCII digits; values past `u64::MAX` saturate (they
/// are still well-formed positions).
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.parse().unwrap_or(u64::MAX))
}

/// `Content-Range` of a partial response.
pub fn content_range(range: &Range<u64>, size: u64) -> String {
    format!("bytes {}-{}/{size}", range.start, range.end - 1)
}

/// `Content-Range` of a 416 response.
pub fn unsatisfied_range(size: u64) -> String {
    format!("bytes */{size}")
}

#[cfg(test)]
mod tests {
    use super::RangeRequest::{Partial, Unsatisfiable, Whole};
    use super::*;

    #[test]
    fn no_header_or_an_unusable_one_is_the_whole_object() {
        for header in [
            None,
            Some(""),
            Some("items=0-1"),
            Some("bytes=0-1,5-6"),
            Some("bytes=abc"),
            Some("bytes=1-x"),
            Some("bytes=-"),
            Some("bytes=5-2"),
            Some("bytes=+1-2"),
            Some("bytes 0-1"),
        ] {
            assert_eq!(resolve(header, 100), Whole, "{header:?}");
        }
    }

    #[test]
    fn a_closed_range_is_inclusive_and_clamped_to_the_object() {
        assert_eq!(resolve(Some("bytes=0-0"), 100), Partial(0..1));
        assert_eq!(resolve(Some("bytes=10-19"), 100), Partial(10..20));
        assert_eq!(resolve(Some("bytes=90-1000"), 100), Partial(90..100));
        assert_eq!(resolve(Some("BYTES = 1-2"), 100), Partial(1..3));
        assert_eq!(
            resolve(Some("bytes=0-99999999999999999999999"), 100),
            Partial(0..100)
        );
    }

    #[test]
    fn an_open_range_runs_to_the_end() {
        assert_eq!(resolve(Some("bytes=0-"), 100), Partial(0..100));
        assert_eq!(resolve(Some("bytes=99-"), 100), Partial(99..100));
    }

    #[test]
    fn a_suffix_range_is_the_last_bytes() {
        assert_eq!(resolve(Some("bytes=-10"), 100), Partial(90..100));
        assert_eq!(resolve(Some("bytes=-1000"), 100), Partial(0..100));
    }

    #[test]
    fn ranges_no_byte_satisfies_are_416() {
        assert_eq!(resolve(Some("bytes=100-"), 100), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=100-200"), 100), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=-0"), 100), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=0-"), 0), Unsatisfiable);
        assert_eq!(resolve(Some("bytes=-5"), 0), Unsatisfiable);
        assert_eq!(
            resolve(Some("bytes=99999999999999999999999-"), 100),
            Unsatisfiable
        );
    }

    #[test]
    fn content_range_headers() {
        assert_eq!(content_range(&(0..1), 100), "bytes 0-0/100");
        assert_eq!(content_range(&(90..100), 100), "bytes 90-99/100");
        assert_eq!(unsatisfied_range(100), "bytes */100");
    }
}
