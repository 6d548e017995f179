//! Aggregates session outcomes into the printed table and the final JSON line.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use crate::Args;
use crate::proc_stats::ServerStats;
use crate::session::Outcome;

#[derive(Debug, Default, Clone, Copy)]
pub struct Verification {
    pub verified: usize,
    pub mismatched: usize,
    pub missing: usize,
}

pub struct Report {
    json: serde_json::Value,
}

fn percentiles(mut v: Vec<f32>) -> serde_json::Value {
    if v.is_empty() {
        return json!({ "p50": null, "p95": null, "p99": null, "max": null, "count": 0 });
    }
    v.sort_by(f32::total_cmp);
    let at = |q: f64| {
        let i = ((v.len() as f64 - 1.0) * q).round() as usize;
        (f64::from(v[i]) * 100.0).round() / 100.0
    };
    json!({ "p50": at(0.50), "p95": at(0.95), "p99": at(0.99), "max": at(1.0), "count": v.len() })
}

impl Report {
    pub fn new(
        args: &Args,
        outcomes: &[Outcome],
        elapsed: Duration,
        server: Option<ServerStats>,
        verified: Option<Verification>,
    ) -> Report {
        let mut errors: BTreeMap<String, usize> = BTreeMap::new();
        for e in outcomes.iter().flat_map(|o| &o.errors) {
            *errors.entry(e.clone()).or_default() += 1;
        }
        let accepted = outcomes.iter().filter(|o| o.accepted).count();
        let ack: Vec<f32> = outcomes
            .iter()
            .flat_map(|o| o.ack_latency_ms.iter().copied())
            .collect();
        let transcript: Vec<f32> = outcomes
            .iter()
            .flat_map(|o| o.transcript_latency_ms.iter().copied())
            .collect();
        let rss_growth = server.map(|s| s.rss_bytes_max.saturating_sub(s.rss_bytes_start));
        let json = json!({
            "sessions": args.sessions,
            "rate": args.rate,
            "encoding": args.encoding,
            "frame_ms": args.frame_ms,
            "duration_secs": args.duration_secs,
            "speed": args.speed,
            "elapsed_secs": (elapsed.as_secs_f64() * 100.0).round() / 100.0,
            "attempted": outcomes.len(),
            "accepted": accepted,
            "refused": outcomes.iter().filter(|o| o.refused).count(),
            "errors": errors.values().sum::<usize>(),
            "errors_by_code": errors,
            "bytes_sent": outcomes.iter().map(|o| o.bytes_sent).sum::<u64>(),
            "ack_latency_ms": percentiles(ack),
            "transcript_latency_ms": percentiles(transcript),
            "verified_sessions": verified.map(|v| v.verified),
            "verification_mismatched": verified.map(|v| v.mismatched),
            "verification_missing": verified.map(|v| v.missing),
            "server_cpu_percent": server.map(|s| (s.cpu_percent * 10.0).round() / 10.0),
            "server_rss_bytes_max": server.map(|s| s.rss_bytes_max),
            "server_rss_bytes_start": server.map(|s| s.rss_bytes_start),
            "server_rss_growth_per_session_bytes": rss_growth.filter(|_| accepted > 0).map(|g| g / accepted as u64),
        });
        Report { json }
    }

    pub fn json(&self) -> String {
        self.json.to_string()
    }

    pub fn table(&self) -> String {
        let j = &self.json;
        let lat = |k: &str| {
            let v = &j[k];
            format!(
                "p50 {} / p95 {} / p99 {} / max {} ms",
                v["p50"], v["p95"], v["p99"], v["max"]
            )
        };
        let rows = [
            ("sessions attempted", j["attempted"].to_string()),
            (
                "accepted / refused",
                format!("{} / {}", j["accepted"], j["refused"]),
            ),
            ("errors", format!("{} {}", j["errors"], j["errors_by_code"])),
            ("bytes sent", j["bytes_sent"].to_string()),
            ("ack latency", lat("ack_latency_ms")),
            ("transcript latency", lat("transcript_latency_ms")),
            ("verified sessions", j["verified_sessions"].to_string()),
            ("server CPU %", j["server_cpu_percent"].to_string()),
            ("server RSS max", j["server_rss_bytes_max"].to_string()),
            (
                "RSS growth / session",
                j["server_rss_growth_per_session_bytes"].to_string(),
            ),
            ("elapsed s", j["elapsed_secs"].to_string()),
        ];
        rows.iter().map(|(k, v)| format!("{k:<22} {v}\n")).collect()
    }
}
