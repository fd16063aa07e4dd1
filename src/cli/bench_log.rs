//! What the run log costs a logged step (`bench`): the time the trainer's
//! thread spends queueing an entry, and the writer thread's time to encode
//! and write it (metrics.jsonl and the TensorBoard event file), over
//! 20,000 step entries into a temporary folder.

use gan_wgpu::io::images::LossRow;
use gan_wgpu::io::run_log::{Entry, RunLog, RunLogConfig};
use gan_wgpu::{GanError, Result};
use std::time::Instant;

const ENTRIES: usize = 20_000;

/// (microseconds to queue one step entry, microseconds for the writer to
/// write one: from the first queued entry to the last one on disk).
pub(super) fn run_log_cost_us() -> Result<(f64, f64)> {
    let dir = std::env::temp_dir().join(format!("gan-wgpu-bench-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| GanError::io(&dir, e))?;
    let measured = (|| {
        let cfg = RunLogConfig { dir: dir.clone(), carry_from: None, up_to_step: 0, tensorboard: true };
        let mut log = RunLog::open(&cfg)?;
        let row = |i: usize| LossRow {
            epoch: 0,
            step: i as u64,
            loss_d: 1.25,
            loss_g: 0.75,
            d_real: 0.5,
            d_fake: 0.25,
            seconds: 0.03,
        };
        let t = Instant::now();
        for i in 1..=ENTRIES {
            log.log(Entry::Step(row(i)));
        }
        let queued = t.elapsed().as_secs_f64();
        log.finish(&serde_json::json!({}))?;
        let written = t.elapsed().as_secs_f64();
        Ok((queued * 1e6 / ENTRIES as f64, written * 1e6 / ENTRIES as f64))
    })();
    let _ = std::fs::remove_dir_all(&dir);
    measured
}
