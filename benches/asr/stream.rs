//! One real-time session through the full WebSocket path: `start`, 100 ms
//! frames paced by the clock, `stop`, and when each transcript event arrived.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::clips::RATE;

const FRAME_MS: u64 = 100;
/// How long to wait for `stored` after `stop` before calling the session failed.
const STOP_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Default)]
pub struct Run {
    /// The finals' text, joined.
    pub text: String,
    /// From `ready` to the first transcript event (partial, or a final if none came first).
    pub first_result_secs: Option<f64>,
    /// From the last audio frame sent to the last final received.
    pub last_final_secs: Option<f64>,
    pub stored: bool,
    pub errors: Vec<String>,
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
    let started = Instant::now();
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
                        events.last_final = Some(now);
                        events
                            .finals
                            .push(v["text"].as_str().unwrap_or("").to_owned());
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

    let frame = (u64::from(RATE) * FRAME_MS / 1000) as usize * 2;
    let period = Duration::from_millis(FRAME_MS);
    let t0 = Instant::now();
    for (k, chunk) in pcm.chunks(frame).enumerate() {
        tokio::time::sleep_until(t0 + period * k as u32).await;
        sink.send(Message::Binary(chunk.to_vec().into())).await?;
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
    Ok(Run {
        text: events.finals.join(" "),
        first_result_secs: events.first_result.map(|t| (t - started).as_secs_f64()),
        last_final_secs: events
            .last_final
            .map(|t| t.saturating_duration_since(audio_end).as_secs_f64()),
        stored: events.stored,
        errors,
    })
}

#[derive(Default)]
struct Events {
    first_result: Option<Instant>,
    last_final: Option<Instant>,
    finals: Vec<String>,
    errors: Vec<String>,
    stored: bool,
}
