//! One load session: connect, start, stream paced frames, stop, and record what happened.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::Args;
use crate::audio::Source;
use crate::wire;

pub struct SessionPlan {
    pub index: usize,
    pub start_after: Duration,
    pub source: Arc<Source>,
}

#[derive(Debug, Default)]
pub struct Outcome {
    pub index: usize,
    pub accepted: bool,
    pub refused: bool,
    /// Error codes seen (error events, connection failures).
    pub errors: Vec<String>,
    pub bytes_sent: u64,
    pub ack_latency_ms: Vec<f32>,
    pub transcript_latency_ms: Vec<f32>,
    pub stored_audio_key: Option<String>,
}

/// Frames sent but not yet covered by an ack, and every frame's send time.
#[derive(Default)]
struct Sent {
    unacked: std::collections::VecDeque<(u64, Instant)>,
    history: Vec<(u64, Instant)>,
}

pub async fn run(args: &Args, plan: SessionPlan) -> Outcome {
    tokio::time::sleep(plan.start_after).await;
    let mut outcome = Outcome {
        index: plan.index,
        ..Outcome::default()
    };
    let (mut sender, mut receiver, mut pongs) =
        match wire::connect(&args.url, args.token.as_deref(), args.transport).await {
            Ok(conn) => conn,
            Err(wire::ConnectError::Refused) => {
                outcome.refused = true;
                return outcome;
            }
            Err(wire::ConnectError::Failed(code)) => {
                outcome.errors.push(code);
                return outcome;
            }
        };
    let mut start = serde_json::json!({
        "type": "start", "sample_rate": plan.source.rate, "encoding": plan.source.encoding, "channels": 1,
    });
    if let Some(engine) = &args.engine {
        start["engine"] = engine.clone().into();
    }
    if sender.start(&start).await.is_err() {
        outcome.errors.push("send_failed".into());
        return outcome;
    }
    match tokio::time::timeout(Duration::from_secs(30), receiver.next()).await {
        Ok(Some(v)) if v["type"] == "ready" => outcome.accepted = true,
        Ok(Some(v)) if v["code"] == "server_at_capacity" => {
            outcome.refused = true;
            return outcome;
        }
        Ok(Some(v)) => {
            let code = v["code"].as_str().unwrap_or("unexpected_message");
            outcome.errors.push(code.to_owned());
            return outcome;
        }
        _ => {
            outcome.errors.push("no_ready".into());
            return outcome;
        }
    }

    let sent = Arc::new(Mutex::new(Sent::default()));
    let reader_sent = Arc::clone(&sent);
    let bytes_per_second = plan.source.bytes_per_second as f64;
    let reader = tokio::spawn(async move {
        let mut r = ReaderResult::default();
        while let Some(v) = receiver.next().await {
            let now = Instant::now();
            match v["type"].as_str() {
                Some("ack") => {
                    let durable = v["durable_bytes"].as_u64().unwrap_or(0);
                    let mut s = reader_sent.lock().unwrap_or_else(|e| e.into_inner());
                    while s.unacked.front().is_some_and(|(end, _)| *end <= durable) {
                        if let Some((_, at)) = s.unacked.pop_front() {
                            r.ack_ms.push((now - at).as_secs_f32() * 1000.0);
                        }
                    }
                }
                Some("transcript") if v["is_partial"] == false => {
                    let end_byte = (v["end"].as_f64().unwrap_or(0.0) * bytes_per_second) as u64;
                    let s = reader_sent.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some((_, at)) = s.history.iter().find(|(end, _)| *end >= end_byte) {
                        r.transcript_ms.push((now - *at).as_secs_f32() * 1000.0);
                    }
                }
                Some("error") => r
                    .errors
                    .push(v["code"].as_str().unwrap_or("unknown").to_owned()),
                Some("stored") => r.stored_audio = v["audio"].as_str().map(str::to_owned),
                Some("closed") => break,
                _ => {}
            }
        }
        r
    });

    let source = &plan.source;
    let frame = source.bytes_per_frame;
    let pace = Duration::from_secs_f64(
        frame as f64 / source.bytes_per_second as f64 / args.speed.max(0.001),
    );
    let t0 = tokio::time::Instant::now();
    let mut offset = 0usize;
    let mut k = 0u32;
    while offset < source.total_bytes {
        // Engine.IO pings are answered between frames.
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(t0 + pace * k) => break,
                Some(()) = pongs.recv() => {
                    let _ = sender.pong().await;
                }
            }
        }
        let len = frame.min(source.total_bytes - offset);
        let bytes = source.bytes(plan.index, offset, len);
        offset += len;
        k += 1;
        {
            let mut s = sent.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            s.unacked.push_back((offset as u64, now));
            s.history.push((offset as u64, now));
        }
        if sender.audio(bytes).await.is_err() {
            outcome.errors.push("send_failed".into());
            break;
        }
        outcome.bytes_sent = offset as u64;
    }
    let _ = sender.stop().await;
    let waiting = tokio::time::timeout(Duration::from_secs_f64(args.stop_timeout_secs), reader);
    tokio::pin!(waiting);
    let finished = loop {
        tokio::select! {
            done = &mut waiting => break done,
            Some(()) = pongs.recv() => {
                let _ = sender.pong().await;
            }
        }
    };
    match finished {
        Ok(Ok(r)) => {
            outcome.ack_latency_ms = r.ack_ms;
            outcome.transcript_latency_ms = r.transcript_ms;
            outcome.errors.extend(r.errors);
            outcome.stored_audio_key = r.stored_audio;
            if outcome.stored_audio_key.is_none() {
                outcome.errors.push("not_stored".into());
            }
            let unacked = sent.lock().map(|s| s.unacked.len()).unwrap_or(0);
            if unacked > 0 {
                outcome.errors.push("unacked_frames".into());
            }
        }
        _ => outcome.errors.push("stop_timeout".into()),
    }
    sender.close().await;
    outcome
}

#[derive(Default)]
struct ReaderResult {
    ack_ms: Vec<f32>,
    transcript_ms: Vec<f32>,
    errors: Vec<String>,
    stored_audio: Option<String>,
}
