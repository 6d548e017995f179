//! One real-time session through the full WebSocket path: `start`, 100 ms
//! frames paced by the clock, `stop`; when each frame went out and each
//! transcript event arrived, and the latencies the targets are about.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::clips::{Clip, RATE};

const FRAME_MS: u64 = 100;
const FRAME_SAMPLES: usize = (RATE as u64 * FRAME_MS / 1000) as usize;
/// How long to wait for `stored` after `stop` before calling the session failed.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

/// What one session did. Times are since just before the first audio frame went out.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// The finals' text, joined.
    pub text: String,
    /// When each audio frame had been sent.
    sent: Vec<Duration>,
    /// When the first transcript event (partial, or a final if none came first) arrived.
    first_result: Option<Duration>,
    /// When each final arrived, in order.
    finals: Vec<Duration>,
    /// From the last audio frame sent to the last final received.
    pub last_final_secs: Option<f64>,
    pub stored: bool,
    pub errors: Vec<String>,
}

/// A run's latencies, in seconds; infinite when the event never came.
#[derive(Debug, Clone)]
pub struct Latency {
    /// From sending the first speech sample to the first transcript event.
    pub first_partial: f64,
    /// Per utterance: from sending its last speech sample to the next final.
    pub utterance_finals: Vec<f64>,
    /// From the last audio frame sent to the last final.
    pub last_final: f64,
}

impl Latency {
    pub fn worst_utterance_final(&self) -> f64 {
        self.utterance_finals.iter().copied().fold(0.0, f64::max)
    }
}

impl Run {
    /// Measured from the moment the frame holding each sample was sent, so a
    /// client falling behind its clock under load does not count against the server.
    pub fn latency(&self, clip: &Clip) -> Latency {
        let speech = self.sent_at(clip.speech_start());
        Latency {
            first_partial: match (speech, self.first_result) {
                (Some(sent), Some(at)) => at.as_secs_f64() - sent.as_secs_f64(),
                _ => f64::INFINITY,
            },
            utterance_finals: clip
                .utterances
                .iter()
                .map(|u| self.final_after(u.end - 1).unwrap_or(f64::INFINITY))
                .collect(),
            last_final: self.last_final_secs.unwrap_or(f64::INFINITY),
        }
    }

    fn sent_at(&self, sample: usize) -> Option<Duration> {
        self.sent.get(sample / FRAME_SAMPLES).copied()
    }

    /// Seconds from sending `sample` to the first final that arrived after it.
    fn final_after(&self, sample: usize) -> Option<f64> {
        let sent = self.sent_at(sample)?;
        let at = self.finals.iter().find(|&&at| at > sent)?;
        Some((*at - sent).as_secs_f64())
    }
}

pub async fn run(url: &str, token: Option<&str>, pcm: &[u8], start_after: Duration) -> Run {
    tokio::time::sleep(start_after).await;
    match session(url, token, pcm).await {
        Ok(run) => run,
        Err(e) => Run {
            errors: vec![e.to_string()],
            ..Run::default()
        },
    }
}

async fn session(url: &str, token: Option<&str>, pcm: &[u8]) -> anyhow::Result<Run> {
    let mut request = url.into_client_request()?;
    if let Some(token) = token {
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
    }
    let (ws, _) = tokio_tungstenite::connect_async(request).await?;
    let (mut sink, mut stream) = ws.split();
    let start = serde_json::json!({
        "type": "start", "sample_rate": RATE, "encoding": "pcm_s16le", "channels": 1,
        "language": "en-US",
    });
    sink.send(Message::Text(start.to_string().into())).await?;
    let ready = tokio::time::timeout(Duration::from_secs(30), stream.next()).await;
    match ready {
        Ok(Some(Ok(Message::Text(t)))) if t.contains("\"ready\"") => {}
        other => anyhow::bail!("no ready: {other:?}"),
    }
    let reader = tokio::spawn(async move {
        let mut events = Events::default();
        while let Some(Ok(msg)) = stream.next().await {
            let Message::Text(text) = msg else { continue };
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&text) else {
                continue;
            };
            let now = Instant::now();
            match v["type"].as_str() {
                Some("transcript") => {
                    events.first_result.get_or_insert(now);
                    if v["is_partial"] == false {
                        events
                            .finals
                            .push((now, v["text"].as_str().unwrap_or("").to_owned()));
                    }
                }
                Some("error") => events
                    .errors
                    .push(v["code"].as_str().unwrap_or("unknown").to_owned()),
                Some("stored") => events.stored = true,
                Some("closed") => break,
                _ => {}
            }
        }
        events
    });

    let period = Duration::from_millis(FRAME_MS);
    let t0 = Instant::now();
    let mut sent = Vec::new();
    for (k, chunk) in pcm.chunks(FRAME_SAMPLES * 2).enumerate() {
        tokio::time::sleep_until(t0 + period * k as u32).await;
        sink.send(Message::Binary(chunk.to_vec().into())).await?;
        sent.push(t0.elapsed());
    }
    // A live client sends each frame as it is captured: the audio ends with
    // the last frame, and `stop` follows at once.
    let audio_end = Instant::now();
    sink.send(Message::Text(r#"{"type":"stop"}"#.into()))
        .await?;
    let events = tokio::time::timeout(STOP_TIMEOUT, reader)
        .await
        .map_err(|_| anyhow::anyhow!("stop_timeout"))??;
    let _ = sink.close().await;
    let mut errors = events.errors;
    if !events.stored {
        errors.push("not_stored".into());
    }
    let since_t0 = |t: Instant| t.saturating_duration_since(t0);
    Ok(Run {
        text: events
            .finals
            .iter()
            .map(|(_, text)| text.as_str())
            .collect::<Vec<_>>()
            .join(" "),
        sent,
        first_result: events.first_result.map(since_t0),
        finals: events.finals.iter().map(|&(at, _)| since_t0(at)).collect(),
        last_final_secs: events
            .finals
            .last()
            .map(|&(at, _)| at.saturating_duration_since(audio_end).as_secs_f64()),
        stored: events.stored,
        errors,
    })
}

#[derive(Default)]
struct Events {
    first_result: Option<Instant>,
    /// Each final's arrival and text.
    finals: Vec<(Instant, String)>,
    errors: Vec<String>,
    stored: bool,
}
