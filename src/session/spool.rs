//! The per-session spool: every accepted audio byte is appended here before it
//! is acknowledged, so a crash of the server process loses nothing. The file
//! starts with a WAV header whose sizes are patched at close, so the spool
//! itself becomes `audio.wav`. A sidecar `meta.json` lets a restarted server
//! finish the session on its own.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::audio::{AudioFormat, wav};

const AUDIO_FILE: &str = "audio.wav.part";
const META_FILE: &str = "meta.json";
/// Written when a session ended but could not be stored; recovery keeps its reason.
const CLOSED_FILE: &str = "closed.json";

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
/// for all sessions at once, in [`SpoolSyncer`].
pub struct Spool {
    dir: PathBuf,
    file: Arc<SyncTarget>,
    data_len: u64,
}

/// A spool file as seen by the syncer.
pub struct SyncTarget {
    file: File,
    dirty: AtomicBool,
}

impl Spool {
    /// Creates the spool folder, its header and `meta.json` (fsynced, so a
    /// crash right after `ready` is still recoverable).
    pub fn create(root: &Path, meta: &SpoolMeta) -> std::io::Result<Self> {
        let dir = root.join(&meta.session_id);
        std::fs::create_dir_all(&dir)?;
        write_json(&dir.join(META_FILE), meta)?;
        let mut file = OpenOptions::new()
            .create_new(true)
            .read(true)
            .write(true)
            .open(dir.join(AUDIO_FILE))?;
        let header = wav::header(&meta.format, 0);
        file.write_all(&header)?;
        file.sync_all()?;
        sync_dir(&dir)?;
        Ok(Spool {
            dir,
            file: Arc::new(SyncTarget {
                file,
                dirty: AtomicBool::new(false),
            }),
            data_len: 0,
        })
    }

    /// Appends audio; on return the bytes survive a crash of this process.
    pub fn append(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if bytes.is_empty() {
            return Ok(());
        }
        (&self.file.file).write_all(bytes)?;
        self.data_len += bytes.len() as u64;
        self.file.dirty.store(true, Ordering::Release);
        Ok(())
    }

    pub fn data_len(&self) -> u64 {
        self.data_len
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn sync_target(&self) -> Arc<SyncTarget> {
        Arc::clone(&self.file)
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

/// Reads one spool folder.
pub fn load(dir: &Path) -> std::io::Result<SpoolOnDisk> {
    let meta: SpoolMeta = read_json(&dir.join(META_FILE))?;
    let closed = match read_json::<ClosedMarker>(&dir.join(CLOSED_FILE)) {
        Ok(m) => Some(m),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    Ok(SpoolOnDisk {
        dir: dir.to_path_buf(),
        meta,
        closed,
    })
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
        if path.is_dir() {
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

fn write_json<T: Serialize>(path: &Path, value: &T) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(value).map_err(std::io::Error::other)?)?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> std::io::Result<T> {
    let mut s = String::new();
    File::open(path)?.read_to_string(&mut s)?;
    serde_json::from_str(&s).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Fsyncs every dirty spool on a timer, in one blocking task for all sessions,
/// so a crash of the machine loses at most one interval.
#[derive(Clone, Default)]
pub struct SpoolSyncer {
    targets: Arc<DashMap<String, Arc<SyncTarget>>>,
}

impl SpoolSyncer {
    pub fn register(&self, session_id: &str, target: Arc<SyncTarget>) {
        self.targets.insert(session_id.to_owned(), target);
    }

    pub fn unregister(&self, session_id: &str) {
        self.targets.remove(session_id);
    }

    /// Runs until `stop` is cancelled, then syncs once more.
    pub async fn run(self, interval: Duration, stop: CancellationToken) {
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
        let dirty: Vec<Arc<SyncTarget>> = self
            .targets
            .iter()
            .filter(|t| t.dirty.swap(false, Ordering::AcqRel))
            .map(|t| Arc::clone(t.value()))
            .collect();
        if dirty.is_empty() {
            return;
        }
        let result = tokio::task::spawn_blocking(move || {
            let mut failures = 0usize;
            for t in &dirty {
                if t.file.sync_data().is_err() {
                    t.dirty.store(true, Ordering::Release);
                    failures += 1;
                }
            }
            failures
        })
        .await;
        if let Ok(failures) = result
            && failures > 0
        {
            tracing::warn!(
                event = "spool_fsync_failed",
                failures,
                "fsync of spool files failed; will retry"
            );
        }
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
