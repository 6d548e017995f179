//! Arbitrary ids, session keys, chunks and object keys
//! (tests/properties/keys.rs).
#![no_main]

use auscult::storage::keys::Chunk;

#[path = "../../tests/properties/keys.rs"]
#[allow(dead_code)]
mod keys;

libfuzzer_sys::fuzz_target!(|input: (u32, u64, u64, &str, &str, &str)| {
    let (seq, start_ms, end_ms, user, session, key) = input;
    let chunk = Chunk {
        seq,
        start_ms,
        end_ms,
    };
    keys::id(user);
    keys::id(session);
    keys::session_keys(user, session, chunk);
    // Spelt from id characters, the same bytes mostly make valid ids.
    let (user, session) = (
        keys::id_from(user.as_bytes()),
        keys::id_from(session.as_bytes()),
    );
    keys::session_keys(&user, &session, chunk);
    keys::object_key(key);
});
