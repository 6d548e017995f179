//! The embedded object store: one file per object under a root folder, written
//! to a temporary name, fsynced and renamed so a reader never sees half an object.

use std::io::{SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::TryStreamExt;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::{ObjectStore, ObjectStream, check_key, check_prefix};
use crate::storage::{StorageError, private_fs};

/// How much of a file one streamed read takes.
const READ_BUFFER: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct FsObjectStore {
    root: PathBuf,
}

impl FsObjectStore {
    pub async fn open(root: &Path) -> Result<Self, StorageError> {
        let dir = root.to_path_buf();
        blocking(move || private_fs::create_dir_all(&dir)).await?;
        Ok(FsObjectStore {
            root: root.to_path_buf(),
        })
    }

    fn path(&self, key: &str) -> Result<PathBuf, StorageError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }
}

/// Writes `fill`'s output next to `dest`, fsyncs, renames into place, fsyncs the folder.
fn write_atomically(
    dest: &Path,
    fill: impl FnOnce(&mut std::fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let dir = dest
        .parent()
        .ok_or_else(|| std::io::Error::other("object path has no parent"))?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::now_v7()));
    let result = (|| {
        let mut file = create_in(dir, &tmp)?;
        fill(&mut file)?;
        file.flush()?;
        file.sync_all()?;
        std::fs::rename(&tmp, dest)?;
        private_fs::sync_dir(dir)
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Creates `file` in `dir`, making the folder first. A delete that emptied
/// the folder may remove it in between; then it is made again.
fn create_in(dir: &Path, file: &Path) -> std::io::Result<std::fs::File> {
    let mut attempts = 0;
    loop {
        private_fs::create_dir_all(dir)?;
        match private_fs::create(file) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempts < 3 => attempts += 1,
            result => return result,
        }
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> std::io::Result<T> + Send + 'static,
) -> Result<T, StorageError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StorageError::Unavailable(format!("storage task failed: {e}")))?
        .map_err(StorageError::from)
}

#[async_trait]
impl ObjectStore for FsObjectStore {
    async fn put_bytes(
        &self,
        key: &str,
        data: Bytes,
        _content_type: &str,
    ) -> Result<(), StorageError> {
        let dest = self.path(key)?;
        blocking(move || write_atomically(&dest, |f| f.write_all(&data))).await
    }

    async fn put_file(
        &self,
        key: &str,
        path: &Path,
        _content_type: &str,
    ) -> Result<(), StorageError> {
        let dest = self.path(key)?;
        let src = path.to_path_buf();
        blocking(move || {
            let mut input = std::fs::File::open(&src)?;
            write_atomically(&dest, |f| std::io::copy(&mut input, f).map(|_| ()))
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(data) => Ok(Some(Bytes::from(data))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let path = self.path(key)?;
        match tokio::fs::metadata(&path).await {
            Ok(meta) if meta.is_file() => Ok(Some(meta.len())),
            // A folder holds objects but is not one.
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn get_range(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> Result<Option<ObjectStream>, StorageError> {
        if self.head(key).await?.is_none() {
            return Ok(None);
        }
        let mut file = match tokio::fs::File::open(self.path(key)?).await {
            Ok(file) => file,
            // Deleted since the check.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        // Seeking past the end is allowed; reads there give nothing.
        file.seek(SeekFrom::Start(range.start)).await?;
        let len = range.end.saturating_sub(range.start);
        let stream =
            ReaderStream::with_capacity(file.take(len), READ_BUFFER).map_err(StorageError::from);
        Ok(Some(Box::pin(stream)))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        let folder = check_prefix(prefix)?.to_owned();
        let root = self.root.clone();
        blocking(move || {
            let mut keys = Vec::new();
            let mut pending = vec![folder];
            while let Some(dir) = pending.pop() {
                let entries = match std::fs::read_dir(root.join(&dir)) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e),
                };
                for entry in entries {
                    let entry = entry?;
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if name.starts_with(".tmp-") {
                        continue; // an object being written
                    }
                    let key = format!("{dir}/{name}");
                    if entry.file_type()?.is_dir() {
                        pending.push(key);
                    } else {
                        keys.push(key);
                    }
                }
            }
            keys.sort();
            Ok(keys)
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        // Folders exist only to hold objects (as in S3): remove the ones this
        // emptied, so a deleted session leaves no folder named after it.
        // Removing a folder that is not empty fails, which ends the walk.
        let mut dir = path.parent();
        while let Some(d) = dir.filter(|d| *d != self.root) {
            if tokio::fs::remove_dir(d).await.is_err() {
                break;
            }
            dir = d.parent();
        }
        Ok(())
    }

    async fn check_writable(&self) -> Result<(), StorageError> {
        let key = format!(".health/{}", uuid::Uuid::now_v7());
        self.put_bytes(&key, Bytes::from_static(b"ok"), "text/plain")
            .await?;
        self.delete(&key).await
    }

    fn describe(&self) -> String {
        format!("folder {}", self.root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn put_get_delete_round_trip_and_key_checks() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::open(dir.path()).await.unwrap();
        store
            .put_bytes(
                "users/u/a.json",
                Bytes::from_static(b"{}"),
                "application/json",
            )
            .await
            .unwrap();
        assert_eq!(
            store.get("users/u/a.json").await.unwrap().unwrap(),
            Bytes::from_static(b"{}")
        );
        let src = dir.path().join("src.bin");
        std::fs::write(&src, vec![7u8; 100_000]).unwrap();
        store
            .put_file("users/u/b.bin", &src, "application/octet-stream")
            .await
            .unwrap();
        assert_eq!(
            store.get("users/u/b.bin").await.unwrap().unwrap().len(),
            100_000
        );
        store.delete("users/u/a.json").await.unwrap();
        assert!(store.get("users/u/a.json").await.unwrap().is_none());
        for bad in ["../x", "/abs", "a//b", "a/./b", ""] {
            assert!(
                store.put_bytes(bad, Bytes::new(), "x").await.is_err(),
                "{bad}"
            );
        }
        store.check_writable().await.unwrap();
        assert_eq!(store.list("users/").await.unwrap(), vec!["users/u/b.bin"]);
        assert!(store.list("nothing/").await.unwrap().is_empty());
        assert!(store.list("users").await.is_err());
    }

    #[tokio::test]
    async fn deleting_the_last_object_of_a_folder_removes_the_emptied_folders() {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::open(dir.path()).await.unwrap();
        for key in [
            "users/u/s1/a.wav",
            "users/u/s1/chunks/0.pcm",
            "users/u/s2/a.wav",
        ] {
            store
                .put_bytes(key, Bytes::from_static(b"x"), "x")
                .await
                .unwrap();
        }
        store.delete("users/u/s1/chunks/0.pcm").await.unwrap();
        assert!(!dir.path().join("users/u/s1/chunks").exists());
        store.delete("users/u/s1/a.wav").await.unwrap();
        assert!(!dir.path().join("users/u/s1").exists());
        assert!(
            dir.path().join("users/u/s2").exists(),
            "a folder still in use stays"
        );
        store.delete("users/u/s2/a.wav").await.unwrap();
        assert!(!dir.path().join("users").exists());
        assert!(dir.path().exists(), "the root stays");
        // A folder removed this way is made again by the next put.
        store
            .put_bytes("users/u/s1/a.wav", Bytes::from_static(b"y"), "x")
            .await
            .unwrap();
        assert_eq!(store.get("users/u/s1/a.wav").await.unwrap().unwrap(), "y");
    }
}
