//! A GAN training run that its host drives a few steps at a time and
//! awaits. The CLI's `train` blocks on it (pollster) between its files and
//! log lines; a browser page awaits it between frames. It steps through the
//! one loop (`stepping::Stepper`) and adds what a GAN run has besides: its
//! grids, its checkpoints and the loss checks of divergence. No files, no
//! clock (the host times it).

use super::stepping::{Stepped, Stepper};
use super::{
    images_from_outputs, Gan, GanConfig, GanError, GpuContext, GridInputs, ImageSet, Progress, Result, Sampler,
    SavedState, StepReading,
};
use crate::engine::tensor::GpuTensor;
use rand::SeedableRng;

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
    stepper: Stepper,
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
        let mut gan = match state {
            Some(s) => {
                let gan = Gan::new(ctx, cfg, &data, &s.g_params, &s.d_params)?;
                gan.g.m.write_f32(ctx, &s.g_m)?;
                gan.g.v.write_f32(ctx, &s.g_v)?;
                gan.d.m.write_f32(ctx, &s.d_m)?;
                gan.d.v.write_f32(ctx, &s.d_v)?;
                gan.g.write_bn(ctx, &s.g_bn)?;
                gan.d.write_bn(ctx, &s.d_bn)?;
                if let Some(m) = &s.metrics {
                    gan.metrics.write_f32(ctx, m)?;
                }
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
        let stepper = Stepper::new(ctx, &mut gan, progress, "session metrics staging")?;
        ctx.check_health("building the training graph")?;
        Ok(Session { sampler, averaged_sampler, fixed, progress, stepper, gan })
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.gan.steps_per_epoch()
    }

    /// Runs up to `n` steps (at most `MAX_STEPS_PER_CALL`, and never past the
    /// end of the epoch; at an epoch's end it starts the next) in one
    /// submission and returns every step's losses. A step that went
    /// non-finite ends the run with `GanError::Diverged` naming it.
    pub async fn run_steps(&mut self, ctx: &GpuContext, n: usize) -> Result<Vec<StepReading>> {
        let raw = self.stepper.run_steps(ctx, &mut self.gan, &mut self.progress, n).await?;
        let out: Vec<StepReading> = raw.iter().map(StepReading::from_raw).collect();
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

/// The GAN as the stepping loop sees it.
impl Stepped for Gan {
    fn steps_per_epoch(&self) -> usize {
        Gan::steps_per_epoch(self)
    }

    fn start_epoch(&mut self, ctx: &GpuContext, epoch: usize, batch_in_epoch: usize, steps_done: u64) -> Result<()> {
        Gan::start_epoch(self, ctx, epoch, batch_in_epoch, steps_done)
    }

    fn record_step_at(&self, enc: &mut wgpu::CommandEncoder, step: u64) {
        Gan::record_step_at(self, enc, step)
    }

    fn readback(&self) -> (&GpuTensor, &GpuTensor) {
        (&self.metrics, &self.counters)
    }
}
