//! The data directory: created private (0700), and held by one server
//! process at a time. Two processes on one folder would each take the
//! other's spools for crashed sessions and store them under their feet, so
//! the second one refuses to start and names the holder.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use crate::storage::private_fs;

const LOCK_FILE: &str = "auscult.lock";

/// Why the data directory could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("data directory {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "data directory {path} is in use by another auscult process ({holder}); \
         each server needs its own AUSCULT_DATA_DIR"
    )]
    Locked { path: String, holder: String },
}

/// The exclusive lock on a data directory, released when dropped (or when
/// the process dies: the kernel drops it with the file).
#[derive(Debug)]
pub struct DataDirLock {
    _file: File,
    path: PathBuf,
}

impl DataDirLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Creates `data_dir` and `spool_dir` (0700, tightening an existing data
/// directory that is open to others) and takes the directory's lock for
/// this process, writing who holds it into the lock file.
pub fn take(
    data_dir: &Path,
    spool_dir: &Path,
    instance_id: &str,
) -> Result<DataDirLock, DataDirError> {
    let io = |source| DataDirError::Io {
        path: data_dir.display().to_string(),
        source,
    };
    private_fs::create_dir_all(spool_dir).map_err(io)?;
    private_fs::restrict(data_dir).map_err(io)?;
    let path = data_dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(io)?;
    private_fs::restrict(&path).map_err(io)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            let holder = holder.trim();
            return Err(DataDirError::Locked {
                path: data_dir.display().to_string(),
                holder: if holder.is_empty() {
                    "unknown holder".to_owned()
                } else {
                    holder.chars().take(200).collect()
                },
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let since = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default();
    let holder = format!(
        "pid {} on {}, instance {instance_id}, since {since}",
        std::process::id(),
        host.trim(),
    );
    let written = (|| {
        file.set_len(0)?;
        file.rewind()?;
        file.write_all(holder.as_bytes())?;
        file.sync_all()
    })();
    written.map_err(io)?;
    Ok(DataDirLock { _file: file, path })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_with_the_first_ones_name_until_it_lets_go() {
        let root = tempfile::tempdir().unwrap();
        let data = root.path().join("data");
        let first = take(&data, &data.join("spool"), "i-first").unwrap();
        let err = take(&data, &data.join("spool"), "i-second").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("in use by another auscult process"), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("i-first"), "{text}");
        drop(first);
        take(&data, &data.join("spool"), "i-second").expect("free once released");
    }
}
