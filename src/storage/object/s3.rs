//! The S3 object store (`AUSCULT_STORAGE_URL=s3://bucket/optional/prefix`):
//! every object server-side encrypted and checksummed, large files uploaded in
//! parts. Works against AWS and S3-compatible servers (path-style addressing
//! whenever an endpoint override is set).

use std::ops::Range;
use std::path::Path;

use async_trait::async_trait;
use aws_config::BehaviorVersion;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, CompletedMultipartUpload, CompletedPart, ServerSideEncryption,
};
use bytes::Bytes;
use futures_util::TryStreamExt;
use tokio::io::AsyncReadExt;
use tokio_util::io::ReaderStream;

use super::{ObjectStore, ObjectStream, check_key, check_prefix};
use crate::storage::StorageError;

/// Files at least this large go up as a multipart upload, in parts of this
/// size (S3's minimum part is 5 MiB; one part is held in memory at a time).
pub const MULTIPART_PART_SIZE: usize = 8 * 1024 * 1024;

/// How much of a streamed download one read takes.
const READ_BUFFER: usize = 64 * 1024;

/// Server-side encryption applied to every object written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Sse {
    /// S3-managed keys (`AES256`).
    #[default]
    Aes256,
    /// KMS keys (`aws:kms`), with the bucket's default key when `key_id` is `None`.
    Kms { key_id: Option<String> },
}

impl Sse {
    /// From `AUSCULT_S3_SSE` (`AES256`, the default, or `aws:kms`) and
    /// `AUSCULT_S3_KMS_KEY_ID` (which implies `aws:kms` when the mode is unset).
    pub fn parse(mode: Option<&str>, kms_key_id: Option<String>) -> Result<Sse, String> {
        match mode {
            None | Some("AES256") if kms_key_id.is_none() => Ok(Sse::Aes256),
            None | Some("aws:kms") => Ok(Sse::Kms { key_id: kms_key_id }),
            Some("AES256") => Err("AUSCULT_S3_KMS_KEY_ID needs AUSCULT_S3_SSE=aws:kms".to_owned()),
            Some(other) => Err(format!("must be AES256 or aws:kms, not {other:?}")),
        }
    }

    /// The `x-amz-server-side-encryption` value.
    pub fn header(&self) -> &'static str {
        match self {
            Sse::Aes256 => "AES256",
            Sse::Kms { .. } => "aws:kms",
        }
    }

    pub fn kms_key_id(&self) -> Option<&str> {
        match self {
            Sse::Aes256 => None,
            Sse::Kms { key_id } => key_id.as_deref(),
        }
    }
}

/// How to reach S3 (`AUSCULT_S3_*`). Credentials come from the default AWS
/// chain (environment, profile, ECS/EC2 role) unless set explicitly (tests do).
#[derive(Debug, Clone)]
pub struct S3Settings {
    /// Endpoint override for S3-compatible servers; path-style addressing is
    /// used whenever an endpoint override (this or `AWS_ENDPOINT_URL`) is set.
    pub endpoint: Option<String>,
    /// Region; `None` takes it from the AWS chain (`AWS_REGION`, profile).
    pub region: Option<String>,
    pub sse: Sse,
    /// Limit on each attempt of a request (one part of a multipart upload is one request).
    pub timeout: std::time::Duration,
    /// Attempts per request by the SDK (standard retry mode: backoff with
    /// jitter), before the session-level retries take over.
    pub max_attempts: u32,
    /// Fixed credentials instead of the default chain (redacted in `Debug`).
    pub credentials: Option<Credentials>,
}

impl Default for S3Settings {
    fn default() -> Self {
        S3Settings {
            endpoint: None,
            region: None,
            sse: Sse::default(),
            timeout: std::time::Duration::from_secs(30),
            max_attempts: 3,
            credentials: None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct S3ObjectStore {
    client: Client,
    bucket: String,
    /// Empty, or a valid key ending in `/`.
    prefix: String,
    sse: Sse,
    endpoint: Option<String>,
}

impl S3ObjectStore {
    /// Opens `s3://bucket/optional/prefix`. Does not contact S3: `/ready`
    /// (`check_writable`) does.
    pub async fn open(url: &str, settings: S3Settings) -> Result<Self, StorageError> {
        let (bucket, prefix) = parse_url(url)?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if let Some(endpoint) = &settings.endpoint {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(region) = settings.region {
            loader = loader.region(Region::new(region));
        }
        if let Some(credentials) = settings.credentials {
            loader = loader.credentials_provider(credentials);
        }
        loader = loader
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(std::time::Duration::from_secs(5))
                    .operation_attempt_timeout(settings.timeout)
                    .build(),
            )
            .retry_config(
                aws_config::retry::RetryConfig::standard().with_max_attempts(settings.max_attempts),
            );
        let shared = loader.load().await;
        if shared.region().is_none() {
            return Err(StorageError::Config(
                "no AWS region: set AUSCULT_S3_REGION or AWS_REGION".to_owned(),
            ));
        }
        let endpoint = shared.endpoint_url().map(str::to_owned);
        let config = aws_sdk_s3::config::Builder::from(&shared)
            .force_path_style(endpoint.is_some())
            .build();
        Ok(S3ObjectStore {
            client: Client::from_conf(config),
            bucket,
            prefix,
            sse: settings.sse,
            endpoint,
        })
    }

    fn object_key(&self, key: &str) -> Result<String, StorageError> {
        check_key(key)?;
        Ok(format!("{}{key}", self.prefix))
    }

    fn sse(&self) -> (ServerSideEncryption, Option<String>) {
        match &self.sse {
            Sse::Aes256 => (ServerSideEncryption::Aes256, None),
            Sse::Kms { key_id } => (ServerSideEncryption::AwsKms, key_id.clone()),
        }
    }

    async fn put_object(
        &self,
        key: &str,
        data: Bytes,
        content_type: &str,
    ) -> Result<(), StorageError> {
        let (sse, kms_key) = self.sse();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .body(ByteStream::from(data))
            .send()
            .await
            .map_err(|e| s3_error("PutObject", &self.bucket, e))?;
        Ok(())
    }

    /// Uploads `file` in [`MULTIPART_PART_SIZE`] parts; aborts the upload on
    /// any failure so no orphaned parts are left billed.
    async fn put_multipart(
        &self,
        key: &str,
        file: tokio::fs::File,
        content_type: &str,
    ) -> Result<(), StorageError> {
        let (sse, kms_key) = self.sse();
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .server_side_encryption(sse)
            .set_ssekms_key_id(kms_key)
            .checksum_algorithm(ChecksumAlgorithm::Sha256)
            .send()
            .await
            .map_err(|e| s3_error("CreateMultipartUpload", &self.bucket, e))?;
        let upload_id = created.upload_id().ok_or_else(|| {
            StorageError::Unavailable("S3 CreateMultipartUpload returned no upload id".to_owned())
        })?;
        let result = self.upload_parts(key, upload_id, file).await;
        if result.is_err() {
            // Best effort: the original error is the one worth reporting.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .send()
                .await;
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        mut file: tokio::fs::File,
    ) -> Result<(), StorageError> {
        let mut parts = Vec::new();
        for part_number in 1.. {
            let chunk = read_up_to(&mut file, MULTIPART_PART_SIZE).await?;
            if chunk.is_empty() && part_number > 1 {
                break;
            }
            let last = chunk.len() < MULTIPART_PART_SIZE;
            let uploaded = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(upload_id)
                .part_number(part_number)
                .checksum_algorithm(ChecksumAlgorithm::Sha256)
                .body(ByteStream::from(chunk))
                .send()
                .await
                .map_err(|e| s3_error("UploadPart", &self.bucket, e))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(part_number)
                    .set_e_tag(uploaded.e_tag().map(str::to_owned))
                    .set_checksum_sha256(uploaded.checksum_sha256().map(str::to_owned))
                    .build(),
            );
            if last {
                break;
            }
        }
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| s3_error("CompleteMultipartUpload", &self.bucket, e))?;
        Ok(())
    }
}

/// Splits `s3://bucket/optional/prefix` into the bucket and a prefix that is
/// empty or ends in `/`.
fn parse_url(url: &str) -> Result<(String, String), StorageError> {
    let bad = |why: &str| StorageError::Config(format!("bad S3 storage URL ({why}): {url}"));
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| bad("expected s3://bucket/prefix"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let bucket_ok = (3..=63).contains(&bucket.len())
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if !bucket_ok {
        return Err(bad("bucket must be 3-63 characters of a-z 0-9 . -"));
    }
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return Ok((bucket.to_owned(), String::new()));
    }
    check_key(prefix).map_err(|_| bad("prefix must be plain /-separated segments"))?;
    Ok((bucket.to_owned(), format!("{prefix}/")))
}

/// Reads until `limit` bytes or end of file.
async fn read_up_to(file: &mut tokio::fs::File, limit: usize) -> Result<Vec<u8>, StorageError> {
    let mut buf = Vec::with_capacity(limit);
    let mut reader = file.take(limit as u64);
    reader.read_to_end(&mut buf).await?;
    Ok(buf)
}

/// Every S3 failure is `Unavailable` (worth retrying: outages, throttling,
/// and misconfiguration an operator can fix without a restart). The message
/// names the operation and S3's error code, never credentials.
fn s3_error<E>(op: &str, bucket: &str, err: SdkError<E, HttpResponse>) -> StorageError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = match &err {
        SdkError::TimeoutError(_) => "timed out".to_owned(),
        SdkError::DispatchFailure(_) => {
            format!("could not reach S3: {}", DisplayErrorContext(&err))
        }
        SdkError::ServiceError(service) => {
            let e = service.err();
            format!(
                "HTTP {} {}: {}",
                service.raw().status().as_u16(),
                e.code().unwrap_or("(no error code)"),
                e.message().unwrap_or("no message")
            )
        }
        _ => DisplayErrorContext(&err).to_string(),
    };
    StorageError::Unavailable(format!("S3 {op} on bucket {bucket} failed: {detail}"))
}

#[async_trait]
impl ObjectStore for S3ObjectStore {
    async fn put_bytes(
        &self,
        key: &str,
        data: Bytes,
        content_type: &str,
    ) -> Result<(), StorageError> {
        let key = self.object_key(key)?;
        self.put_object(&key, data, content_type).await
    }

    async fn put_file(
        &self,
        key: &str,
        path: &Path,
        content_type: &str,
    ) -> Result<(), StorageError> {
        let key = self.object_key(key)?;
        let file = tokio::fs::File::open(path).await?;
        let len = file.metadata().await?.len();
        if len >= MULTIPART_PART_SIZE as u64 {
            return self.put_multipart(&key, file, content_type).await;
        }
        let mut data = Vec::with_capacity(len as usize);
        let mut file = file;
        file.read_to_end(&mut data).await?;
        self.put_object(&key, Bytes::from(data), content_type).await
    }

    async fn get(&self, key: &str) -> Result<Option<Bytes>, StorageError> {
        let key = self.object_key(key)?;
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                return Ok(None);
            }
            Err(e) => return Err(s3_error("GetObject", &self.bucket, e)),
        };
        let body = output.body.collect().await.map_err(|e| {
            StorageError::Unavailable(format!("S3 GetObject body on bucket {}: {e}", self.bucket))
        })?;
        Ok(Some(body.into_bytes()))
    }

    async fn head(&self, key: &str) -> Result<Option<u64>, StorageError> {
        let full = self.object_key(key)?;
        match self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(&full)
            .send()
            .await
        {
            Ok(output) => Ok(Some(output.content_length().unwrap_or(0).max(0) as u64)),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(s3_error("HeadObject", &self.bucket, e)),
        }
    }

    async fn get_range(
        &self,
        key: &str,
        range: Range<u64>,
    ) -> Result<Option<ObjectStream>, StorageError> {
        let full = self.object_key(key)?;
        let nothing = || -> ObjectStream { Box::pin(futures_util::stream::empty()) };
        if range.is_empty() {
            // An HTTP range cannot be empty: only say whether the object exists.
            return Ok(self.head(key).await?.map(|_| nothing()));
        }
        let output = match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .range(format!("bytes={}-{}", range.start, range.end - 1))
            .send()
            .await
        {
            Ok(output) => output,
            Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_key()) => {
                return Ok(None);
            }
            // The range starts at or past the end of the object.
            Err(e) if e.as_service_error().and_then(|s| s.code()) == Some("InvalidRange") => {
                return Ok(Some(nothing()));
            }
            Err(e) => return Err(s3_error("GetObject", &self.bucket, e)),
        };
        let body = ReaderStream::with_capacity(output.body.into_async_read(), READ_BUFFER)
            .map_err(StorageError::from);
        Ok(Some(Box::pin(body)))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, StorageError> {
        check_prefix(prefix)?;
        let full = format!("{}{prefix}", self.prefix);
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(&full)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| s3_error("ListObjectsV2", &self.bucket, e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .filter_map(|k| k.strip_prefix(self.prefix.as_str()))
                    .map(str::to_owned),
            );
        }
        keys.sort();
        Ok(keys)
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let key = self.object_key(key)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| s3_error("DeleteObject", &self.bucket, e))?;
        Ok(())
    }

    async fn check_writable(&self) -> Result<(), StorageError> {
        let key = format!(".health/{}", uuid::Uuid::now_v7());
        self.put_bytes(&key, Bytes::from_static(b"ok"), "text/plain")
            .await?;
        self.delete(&key).await
    }

    fn describe(&self) -> String {
        let endpoint = match &self.endpoint {
            Some(e) => crate::config::redact_url(e),
            None => "AWS".to_owned(),
        };
        format!(
            "s3://{}/{} (endpoint {endpoint})",
            self.bucket,
            self.prefix.trim_end_matches('/')
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_bucket_and_prefix() {
        assert_eq!(
            parse_url("s3://audio-bucket").unwrap(),
            ("audio-bucket".to_owned(), String::new())
        );
        assert_eq!(
            parse_url("s3://audio-bucket/").unwrap(),
            ("audio-bucket".to_owned(), String::new())
        );
        assert_eq!(
            parse_url("s3://audio-bucket/prod/eu/").unwrap(),
            ("audio-bucket".to_owned(), "prod/eu/".to_owned())
        );
    }

    #[test]
    fn bad_urls_are_config_errors() {
        for url in [
            "s3://",
            "s3://Upper",
            "s3://ab",
            "s3://bucket/../x",
            "s3://bucket//x",
            "file://x",
        ] {
            assert!(
                matches!(parse_url(url), Err(StorageError::Config(_))),
                "{url}"
            );
        }
    }
}
