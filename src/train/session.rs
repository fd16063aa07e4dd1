//! A training run that its host drives a few steps at a time and awaits,
//! never blocking: what a browser page runs (it must yield to the browser
//! between submissions). Same initial weights, batches, latent codes and
//! step graph as `train`, so the same seed gives the same losses; no files,
//! no clock (the host times it).

use super::*;

/// Steps one `run_steps` call submits at most (its metrics staging holds one
/// readback slot per step).
pub const MAX_STEPS_PER_CALL: usize = 64;

pub struct Session {
    pub gan: Gan,
    sampler: Sampler,
    fixed: GridInputs,
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
/// images of `dim` pixels: PyTorch's default init drawn from one ChaCha8
/// stream seeded with the run's seed, G first.
pub fn initial_params(cfg: &GanConfig, dim: usize) -> (Vec<f32>, Vec<f32>) {
    let mut init_rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    cfg.architecture(dim).init_params(&mut init_rng)
}

impl Session {
    /// A fresh run on `data` (already cut to its limit) at epoch 0.
    pub fn new(ctx: &GpuContext, cfg: GanConfig, data: &ImageSet) -> Result<Self> {
        let data = first_images(data, None, cfg.batch)?;
        let (g_params, d_params) = initial_params(&cfg, data.dim());
        let gan = Gan::new(ctx, cfg, &data, &g_params, &d_params)?;
        let fixed = GridInputs::fixed(cfg.latent, gan.classes());
        let sampler = Sampler::new(ctx, &gan.g, fixed.len())?;
        gan.start_epoch(ctx, 0, 0, 0)?;
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("session metrics staging"),
            size: READBACK_BYTES * MAX_STEPS_PER_CALL as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        ctx.check_health("building the training graph")?;
        Ok(Session { sampler, fixed, progress: Progress { epoch: 0, batch_in_epoch: 0, steps_done: 0 }, staging, gan })
    }

    /// Runs up to `n` steps (at most `MAX_STEPS_PER_CALL`, and never past the
    /// end of the epoch) in one submission and returns every step's losses.
    /// A step that went non-finite ends the run with `GanError::Diverged`.
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
            self.gan.record_step(&mut enc);
            readback::record_reading_copy(
                &mut enc,
                &self.gan.metrics,
                &self.gan.counters,
                &self.staging,
                i * READBACK_BYTES,
            );
        }
        ctx.queue.submit([enc.finish()]);
        let words = crate::tensor::map_read(ctx, &self.staging, READBACK_BYTES * n as u64, "training steps").await?;
        ctx.check_health("training steps")?;
        let mut out = Vec::with_capacity(n);
        for (i, slot) in words.chunks_exact(READBACK_BYTES as usize / 4).enumerate() {
            let p = self.progress;
            out.push(StepReading::from_words(slot, p.epoch, p.batch_in_epoch + i, p.steps_done + i as u64 + 1));
        }
        self.progress.batch_in_epoch += n;
        self.progress.steps_done += n as u64;
        if let Some(step) = out.iter().find_map(|r| r.first_nonfinite) {
            return Err(GanError::Diverged(format!(
                "the model went non-finite (inf or NaN) at global step {step}; a lower learning rate may help"
            )));
        }
        Ok(out)
    }

    /// The images of the fixed grid (the CLI's per-epoch grid: 25, or a
    /// conditional model's row per class), u8 pixels image after image.
    pub async fn grid(&self, ctx: &GpuContext) -> Result<Vec<u8>> {
        let out = self.sampler.run_labeled_async(ctx, &self.fixed.latents, self.fixed.labels.as_deref()).await?;
        Ok(images_from_outputs(&out, self.gan.dim).concat())
    }

    /// The generator's and discriminator's checkpoint files as they stand,
    /// named for the epoch in progress.
    pub async fn checkpoint_files(&self, ctx: &GpuContext) -> Result<(Vec<u8>, Vec<u8>)> {
        self.gan.checkpoint_files_async(ctx, self.progress.epoch, self.progress.steps_done).await
    }
}
