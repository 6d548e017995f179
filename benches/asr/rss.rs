//! The server's resident memory (`VmRSS` in `/proc/PID/status`), sampled
//! every 200 ms while a concurrency step runs.

use std::time::Duration;

use anyhow::Context;
use tokio::sync::oneshot;
use tokio_util::task::AbortOnDropHandle;

const PERIOD: Duration = Duration::from_millis(200);

/// A sampling task owned by the step that started it: [`Sampler::finish`]
/// ends it, and dropping the sampler aborts it.
pub struct Sampler {
    stop: oneshot::Sender<()>,
    task: AbortOnDropHandle<anyhow::Result<u64>>,
}

impl Sampler {
    pub fn start(pid: u32) -> Self {
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut peak_kb = 0;
            let mut tick = tokio::time::interval(PERIOD);
            loop {
                tokio::select! {
                    _ = tick.tick() => peak_kb = peak_kb.max(vm_rss_kb(pid).await?),
                    _ = &mut stopped => break,
                }
            }
            // Once more at the end, so the last flushes count too.
            Ok(peak_kb.max(vm_rss_kb(pid).await?))
        });
        Sampler {
            stop,
            task: AbortOnDropHandle::new(task),
        }
    }

    /// Stops sampling; the peak RSS in MB (of 1024 kB).
    pub async fn finish(self) -> anyhow::Result<f64> {
        let _ = self.stop.send(());
        let peak_kb = self.task.await.context("RSS sampler")??;
        Ok(peak_kb as f64 / 1024.0)
    }
}

/// The process's resident set size in kB.
pub async fn vm_rss_kb(pid: u32) -> anyhow::Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = tokio::fs::read_to_string(&path)
        .await
        .with_context(|| format!("reading {path}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("no VmRSS in {path}"))
}
