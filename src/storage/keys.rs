//! Object keys built only from validated ids (PROTOCOL.md "Storage layout").

/// Why an id cannot be used in a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid id: {0}")]
pub struct InvalidId(pub &'static str);

/// Accepts ids of 1–128 characters from `[A-Za-z0-9._@-]`, not starting with a dot:
/// no `/`, no `..`, no control characters can ever reach a key or a path.
pub fn validate_id(id: &str) -> Result<&str, InvalidId> {
    if id.is_empty() || id.len() > 128 {
        return Err(InvalidId("length must be 1..=128"));
    }
    if id.starts_with('.') {
        return Err(InvalidId("must not start with a dot"));
    }
    if !id
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'))
    {
        return Err(InvalidId("only letters, digits and . _ @ - are allowed"));
    }
    Ok(id)
}

/// The key prefix of one session: `users/{user}/audio/sessions/{session}/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKeys {
    prefix: String,
}

impl SessionKeys {
    pub fn new(user_id: &str, session_id: &str) -> Result<Self, InvalidId> {
        let user = validate_id(user_id)?;
        let session = validate_id(session_id)?;
        Ok(SessionKeys {
            prefix: format!("users/{user}/audio/sessions/{session}/"),
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn audio(&self) -> String {
        format!("{}audio.wav", self.prefix)
    }

    pub fn transcript(&self) -> String {
        format!("{}transcript.json", self.prefix)
    }

    pub fn manifest(&self) -> String {
        format!("{}manifest.json", self.prefix)
    }

    /// The folder of the chunks written while the session is live.
    pub fn chunks(&self) -> String {
        format!("{}chunks/", self.prefix)
    }

    /// One chunk: `chunks/{seq}-{start_ms}-{end_ms}.pcm`, the raw audio (as
    /// sent, no header) from `start_ms` to `end_ms` of the session. `seq` is
    /// zero-padded so the keys sort in order.
    pub fn chunk(&self, chunk: &Chunk) -> String {
        format!(
            "{}{:06}-{}-{}.pcm",
            self.chunks(),
            chunk.seq,
            chunk.start_ms,
            chunk.end_ms
        )
    }
}

/// What a chunk's key says about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk {
    pub seq: u32,
    pub start_ms: u64,
    pub end_ms: u64,
}

impl Chunk {
    /// Parses a chunk key (or its last segment); `None` for anything else.
    pub fn parse(key: &str) -> Option<Chunk> {
        let name = key.rsplit('/').next()?.strip_suffix(".pcm")?;
        let mut parts = name.splitn(3, '-');
        let chunk = Chunk {
            seq: parts.next()?.parse().ok()?,
            start_ms: parts.next()?.parse().ok()?,
            end_ms: parts.next()?.parse().ok()?,
        };
        (chunk.start_ms <= chunk.end_ms).then_some(chunk)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_path_tricks() {
        for bad in [
            "", "..", "../x", "a/b", ".hidden", "a\nb", "a\u{0}b", "a b", "é",
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?} should be rejected");
        }
        for good in ["u1", "local", "alice@example.org", "0193-abc_def.x"] {
            assert!(validate_id(good).is_ok(), "{good:?} should be accepted");
        }
    }

    #[test]
    fn keys_follow_the_protocol_layout() {
        let k = SessionKeys::new("u1", "s1").unwrap();
        assert_eq!(k.audio(), "users/u1/audio/sessions/s1/audio.wav");
        assert_eq!(k.transcript(), "users/u1/audio/sessions/s1/transcript.json");
        assert_eq!(k.manifest(), "users/u1/audio/sessions/s1/manifest.json");
        let chunk = Chunk {
            seq: 3,
            start_ms: 30_000,
            end_ms: 40_000,
        };
        let key = k.chunk(&chunk);
        assert_eq!(
            key,
            "users/u1/audio/sessions/s1/chunks/000003-30000-40000.pcm"
        );
        assert_eq!(Chunk::parse(&key), Some(chunk));
        for bad in ["x.pcm", "1-2.pcm", "1-2-3.wav", "a-1-2.pcm", "1-5-2.pcm"] {
            assert_eq!(Chunk::parse(bad), None, "{bad}");
        }
    }
}
