//! `gan-wgpu train`: the flags made into a run (with `--resume`, the run's
//! recorded settings for every flag not given again), the data, the device,
//! the quality hook and the log.

use super::{
    defaults, eval, AdamConfig, Arc, AtomicBool, GanConfig, GanError, Ordering, PathBuf, Requirements, Settings,
    TrainArgs, TrainConfig,
};
use gan_wgpu::train as trainer;
use std::collections::HashSet;
use std::io::IsTerminal;

/// With `--resume`, each of the run's settings that the command line does
/// not set comes from the state's record. Returns the ones that differ
/// from the flags' defaults, as flags, for the log.
fn take_recorded_settings(a: &mut TrainArgs, given: &HashSet<String>, rec: &trainer::RecordedRun) -> Vec<String> {
    let mut taken = Vec::new();
    fn take<T: PartialEq + std::fmt::Display + Copy>(
        field: &mut T,
        id: &str,
        recorded: Option<T>,
        given: &HashSet<String>,
        taken: &mut Vec<String>,
    ) {
        if let Some(v) = recorded.filter(|_| !given.contains(id)) {
            if *field != v {
                taken.push(format!("--{} {v}", id.replace('_', "-")));
            }
            *field = v;
        }
    }
    take(&mut a.model, "model", rec.model, given, &mut taken);
    take(&mut a.width, "width", rec.dcgan_width, given, &mut taken);
    take(&mut a.epochs, "epochs", rec.epochs, given, &mut taken);
    take(&mut a.batch_size, "batch_size", rec.batch, given, &mut taken);
    take(&mut a.latent_size, "latent_size", rec.latent, given, &mut taken);
    take(&mut a.seed, "seed", rec.seed, given, &mut taken);
    take(&mut a.lr, "lr", rec.lr, given, &mut taken);
    take(&mut a.beta1, "beta1", rec.beta1, given, &mut taken);
    take(&mut a.beta2, "beta2", rec.beta2, given, &mut taken);
    take(&mut a.ema_decay, "ema_decay", rec.ema_decay, given, &mut taken);
    take(&mut a.loss, "loss", rec.loss, given, &mut taken);
    if let Some(v) = rec.n_critic.filter(|_| !given.contains("n_critic")) {
        if v != a.n_critic.unwrap_or(a.loss.default_n_critic()) {
            taken.push(format!("--n-critic {v}"));
        }
        a.n_critic = Some(v);
    }
    take(&mut a.gp_weight, "gp_weight", rec.gp_weight, given, &mut taken);
    take(&mut a.log_every, "log_every", rec.log_every, given, &mut taken);
    for (field, id, recorded) in
        [(&mut a.data.image_size, "image_size", rec.image_size), (&mut a.data.channels, "channels", rec.channels)]
    {
        if let Some(v) = recorded.filter(|_| !given.contains(id) && rec.data_dir.is_some()) {
            if *field != Some(v) {
                taken.push(format!("--{} {v}", id.replace('_', "-")));
            }
            *field = Some(v);
        }
    }
    if let Some(dir) = rec.data_dir.as_ref().filter(|_| !given.contains("data")) {
        taken.push(format!("--data {}", dir.display()));
        a.data.data = Some(dir.clone());
    }
    if let Some(limit) = rec.limit.filter(|_| !given.contains("limit")) {
        if let Some(n) = limit.filter(|_| a.limit != limit) {
            taken.push(format!("--limit {n}"));
        }
        a.limit = limit;
    }
    taken
}

/// The run the flags describe (after `take_recorded_settings`).
fn train_config(a: &TrainArgs, settings: &Settings) -> TrainConfig {
    // A resumed run goes on in its own folder unless told otherwise.
    let out = match (&a.out, &a.resume) {
        (Some(o), _) => o.clone(),
        (None, Some(r)) => trainer::run_dir_of(r),
        (None, None) => PathBuf::from(defaults::OUT_DIR),
    };
    TrainConfig {
        epochs: a.epochs,
        gan: GanConfig {
            batch: a.batch_size,
            latent: a.latent_size,
            seed: a.seed,
            adam: AdamConfig { lr: a.lr, beta1: a.beta1, beta2: a.beta2, eps: defaults::EPS },
            model: a.model,
            dcgan_width: a.width,
            ema_decay: a.ema_decay,
            loss: a.loss,
            n_critic: a.n_critic.unwrap_or(a.loss.default_n_critic()),
            gp_weight: a.gp_weight,
            classes: defaults::CLASSES,
            data_shard_bytes: a.data_shard_bytes,
        },
        log_every: a.log_every,
        out,
        resume: a.resume.clone(),
        limit: a.limit,
        stop_after_steps: a.stop_after_steps,
        pause_after_steps: a.pause_after_steps,
        warmup: settings.warmup,
        overwrite: a.overwrite,
        tensorboard: !a.no_tensorboard,
        run_log: !a.no_run_log,
    }
}

pub(super) fn train(
    mut a: TrainArgs,
    given: &HashSet<String>,
    settings: &Settings,
    interrupt: &Arc<AtomicBool>,
) -> gan_wgpu::Result<()> {
    if a.log_format == "json" {
        crate::JSON_STDOUT.store(true, Ordering::Relaxed);
    }
    if let Some(r) = &a.resume {
        let rec = trainer::recorded_run(r)?;
        let taken = take_recorded_settings(&mut a, given, &rec);
        if !taken.is_empty() {
            say!("settings of the resumed run: {}", taken.join(" "));
        }
    }
    let data_dir = a.data.data.clone();
    let mut cfg = train_config(&a, settings);
    cfg.validate()?;
    match &cfg.resume {
        Some(r) => say!("outputs in {} (resuming {})", cfg.out.display(), r.display()),
        None => say!("outputs in {}", cfg.out.display()),
    }
    // Every check that can refuse the run comes before the output folder is
    // made: the folder (another run's lock, a run already there), then the
    // data, the model's shape, the batch and the resumed state.
    cfg.check_out_dir()?;
    let set = a.data.load(settings)?;
    // A conditional model draws the data's classes (an image folder's
    // sub-folders; MNIST's ten).
    cfg.gan.classes = set.class_names().len().max(1);
    cfg.check_data(&set)?;
    // A data set larger than one storage binding is held in several
    // (`train::DataShards`): no limit beyond the kernels' own.
    let need = Requirements::default();
    let choice = settings.device_choice(a.device.as_deref())?;
    let ctx = gan_wgpu::engine::autotune::open(&choice, &need, settings)?;
    let mut quality = eval::QualityHook::new(
        a.eval_every,
        data_dir,
        cfg.out.clone(),
        cfg.resume.clone(),
        set.clone(),
        settings.cache_dir.clone(),
    );
    let mut report = train_reporter(a.log_format == "json");
    let summary = trainer::train_with_hook(
        &ctx,
        &cfg,
        &set,
        interrupt,
        &mut |ctx, gan, epoch, steps| quality.after_epoch(ctx, gan, epoch, steps),
        &mut report,
    )?;
    if summary.interrupted && interrupt.load(Ordering::Relaxed) {
        return Err(GanError::Interrupted);
    }
    say!(
        "done: {} epochs, {} steps; outputs in {}",
        summary.progress.epoch,
        summary.progress.steps_done,
        cfg.out.display()
    );
    Ok(())
}

/// Prints the trainer's events: notes and logged steps on stdout (on
/// stderr with `json`, where stdout carries metrics.jsonl's lines), and on
/// a terminal a progress bar per epoch on stderr.
fn train_reporter(json: bool) -> impl FnMut(trainer::TrainEvent) {
    use trainer::TrainEvent;
    let terminal = std::io::stderr().is_terminal();
    let mut bar: Option<indicatif::ProgressBar> = None;
    move |event: TrainEvent| match event {
        TrainEvent::Note(line) | TrainEvent::Logged(line) => match &bar {
            Some(b) => b.println(line),
            None => say!("{line}"),
        },
        // The bar is cleared while the line is written, then redrawn.
        TrainEvent::Metrics(line) if json => match &bar {
            Some(b) => b.suspend(|| println!("{line}")),
            None => println!("{line}"),
        },
        TrainEvent::Metrics(_) => {}
        TrainEvent::EpochStart { epoch, epochs, steps, done } => {
            if terminal {
                let b = indicatif::ProgressBar::new(steps as u64);
                b.set_style(
                    indicatif::ProgressStyle::with_template(
                        "epoch {msg} [{bar:30}] {pos}/{len} steps, {per_sec}, eta {eta}",
                    )
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
                );
                b.set_message(format!("{epoch}/{epochs}"));
                b.set_position(done as u64);
                bar = Some(b);
            }
        }
        TrainEvent::Position(done) => {
            if let Some(b) = &bar {
                b.set_position(done as u64);
            }
        }
        TrainEvent::EpochEnd { epoch, seconds, finished } => {
            if let Some(b) = bar.take() {
                if finished {
                    b.finish_and_clear();
                } else {
                    b.abandon();
                }
            }
            if finished {
                say!("time of epoch {epoch} is {seconds:.2}s");
            }
        }
    }
}
