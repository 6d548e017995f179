//! The SRT, WebVTT and plain-text exports of arbitrary finals
//! (tests/properties/text.rs).
#![no_main]

use auscult::export::Segment;

#[path = "../../tests/properties/text.rs"]
#[allow(dead_code)]
mod text;

libfuzzer_sys::fuzz_target!(|input: Vec<(f64, f64, String)>| {
    let segments: Vec<Segment> = input
        .into_iter()
        .map(|(start, end, text)| Segment { start, end, text })
        .collect();
    text::exports(&segments);
});
