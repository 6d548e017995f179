//! A local S3-compatible server (`moto_server`) for the S3 object store tests:
//! one process shared by the tests running in a test binary, started by the
//! first [`Moto::acquire`] and killed when the last guard drops. A machine
//! without moto fails the tests (never skips them).

use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aws_sdk_s3::config::{Credentials, Region};

const INSTALL_HINT: &str = "the S3 tests need moto 5.2.5 or later: \
                            pip install 'moto[server]>=5.2.5' (scripts/test.sh installs it)";

struct Running {
    child: Child,
    endpoint: String,
    users: usize,
}

static MOTO: Mutex<Option<Running>> = Mutex::new(None);

/// A share of the running moto server; the last one to drop stops it.
pub struct Moto {
    pub endpoint: String,
}

impl Moto {
    pub async fn acquire() -> Moto {
        let endpoint = {
            let mut moto = MOTO.lock().unwrap_or_else(|e| e.into_inner());
            let running = moto.get_or_insert_with(start);
            running.users += 1;
            running.endpoint.clone()
        };
        // Built before waiting so a failed start still stops the process.
        let guard = Moto { endpoint };
        guard.wait_until_answering().await;
        guard
    }

    async fn wait_until_answering(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let http = reqwest::Client::new();
        loop {
            let answered = http
                .get(format!("{}/moto-api/", self.endpoint))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok();
            if answered {
                return;
            }
            if let Some(status) = exited() {
                panic!("moto_server exited ({status}) before answering: {INSTALL_HINT}");
            }
            if Instant::now() > deadline {
                panic!("moto_server did not answer within 30 s: {INSTALL_HINT}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The SDK settings for this server: fixed test credentials and region,
    /// set on the client rather than through the process environment.
    pub fn settings(&self) -> auscult::storage::object::S3Settings {
        auscult::storage::object::S3Settings {
            endpoint: Some(self.endpoint.clone()),
            region: Some("us-east-1".to_owned()),
            credentials: Some(credentials()),
            ..Default::default()
        }
    }

    /// A raw S3 client, for creating buckets and inspecting what was stored.
    pub fn client(&self) -> aws_sdk_s3::Client {
        client_for(&self.endpoint)
    }

    /// A fresh SQS queue for one test; returns its URL.
    pub async fn create_queue(&self) -> String {
        let name = format!("auscult-test-{}", uuid::Uuid::now_v7().simple());
        self.sqs()
            .create_queue()
            .queue_name(&name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create queue {name} on moto: {e:?}"))
            .queue_url()
            .expect("moto returns the queue URL")
            .to_owned()
    }

    /// A raw SQS client, for creating queues and reading what was sent.
    pub fn sqs(&self) -> aws_sdk_sqs::Client {
        let config = aws_sdk_sqs::Config::builder()
            .behavior_version_latest()
            .endpoint_url(&self.endpoint)
            .region(aws_sdk_sqs::config::Region::new("us-east-1"))
            .credentials_provider(credentials())
            .build();
        aws_sdk_sqs::Client::from_conf(config)
    }

    /// A fresh bucket for one test.
    pub async fn create_bucket(&self) -> String {
        let bucket = format!("auscult-test-{}", uuid::Uuid::now_v7().simple());
        self.client()
            .create_bucket()
            .bucket(&bucket)
            .send()
            .await
            .unwrap_or_else(|e| panic!("create bucket {bucket} on moto: {e:?}"));
        bucket
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let mut moto = MOTO.lock().unwrap_or_else(|e| e.into_inner());
        let last = moto.as_mut().is_some_and(|running| {
            running.users -= 1;
            running.users == 0
        });
        if last && let Some(mut running) = moto.take() {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
    }
}

/// The fixed credentials moto accepts.
pub fn credentials() -> Credentials {
    Credentials::new("test", "test", None, None, "auscult-tests")
}

/// A raw S3 client for moto at `endpoint` (moto's own, or a proxy in front of it).
pub fn client_for(endpoint: &str) -> aws_sdk_s3::Client {
    let config = aws_sdk_s3::Config::builder()
        .behavior_version_latest()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials())
        .force_path_style(true)
        .build();
    aws_sdk_s3::Client::from_conf(config)
}

fn start() -> Running {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("find a free port for moto_server")
        .port();
    let child = Command::new("python3")
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("start python3 -m moto.server ({e}): {INSTALL_HINT}"));
    Running {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
        users: 0,
    }
}

/// The exit status if the server process has already ended.
fn exited() -> Option<std::process::ExitStatus> {
    let mut moto = MOTO.lock().unwrap_or_else(|e| e.into_inner());
    moto.as_mut()
        .and_then(|running| running.child.try_wait().ok().flatten())
}
