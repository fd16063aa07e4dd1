//! A step's losses and counters as the host reads them back: one readback
//! slot per step, copied into a session's staging buffer.

use super::{metrics_from, GpuTensor, StepMetrics, METRICS_LEN, READBACK_BYTES};

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

/// Records the copy of one step's metrics, then its counters (with the
/// divergence flag), into `dst` at byte `at`: one readback slot of
/// READBACK_BYTES.
pub(super) fn record_reading_copy(
    enc: &mut wgpu::CommandEncoder,
    metrics: &GpuTensor,
    counters: &GpuTensor,
    dst: &wgpu::Buffer,
    at: u64,
) {
    let metrics_bytes = (METRICS_LEN * 4) as u64;
    enc.copy_buffer_to_buffer(&metrics.buffer, metrics.offset, dst, at, metrics_bytes);
    enc.copy_buffer_to_buffer(
        &counters.buffer,
        counters.offset,
        dst,
        at + metrics_bytes,
        READBACK_BYTES - metrics_bytes,
    );
}

impl StepReading {
    /// The reading in one readback slot's words (metrics, then counters).
    pub(super) fn from_words(words: &[u32], epoch: usize, batch: usize, step: u64) -> Self {
        let metrics: Vec<f32> = words[..METRICS_LEN].iter().map(|&w| f32::from_bits(w)).collect();
        StepReading {
            epoch,
            batch,
            step,
            metrics: metrics_from(&metrics),
            first_nonfinite: crate::engine::kernels::adam::first_nonfinite_step(&words[METRICS_LEN..]),
        }
    }
}
