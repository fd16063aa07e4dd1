//! The one stepping loop: a training run that its host drives a few steps
//! at a time and awaits. The CLI's `train` blocks on it (pollster) between
//! its files and log lines; a browser page awaits it between frames. Epoch
//! rollover, per-step readback of the losses and the divergence check live
//! here, once. No files, no clock (the host times it).

use super::{
    images_from_outputs, readback, Gan, GanConfig, GanError, GpuContext, GridInputs, ImageSet, Progress, Result,
    Sampler, SavedState, StepReading, READBACK_BYTES,
};
use rand::SeedableRng;

/// Steps one `run_steps` call submits at most (its metrics staging holds one
/// readback slot per step).
pub const MAX_STEPS_PER_CALL: usize = 64;

pub struct Session {
    pub gan: Gan,
    sampler: Sampler,
    /// The same grid from the generator's moving average (`--ema-decay`).
    averaged_sampler: Option<Sampler>,
    /// What the epoch grids are drawn from (`GridInputs::fixed`).
    pub fixed: GridInputs,
    /// Where the run stands; `batch_in_epoch` reaches the epoch's steps at
    /// its end, and the next `run_steps` starts the next epoch.
    pub progress: Progress,
    /// MAX_STEPS_PER_CALL readback slots: each step's metrics and counters.
    staging: wgpu::Buffer,
}

/// The first `limit` images of `data` (all of them, not copied, without a
/// limit), checked to hold at least one batch of `batch`.
pub fn first_images(data: &ImageSet, limit: Option<usize>, batch: usize) -> Result<std::borrow::Cow<'_, ImageSet>> {
    let data = match limit {
        Some(n) if n < data.count => std::borrow::Cow::Owned(ImageSet {
            count: n,
            pixels: data.pixels[..n * data.dim()].to_vec(),
            labels: data.labels.as_ref().map(|l| l[..n].to_vec()),
            ..data.clone_header()
        }),
        _ => std::borrow::Cow::Borrowed(data),
    };
    if data.count < batch {
        return Err(GanError::data(&data.source, format!("{} images, fewer than one batch of {batch}", data.count)));
    }
    Ok(data)
}

/// The initial (generator, discriminator) parameters of a run of `cfg` on
/// `data`'s images: the model's init scheme drawn from one ChaCha8 stream
/// seeded with the run's seed, G first.
pub fn initial_params(cfg: &GanConfig, data: &ImageSet) -> Result<(Vec<f32>, Vec<f32>)> {
    let mut init_rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    Ok(cfg.architecture(data.shape())?.init_params(&mut init_rng))
}

impl Session {
    /// A fresh run on `data` (already cut to its limit) at epoch 0.
    pub fn new(ctx: &GpuContext, cfg: GanConfig, data: &ImageSet) -> Result<Self> {
        Self::start(ctx, cfg, data, None)
    }

    /// A run on `data` (already cut to its limit): fresh, or going on from
    /// a saved state (parameters, Adam moments, running statistics, position).
    pub(super) fn start(ctx: &GpuContext, cfg: GanConfig, data: &ImageSet, state: Option<&SavedState>) -> Result<Self> {
        let data = first_images(data, None, cfg.batch)?;
        let gan = match state {
            Some(s) => {
                let gan = Gan::new(ctx, cfg, &data, &s.g_params, &s.d_params)?;
                gan.g.m.write_f32(ctx, &s.g_m)?;
                gan.g.v.write_f32(ctx, &s.g_v)?;
                gan.d.m.write_f32(ctx, &s.d_m)?;
                gan.d.v.write_f32(ctx, &s.d_v)?;
                gan.g.write_bn(ctx, &s.g_bn)?;
                gan.d.write_bn(ctx, &s.d_bn)?;
                if let Some(avg) = &gan.g_ema {
                    // Without a saved average (the state's run kept none),
                    // it restarts from the generator.
                    match &s.g_ema {
                        Some((params, bn)) => {
                            avg.params.write_f32(ctx, params)?;
                            avg.write_bn(ctx, bn)?;
                        }
                        None => avg.write_bn(ctx, &s.g_bn)?,
                    }
                }
                gan
            }
            None => {
                let (g_params, d_params) = initial_params(&cfg, &data)?;
                Gan::new(ctx, cfg, &data, &g_params, &d_params)?
            }
        };
        let progress = state.map_or(Progress { epoch: 0, batch_in_epoch: 0, steps_done: 0 }, |s| s.progress);
        let fixed = GridInputs::fixed(cfg.latent, gan.classes());
        let sampler = Sampler::new(ctx, &gan.g, fixed.len())?;
        let averaged_sampler = gan.g_ema.as_ref().map(|avg| Sampler::new(ctx, avg, fixed.len())).transpose()?;
        gan.start_epoch(ctx, progress.epoch, progress.batch_in_epoch, progress.steps_done)?;
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("session metrics staging"),
            size: READBACK_BYTES * MAX_STEPS_PER_CALL as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ctx.check_health("building the training graph")?;
        Ok(Session { sampler, averaged_sampler, fixed, progress, staging, gan })
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.gan.steps_per_epoch()
    }

    /// Runs up to `n` steps (at most `MAX_STEPS_PER_CALL`, and never past the
    /// end of the epoch; at an epoch's end it starts the next) in one
    /// submission and returns every step's losses. A step that went
    /// non-finite ends the run with `GanError::Diverged` naming it.
    pub async fn run_steps(&mut self, ctx: &GpuContext, n: usize) -> Result<Vec<StepReading>> {
        let spe = self.gan.steps_per_epoch();
        if self.progress.batch_in_epoch == spe {
            self.progress.epoch += 1;
            self.progress.batch_in_epoch = 0;
            self.gan.start_epoch(ctx, self.progress.epoch, 0, self.progress.steps_done)?;
        }
        let n = n.min(MAX_STEPS_PER_CALL).min(spe - self.progress.batch_in_epoch);
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("train steps") });
        for i in 0..n as u64 {
            self.gan.record_step_at(&mut enc, self.progress.steps_done + i + 1);
            readback::record_reading_copy(
                &mut enc,
                &self.gan.metrics,
                &self.gan.counters,
                &self.staging,
                i * READBACK_BYTES,
            );
        }
        ctx.queue.submit([enc.finish()]);
        let words =
            crate::engine::tensor::map_read(ctx, &self.staging, READBACK_BYTES * n as u64, "training steps").await?;
        ctx.check_health("training steps")?;
        let mut out = Vec::with_capacity(n);
        for (i, slot) in words.chunks_exact(READBACK_BYTES as usize / 4).enumerate() {
            let p = self.progress;
            out.push(StepReading::from_words(slot, p.epoch, p.batch_in_epoch + i, p.steps_done + i as u64 + 1));
        }
        self.progress.batch_in_epoch += n;
        self.progress.steps_done += n as u64;
        for r in &out {
            if let Some(step) = r.first_nonfinite {
                return Err(self.diverged(step));
            }
            // The D-output means propagate a NaN that the clamped logs of
            // the loss could hide, so all four are checked.
            let m = r.metrics;
            if ![m.loss_d, m.loss_g, m.d_real, m.d_fake].iter().all(|v| v.is_finite()) {
                return Err(self.diverged(r.step));
            }
        }
        Ok(out)
    }

    /// Runs `steps` steps in submissions of at most `chunk` steps (the
    /// epoch's end also ends one; the next epoch starts at the next step):
    /// the loop of a host that needs nothing between chunks (bench, tests).
    pub async fn run_for(&mut self, ctx: &GpuContext, steps: usize, chunk: usize) -> Result<Vec<StepReading>> {
        let mut out = Vec::with_capacity(steps);
        while out.len() < steps {
            out.extend(self.run_steps(ctx, (steps - out.len()).min(chunk.max(1))).await?);
        }
        Ok(out)
    }

    /// The error for a model that went non-finite at 1-based global `step`.
    pub fn diverged(&self, step: u64) -> GanError {
        let spe = self.gan.steps_per_epoch() as u64;
        let (epoch, in_epoch) = ((step - 1) / spe, (step - 1) % spe + 1);
        GanError::Diverged(format!(
            "the model went non-finite (inf or NaN) at epoch {epoch}, step {in_epoch} of the epoch (global step {step})"
        ))
    }

    /// Ok unless the model went non-finite since the epoch started
    /// (blocking read of the counters' flag; before anything is saved).
    pub fn check_finite(&self, ctx: &GpuContext) -> Result<()> {
        match self.gan.first_nonfinite_step(ctx)? {
            Some(step) => Err(self.diverged(step)),
            None => Ok(()),
        }
    }

    /// The generator's outputs in [-1, 1] on the fixed grid.
    pub async fn grid_outputs(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        self.sampler.run_labeled_async(ctx, &self.fixed.latents, self.fixed.labels.as_deref()).await
    }

    /// `grid_outputs` of the generator's moving average; None when the run
    /// keeps none.
    pub async fn averaged_grid_outputs(&self, ctx: &GpuContext) -> Result<Option<Vec<f32>>> {
        match &self.averaged_sampler {
            Some(s) => Ok(Some(s.run_labeled_async(ctx, &self.fixed.latents, self.fixed.labels.as_deref()).await?)),
            None => Ok(None),
        }
    }

    /// The images of the fixed grid (the CLI's per-epoch grid: 25, or a
    /// conditional model's row per class), u8 pixels image after image.
    pub async fn grid(&self, ctx: &GpuContext) -> Result<Vec<u8>> {
        let out = self.grid_outputs(ctx).await?;
        Ok(images_from_outputs(&out, self.gan.dim).concat())
    }

    /// The generator's and discriminator's checkpoint files as they stand,
    /// named for the epoch in progress.
    pub async fn checkpoint_files(&self, ctx: &GpuContext) -> Result<(Vec<u8>, Vec<u8>)> {
        self.gan.checkpoint_files_async(ctx, self.progress.epoch, self.progress.steps_done).await
    }
}
