//! The per-session spool: every accepted audio byte is appended here before it
//! is acknowledged, so a crash of the server process loses nothing. The file
//! starts with a WAV header whose sizes are patched at close, so the spool
//! itself becomes `audio.wav`. A sidecar `meta.json` lets a restarted server
//! finish the session on its own.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::audio::{AudioFormat, wav};
use crate::storage::keys::validate_id;
use crate::storage::private_fs;

const AUDIO_FILE: &str = "audio.wav.part";
const META_FILE: &str = "meta.json";
/// Written when a session ended but could not be stored; recovery keeps its reason.
const CLOSED_FILE: &str = "closed.json";
/// Where spools whose `meta.json` or `closed.json` cannot be trusted are
/// moved: kept for an operator, never stored or rescanned.
pub const UNREADABLE_DIR: &str = ".unreadable";

/// What a restarted server needs to finish a session from its spool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpoolMeta {
    pub session_id: String,
    pub user_id: String,
    pub engine: String,
    pub language: String,
    pub format: AudioFormat,
    pub engine_rate: u32,
    pub started_at_ms: i64,
}

/// Marker of a session that ended normally but whose storage has not succeeded yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosedMarker {
    pub close_reason: String,
    pub ended_at_ms: i64,
}

/// The open spool of a live session. Writes are plain `write(2)` calls into the
/// page cache (cheap; they survive a process crash); fsync happens on a timer
/// for all sessions at once, and so do chunk uploads (see [`LiveSpools`]).
pub struct Spool {
    dir: PathBuf,
    live: Arc<LiveSpool>,
}

/// A live spool as seen by the background tasks: the fsync timer and the
/// chunk flusher, which reads the audio appended since its last chunk.
pub struct LiveSpool {
    file: File,
    dirty: AtomicBool,
    /// Audio bytes appended so far (whole frames; published after each append).
    data_len: AtomicU64,
    header_len: u64,
    pub meta: SpoolMeta,
    /// Chunk upload progress; held during an upload so close can wait for it.
    pub chunks: tokio::sync::Mutex<ChunkCursor>,
    /// Cancelled when an fsync of the audio failed: what was written since
    /// the last good fsync may be gone with the page cache (Linux drops the
    /// dirty pages and reports the error once), so the session must not
    /// acknowledge anything more.
    pub failed: CancellationToken,
}

/// How far the session's audio has been written to object storage as chunks.
#[derive(Debug, Default)]
pub struct ChunkCursor {
    /// The next chunk's sequence number.
    pub seq: u32,
    /// Audio bytes already in chunks.
    pub flushed: u64,
    /// Set at close: no more chunks.
    pub closed: bool,
}

impl Spool {
    /// Creates the spool folder, its header and `meta.json` (fsynced, so a
    /// crash right after `ready` is still recoverable).
    pub fn create(root: &Path, meta: &SpoolMeta) -> std::io::Result<Self> {
        let dir = root.join(&meta.session_id);
        private_fs::create_dir_all(&dir)?;
        write_json(&dir.join(META_FILE), meta)?;
        let mut file = private_fs::create_new(&dir.join(AUDIO_FILE))?;
        let header = wav::header(&meta.format, 0);
        file.write_all(&header)?;
        file.sync_all()?;
        private_fs::sync_dir(&dir)?;
        Ok(Spool {
            dir,
            live: Arc::new(LiveSpool {
                file,
                dirty: AtomicBool::new(false),
                data_len: AtomicU64::new(0),
                header_len: header.len() as u64,
                meta: meta.clone(),
                chunks: tokio::sync::Mutex::new(ChunkCursor::default()),
                failed: CancellationToken::new(),
            }),
        })
    }

    /// Appends audio; on return the bytes survive a crash of this process.
    pub fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        (&self.live.file).write_all(bytes)?;
        self.live
            .data_len
            .fetch_add(bytes.len() as u64, Ordering::Release);
        self.live.dirty.store(true, Ordering::Release);
        Ok(())
    }

    pub fn data_len(&self) -> u64 {
        self.live.data_len()
    }

    /// Fsyncs the audio now (live sessions leave this to [`LiveSpools`]).
    pub fn sync(&self) -> std::io::Result<()> {
        self.live.file.sync_data()
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn live(&self) -> Arc<LiveSpool> {
        Arc::clone(&self.live)
    }

    /// Cancelled once an fsync of this spool failed (see [`LiveSpool::failed`]).
    pub fn failed(&self) -> &CancellationToken {
        &self.live.failed
    }
}

impl LiveSpool {
    pub fn data_len(&self) -> u64 {
        self.data_len.load(Ordering::Acquire)
    }

    /// Reads audio bytes `from..to` (offsets into the audio, after the header).
    pub fn read_audio(&self, from: u64, to: u64) -> std::io::Result<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; to.saturating_sub(from) as usize];
        self.file.read_exact_at(&mut buf, self.header_len + from)?;
        Ok(buf)
    }
}

/// A spool found on disk (after a crash, or kept because storage failed).
#[derive(Debug)]
pub struct SpoolOnDisk {
    pub dir: PathBuf,
    pub meta: SpoolMeta,
    pub closed: Option<ClosedMarker>,
}

impl SpoolOnDisk {
    pub fn audio_path(&self) -> PathBuf {
        self.dir.join(AUDIO_FILE)
    }

    /// Patches the WAV sizes to the whole frames on disk and fsyncs. Returns the data length.
    /// A torn final frame (crash mid-write) is cut off so the file stays valid.
    pub fn seal(&self) -> std::io::Result<u64> {
        seal(&self.audio_path(), &self.meta.format)
    }

    pub fn mark_closed(&self, marker: &ClosedMarker) -> std::io::Result<()> {
        write_json(&self.dir.join(CLOSED_FILE), marker)
    }

    /// Removes the spool once the session is stored.
    pub fn remove(&self) -> std::io::Result<()> {
        std::fs::remove_dir_all(&self.dir)
    }
}

/// Reads one spool folder. Everything read back is checked like client
/// input (the format was already checked by `AudioFormat`'s own parser):
/// anything else is `InvalidData`, and such a spool is never stored.
pub fn load(dir: &Path) -> std::io::Result<SpoolOnDisk> {
    let meta: SpoolMeta = read_json(&dir.join(META_FILE))?;
    let closed = match read_json::<ClosedMarker>(&dir.join(CLOSED_FILE)) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let name = dir.file_name().map(|n| n.to_string_lossy().into_owned());
    check_meta(&meta, name.as_deref()).map_err(invalid_data)?;
    if let Some(marker) = &closed {
        check_marker(marker).map_err(invalid_data)?;
    }
    Ok(SpoolOnDisk {
        dir: dir.to_path_buf(),
        meta,
        closed,
    })
}

fn invalid_data(why: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why)
}

/// The longest engine or language name a spool may carry.
const MAX_NAME: usize = 64;

fn check_meta(meta: &SpoolMeta, dir_name: Option<&str>) -> Result<(), String> {
    validate_id(&meta.session_id).map_err(|e| format!("session_id: {e}"))?;
    validate_id(&meta.user_id).map_err(|e| format!("user_id: {e}"))?;
    if dir_name != Some(meta.session_id.as_str()) {
        return Err("session_id is not the folder's name".to_owned());
    }
    let short =
        |v: &str| !v.is_empty() && v.len() <= MAX_NAME && v.chars().all(|c| !c.is_control());
    if !short(&meta.engine) || !short(&meta.language) {
        return Err("engine or language is empty, too long or not text".to_owned());
    }
    if !(crate::audio::MIN_SAMPLE_RATE..=crate::audio::MAX_SAMPLE_RATE).contains(&meta.engine_rate)
    {
        return Err(format!("engine_rate {} is out of range", meta.engine_rate));
    }
    if meta.started_at_ms < 0 {
        return Err("started_at_ms is negative".to_owned());
    }
    Ok(())
}

fn check_marker(marker: &ClosedMarker) -> Result<(), String> {
    if crate::protocol::CloseReason::parse(&marker.close_reason).is_none() {
        return Err("closed.json has an unknown close_reason".to_owned());
    }
    if marker.ended_at_ms < 0 {
        return Err("closed.json has a negative ended_at_ms".to_owned());
    }
    Ok(())
}

/// Moves a spool that cannot be trusted out of the way (into
/// [`UNREADABLE_DIR`]), so it is kept for an operator but never retried.
pub fn quarantine(root: &Path, dir: &Path) -> std::io::Result<PathBuf> {
    let hold = root.join(UNREADABLE_DIR);
    private_fs::create_dir_all(&hold)?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let dest = hold.join(format!("{name}-{}", uuid::Uuid::now_v7().simple()));
    std::fs::rename(dir, &dest)?;
    private_fs::sync_dir(root)?;
    Ok(dest)
}

/// Every spool folder under `root` (those without a readable `meta.json` are reported as errors).
pub fn scan(root: &Path) -> std::io::Result<Vec<Result<SpoolOnDisk, (PathBuf, std::io::Error)>>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if path.is_dir() && !hidden {
            out.push(load(&path).map_err(|e| (path.clone(), e)));
        }
    }
    Ok(out)
}

fn seal(path: &Path, format: &AudioFormat) -> std::io::Result<u64> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let header_len = wav::header_len(format.encoding) as u64;
    let len = file.metadata()?.len();
    let raw = len.saturating_sub(header_len);
    let data_len = raw - raw % format.frame_bytes() as u64;
    if header_len + data_len != len {
        file.set_len(header_len + data_len)?;
    }
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&wav::header(format, data_len))?;
    file.sync_all()?;
    Ok(data_len)
}

/// Writes a small JSON file whole or not at all: a temporary file, fsynced,
/// renamed into place, and the folder fsynced so the rename lasts.
fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = private_fs::create(&tmp)?;
    f.write_all(&serde_json::to_vec(value).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    match path.parent() {
        Some(dir) => private_fs::sync_dir(dir),
        None => Ok(()),
    }
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<T> {
    let mut s = String::new();
    File::open(path)?.read_to_string(&mut s)?;
    serde_json::from_str(&s).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// The spools of this process's live sessions. Fsyncs every dirty one on a
/// timer, in one blocking task for all sessions, so a crash of the machine
/// loses at most one interval; the chunk flusher walks the same set.
#[derive(Clone, Default)]
pub struct LiveSpools {
    spools: Arc<DashMap<String, Arc<LiveSpool>>>,
}

impl LiveSpools {
    pub fn register(&self, spool: Arc<LiveSpool>) {
        self.spools.insert(spool.meta.session_id.clone(), spool);
    }

    pub fn unregister(&self, session_id: &str) -> Option<Arc<LiveSpool>> {
        self.spools.remove(session_id).map(|(_, spool)| spool)
    }

    /// The live spools right now.
    pub fn snapshot(&self) -> Vec<Arc<LiveSpool>> {
        self.spools.iter().map(|s| Arc::clone(s.value())).collect()
    }

    /// Runs until `stop` is cancelled, then syncs once more.
    pub async fn run_fsync(self, interval: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.sync_dirty().await,
                () = stop.cancelled() => {
                    self.sync_dirty().await;
                    return;
                }
            }
        }
    }

    async fn sync_dirty(&self) {
        let dirty: Vec<Arc<LiveSpool>> = self
            .spools
            .iter()
            .filter(|t| t.dirty.swap(false, Ordering::AcqRel))
            .map(|t| Arc::clone(t.value()))
            .collect();
        if dirty.is_empty() {
            return;
        }
        let _ = tokio::task::spawn_blocking(move || {
            for t in &dirty {
                if let Err(e) = t.file.sync_data() {
                    // Not retried: after a failed fsync the kernel may have
                    // dropped the data, and a later fsync would succeed
                    // without it. The session ends instead of acking more.
                    crate::telemetry::storage_failure("spool_fsync", &t.meta.session_id, &e);
                    t.failed.cancel();
                }
            }
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(format: AudioFormat) -> SpoolMeta {
        SpoolMeta {
            session_id: "s1".into(),
            user_id: "u1".into(),
            engine: "loadtest".into(),
            language: "en-US".into(),
            format,
            engine_rate: 16_000,
            started_at_ms: 5,
        }
    }

    #[test]
    fn spool_becomes_a_valid_wav_holding_exactly_the_bytes_appended() {
        let root = tempfile::tempdir().unwrap();
        let format = AudioFormat::new("pcm_s16le", 8_000, 1).unwrap();
        let mut spool = Spool::create(root.path(), &meta(format)).unwrap();
        spool.append(&[1, 2, 3, 4]).unwrap();
        spool.append(&[5, 6]).unwrap();
        assert_eq!(spool.data_len(), 6);
        assert_eq!(spool.live().read_audio(1, 5).unwrap(), vec![2, 3, 4, 5]);
        let found = scan(root.path()).unwrap().pop().unwrap().unwrap();
        assert_eq!(found.meta, meta(format));
        assert_eq!(found.seal().unwrap(), 6);
        let bytes = std::fs::read(found.audio_path()).unwrap();
        let parsed = wav::parse(&bytes).unwrap();
        assert_eq!(&bytes[parsed.data_offset..], &[1, 2, 3, 4, 5, 6]);
    }

    #[test]
    fn sealing_cuts_a_torn_final_frame() {
        let root = tempfile::tempdir().unwrap();
        let format = AudioFormat::new("pcm_f32le", 8_000, 2).unwrap();
        let mut spool = Spool::create(root.path(), &meta(format)).unwrap();
        spool.append(&[0u8; 8 * 3 + 5]).unwrap();
        let found = load(spool.dir()).unwrap();
        assert_eq!(found.seal().unwrap(), 24);
    }
}
