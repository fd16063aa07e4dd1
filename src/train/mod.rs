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
//! The steps run in chunks (to the next logged step) of one submission each,
//! through a `Session`, the loop the page drives too; the host reads back
//! each step's 8 metrics and 4 counters at the end of its chunk.

use crate::engine::context::GpuContext;
use crate::engine::kernels::adam::AdamConfig;
use crate::engine::kernels::dropout::{self, DropoutDraw};
use crate::engine::kernels::matmul::Variant;
use crate::engine::kernels::{ema, gather, rng, Dispatch};
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};
use crate::io::checkpoint::{self, Loaded, OwnedTensor};
use crate::io::data::{DataIdentity, ImageSet};
use crate::io::images::{self, LossRow};
use crate::io::run_log::{Entry, QualityPoint, RunLog};
use crate::models::WhichModel;
use crate::nn::cpu_reference::StepMetrics;
use crate::nn::gpu_net::{self, Activations, ColumnUse, DropoutMasks, GpuNet};
use crate::nn::spec::BnStats;
use crate::nn::spec::NetSpec;
pub use logging::settings_json;
use logging::{open_run_log, summary_json};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

mod gan;
mod logging;
mod outputs;
mod readback;
mod run_dir;
mod session;
mod state;
mod stepping;
mod warmup;

pub use gan::{
    fixed_latent, images_from_outputs, metrics_from, DataShards, Gan, GanConfig, GridInputs, Sampler, FAKE_LABEL_STREAM,
};
use outputs::{copy_epoch_grids, losses_csv, read_losses_csv, same_dir, write_epoch_outputs};
pub use readback::StepReading;
use run_dir::{check_fresh_out_dir, check_not_in_use};
pub use run_dir::{is_in_use, lock_out_dir, open_run_dir, OutDirLock, RunDir, LOCK_FILE};
pub use session::{first_images, initial_params, Session};
use state::SavedState;
pub use state::{
    check_resume, find_latest_state, is_training_state, recorded_run, run_dir_of, state_files, RecordedRun, RunIdentity,
};
use state::{load_state, save_state};
pub use stepping::{RawReading, Stepped, Stepper, MAX_STEPS_PER_CALL};
pub use warmup::warm_up_pipelines;

/// Seed of the 25 fixed latent codes of the per-epoch grids.
pub const FIXED_LATENT_SEED: u64 = 1234;
pub use crate::defaults::GRID_SAMPLES;
/// Training states' format: 2 stores convolution weights (and their Adam
/// moments) in the engine's (kh, kw, c) order; 1, PyTorch's, is converted
/// when resumed.
const STATE_FORMAT: &str = "gan-wgpu-state-2";
const STATE_FORMAT_PYTORCH_ORDER: &str = "gan-wgpu-state-1";
/// Metrics buffer: [loss_d, D(x), D(G(z)), loss_g, D(G(z)) after the D step, unused x3].
const METRICS_LEN: usize = 8;

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
    /// A new run into a folder that holds a run moves that run's files into
    /// `out/previous-<time>/` instead of refusing (`--overwrite`).
    pub overwrite: bool,
    /// Write TensorBoard's event file beside metrics.jsonl (`io::run_log`).
    pub tensorboard: bool,
    /// Write the run log at all (metrics.jsonl, the event file,
    /// summary.json); off only to measure what it costs.
    pub run_log: bool,
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

    /// Whether this run starts a run's files in `out`: a fresh run, or one
    /// resumed into a folder other than its own.
    pub fn starts_files_in_out(&self) -> bool {
        self.resume.as_ref().is_none_or(|r| !outputs::same_dir(&run_dir_of(r), &self.out))
    }

    /// The output folder's checks that need no data and create nothing:
    /// another live run's lock, and a run already there (unless
    /// `overwrite`). The CLI runs them before loading the data.
    pub fn check_out_dir(&self) -> Result<()> {
        if self.out.is_dir() {
            check_not_in_use(&self.out)?;
        }
        if self.starts_files_in_out() {
            check_fresh_out_dir(&self.out, self.overwrite)?;
        }
        Ok(())
    }

    /// Every check of this run against its data (`data`: the whole set,
    /// before `--limit`) that can refuse it, reading files only: a batch
    /// against the images, the model against their shape, and a resume
    /// against its state. Nothing is created.
    pub fn check_data(&self, data: &ImageSet) -> Result<()> {
        let cut = first_images(data, self.limit, self.gan.batch)?;
        self.gan.architecture(cut.shape())?;
        if self.resume.is_some() {
            check_resume(self, data)?;
        }
        Ok(())
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
    /// A line just queued for metrics.jsonl (`--log-format json` prints it).
    Metrics(String),
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
/// the generator here; its scores go into the run's log.
pub type EpochHook<'a> = dyn FnMut(&GpuContext, &Gan, usize, u64) -> Result<Vec<QualityPoint>> + 'a;

/// Runs (or resumes) training. Returns when all epochs are done, or early
/// with `interrupted` set when `interrupt` was raised (state saved).
pub fn train(ctx: &GpuContext, cfg: &TrainConfig, data: &ImageSet, interrupt: &AtomicBool) -> Result<RunSummary> {
    train_with_hook(ctx, cfg, data, interrupt, &mut |_, _, _, _| Ok(Vec::new()), &mut |_| {})
}

/// `train`, calling `after_epoch` once each epoch's files are written and
/// telling `report` what happens. It drives a `Session`, the stepping loop
/// the browser page drives too, a chunk of steps at a time (to the next
/// logged step), and writes the files between chunks.
pub fn train_with_hook(
    ctx: &GpuContext,
    cfg: &TrainConfig,
    data: &ImageSet,
    interrupt: &AtomicBool,
    after_epoch: &mut EpochHook,
    report: &mut Reporter,
) -> Result<RunSummary> {
    let identity = RunIdentity::of(cfg, data);
    let data_identity = DataIdentity::of(data, cfg.limit);
    let data = first_images(data, cfg.limit, cfg.gan.batch)?;
    // Images the model cannot shape, or networks past the device's
    // buffers, are refused before any work.
    cfg.gan.check_fits(ctx, data.shape())?;
    // The resumed state is read and checked before anything is written.
    let state = load_resumed_state(cfg, &identity, &data, report)?;
    // Held until the run returns: no other run writes this folder meanwhile.
    // Until the first file is written, a failure removes what it made.
    let mut run_dir = open_run_dir(&cfg.out, cfg.starts_files_in_out(), cfg.overwrite)?;
    if let Some(aside) = &run_dir.moved_aside {
        report(TrainEvent::Note(format!("--overwrite: the earlier run's files are now in {}", aside.display())));
    }
    warm_up(ctx, cfg, data.shape(), report);
    let t0 = Instant::now();
    let mut session = Session::start(ctx, cfg.gan, &data, state.as_ref())?;
    session.gan.data = data_identity;
    drop(state);
    checkpoint::atomic_write(
        &cfg.out.join("fixed_latent.npy"),
        &checkpoint::npy_bytes(&[session.fixed.len(), cfg.gan.latent], &session.fixed.latents),
    )?;
    run_dir.keep();
    report_setup(ctx, &session, &data, t0, report);
    let losses = carried_losses(cfg, session.progress)?;
    let log = open_run_log(cfg, &data, session.progress.steps_done, report)?;
    let mut run = Run { ctx, cfg, identity, session, losses, steps_this_run: 0, interrupt, report, log };
    let result = run.epochs(after_epoch);
    let summary = summary_json(cfg, &run, &data, &result);
    // The run's own error comes first; the log's, after a finished run.
    let finished = run.log.take().map_or(Ok(()), |log| log.finish(&summary));
    let out = result?;
    finished.map(|()| out)
}

/// The rows of the losses.csv in the run folder `dir` (none without one).
pub fn read_losses(dir: &Path) -> Result<Vec<LossRow>> {
    read_losses_csv(&dir.join("losses.csv"), u64::MAX)
}

/// The state a resumed run goes on from (checked against this run), or None.
fn load_resumed_state(
    cfg: &TrainConfig,
    identity: &RunIdentity,
    data: &ImageSet,
    report: &mut Reporter,
) -> Result<Option<SavedState>> {
    let Some(dir) = &cfg.resume else { return Ok(None) };
    let path = find_latest_state(dir)?;
    let s = load_state(&path, cfg, identity, data.shape(), data.count)?;
    report(TrainEvent::Note(format!(
        "resuming from {} (epoch {}, step {} of the epoch, {} steps done)",
        path.display(),
        s.progress.epoch,
        s.progress.batch_in_epoch,
        s.progress.steps_done
    )));
    Ok(Some(s))
}

/// Compiles the step's pipelines before the first step (CPU adapters), and
/// says why when that took long (a first launch, with an empty shader cache).
fn warm_up(ctx: &GpuContext, cfg: &TrainConfig, dims: crate::nn::spec::ImageShape, report: &mut Reporter) {
    let t_warm = Instant::now();
    if cfg.warmup {
        warm_up_pipelines(ctx, cfg.gan, dims);
    }
    let warm_s = t_warm.elapsed().as_secs_f64();
    if warm_s > 1.0 {
        report(TrainEvent::Note(format!(
            "compiled the GPU kernels in {warm_s:.1} s (first launch; the driver caches them for the next)"
        )));
    }
}

/// The log's opening notes: adapter, data and model, GPU memory, the graph.
fn report_setup(ctx: &GpuContext, session: &Session, data: &ImageSet, t0: Instant, report: &mut Reporter) {
    let (gan, g) = (&session.gan, &session.gan.cfg);
    report(TrainEvent::Note(format!("adapter: {}", ctx.describe())));
    report(TrainEvent::Note(format!(
        "data: {} images {} from {}; {} steps an epoch at batch {}; model {}, loss {}, {} D steps a G step; matmul variant {}; reductions {}",
        data.count,
        data.shape().describe(),
        data.source,
        gan.steps_per_epoch(),
        g.batch,
        g.model.name(),
        g.loss,
        g.n_critic,
        ctx.matmul_choice().describe(),
        ctx.reduce_choice().describe()
    )));
    let mem = gan.memory();
    let total: u64 = mem.iter().map(|m| m.1).sum();
    let parts: Vec<String> = mem.iter().map(|(n, b)| format!("{n} {:.2}", *b as f64 / 1048576.0)).collect();
    report(TrainEvent::Note(format!("GPU memory (MiB): {}; total {:.2}", parts.join(", "), total as f64 / 1048576.0)));
    report(TrainEvent::Note(format!(
        "data held in {} ({:.2} MiB of pixels; largest storage binding {} MiB)",
        gan.data_shards.describe(),
        gan.data_shards.bytes() as f64 / 1048576.0,
        ctx.limits.max_storage_buffer_binding_size >> 20
    )));
    report(TrainEvent::Note(format!(
        "{} dispatches a step, graph built in {:.2} s",
        gan.dispatch_count(),
        t0.elapsed().as_secs_f64()
    )));
}

/// The loss history a run carries on from: a run resumed into another
/// folder keeps its history, the loss rows and the epoch grids of the folder
/// it was resumed from; a new run has none.
fn carried_losses(cfg: &TrainConfig, progress: Progress) -> Result<Vec<LossRow>> {
    let Some(from) = &cfg.resume else { return Ok(Vec::new()) };
    let from_dir = run_dir_of(from);
    if !same_dir(&from_dir, &cfg.out) {
        copy_epoch_grids(&from_dir, &cfg.out, progress.epoch)?;
    }
    read_losses_csv(&from_dir.join("losses.csv"), progress.steps_done)
}

/// A divergence's error, saying where it leaves the files.
fn with_files_note(e: GanError, epoch_in_progress: usize) -> GanError {
    match e {
        GanError::Diverged(m) if epoch_in_progress == 0 => {
            GanError::Diverged(format!("{m}; no checkpoint had been written yet"))
        }
        GanError::Diverged(m) => GanError::Diverged(format!(
            "{m}; nothing was written after it: the last good checkpoints are epoch {}'s, kept as they were (a lower --lr may help)",
            epoch_in_progress - 1
        )),
        other => other,
    }
}

/// A run in progress: the session, its loss history, and where it reports.
struct Run<'a, 'r> {
    ctx: &'a GpuContext,
    cfg: &'a TrainConfig,
    identity: RunIdentity,
    session: Session,
    losses: Vec<LossRow>,
    steps_this_run: u64,
    interrupt: &'a AtomicBool,
    report: &'a mut Reporter<'r>,
    /// metrics.jsonl and TensorBoard (None once finished).
    log: Option<RunLog>,
}

impl Run<'_, '_> {
    /// The epochs left, each's steps then its files; returns at the end or
    /// at a stop.
    fn epochs(&mut self, after_epoch: &mut EpochHook) -> Result<RunSummary> {
        let mut epoch = self.session.progress.epoch;
        while epoch < self.cfg.epochs {
            let epoch_start = Instant::now();
            if let Some(stopped) = self.epoch_steps(epoch, epoch_start)? {
                return Ok(stopped);
            }
            let p = self.finish_epoch(epoch, epoch_start, after_epoch)?;
            epoch += 1;
            if self.asked_to_stop() {
                let losses = self.losses.clone();
                return Ok(RunSummary { progress: p, losses, interrupted: p.epoch < self.cfg.epochs });
            }
        }
        let p = Progress { epoch, batch_in_epoch: 0, steps_done: self.session.progress.steps_done };
        Ok(RunSummary { progress: p, losses: self.losses.clone(), interrupted: false })
    }

    /// Queues `entry` for the run's log and reports its line.
    fn log_entry(&mut self, entry: Entry) {
        if let Some(log) = &mut self.log {
            let line = log.log(entry);
            (self.report)(TrainEvent::Metrics(line));
        }
    }

    /// Whether the run was interrupted or reached `--stop-after-steps`.
    fn asked_to_stop(&self) -> bool {
        self.interrupt.load(Ordering::Relaxed) || self.cfg.stop_after_steps.is_some_and(|n| self.steps_this_run >= n)
    }

    /// Runs the rest of epoch `epoch` in chunks; Some(summary) when the run
    /// stopped inside it (its state saved).
    fn epoch_steps(&mut self, epoch: usize, epoch_start: Instant) -> Result<Option<RunSummary>> {
        let (cfg, steps_per_epoch) = (self.cfg, self.session.steps_per_epoch());
        // A step's printed time is the mean since the last log within this
        // epoch: the previous epoch's images and checkpoints are not a step.
        let mut last_log = (epoch_start, self.session.progress.steps_done);
        let done = if self.session.progress.epoch == epoch { self.session.progress.batch_in_epoch } else { 0 };
        (self.report)(TrainEvent::EpochStart { epoch, epochs: cfg.epochs, steps: steps_per_epoch, done });
        loop {
            let p = self.session.progress;
            let at = if p.epoch == epoch { p.batch_in_epoch } else { 0 };
            if at == steps_per_epoch {
                return Ok(None);
            }
            // A chunk ends at the next logged step, the epoch's end, or a
            // step where the run is asked to stop or pause.
            let to_log = cfg.log_every as usize - at % cfg.log_every as usize;
            let limits = [cfg.stop_after_steps, cfg.pause_after_steps]
                .into_iter()
                .flatten()
                .filter(|&n| n > self.steps_this_run)
                .map(|n| (n - self.steps_this_run) as usize);
            let chunk = limits.fold(to_log.min(steps_per_epoch - at), usize::min);
            let readings =
                pollster::block_on(self.session.run_steps(self.ctx, chunk)).map_err(|e| with_files_note(e, epoch))?;
            self.steps_this_run += readings.len() as u64;
            self.log(&readings, &mut last_log);
            let p = self.session.progress;
            (self.report)(TrainEvent::Position(p.batch_in_epoch));
            if cfg.pause_after_steps == Some(self.steps_this_run) {
                let note = format!("paused after {} steps, waiting for a signal", self.steps_this_run);
                (self.report)(TrainEvent::Note(note));
                wait_for_interrupt(self.interrupt);
            }
            if self.asked_to_stop() && p.batch_in_epoch < steps_per_epoch {
                return self.stop(epoch, epoch_start).map(Some);
            }
        }
    }

    /// Records and reports the logged steps among `readings`.
    fn log(&mut self, readings: &[StepReading], last_log: &mut (Instant, u64)) {
        let (cfg, steps_per_epoch) = (self.cfg, self.session.steps_per_epoch());
        for r in readings.iter().filter(|r| (r.batch as u64 + 1).is_multiple_of(cfg.log_every)) {
            let secs = last_log.0.elapsed().as_secs_f64() / (r.step - last_log.1).max(1) as f64;
            *last_log = (Instant::now(), r.step);
            let m = r.metrics;
            let row = LossRow {
                epoch: r.epoch,
                step: r.step,
                loss_d: m.loss_d,
                loss_g: m.loss_g,
                d_real: m.d_real,
                d_fake: m.d_fake,
                seconds: secs,
            };
            self.losses.push(row);
            self.log_entry(Entry::Step(row));
            (self.report)(TrainEvent::Logged(format!(
                "Epoch:[{:>3}/{:>3}], step:[{:>4}/{:>4}], loss_d:{:.6} , loss_g:{:.6} , time:{:.6}s, lr:{:.6}",
                r.epoch,
                cfg.epochs,
                r.batch + 1,
                steps_per_epoch,
                m.loss_d,
                m.loss_g,
                secs,
                cfg.gan.adam.lr
            )));
        }
    }

    /// Stops inside epoch `epoch`: the losses and a resumable state saved.
    fn stop(&mut self, epoch: usize, epoch_start: Instant) -> Result<RunSummary> {
        let p = self.session.progress;
        self.session.check_finite(self.ctx).map_err(|e| with_files_note(e, epoch))?;
        checkpoint::atomic_write(&self.cfg.out.join("losses.csv"), losses_csv(&self.losses).as_bytes())?;
        let path = save_state(self.ctx, &self.session.gan, self.cfg, &self.identity, &p)?;
        (self.report)(TrainEvent::EpochEnd { epoch, seconds: epoch_start.elapsed().as_secs_f64(), finished: false });
        (self.report)(TrainEvent::Note(format!(
            "stopped at epoch {}, step {} of the epoch; state saved to {}",
            p.epoch,
            p.batch_in_epoch,
            path.display()
        )));
        Ok(RunSummary { progress: p, losses: self.losses.clone(), interrupted: true })
    }

    /// After epoch `epoch`'s last step: its files, the state (as the start
    /// of the next epoch, which the session starts at its next step), the hook.
    fn finish_epoch(&mut self, epoch: usize, epoch_start: Instant, after_epoch: &mut EpochHook) -> Result<Progress> {
        self.session.check_finite(self.ctx).map_err(|e| with_files_note(e, epoch))?;
        let seconds = epoch_start.elapsed().as_secs_f64();
        let p = Progress { epoch: epoch + 1, batch_in_epoch: 0, steps_done: self.session.progress.steps_done };
        write_epoch_outputs(self.ctx, self.cfg, &self.session, &self.losses, epoch, p.steps_done)?;
        save_state(self.ctx, &self.session.gan, self.cfg, &self.identity, &p)?;
        (self.report)(TrainEvent::EpochEnd { epoch, seconds, finished: true });
        let grids = outputs::grid_files(epoch, self.session.gan.g_ema.is_some());
        self.log_entry(Entry::Epoch { epoch, step: p.steps_done, seconds, grids });
        for point in after_epoch(self.ctx, &self.session.gan, epoch, p.steps_done)? {
            self.log_entry(Entry::Quality(point));
        }
        Ok(p)
    }
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
