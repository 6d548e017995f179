//! PHI redaction of arbitrary text with arbitrary entities
//! (tests/properties/text.rs).
#![no_main]

#[path = "../../tests/properties/text.rs"]
#[allow(dead_code)]
mod text;

libfuzzer_sys::fuzz_target!(|input: (Vec<String>, String)| {
    let (contents, text) = input;
    text::redaction(&text, &contents);
});
