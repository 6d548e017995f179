//! Readers for what a session left behind: its three objects and its database
//! rows, read straight from the data directory (not through the app).

use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

use super::audio::Enc;

/// The fields of a WAV file a test checks.
#[derive(Debug, Clone)]
pub struct Wav {
    pub format_tag: u16,
    pub channels: u16,
    pub sample_rate: u32,
    pub bits_per_sample: u16,
    pub data: Vec<u8>,
}

/// Parses RIFF chunks; panics on anything that is not a well-formed WAV.
pub fn parse_wav(bytes: &[u8]) -> Wav {
    assert!(bytes.len() >= 12, "WAV shorter than its RIFF header");
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");
    let riff_len = u32::from_le_bytes(bytes[4..8].try_into().unwrap()) as usize;
    assert_eq!(riff_len + 8, bytes.len(), "RIFF size matches the file");
    let mut pos = 12;
    let mut fmt = None;
    let mut data = None;
    while pos + 8 <= bytes.len() {
        let id = &bytes[pos..pos + 4];
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let body = &bytes[pos + 8..pos + 8 + len];
        match id {
            b"fmt " => {
                let u16_at = |o: usize| u16::from_le_bytes([body[o], body[o + 1]]);
                let rate = u32::from_le_bytes(body[4..8].try_into().unwrap());
                fmt = Some((u16_at(0), u16_at(2), rate, u16_at(14)));
            }
            b"data" => data = Some(body.to_vec()),
            _ => {}
        }
        pos += 8 + len + (len % 2);
    }
    let (format_tag, channels, sample_rate, bits_per_sample) = fmt.expect("fmt chunk");
    Wav {
        format_tag,
        channels,
        sample_rate,
        bits_per_sample,
        data: data.expect("data chunk"),
    }
}

/// A session's database row.
#[derive(Debug, Clone)]
pub struct SessionRow {
    pub user_id: String,
    pub status: String,
    pub close_reason: Option<String>,
    pub received_bytes: u64,
    pub encoding: String,
    pub channels: u16,
    pub input_rate: u32,
    /// (seq, result_id, text) in order.
    pub segments: Vec<(i64, String, String)>,
}

/// Reads one session row (and its segments) from `<data_dir>/auscult.db`.
pub async fn session_row(data_dir: &Path, session_id: &str) -> Option<SessionRow> {
    sqlite_session_row(&data_dir.join("auscult.db"), session_id).await
}

/// Reads one session row (and its segments) from the SQLite database file `db_file`.
pub async fn sqlite_session_row(db_file: &Path, session_id: &str) -> Option<SessionRow> {
    let options = SqliteConnectOptions::new()
        .filename(db_file)
        .create_if_missing(false);
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .expect("open the app's sqlite database");
    let row = sqlx::query(
        "SELECT user_id, status, close_reason, received_bytes, encoding, channels, input_rate \
         FROM sessions WHERE id = ?",
    )
    .bind(session_id)
    .fetch_optional(&pool)
    .await
    .expect("query sessions");
    let segments =
        sqlx::query("SELECT seq, result_id, text FROM segments WHERE session_id = ? ORDER BY seq")
            .bind(session_id)
            .fetch_all(&pool)
            .await
            .expect("query segments")
            .iter()
            .map(|r| (r.get("seq"), r.get("result_id"), r.get("text")))
            .collect();
    let out = row.map(|r| SessionRow {
        user_id: r.get("user_id"),
        status: r.get("status"),
        close_reason: r.get("close_reason"),
        received_bytes: r.get::<i64, _>("received_bytes") as u64,
        encoding: r.get("encoding"),
        channels: r.get::<i64, _>("channels") as u16,
        input_rate: r.get::<i64, _>("input_rate") as u32,
        segments,
    });
    pool.close().await;
    out
}

/// The key prefix of a session's objects: `users/{user}/audio/sessions/{id}/`.
pub fn session_prefix(user: &str, session_id: &str) -> String {
    format!("users/{user}/audio/sessions/{session_id}/")
}

/// Everything stored for one session.
#[derive(Debug)]
pub struct StoredSession {
    /// The session's folder when read from a folder store
    /// ([`StoredSession::read`]); `None` when built from parts (S3).
    pub dir: Option<PathBuf>,
    pub audio_file: Vec<u8>,
    pub wav: Wav,
    pub manifest: Value,
    pub transcript: Value,
    pub row: SessionRow,
}

impl StoredSession {
    /// Reads the session's objects from `<data_dir>/objects` and its row from
    /// `<data_dir>/auscult.db` (the defaults of a TestApp's data directory).
    pub async fn read(data_dir: &Path, user: &str, session_id: &str) -> StoredSession {
        let dir = data_dir
            .join("objects/users")
            .join(user)
            .join("audio/sessions")
            .join(session_id);
        let read = |name: &str| {
            std::fs::read(dir.join(name))
                .unwrap_or_else(|e| panic!("stored {name} of {session_id}: {e}"))
        };
        let audio_file = read("audio.wav");
        let manifest = read("manifest.json");
        let transcript = read("transcript.json");
        let row = session_row(data_dir, session_id)
            .await
            .unwrap_or_else(|| panic!("no database row for session {session_id}"));
        StoredSession {
            dir: Some(dir),
            ..StoredSession::from_parts(audio_file, &manifest, &transcript, row)
        }
    }

    /// Builds the view from the three objects' bytes and the row, wherever
    /// they were read from. Panics on a malformed WAV or JSON.
    pub fn from_parts(
        audio_file: Vec<u8>,
        manifest_json: &[u8],
        transcript_json: &[u8],
        row: SessionRow,
    ) -> StoredSession {
        StoredSession {
            dir: None,
            wav: parse_wav(&audio_file),
            audio_file,
            manifest: serde_json::from_slice(manifest_json).expect("manifest is JSON"),
            transcript: serde_json::from_slice(transcript_json).expect("transcript is JSON"),
            row,
        }
    }

    /// Asserts the stored audio is exactly `sent` in the declared format, and
    /// that the manifest and row agree with it.
    pub fn assert_audio(&self, sent: &[u8], enc: Enc, rate: u32, channels: u16) {
        assert!(
            self.wav.data == sent,
            "stored audio ({} bytes) differs from the {} bytes sent (first difference at {:?})",
            self.wav.data.len(),
            sent.len(),
            self.wav.data.iter().zip(sent).position(|(a, b)| a != b)
        );
        assert_eq!(self.wav.format_tag, enc.wav_format_tag(), "WAV format tag");
        assert_eq!(self.wav.channels, channels, "WAV channels");
        assert_eq!(self.wav.sample_rate, rate, "WAV sample rate");
        assert_eq!(
            usize::from(self.wav.bits_per_sample),
            enc.bytes_per_sample() * 8,
            "WAV bits per sample"
        );
        let m = &self.manifest;
        assert_eq!(
            m["received_bytes"],
            sent.len() as u64,
            "manifest received_bytes"
        );
        assert_eq!(
            m["audio_bytes"],
            self.audio_file.len() as u64,
            "manifest audio_bytes"
        );
        let sha = hex::encode(Sha256::digest(&self.audio_file));
        assert_eq!(m["audio_sha256"], sha.as_str(), "manifest audio_sha256");
        assert_eq!(m["encoding"], enc.name());
        assert_eq!(m["channels"], channels);
        assert_eq!(m["input_rate"], rate);
        assert_eq!(
            self.row.received_bytes,
            sent.len() as u64,
            "row received_bytes"
        );
        assert_eq!(self.row.encoding, enc.name());
        assert_eq!(self.row.channels, channels);
        assert_eq!(self.row.input_rate, rate);
    }

    /// Asserts the row's and the manifest's status and close reason.
    pub fn assert_status(&self, status: &str, reason: &str) {
        assert_eq!(self.row.status, status, "row status");
        assert_eq!(
            self.row.close_reason.as_deref(),
            Some(reason),
            "row close_reason"
        );
        assert_eq!(self.manifest["status"], status, "manifest status");
        assert_eq!(
            self.manifest["close_reason"], reason,
            "manifest close_reason"
        );
    }

    /// The stored transcript's segments as (result_id, text).
    pub fn transcript_segments(&self) -> Vec<(String, String)> {
        self.transcript["segments"]
            .as_array()
            .expect("transcript segments")
            .iter()
            .map(|s| {
                (
                    s["result_id"].as_str().unwrap().to_owned(),
                    s["text"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }
}

/// Session ids that have a stored folder for `user`.
pub fn stored_session_ids(data_dir: &Path, user: &str) -> Vec<String> {
    let dir = data_dir
        .join("objects/users")
        .join(user)
        .join("audio/sessions");
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Polls the database until the session's row has `status` (e.g. a detached
/// session that the server stores on its own later).
pub async fn wait_for_status(data_dir: &Path, session_id: &str, status: &str) -> SessionRow {
    super::poll_until(|| async {
        let row = session_row(data_dir, session_id).await;
        match row {
            Some(row) if row.status == status => Ok(row),
            seen => Err(format!(
                "session {session_id} did not reach status {status:?}: {seen:?}"
            )),
        }
    })
    .await
}

/// Asserts the stored audio is the first `manifest.received_bytes` of `sent`,
/// covering at least everything acknowledged as durable.
pub fn assert_stored_prefix(stored: &StoredSession, sent: &[u8], acked: u64) {
    let n = stored.wav.data.len();
    assert!(n <= sent.len(), "stored {n} > sent {}", sent.len());
    assert!(
        stored.wav.data == sent[..n],
        "stored audio is not a prefix of what was sent"
    );
    assert!(n as u64 >= acked, "stored {n} < acked {acked}");
    assert_eq!(stored.manifest["received_bytes"], n as u64);
    assert_eq!(stored.row.received_bytes, n as u64);
}
