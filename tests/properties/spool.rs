//! Properties of reading a spool back from disk (after a crash, or one kept
//! for a retry): `load` on any `meta.json` and `closed.json`, then `seal` on
//! any length of audio file. Nothing on disk can make the server panic (a
//! `channels: 0` once divided by zero), and only a description a client
//! could have given is accepted.
//!
//! Shared by `tests/properties.rs` and the `spool` fuzz target.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use auscult::audio::{AudioFormat, wav};
use auscult::session::spool;
use auscult::storage::keys::validate_id;

/// One scratch folder per process (the fuzzer runs this millions of times).
fn scratch() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("auscult-spool-props-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("scratch folder");
        dir
    })
}

/// Writes a spool folder named `dir_name` (or the meta's session id when
/// `None` and it has one), loads and seals it, and checks the outcome.
pub fn load_and_seal(meta: &[u8], closed: Option<&[u8]>, audio_len: usize, dir_name: Option<&str>) {
    let named = serde_json::from_slice::<serde_json::Value>(meta)
        .ok()
        .and_then(|v| v["session_id"].as_str().map(str::to_owned));
    let name = match dir_name.or(named.as_deref()) {
        Some(n) if validate_id(n).is_ok() => n.to_owned(),
        _ => "spool-under-test".to_owned(),
    };
    let dir = scratch().join(&name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("meta.json"), meta).unwrap();
    if let Some(closed) = closed {
        std::fs::write(dir.join("closed.json"), closed).unwrap();
    }
    std::fs::write(dir.join("audio.wav.part"), vec![0u8; audio_len]).unwrap();

    let loaded = spool::load(&dir);
    let Ok(found) = loaded else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    let m = &found.meta;
    assert!(validate_id(&m.session_id).is_ok() && validate_id(&m.user_id).is_ok());
    assert_eq!(
        m.session_id, name,
        "a spool was taken for another folder's session"
    );
    let format = AudioFormat::new(
        m.format.encoding.as_str(),
        m.format.sample_rate,
        m.format.channels,
    )
    .expect("a loaded format is one a client could send");
    assert_eq!(format, m.format);

    let on_disk = audio_len as u64;
    match found.seal() {
        Ok(data_len) => {
            assert_eq!(
                data_len % m.format.frame_bytes() as u64,
                0,
                "a torn frame was kept"
            );
            let bytes = std::fs::read(found.audio_path()).unwrap();
            let parsed = wav::parse(&bytes).expect("a sealed spool is a WAV file");
            assert_eq!((bytes.len() - parsed.data_offset) as u64, data_len);
            let header = wav::header_len(m.format.encoding) as u64;
            assert!(
                data_len <= on_disk.saturating_sub(header),
                "seal grew the audio"
            );
        }
        // Shorter than its header: nothing to seal, and it says so.
        Err(_) => assert!(on_disk < wav::header_len(m.format.encoding) as u64),
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// A `meta.json` from its parts, as the server writes it.
pub fn meta_json(
    session_id: &str,
    user_id: &str,
    encoding: &str,
    sample_rate: i64,
    channels: i64,
    engine_rate: i64,
) -> Vec<u8> {
    serde_json::json!({
        "session_id": session_id,
        "user_id": user_id,
        "engine": "scripted",
        "language": "en-US",
        "format": { "encoding": encoding, "sample_rate": sample_rate, "channels": channels },
        "engine_rate": engine_rate,
        "started_at_ms": 1,
    })
    .to_string()
    .into_bytes()
}
