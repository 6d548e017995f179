//! Samples a server process's CPU time and resident memory from /proc.

use std::time::{Duration, Instant};

use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, Default)]
pub struct ServerStats {
    pub cpu_percent: f64,
    pub rss_bytes_max: u64,
    pub rss_bytes_start: u64,
}

pub struct Sampler {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<ServerStats>,
}

impl Sampler {
    pub fn start(pid: u32) -> Sampler {
        let (stop, mut stopped) = oneshot::channel();
        let task = tokio::spawn(async move {
            let t0 = Instant::now();
            let cpu0 = cpu_ticks(pid).unwrap_or(0);
            let rss0 = rss_bytes(pid).unwrap_or(0);
            let mut stats = ServerStats {
                rss_bytes_start: rss0,
                rss_bytes_max: rss0,
                ..ServerStats::default()
            };
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        if let Some(rss) = rss_bytes(pid) {
                            stats.rss_bytes_max = stats.rss_bytes_max.max(rss);
                        }
                    }
                    _ = &mut stopped => break,
                }
            }
            let ticks = cpu_ticks(pid).unwrap_or(cpu0).saturating_sub(cpu0);
            // Linux reports CPU time in clock ticks of 1/100 s.
            stats.cpu_percent = ticks as f64 / 100.0 / t0.elapsed().as_secs_f64() * 100.0;
            stats
        });
        Sampler { stop, task }
    }

    pub async fn stop(self) -> ServerStats {
        let _ = self.stop.send(());
        self.task.await.unwrap_or_default()
    }
}

fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
}
