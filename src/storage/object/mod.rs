//! Object storage for finished sessions, addressed by `/`-separated keys.

mod fs;
mod s3;

pub use fs::FsObjectStore;
pub use s3::{MULTIPART_PART_SIZE, S3ObjectStore, S3Settings, Sse};

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::stream::BoxStream;

use super::StorageError;

/// An object's bytes as they are read (never held whole in memory).
pub type ObjectStream = BoxStream<'static, Result<Bytes, StorageError>>;

#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Stores `data` at `key`, replacing any previous object. Durable on return.
    async fn put_bytes(
        &self,
        key: &str,
        data: Bytes,
        content_type: &str,
    ) -> Result<(), StorageError>;
    /// Stores the file at `path` at `key` (streamed, not read into memory).
    async fn put_file(
        &self,
        key: &str,
        path: &Path,
        content_type: &str,
    ) -> Result<(), StorageError>;
    /// Reads an object; `None` when it does not exist.
    async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError>;
    /// The size of an object in bytes; `None` when it does not exist.
    async fn head(&self, key: &str) -> Result<Option<u64>, StorageError>;
    /// Streams the bytes `range` of an object. An end past the object's end
    /// is clamped to it; a range that starts there or later (or is empty)
    /// gives no bytes. `None` when the object does not exist.
    async fn get_range(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> Result<Option<ObjectStream>, StorageError>;
    /// The keys under the folder `prefix` (which ends in `/`), at any depth, sorted.
    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError>;
    /// Deletes an object; deleting a missing object is not an error.
    async fn delete(&self, key: &str) -> Result<(), StorageError>;
    /// Proves the store accepts writes (for `/ready`).
    async fn check_writable(&self) -> Result<(), StorageError>;
    /// A short description for logs and `/ready` (no credentials).
    fn describe(&self) -> String;
}

pub type SharedObjectStore = Arc<dyn ObjectStore>;

/// Opens the object store named by `AUSCULT_STORAGE_URL`: `file:///folder`
/// or `s3://bucket/prefix` (with `s3`, the `AUSCULT_S3_*` settings).
pub async fn open(url: &str, s3: &S3Settings) -> Result<SharedObjectStore, StorageError> {
    if let Some(path) = url.strip_prefix("file://") {
        return Ok(Arc::new(FsObjectStore::open(Path::new(path)).await?));
    }
    if url.starts_with("s3://") {
        return Ok(Arc::new(S3ObjectStore::open(url, s3.clone()).await?));
    }
    Err(StorageError::Config(format!(
        "unsupported storage URL scheme in {}: expected file:// or s3://",
        crate::config::redact_url(url)
    )))
}

/// Checks a folder prefix for `list`: a valid key followed by `/`.
/// Public for the fuzz targets and property tests.
pub fn check_prefix(prefix: &str) -> Result<&str, StorageError> {
    match prefix.strip_suffix('/') {
        Some(folder) => check_key(folder).map(|()| folder),
        None => Err(StorageError::Invalid(
            "a list prefix must end in /".to_owned(),
        )),
    }
}

/// Rejects keys that could escape the store's root or are not plain segments.
/// Public for the fuzz targets and property tests.
pub fn check_key(key: &str) -> Result<(), StorageError> {
    let ok = !key.is_empty()
        && !key.starts_with('/')
        && key
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && !key.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(StorageError::Invalid("bad object key".to_owned()))
    }
}
