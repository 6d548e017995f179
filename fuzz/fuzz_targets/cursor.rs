//! Arbitrary text as a history paging cursor, the same bytes hex-encoded (so
//! they pass the hex step), and arbitrary cursors encoded and decoded
//! (tests/properties/keys.rs).
#![no_main]

use libfuzzer_sys::arbitrary::Unstructured;

#[path = "../../tests/properties/keys.rs"]
#[allow(dead_code)]
mod keys;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        keys::cursor_text(text);
    }
    keys::cursor_text(&hex::encode(data));
    let mut u = Unstructured::new(data);
    if let Ok(started_at_ms) = u.arbitrary::<i64>() {
        let rest = u.take_rest();
        keys::cursor_round_trip(started_at_ms, &keys::id_from(rest));
        if let Ok(id) = std::str::from_utf8(rest) {
            keys::cursor_round_trip(started_at_ms, id);
        }
    }
});
