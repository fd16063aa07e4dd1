//! The GAN on the GPU and its training loop.
//!
//! One training step, recorded into one compute pass of one submission:
//!   z ~ N(0,1) [B, latent] (Philox, draw = step counter);
//!   real batch gathered into rows B..2B of the discriminator input;
//!   G forward (training mode) writes G(z) into rows 0..B;
//!   D forward on [G(z); x] (2B rows; D has no batch norm, so one pass over
//!   both halves equals two), BCE with targets [0; 1] gives loss_d, D
//!   backward, Adam on D;
//!   D forward on G(z) with the updated D, BCE with target 1 gives loss_g,
//!   backward through D (input gradient only) and G, Adam on G;
//!   step counters advance.
//! G's forward runs once per step (its batch-norm running statistics move
//! once per step, as in PyTorch's DCGAN loop that reuses `fake`).
//! The host reads back only the 8-float metrics buffer every --log-every
//! steps, through a ring of staging buffers mapped a step or more later.

use crate::checkpoint::{self, Loaded, OwnedTensor};
use crate::context::GpuContext;
use crate::data::ImageSet;
use crate::error::{GanError, Result};
use crate::images::{self, LossRow};
use crate::kernels::adam::AdamConfig;
use crate::kernels::matmul::Variant;
use crate::kernels::{bce, gather, rng, Dispatch};
use crate::model::{self, BnStats, NetSpec, StepMetrics, WhichModel};
use crate::network::{self, Activations, GpuNet};
use crate::tensor::GpuTensor;
use rand::SeedableRng;
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

mod gan;
mod outputs;
mod readback;
mod run_dir;
mod session;
mod state;
mod warmup;

pub use gan::{
    conditioning_labels, fixed_latent, images_from_outputs, metrics_from, Gan, GanConfig, GridInputs, Sampler,
    FAKE_LABEL_STREAM,
};
use outputs::{copy_epoch_grids, losses_csv, read_losses_csv, same_dir, write_epoch_outputs};
pub use readback::{StepReading, StepRunner};
pub use run_dir::{lock_out_dir, prepare_out_dir, OutDirLock, LOCK_FILE};
pub use session::{first_images, initial_params, Session, MAX_STEPS_PER_CALL};
pub use state::{check_resume, find_latest_state, run_dir_of, state_files, RunIdentity};
use state::{load_state, save_state};
pub use warmup::warm_up_pipelines;

/// Seed of the 25 fixed latent codes of the per-epoch grids.
pub const FIXED_LATENT_SEED: u64 = 1234;
pub use crate::defaults::GRID_SAMPLES;
const STATE_FORMAT: &str = "gan-wgpu-state-1";
/// Metrics buffer: [loss_d, D(x), D(G(z)), loss_g, D(G(z)) after the D step, unused x3].
const METRICS_LEN: usize = 8;
/// A readback slot: the metrics, then the 4 step counters (divergence flag).
const READBACK_BYTES: u64 = (METRICS_LEN * 4 + 16) as u64;

#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    pub gan: GanConfig,
    pub log_every: u64,
    pub out: PathBuf,
    pub resume: Option<PathBuf>,
    /// Train on the first N images only (quick runs and tests).
    pub limit: Option<usize>,
    /// Stop (as if interrupted) after this many steps in this run; tests.
    pub stop_after_steps: Option<u64>,
    /// After this many steps of this run, say so on stdout and wait for an
    /// interrupt (tests: a signal at a known step).
    pub pause_after_steps: Option<u64>,
    /// Warm the pipelines up before the first step on CPU adapters
    /// (`warm_up_pipelines`; `Settings::warmup`).
    pub warmup: bool,
}

impl TrainConfig {
    /// Checks the values before any file or device work; errors name the
    /// CLI flag and what is wrong.
    pub fn validate(&self) -> Result<()> {
        gan::positive("--epochs", self.epochs as f64)?;
        gan::positive("--log-every", self.log_every as f64)?;
        if self.limit == Some(0) {
            return Err(GanError::Flag { flag: "--limit", why: "must be greater than zero".into() });
        }
        self.gan.validate()
    }
}

/// What the trainer tells its host as it goes. The library prints nothing:
/// the CLI turns these into log lines and a progress bar.
#[derive(Clone, Debug)]
pub enum TrainEvent {
    /// A line for the log: resuming, compile time, adapter, data, memory,
    /// the stop and the pause.
    Note(String),
    /// Epoch `epoch` of `epochs` starts with `done` of its `steps` already done.
    EpochStart { epoch: usize, epochs: usize, steps: usize, done: usize },
    /// A logged step, as the tutorial's log line.
    Logged(String),
    /// Steps done in the current epoch.
    Position(usize),
    /// The epoch ended after `seconds`, or was left unfinished (a stop).
    EpochEnd { epoch: usize, seconds: f64, finished: bool },
}

/// Where a run's events go.
pub type Reporter<'a> = dyn FnMut(TrainEvent) + 'a;

/// Where a run stands; saved in the state file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// 0-based epoch in progress (== epochs completed when batch_in_epoch is 0).
    pub epoch: usize,
    pub batch_in_epoch: usize,
    pub steps_done: u64,
}

pub struct RunSummary {
    pub progress: Progress,
    pub losses: Vec<LossRow>,
    pub interrupted: bool,
}

/// What runs after each epoch's outputs are written: (context, the GAN,
/// the 0-based epoch just finished, steps done). `train --eval-every` scores
/// the generator here.
pub type EpochHook<'a> = dyn FnMut(&GpuContext, &Gan, usize, u64) -> Result<()> + 'a;

/// Runs (or resumes) training. Returns when all epochs are done, or early
/// with `interrupted` set when `interrupt` was raised (state saved).
pub fn train(ctx: &GpuContext, cfg: &TrainConfig, data: &ImageSet, interrupt: &AtomicBool) -> Result<RunSummary> {
    train_with_hook(ctx, cfg, data, interrupt, &mut |_, _, _, _| Ok(()), &mut |_| {})
}

/// `train`, calling `after_epoch` once each epoch's files are written and
/// telling `report` what happens.
pub fn train_with_hook(
    ctx: &GpuContext,
    cfg: &TrainConfig,
    data: &ImageSet,
    interrupt: &AtomicBool,
    after_epoch: &mut EpochHook,
    report: &mut Reporter,
) -> Result<RunSummary> {
    let g = cfg.gan;
    let identity = RunIdentity::of(cfg, data);
    let data = first_images(data, cfg.limit, g.batch)?;

    let dim = data.dim();
    // The resumed state is read and checked before anything is written.
    let (state, progress) = match &cfg.resume {
        Some(dir) => {
            let path = find_latest_state(dir)?;
            let s = load_state(&path, cfg, &identity, dim, data.count)?;
            report(TrainEvent::Note(format!(
                "resuming from {} (epoch {}, step {} of the epoch, {} steps done)",
                path.display(),
                s.progress.epoch,
                s.progress.batch_in_epoch,
                s.progress.steps_done
            )));
            let p = s.progress;
            (Some(s), p)
        }
        None => (None, Progress { epoch: 0, batch_in_epoch: 0, steps_done: 0 }),
    };
    // Held until the run returns: no other run writes this folder meanwhile.
    let _lock = prepare_out_dir(&cfg.out)?;
    let (g_params, d_params) = match &state {
        Some(s) => (s.g_params.clone(), s.d_params.clone()),
        None => initial_params(&g, dim),
    };
    let t_warm = Instant::now();
    if cfg.warmup {
        warm_up_pipelines(ctx, g, dim);
    }
    let warm_s = t_warm.elapsed().as_secs_f64();
    // Only a first launch (empty shader cache) waits this long; say why.
    if warm_s > 1.0 {
        report(TrainEvent::Note(format!(
            "compiled the GPU kernels in {warm_s:.1} s (first launch; the driver caches them for the next)"
        )));
    }
    let t0 = Instant::now();
    let gan = Gan::new(ctx, g, &data, &g_params, &d_params)?;
    if let Some(s) = &state {
        gan.g.m.write_f32(ctx, &s.g_m)?;
        gan.g.v.write_f32(ctx, &s.g_v)?;
        gan.d.m.write_f32(ctx, &s.d_m)?;
        gan.d.v.write_f32(ctx, &s.d_v)?;
        gan.g.write_bn(ctx, &s.g_bn)?;
    }
    let fixed = GridInputs::fixed(g.latent, gan.classes());
    let sampler = Sampler::new(ctx, &gan.g, fixed.len())?;
    checkpoint::atomic_write(
        &cfg.out.join("fixed_latent.npy"),
        &checkpoint::npy_bytes(&[fixed.len(), g.latent], &fixed.latents),
    )?;
    ctx.check_health("building the training graph")?;
    {
        report(TrainEvent::Note(format!("adapter: {}", ctx.describe())));
        report(TrainEvent::Note(format!(
            "data: {} images {}x{} from {}; {} steps an epoch at batch {}; matmul variant {}; reductions {}",
            data.count,
            data.height,
            data.width,
            data.source,
            gan.steps_per_epoch(),
            g.batch,
            ctx.matmul_choice().describe(),
            ctx.reduce_choice().describe()
        )));
        let mem = gan.memory();
        let total: u64 = mem.iter().map(|m| m.1).sum();
        let parts: Vec<String> = mem.iter().map(|(n, b)| format!("{n} {:.2}", *b as f64 / 1048576.0)).collect();
        report(TrainEvent::Note(format!(
            "GPU memory (MiB): {}; total {:.2}",
            parts.join(", "),
            total as f64 / 1048576.0
        )));
        report(TrainEvent::Note(format!(
            "{} dispatches a step, graph built in {:.2} s",
            gan.dispatch_count(),
            t0.elapsed().as_secs_f64()
        )));
    }

    let csv_path = cfg.out.join("losses.csv");
    // A run resumed into another folder keeps its history: the loss rows and
    // the epoch grids come from the folder it was resumed from.
    let mut losses = match &cfg.resume {
        Some(from) => {
            let from_dir = run_dir_of(from);
            if !same_dir(&from_dir, &cfg.out) {
                copy_epoch_grids(&from_dir, &cfg.out, progress.epoch)?;
            }
            read_losses_csv(&from_dir.join("losses.csv"), progress.steps_done)?
        }
        None => Vec::new(),
    };
    let mut runner = StepRunner::new(ctx);
    let mut p = progress;
    let steps_per_epoch = gan.steps_per_epoch();
    let mut steps_this_run = 0u64;
    let mut last_log: (Instant, u64);
    // Where a 1-based global step falls: (0-based epoch, 1-based step in it).
    let position = |step: u64| -> (u64, u64) {
        let spe = steps_per_epoch as u64;
        ((step - 1) / spe, (step - 1) % spe + 1)
    };
    let diverged = |step: u64, epoch_in_progress: usize| -> GanError {
        let (epoch, in_epoch) = position(step);
        GanError::Diverged(format!(
            "the model went non-finite (inf or NaN) at epoch {epoch}, step {in_epoch} of the epoch (global step {step}); {}",
            if epoch_in_progress == 0 {
                "no checkpoint had been written yet".to_string()
            } else {
                format!(
                    "nothing was written after it: the last good checkpoints are epoch {}'s, kept as they were (a lower --lr may help)",
                    epoch_in_progress - 1
                )
            }
        ))
    };
    // Before any checkpoint or state is written: the model must be finite.
    let check_finite = |p: &Progress| -> Result<()> {
        match gan.first_nonfinite_step(ctx)? {
            Some(step) => Err(diverged(step, p.epoch)),
            None => Ok(()),
        }
    };

    let log_line = |epoch: usize, batch: usize, m: &StepMetrics, secs: f64| {
        format!(
            "Epoch:[{:>3}/{:>3}], step:[{:>4}/{:>4}], loss_d:{:.6} , loss_g:{:.6} , time:{:.6}s, lr:{:.6}",
            epoch,
            cfg.epochs,
            batch + 1,
            steps_per_epoch,
            m.loss_d,
            m.loss_g,
            secs,
            g.adam.lr
        )
    };

    while p.epoch < cfg.epochs {
        let epoch_start = Instant::now();
        // A step's printed time is the mean since the last log within this
        // epoch: the previous epoch's images and checkpoints are not a step.
        last_log = (epoch_start, p.steps_done);
        gan.start_epoch(ctx, p.epoch, p.batch_in_epoch, p.steps_done)?;
        report(TrainEvent::EpochStart {
            epoch: p.epoch,
            epochs: cfg.epochs,
            steps: steps_per_epoch,
            done: p.batch_in_epoch,
        });
        let handle = |rows: Vec<StepReading>,
                      losses: &mut Vec<LossRow>,
                      last_log: &mut (Instant, u64),
                      report: &mut Reporter|
         -> Result<()> {
            for r in rows {
                if let Some(step) = r.first_nonfinite {
                    return Err(diverged(step, r.epoch));
                }
                let m = r.metrics;
                // The D-output means propagate a NaN that the clamped logs of
                // the loss could hide, so all four are checked.
                if ![m.loss_d, m.loss_g, m.d_real, m.d_fake].iter().all(|v| v.is_finite()) {
                    return Err(diverged(r.step, r.epoch));
                }
                let secs = last_log.0.elapsed().as_secs_f64() / (r.step - last_log.1).max(1) as f64;
                *last_log = (Instant::now(), r.step);
                losses.push(LossRow {
                    epoch: r.epoch,
                    step: r.step,
                    loss_d: m.loss_d,
                    loss_g: m.loss_g,
                    d_real: m.d_real,
                    d_fake: m.d_fake,
                    seconds: secs,
                });
                report(TrainEvent::Logged(log_line(r.epoch, r.batch, &m, secs)));
            }
            Ok(())
        };
        while p.batch_in_epoch < steps_per_epoch {
            let log_now = (p.batch_in_epoch as u64 + 1).is_multiple_of(cfg.log_every);
            let tag = log_now.then_some((p.epoch, p.batch_in_epoch, p.steps_done + 1));
            let rows = runner.step(ctx, &gan, tag)?;
            p.steps_done += 1;
            p.batch_in_epoch += 1;
            steps_this_run += 1;
            handle(rows, &mut losses, &mut last_log, report)?;
            report(TrainEvent::Position(p.batch_in_epoch));
            if cfg.pause_after_steps == Some(steps_this_run) {
                let rows = runner.finish(ctx)?;
                handle(rows, &mut losses, &mut last_log, report)?;
                report(TrainEvent::Note(format!("paused after {steps_this_run} steps, waiting for a signal")));
                wait_for_interrupt(interrupt);
            }
            let stop = interrupt.load(Ordering::Relaxed) || cfg.stop_after_steps.is_some_and(|n| steps_this_run >= n);
            if stop && p.batch_in_epoch < steps_per_epoch {
                let rows = runner.finish(ctx)?;
                handle(rows, &mut losses, &mut last_log, report)?;
                check_finite(&p)?;
                checkpoint::atomic_write(&csv_path, losses_csv(&losses).as_bytes())?;
                let path = save_state(ctx, &gan, cfg, &identity, &p)?;
                report(TrainEvent::EpochEnd {
                    epoch: p.epoch,
                    seconds: epoch_start.elapsed().as_secs_f64(),
                    finished: false,
                });
                report(TrainEvent::Note(format!(
                    "stopped at epoch {}, step {} of the epoch; state saved to {}",
                    p.epoch,
                    p.batch_in_epoch,
                    path.display()
                )));
                return Ok(RunSummary { progress: p, losses, interrupted: true });
            }
        }
        let rows = runner.finish(ctx)?;
        handle(rows, &mut losses, &mut last_log, report)?;
        check_finite(&p)?;
        let epoch_secs = epoch_start.elapsed().as_secs_f64();
        let finished = p.epoch;
        p.epoch += 1;
        p.batch_in_epoch = 0;
        write_epoch_outputs(ctx, cfg, &gan, &sampler, &fixed, &losses, finished, p.steps_done)?;
        save_state(ctx, &gan, cfg, &identity, &p)?;
        report(TrainEvent::EpochEnd { epoch: finished, seconds: epoch_secs, finished: true });
        after_epoch(ctx, &gan, finished, p.steps_done)?;
        if interrupt.load(Ordering::Relaxed) || cfg.stop_after_steps.is_some_and(|n| steps_this_run >= n) {
            return Ok(RunSummary { progress: p, losses, interrupted: p.epoch < cfg.epochs });
        }
    }
    Ok(RunSummary { progress: p, losses, interrupted: false })
}

/// The test hook behind `--pause-after-steps` (reported as a note just
/// before): waits (at most two minutes) for an interrupt, so that a test can
/// send a signal at a known step instead of racing the trainer.
fn wait_for_interrupt(interrupt: &AtomicBool) {
    let start = Instant::now();
    while !interrupt.load(Ordering::Relaxed) && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}
