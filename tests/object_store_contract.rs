//! The object store contract: every test here runs against each
//! implementation (a temp folder, and S3 against a local `moto_server` with a
//! fresh bucket per test), so the two behave the same. On S3 each test also
//! checks that everything it left behind is server-side encrypted.

mod common;

use std::sync::Arc;

use auscult::storage::object::{
    FsObjectStore, MULTIPART_PART_SIZE, S3ObjectStore, SharedObjectStore,
};
use auscult::storage::{ObjectStore, StorageError};
use aws_sdk_s3::types::ServerSideEncryption;
use bytes::Bytes;
use common::moto::Moto;
use futures_util::TryStreamExt;

/// Declares each contract test once per store, as `fs::<name>` and
/// `s3::<name>`. The fixture keeps the store's backing alive until the test
/// ends, then checks what was stored at rest.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod fs {
            $(
                #[tokio::test]
                async fn $name() {
                    let fixture = super::Fixture::fs().await;
                    super::$name(&fixture).await;
                    fixture.check_at_rest().await;
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test]
                async fn $name() {
                    let fixture = super::Fixture::s3().await;
                    super::$name(&fixture).await;
                    fixture.check_at_rest().await;
                }
            )*
        }
    };
}

contract!(
    bytes_put_read_back_the_same,
    a_put_replaces_the_previous_object,
    a_small_file_reads_back_byte_for_byte,
    a_file_larger_than_a_part_reads_back_byte_for_byte,
    a_deleted_object_reads_as_none_and_deleting_again_is_fine,
    a_missing_key_reads_as_none,
    keys_that_could_escape_the_store_are_rejected,
    a_writable_store_passes_its_check_and_leaves_nothing_behind,
    listing_a_folder_gives_every_key_under_it_sorted_and_nothing_else,
    head_gives_an_objects_size_and_none_for_a_missing_one_or_a_folder,
    a_range_reads_exactly_its_bytes_clamped_at_the_end_of_the_object,
    a_range_across_the_parts_of_a_large_file_is_streamed_in_small_pieces,
);

struct Fixture {
    store: SharedObjectStore,
    dir: tempfile::TempDir,
    s3: Option<(Moto, String)>,
}

impl Fixture {
    async fn fs() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let store = FsObjectStore::open(&dir.path().join("objects"))
            .await
            .expect("open folder store");
        Fixture {
            store: Arc::new(store),
            dir,
            s3: None,
        }
    }

    async fn s3() -> Fixture {
        let moto = Moto::acquire().await;
        let bucket = moto.create_bucket().await;
        let url = format!("s3://{bucket}/tenant/a");
        let store = S3ObjectStore::open(&url, moto.settings())
            .await
            .expect("open S3 store");
        assert!(store.describe().starts_with(&url), "{}", store.describe());
        Fixture {
            store: Arc::new(store),
            dir: tempfile::tempdir().unwrap(),
            s3: Some((moto, bucket)),
        }
    }

    /// A file of `len` varied bytes in the fixture's temp folder.
    fn file(&self, name: &str, len: usize) -> (std::path::PathBuf, Vec<u8>) {
        let data: Vec<u8> = (0..len).map(|i| (i * 31 + i / 7919) as u8).collect();
        let path = self.dir.path().join(name);
        std::fs::write(&path, &data).unwrap();
        (path, data)
    }

    /// On S3: every stored object sits under the URL's prefix and is
    /// encrypted with AES256.
    async fn check_at_rest(&self) {
        let Some((moto, bucket)) = &self.s3 else {
            return;
        };
        let client = moto.client();
        let listed = client
            .list_objects_v2()
            .bucket(bucket)
            .send()
            .await
            .expect("list objects");
        for object in listed.contents() {
            let key = object.key().unwrap();
            assert!(key.starts_with("tenant/a/"), "{key} outside the prefix");
            let head = client
                .head_object()
                .bucket(bucket)
                .key(key)
                .send()
                .await
                .expect("head object");
            assert_eq!(
                head.server_side_encryption(),
                Some(&ServerSideEncryption::Aes256),
                "{key} is not encrypted at rest"
            );
        }
    }

    /// On S3: the number of objects in the bucket; on a folder, of files.
    async fn object_count(&self) -> usize {
        match &self.s3 {
            Some((moto, bucket)) => moto
                .client()
                .list_objects_v2()
                .bucket(bucket)
                .send()
                .await
                .expect("list objects")
                .contents()
                .len(),
            None => walk(&self.dir.path().join("objects")),
        }
    }
}

fn walk(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let path = entry.unwrap().path();
            if path.is_dir() { walk(&path) } else { 1 }
        })
        .sum()
}

async fn bytes_put_read_back_the_same(f: &Fixture) {
    let data = Bytes::from_static(br#"{"words":["hello"]}"#);
    f.store
        .put_bytes("users/u1/t.json", data.clone(), "application/json")
        .await
        .unwrap();
    assert_eq!(f.store.get("users/u1/t.json").await.unwrap(), Some(data));
}

async fn a_put_replaces_the_previous_object(f: &Fixture) {
    let store = &f.store;
    store
        .put_bytes("users/u1/m.json", Bytes::from_static(b"old"), "text/plain")
        .await
        .unwrap();
    store
        .put_bytes("users/u1/m.json", Bytes::from_static(b"new!"), "text/plain")
        .await
        .unwrap();
    assert_eq!(
        store.get("users/u1/m.json").await.unwrap(),
        Some(Bytes::from_static(b"new!"))
    );
}

async fn a_small_file_reads_back_byte_for_byte(f: &Fixture) {
    let (path, data) = f.file("small.wav", 100_003);
    f.store
        .put_file("users/u1/audio.wav", &path, "audio/wav")
        .await
        .unwrap();
    let got = f.store.get("users/u1/audio.wav").await.unwrap().unwrap();
    assert!(got == data, "small file differs after the round trip");
}

async fn a_file_larger_than_a_part_reads_back_byte_for_byte(f: &Fixture) {
    // 20 MiB and a bit: two full parts and a short last one on S3.
    let len = 20 * 1024 * 1024 + 12_345;
    assert!(len > 2 * MULTIPART_PART_SIZE);
    let (path, data) = f.file("large.wav", len);
    f.store
        .put_file("users/u1/large.wav", &path, "audio/wav")
        .await
        .unwrap();
    let got = f.store.get("users/u1/large.wav").await.unwrap().unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "large file differs after the round trip");
}

async fn a_deleted_object_reads_as_none_and_deleting_again_is_fine(f: &Fixture) {
    let store = &f.store;
    store
        .put_bytes("users/u1/gone", Bytes::from_static(b"x"), "text/plain")
        .await
        .unwrap();
    store.delete("users/u1/gone").await.unwrap();
    assert_eq!(store.get("users/u1/gone").await.unwrap(), None);
    store.delete("users/u1/gone").await.unwrap();
}

async fn a_missing_key_reads_as_none(f: &Fixture) {
    assert_eq!(f.store.get("users/nobody/nothing").await.unwrap(), None);
}

async fn keys_that_could_escape_the_store_are_rejected(f: &Fixture) {
    let (path, _) = f.file("x.bin", 10);
    for key in ["../x", "/abs", "a//b", "a/./b", "", "a/\nb"] {
        let put = f
            .store
            .put_bytes(key, Bytes::from_static(b"x"), "text/plain")
            .await;
        assert!(matches!(put, Err(StorageError::Invalid(_))), "put {key:?}");
        let file = f.store.put_file(key, &path, "text/plain").await;
        assert!(
            matches!(file, Err(StorageError::Invalid(_))),
            "file {key:?}"
        );
        let get = f.store.get(key).await;
        assert!(matches!(get, Err(StorageError::Invalid(_))), "get {key:?}");
        let delete = f.store.delete(key).await;
        assert!(
            matches!(delete, Err(StorageError::Invalid(_))),
            "del {key:?}"
        );
        let head = f.store.head(key).await;
        assert!(
            matches!(head, Err(StorageError::Invalid(_))),
            "head {key:?}"
        );
        let range = f.store.get_range(key, 0..1).await;
        assert!(
            matches!(range, Err(StorageError::Invalid(_))),
            "range {key:?}"
        );
    }
    assert_eq!(f.object_count().await, 0);
}

async fn a_writable_store_passes_its_check_and_leaves_nothing_behind(f: &Fixture) {
    f.store.check_writable().await.unwrap();
    assert_eq!(f.object_count().await, 0);
}

async fn listing_a_folder_gives_every_key_under_it_sorted_and_nothing_else(f: &Fixture) {
    for key in [
        "users/u/s/chunks/000001-10-20.pcm",
        "users/u/s/chunks/000000-0-10.pcm",
        "users/u/s/audio.wav",
        "users/u/s2/chunks/000000-0-10.pcm",
        "users/u/s/chunks/deeper/x",
    ] {
        f.store
            .put_bytes(key, Bytes::from_static(b"x"), "application/octet-stream")
            .await
            .unwrap();
    }
    assert_eq!(
        f.store.list("users/u/s/chunks/").await.unwrap(),
        vec![
            "users/u/s/chunks/000000-0-10.pcm",
            "users/u/s/chunks/000001-10-20.pcm",
            "users/u/s/chunks/deeper/x",
        ]
    );
    assert!(f.store.list("users/u/nothing/").await.unwrap().is_empty());
    for bad in ["users/u/s", "../", "/users/"] {
        assert!(
            matches!(f.store.list(bad).await, Err(StorageError::Invalid(_))),
            "{bad}"
        );
    }
}

/// `aws:kms` with a key id: every object names the key, multipart included.
#[tokio::test]
async fn with_kms_configured_every_object_is_encrypted_with_the_key() {
    let moto = Moto::acquire().await;
    let bucket = moto.create_bucket().await;
    let key_id = "arn:aws:kms:us-east-1:123456789012:key/auscult-test";
    let settings = auscult::storage::object::S3Settings {
        sse: auscult::storage::object::Sse::Kms {
            key_id: Some(key_id.to_owned()),
        },
        ..moto.settings()
    };
    let store = S3ObjectStore::open(&format!("s3://{bucket}/k"), settings)
        .await
        .expect("open S3 store");
    store
        .put_bytes("small.json", Bytes::from_static(b"{}"), "application/json")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.bin");
    let data: Vec<u8> = (0..MULTIPART_PART_SIZE + 1000).map(|i| i as u8).collect();
    std::fs::write(&path, &data).unwrap();
    store
        .put_file("big.bin", &path, "application/octet-stream")
        .await
        .unwrap();
    assert_eq!(store.get("big.bin").await.unwrap().unwrap(), data);
    let client = moto.client();
    for key in ["k/small.json", "k/big.bin"] {
        let head = client
            .head_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .expect("head object");
        assert_eq!(
            head.server_side_encryption(),
            Some(&ServerSideEncryption::AwsKms),
            "{key}"
        );
        assert_eq!(head.ssekms_key_id(), Some(key_id), "{key}");
    }
}

/// Reads `range` of `key` through the stream; the bytes and the largest
/// piece the stream handed over. `None` when the object does not exist.
async fn read_range(
    f: &Fixture,
    key: &str,
    range: std::ops::Range<u64>,
) -> Option<(Vec<u8>, usize)> {
    let stream = f.store.get_range(key, range.clone()).await.unwrap()?;
    let pieces: Vec<Bytes> = stream
        .try_collect()
        .await
        .unwrap_or_else(|e| panic!("streaming {key} {range:?}: {e}"));
    let largest = pieces.iter().map(Bytes::len).max().unwrap_or(0);
    Some((pieces.concat(), largest))
}

async fn head_gives_an_objects_size_and_none_for_a_missing_one_or_a_folder(f: &Fixture) {
    let (path, _) = f.file("h.wav", 100_003);
    f.store
        .put_file("users/u1/s/audio.wav", &path, "audio/wav")
        .await
        .unwrap();
    f.store
        .put_bytes("users/u1/s/empty", Bytes::new(), "text/plain")
        .await
        .unwrap();
    assert_eq!(
        f.store.head("users/u1/s/audio.wav").await.unwrap(),
        Some(100_003)
    );
    assert_eq!(f.store.head("users/u1/s/empty").await.unwrap(), Some(0));
    assert_eq!(f.store.head("users/u1/s/nothing").await.unwrap(), None);
    assert_eq!(f.store.head("users/u1/s").await.unwrap(), None, "a folder");
    f.store.delete("users/u1/s/audio.wav").await.unwrap();
    assert_eq!(f.store.head("users/u1/s/audio.wav").await.unwrap(), None);
}

async fn a_range_reads_exactly_its_bytes_clamped_at_the_end_of_the_object(f: &Fixture) {
    let (path, data) = f.file("r.wav", 1_000);
    let key = "users/u1/s/audio.wav";
    f.store.put_file(key, &path, "audio/wav").await.unwrap();
    let read = async |range: std::ops::Range<u64>| read_range(f, key, range).await.unwrap().0;
    assert_eq!(read(0..1).await, &data[..1]);
    assert_eq!(read(10..20).await, &data[10..20]);
    assert_eq!(read(0..1_000).await, data, "the whole object");
    assert_eq!(read(990..5_000).await, &data[990..], "clamped at the end");
    assert!(read(1_000..1_001).await.is_empty(), "starting at the end");
    assert!(read(2_000..3_000).await.is_empty(), "past the end");
    assert!(read(5..5).await.is_empty(), "an empty range");
    assert!(read_range(f, "users/u1/s/nothing", 0..10).await.is_none());
    assert!(read_range(f, "users/u1/s/nothing", 3..3).await.is_none());
}

async fn a_range_across_the_parts_of_a_large_file_is_streamed_in_small_pieces(f: &Fixture) {
    // Two parts on S3 (a full one and a short one).
    let len = MULTIPART_PART_SIZE + 100_000;
    let (path, data) = f.file("big.wav", len);
    let key = "users/u1/s/big.wav";
    f.store.put_file(key, &path, "audio/wav").await.unwrap();
    assert_eq!(f.store.head(key).await.unwrap(), Some(len as u64));
    let boundary = MULTIPART_PART_SIZE as u64;
    let (across, _) = read_range(f, key, boundary - 5_000..boundary + 5_000)
        .await
        .unwrap();
    assert!(across == data[boundary as usize - 5_000..boundary as usize + 5_000]);
    let (whole, largest) = read_range(f, key, 0..len as u64).await.unwrap();
    assert_eq!(whole.len(), len);
    assert!(whole == data, "the streamed object differs");
    assert!(
        largest <= 1024 * 1024,
        "read in pieces, not whole: the largest was {largest} bytes"
    );
}
