//! Properties of ids and what is built from them: object keys, chunk keys and
//! the history paging cursor. Nothing accepted may escape its prefix.
//!
//! Shared by `tests/properties.rs` and the `keys` and `cursor` fuzz targets.

use std::path::{Component, Path};

use auscult::storage::SessionCursor;
use auscult::storage::keys::{Chunk, SessionKeys, validate_id};
use auscult::storage::object::{check_key, check_prefix};
use auscult::transport::api::{decode_cursor, encode_cursor};

/// Every character an id may hold.
pub const ID_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._@-";

/// An id spelt from `bytes` in [`ID_CHARS`], so fuzz input reaches valid ids
/// often (it may still start with a dot, be empty or too long).
pub fn id_from(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| char::from(ID_CHARS[usize::from(*b) % ID_CHARS.len()]))
        .collect()
}

/// An id is accepted exactly as documented, and an accepted one can be
/// neither a path segment trick nor hold a separator or control character.
pub fn id(id: &str) {
    let documented = (1..=128).contains(&id.len())
        && !id.starts_with('.')
        && id.bytes().all(|b| ID_CHARS.contains(&b));
    assert_eq!(validate_id(id).is_ok(), documented, "{id:?}");
    if let Ok(same) = validate_id(id) {
        assert_eq!(same, id);
        assert!(id != "." && id != ".." && !id.contains('/'), "{id:?}");
    }
}

/// A key that `check_key` accepts is plain `/`-separated segments, and
/// joined to a store's root stays under it.
fn assert_plain(key: &str) {
    assert!(!key.is_empty() && !key.starts_with('/'), "{key:?}");
    assert!(
        key.split('/')
            .all(|s| !s.is_empty() && s != "." && s != ".."),
        "{key:?}"
    );
    assert!(!key.chars().any(char::is_control), "{key:?}");
    assert!(
        Path::new(key)
            .components()
            .all(|c| matches!(c, Component::Normal(_))),
        "{key:?}"
    );
    assert!(
        Path::new("/store").join(key).starts_with("/store/"),
        "{key:?}"
    );
}

/// Arbitrary text as an object key, a list prefix and a chunk key.
pub fn object_key(key: &str) {
    let plain = !key.is_empty()
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..")
        && !key.chars().any(char::is_control);
    assert_eq!(check_key(key).is_ok(), plain, "{key:?}");
    if check_key(key).is_ok() {
        assert_plain(key);
    }
    if let Ok(folder) = check_prefix(key) {
        assert_eq!(format!("{folder}/"), key);
        assert_plain(folder);
    }
    if let Some(chunk) = Chunk::parse(key) {
        assert!(chunk.start_ms <= chunk.end_ms, "{key:?}: {chunk:?}");
        let keys = SessionKeys::new("u", "s").unwrap();
        assert_eq!(Chunk::parse(&keys.chunk(&chunk)), Some(chunk), "{key:?}");
    }
}

/// The keys of a session all lie under `users/{user}/audio/sessions/{session}/`
/// as plain segments, and a chunk key parses back to its chunk.
pub fn session_keys(user: &str, session: &str, chunk: Chunk) {
    let keys = SessionKeys::new(user, session);
    assert_eq!(
        keys.is_ok(),
        validate_id(user).is_ok() && validate_id(session).is_ok(),
        "{user:?} {session:?}"
    );
    let Ok(keys) = keys else { return };
    let prefix = format!("users/{user}/audio/sessions/{session}/");
    assert_eq!(keys.prefix(), prefix);
    for folder in [keys.prefix().to_owned(), keys.chunks()] {
        assert!(folder.starts_with(&prefix), "{folder:?}");
        assert_plain(check_prefix(&folder).expect("a session folder is a valid prefix"));
    }
    let chunk_key = keys.chunk(&chunk);
    for key in [
        keys.audio(),
        keys.transcript(),
        keys.manifest(),
        chunk_key.clone(),
    ] {
        assert!(key.starts_with(&prefix), "{key:?}");
        assert!(check_key(&key).is_ok(), "{key:?}");
        assert_plain(&key);
        let segments: Vec<&str> = key.split('/').collect();
        assert_eq!(segments[..5], ["users", user, "audio", "sessions", session]);
    }
    let valid = chunk.start_ms <= chunk.end_ms;
    assert_eq!(
        Chunk::parse(&chunk_key),
        valid.then_some(chunk),
        "{chunk_key:?}"
    );
}

/// Whatever text decodes as a cursor names a valid id and re-encodes (as
/// lowercase hex) to text that decodes to the same cursor.
pub fn cursor_text(text: &str) {
    let Ok(cursor) = decode_cursor(text) else {
        return;
    };
    assert!(validate_id(&cursor.id).is_ok(), "{text:?}: {cursor:?}");
    let again = encode_cursor(&cursor);
    assert!(is_lower_hex(&again), "{again:?}");
    assert_eq!(decode_cursor(&again).ok(), Some(cursor), "{text:?}");
}

/// Every cursor with a valid id survives encode → decode.
pub fn cursor_round_trip(started_at_ms: i64, id: &str) {
    if validate_id(id).is_err() {
        return;
    }
    let cursor = SessionCursor {
        started_at_ms,
        id: id.to_owned(),
    };
    let text = encode_cursor(&cursor);
    assert!(is_lower_hex(&text), "{text:?}");
    assert_eq!(decode_cursor(&text).ok(), Some(cursor));
}

fn is_lower_hex(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
