//! `RecordingFinalized` events (optional, `AUSCULT_EVENTS_SQS_URL`): after a
//! session is stored, a JSON message naming its keys goes to an SQS queue for
//! downstream processing. The database is the outbox: `finish_session` marks
//! the row `pending`, the publisher sends and marks it `sent`, and whatever
//! could not be sent is retried on a timer, across restarts. Delivery is at
//! least once (a crash between sending and marking resends); on a FIFO queue
//! the session id is the deduplication id, so consumers see it once.

use std::sync::Arc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_sqs::config::{Credentials, Region};
use aws_sdk_sqs::error::DisplayErrorContext;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::storage::StorageError;
use crate::storage::meta::{SessionRow, SharedMetadataStore};
use crate::telemetry;

/// Rows sent per round.
const BATCH: u32 = 100;

/// Where events go (`AUSCULT_EVENTS_SQS_*`).
#[derive(Debug, Clone, Default)]
pub struct EventSettings {
    /// The queue URL; no events when `None`.
    pub sqs_url: Option<String>,
    /// Region; `None` reads it from an AWS queue URL's host, then the AWS chain.
    pub region: Option<String>,
    /// Fixed credentials instead of the default chain (tests).
    pub credentials: Option<Credentials>,
}

/// Sends `RecordingFinalized` messages to one queue.
pub struct Publisher {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    fifo: bool,
}

impl Publisher {
    /// `None` when events are not configured. Does not contact SQS.
    pub async fn open(settings: &EventSettings) -> Result<Option<Publisher>, StorageError> {
        let Some(queue_url) = settings.sqs_url.clone() else {
            return Ok(None);
        };
        let (endpoint, host) = split_queue_url(&queue_url).ok_or_else(|| {
            StorageError::Config(format!(
                "AUSCULT_EVENTS_SQS_URL {queue_url:?} is not an http(s) queue URL"
            ))
        })?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        let region = settings
            .region
            .clone()
            .or_else(|| region_from_host(host).map(str::to_owned));
        if let Some(region) = region {
            loader = loader.region(Region::new(region));
        }
        // Queues outside AWS (moto, ElasticMQ) are reached at the URL's own host.
        if !host.ends_with(".amazonaws.com") {
            loader = loader.endpoint_url(endpoint);
        }
        if let Some(credentials) = settings.credentials.clone() {
            loader = loader.credentials_provider(credentials);
        }
        let shared = loader
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(10))
                    .build(),
            )
            .load()
            .await;
        if shared.region().is_none() {
            return Err(StorageError::Config(
                "no AWS region for the events queue: set AUSCULT_EVENTS_SQS_REGION or AWS_REGION"
                    .to_owned(),
            ));
        }
        Ok(Some(Publisher {
            client: aws_sdk_sqs::Client::new(&shared),
            fifo: queue_url.ends_with(".fifo"),
            queue_url,
        }))
    }

    pub async fn send(&self, row: &SessionRow) -> Result<(), StorageError> {
        let body = message(row).to_string();
        let mut request = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(body);
        if self.fifo {
            request = request
                .message_group_id(&row.record.user_id)
                .message_deduplication_id(&row.record.id);
        }
        request.send().await.map_err(|e| {
            StorageError::Unavailable(format!("SQS SendMessage: {}", DisplayErrorContext(&e)))
        })?;
        Ok(())
    }

    pub fn describe(&self) -> String {
        format!("sqs {}", self.queue_url)
    }
}

/// The message for a stored session.
pub fn message(row: &SessionRow) -> serde_json::Value {
    json!({
        "type": "RecordingFinalized",
        "version": 1,
        "session_id": row.record.id,
        "user_id": row.record.user_id,
        "status": row.status.as_str(),
        "close_reason": row.close_reason,
        "engine": row.record.engine,
        "language": row.record.language,
        "duration_s": row.duration_s,
        "received_bytes": row.received_bytes,
        "started_at_ms": row.record.started_at_ms,
        "ended_at_ms": row.ended_at_ms,
        "keys": {
            "audio": row.audio_key,
            "transcript": row.transcript_key,
            "manifest": row.manifest_key,
        },
    })
}

/// Sends pending events whenever `wake` fires (after each store) and every
/// `retry` interval, until `stop`.
pub async fn run(
    publisher: Arc<Publisher>,
    metadata: SharedMetadataStore,
    wake: Arc<Notify>,
    retry: Duration,
    stop: CancellationToken,
) {
    loop {
        publish_pending(&publisher, &metadata).await;
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(retry) => {}
            () = stop.cancelled() => {
                publish_pending(&publisher, &metadata).await;
                return;
            }
        }
    }
}

/// Sends every pending event once; failures stay pending for the next round.
pub async fn publish_pending(publisher: &Publisher, metadata: &SharedMetadataStore) {
    let pending = match metadata.pending_events(BATCH).await {
        Ok(rows) => rows,
        Err(e) => {
            telemetry::storage_failure("metadata", "", &e);
            return;
        }
    };
    let mut left = pending.len();
    for row in &pending {
        let id = &row.record.id;
        if let Err(e) = publisher.send(row).await {
            telemetry::storage_failure("events", id, &e);
            break; // the queue is unreachable: the rest waits for the next round
        }
        left -= 1;
        metrics::counter!(telemetry::EVENTS_SENT).increment(1);
        tracing::info!(event = "recording_finalized_sent", session_id = %id);
        if let Err(e) = metadata.mark_event_sent(id).await {
            telemetry::storage_failure("metadata", id, &e);
        }
    }
    metrics::gauge!(telemetry::EVENTS_PENDING).set(left as f64);
}

/// `https://sqs.eu-west-1.amazonaws.com/123/q` → (`https://sqs.eu-west-1.amazonaws.com`, host).
fn split_queue_url(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    if scheme != "http" && scheme != "https" {
        return None;
    }
    let authority = rest.split('/').next().filter(|a| !a.is_empty())?;
    let endpoint = &url[..scheme.len() + 3 + authority.len()];
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    Some((endpoint, host))
}

/// The region in an AWS queue host: `sqs.eu-west-1.amazonaws.com` → `eu-west-1`.
fn region_from_host(host: &str) -> Option<&str> {
    let rest = host.strip_prefix("sqs.")?;
    let region = rest.split('.').next()?;
    (region != "amazonaws" && !region.is_empty()).then_some(region)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_urls_give_endpoint_and_region() {
        let url = "https://sqs.eu-west-1.amazonaws.com/123456789012/finalized";
        let (endpoint, host) = split_queue_url(url).unwrap();
        assert_eq!(endpoint, "https://sqs.eu-west-1.amazonaws.com");
        assert_eq!(region_from_host(host), Some("eu-west-1"));
        let (endpoint, host) = split_queue_url("http://127.0.0.1:5000/123/q.fifo").unwrap();
        assert_eq!(endpoint, "http://127.0.0.1:5000");
        assert_eq!(host, "127.0.0.1");
        assert_eq!(region_from_host(host), None);
        assert!(split_queue_url("sqs://x/y").is_none());
        assert!(split_queue_url("https:///y").is_none());
    }
}
