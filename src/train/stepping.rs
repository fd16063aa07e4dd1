//! The chunked stepping loop, once, for every model trained on the GPU: the
//! GAN (through `Session`) and the eval classifier. A host asks for n steps;
//! the loop starts the next epoch when the last one ended, records at most
//! `MAX_STEPS_PER_CALL` steps (never past the epoch's end) into one encoder
//! with each step's readback copied behind it, submits once, awaits the
//! readback and stops at the first step whose divergence flag is set.
//! It imports the engine only; what a model steps is behind `Stepped`.

use super::Progress;
use crate::engine::context::GpuContext;
use crate::engine::tensor::GpuTensor;
use crate::error::Result;

/// Steps one `run_steps` call submits at most (its staging buffer holds one
/// readback slot per step).
pub const MAX_STEPS_PER_CALL: usize = 64;
/// The step counters copied behind the metrics: [steps done, batch in
/// epoch, divergence flag words] (engine::kernels::adam).
const COUNTER_WORDS: usize = 4;

/// A model the loop can step: the GAN, the classifier.
pub trait Stepped {
    fn steps_per_epoch(&self) -> usize;
    /// Prepares epoch `epoch` (its permutation, its learning rate) and sets
    /// the step counters to (`steps_done`, `batch_in_epoch`).
    fn start_epoch(&mut self, ctx: &GpuContext, epoch: usize, batch_in_epoch: usize, steps_done: u64) -> Result<()>;
    /// Records the step that will be global step `step` (1-based).
    fn record_step_at(&self, enc: &mut wgpu::CommandEncoder, step: u64);
    /// What each step's readback copies: its metrics (f32) and its
    /// `COUNTER_WORDS` counters.
    fn readback(&self) -> (&GpuTensor, &GpuTensor);
}

/// One step as read back: where it stood and its metrics.
#[derive(Clone, Debug)]
pub struct RawReading {
    /// 0-based epoch, 0-based batch within it, 1-based global step.
    pub epoch: usize,
    pub batch: usize,
    pub step: u64,
    pub metrics: Vec<f32>,
    /// The divergence flag after this step: the first global step (1-based)
    /// at which the model went non-finite this epoch.
    pub first_nonfinite: Option<u64>,
}

/// The loop's own state: the staging buffer of its readback slots.
pub struct Stepper {
    staging: wgpu::Buffer,
    metrics_len: usize,
}

impl Stepper {
    /// A loop for `model`, whose counters are set to `progress` (epoch
    /// `progress.epoch` prepared).
    pub fn new(ctx: &GpuContext, model: &mut impl Stepped, progress: Progress, label: &str) -> Result<Self> {
        let metrics_len = model.readback().0.numel();
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: Self::slot_bytes(metrics_len) * MAX_STEPS_PER_CALL as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        model.start_epoch(ctx, progress.epoch, progress.batch_in_epoch, progress.steps_done)?;
        Ok(Stepper { staging, metrics_len })
    }

    fn slot_bytes(metrics_len: usize) -> u64 {
        ((metrics_len + COUNTER_WORDS) * 4) as u64
    }

    /// Runs up to `n` steps of `model` from `progress` (at most
    /// `MAX_STEPS_PER_CALL`, never past the epoch's end; at an epoch's end
    /// it starts the next) in one submission, and moves `progress` on.
    /// The readings stop after the first step whose divergence flag is set.
    pub async fn run_steps(
        &self,
        ctx: &GpuContext,
        model: &mut impl Stepped,
        progress: &mut Progress,
        n: usize,
    ) -> Result<Vec<RawReading>> {
        let spe = model.steps_per_epoch();
        if progress.batch_in_epoch == spe {
            progress.epoch += 1;
            progress.batch_in_epoch = 0;
            model.start_epoch(ctx, progress.epoch, 0, progress.steps_done)?;
        }
        let n = n.min(MAX_STEPS_PER_CALL).min(spe - progress.batch_in_epoch);
        if n == 0 {
            return Ok(Vec::new());
        }
        let slot = Self::slot_bytes(self.metrics_len);
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("train steps") });
        for i in 0..n as u64 {
            model.record_step_at(&mut enc, progress.steps_done + i + 1);
            self.record_reading_copy(&mut enc, model, i * slot);
        }
        ctx.queue.submit([enc.finish()]);
        let words = crate::engine::tensor::map_read(ctx, &self.staging, slot * n as u64, "training steps").await?;
        ctx.check_health("training steps")?;
        let mut out = Vec::with_capacity(n);
        for (i, words) in words.chunks_exact(slot as usize / 4).enumerate() {
            let reading = RawReading {
                epoch: progress.epoch,
                batch: progress.batch_in_epoch + i,
                step: progress.steps_done + i as u64 + 1,
                metrics: words[..self.metrics_len].iter().map(|&w| f32::from_bits(w)).collect(),
                first_nonfinite: crate::engine::kernels::adam::first_nonfinite_step(&words[self.metrics_len..]),
            };
            let stop = reading.first_nonfinite.is_some();
            out.push(reading);
            if stop {
                break;
            }
        }
        progress.batch_in_epoch += n;
        progress.steps_done += n as u64;
        Ok(out)
    }

    /// Records the copy of one step's metrics, then its counters, into the
    /// staging buffer at byte `at`.
    fn record_reading_copy(&self, enc: &mut wgpu::CommandEncoder, model: &impl Stepped, at: u64) {
        let (metrics, counters) = model.readback();
        let metrics_bytes = (self.metrics_len * 4) as u64;
        enc.copy_buffer_to_buffer(&metrics.buffer, metrics.offset, &self.staging, at, metrics_bytes);
        let counter_bytes = (COUNTER_WORDS * 4) as u64;
        enc.copy_buffer_to_buffer(&counters.buffer, counters.offset, &self.staging, at + metrics_bytes, counter_bytes);
    }
}
