//! The embedded object store: one file per object under a root folder, written
//! to a temporary name, fsynced and renamed so a reader never sees half an object.

use std::io::Write;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;

use super::{ObjectStore, check_key, check_prefix};
use crate::storage::StorageError;

#[derive(Debug, Clone)]
pub struct FsObjectStore {
    root: PathBuf,
}

impl FsObjectStore {
    pub async fn open(root: &Path) -> Result<Self, StorageError> {
        tokio::fs::create_dir_all(root).await?;
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
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".tmp-{}", uuid::Uuid::now_v7()));
    let result = (|| {
        let mut file = std::fs::File::create(&tmp)?;
        fill(&mut file)?;
        file.flush()?;
        file.sync_all()?;
        std::fs::rename(&tmp, dest)?;
        std::fs::File::open(dir)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
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
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e.into()),
        }
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
}
