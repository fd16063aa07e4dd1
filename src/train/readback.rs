//! A GAN step's losses and counters as the host reads them back (the
//! stepping loop's raw reading, named).

use super::stepping::RawReading;
use super::{metrics_from, StepMetrics};

/// What a read-back step says.
#[derive(Clone, Copy, Debug)]
pub struct StepReading {
    /// 0-based epoch, 0-based batch within it, 1-based global step.
    pub epoch: usize,
    pub batch: usize,
    pub step: u64,
    pub metrics: StepMetrics,
    /// The divergence flag as it stood after this step: the first global
    /// step (1-based) at which the model went non-finite this epoch.
    pub first_nonfinite: Option<u64>,
}

impl StepReading {
    /// The reading as the page receives it: a JSON object with named keys
    /// (step, epoch, batch, loss_d, loss_g, d_real, d_fake; a number not
    /// finite is null).
    pub fn to_json(&self) -> serde_json::Value {
        let m = self.metrics;
        serde_json::json!({
            "step": self.step,
            "epoch": self.epoch,
            "batch": self.batch,
            "loss_d": m.loss_d,
            "loss_g": m.loss_g,
            "d_real": m.d_real,
            "d_fake": m.d_fake,
        })
    }
}

impl StepReading {
    /// The GAN's reading of one step as the loop read it back.
    pub(super) fn from_raw(raw: &RawReading) -> Self {
        StepReading {
            epoch: raw.epoch,
            batch: raw.batch,
            step: raw.step,
            metrics: metrics_from(&raw.metrics),
            first_nonfinite: raw.first_nonfinite,
        }
    }
}
