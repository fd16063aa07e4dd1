//! gan-wgpu command line.

mod bench;

use clap::{Parser, Subcommand};
use gan_wgpu::kernels::adam::AdamConfig;
use gan_wgpu::model::WhichModel;
use gan_wgpu::train::{self, GanConfig, TrainConfig};
use gan_wgpu::{
    checkpoint, classifier, context, data, defaults, evaluate, images, GanError, GpuContext, Requirements, Settings,
};
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// wgpu-core allocates and frees small objects for every pass and command
/// buffer it records; with mimalloc the host time to encode a training step
/// drops by about a fifth (README, Performance).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "gan-wgpu", version, about = "Train a GAN on MNIST entirely on the GPU (WebGPU compute shaders)")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train the GAN (defaults reproduce the tutorial on the bundled MNIST).
    Train(TrainArgs),
    /// Generate images from a generator checkpoint (batch norm in eval mode).
    Sample(SampleArgs),
    /// Score images or a generator against the real test set with a classifier trained by this engine (FID, IS, classes covered).
    Eval(EvalArgs),
    /// Save a 5x5 grid of training images.
    ShowData {
        /// Image folder in the seed's layout (DIR/train/train-images-idx3-ubyte[.gz]); default: the bundled MNIST.
        #[arg(long, value_name = "DIR")]
        data: Option<PathBuf>,
        /// PNG file to write the grid to.
        #[arg(long, value_name = "FILE", default_value = "data_grid.png")]
        out: PathBuf,
    },
    /// List every GPU adapter with the limits and features that matter here.
    Devices,
    /// Time every kernel and variant at the model's real shapes.
    Bench {
        /// Fewer repetitions (20 timed steps instead of 100); skips the naive reference matmul.
        #[arg(long)]
        quick: bool,
        /// Also write the figures as JSON to this file.
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Adapter: auto, discrete, integrated, cpu or an index from `gan-wgpu devices` (default: GAN_WGPU_DEVICE, else auto).
        #[arg(long, value_name = "DEVICE")]
        device: Option<String>,
        /// Images per training step timed, in images.
        #[arg(long, value_name = "N", default_value_t = defaults::BATCH)]
        batch_size: usize,
    },
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Number of passes over the data set (epochs are numbered from 0, as the tutorial's files).
    #[arg(long, value_name = "N", default_value_t = defaults::EPOCHS)]
    epochs: usize,
    /// Real images per step (the generator makes as many), at least 2.
    #[arg(long, value_name = "N", default_value_t = defaults::BATCH)]
    batch_size: usize,
    /// Length of the generator's latent code z.
    #[arg(long, value_name = "N", default_value_t = defaults::LATENT)]
    latent_size: usize,
    /// Adam learning rate of both networks.
    #[arg(long, value_name = "RATE", default_value_t = defaults::LR)]
    lr: f32,
    /// Adam beta1 (first-moment decay), in [0, 1).
    #[arg(long, value_name = "B", default_value_t = defaults::BETA1)]
    beta1: f32,
    /// Adam beta2 (second-moment decay), in [0, 1).
    #[arg(long, value_name = "B", default_value_t = defaults::BETA2)]
    beta2: f32,
    /// Seed of the initial weights, the shuffles and the latent codes.
    #[arg(long, value_name = "S", default_value_t = defaults::SEED)]
    seed: u64,
    /// The networks: gan (the tutorial's) or cgan (the same, conditioned on the class label; needs labelled data).
    #[arg(long, value_name = "MODEL", default_value_t = WhichModel::default())]
    model: WhichModel,
    /// Adapter: auto, discrete, integrated, cpu or an index from `gan-wgpu devices` (default: GAN_WGPU_DEVICE, else auto).
    #[arg(long, value_name = "DEVICE")]
    device: Option<String>,
    /// Image folder in the seed's layout (DIR/train/train-images-idx3-ubyte[.gz]); default: the bundled MNIST.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Output folder for images, checkpoints, losses and the resumable state (default: with --resume the resumed run's folder, else ./result). One run at a time writes a folder.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Continue the run whose output folder (or state file) this is, with its loss history; it must use the same data, --limit and sizes (no default: a new run).
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Score the generator every N epochs (FID, IS, classes covered against the test split; quality.csv, quality.png); 0: never.
    #[arg(long, value_name = "N", default_value_t = defaults::EVAL_EVERY)]
    eval_every: usize,
    /// Print and record the losses every N steps.
    #[arg(long, value_name = "N", default_value_t = defaults::LOG_EVERY)]
    log_every: u64,
    /// Train on the first N images only (default: all).
    #[arg(long, value_name = "N")]
    limit: Option<usize>,
    /// Stop after N steps of this run, saving a resumable state.
    #[arg(long, hide = true)]
    stop_after_steps: Option<u64>,
    /// After N steps of this run, print a line and wait for a signal (tests).
    #[arg(long, hide = true)]
    pause_after_steps: Option<u64>,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// IDX uint8 file of images to score, as `sample --idx` writes it.
    #[arg(long, value_name = "FILE")]
    samples: Option<PathBuf>,
    /// Generator checkpoint to score: --count samples drawn with --seed (batch norm in eval mode).
    #[arg(long, value_name = "FILE")]
    checkpoint: Option<PathBuf>,
    /// Number of generator samples (and of baseline images) to score.
    #[arg(long, value_name = "N", default_value_t = defaults::EVAL_COUNT)]
    count: usize,
    /// Seed of the generator's latent codes (the same codes `sample --seed` draws).
    #[arg(long, value_name = "S", default_value_t = defaults::SEED)]
    seed: u64,
    /// Labelled image folder in the seed's layout: the classifier trains on DIR/train, the reference is DIR/test (else DIR/train); default: the bundled MNIST.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Classifier checkpoint to use instead of the cached or newly trained one.
    #[arg(long, value_name = "FILE")]
    classifier: Option<PathBuf>,
    /// Also write the numbers as JSON to this file (keys fid, inception_score, classes_covered, class_histogram, n).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also score three reference sets: real training images (the floor), uniform noise, and one class only.
    #[arg(long)]
    baselines: bool,
    /// Adapter: auto, discrete, integrated, cpu or an index from `gan-wgpu devices` (default: GAN_WGPU_DEVICE, else auto).
    #[arg(long, value_name = "DEVICE")]
    device: Option<String>,
}

#[derive(clap::Args)]
struct SampleArgs {
    /// Generator checkpoint to sample from (a generator_{epoch}.safetensors file).
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// Number of images to generate (ignored with --latent).
    #[arg(long, value_name = "N", default_value_t = defaults::GRID_SAMPLES)]
    count: usize,
    /// Seed of the latent codes (ignored with --latent).
    #[arg(long, value_name = "S", default_value_t = defaults::SEED)]
    seed: u64,
    /// float32 .npy file of shape (count, latent size) holding the latent codes (default: drawn from --seed).
    #[arg(long, value_name = "FILE")]
    latent: Option<PathBuf>,
    /// A conditional (cgan) generator: draw this class for every sample.
    #[arg(long, value_name = "K", conflicts_with = "classes")]
    class: Option<u32>,
    /// A conditional (cgan) generator: a row per class, each from the same latent codes (default: every class).
    #[arg(long, value_name = "K,K,...", value_delimiter = ',')]
    classes: Option<Vec<u32>>,
    /// PNG file for a grid of the samples (give this and/or --idx).
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// IDX uint8 file for every sample, pixel = round((g + 1) * 127.5) (give this and/or --out).
    #[arg(long, value_name = "FILE")]
    idx: Option<PathBuf>,
    /// Adapter: auto, discrete, integrated, cpu or an index from `gan-wgpu devices` (default: GAN_WGPU_DEVICE, else auto).
    #[arg(long, value_name = "DEVICE")]
    device: Option<String>,
}

fn positive(flag: &'static str, v: f64) -> gan_wgpu::Result<()> {
    if v > 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(GanError::Flag { flag, why: format!("must be greater than zero, got {v}") })
    }
}

fn run(cli: Cli, interrupt: Arc<AtomicBool>, launch: std::time::Instant) -> gan_wgpu::Result<()> {
    // Every GAN_WGPU_* setting, checked before any adapter work.
    let settings = Settings::from_env()?;
    match cli.command {
        Command::Devices => {
            print!("{}", context::describe_adapters()?);
            Ok(())
        }
        Command::Bench { quick, json, device, batch_size } => {
            positive("--batch-size", batch_size as f64)?;
            let choice = settings.device_choice(device.as_deref())?;
            let ctx = gan_wgpu::autotune::open(&choice, &Requirements::default(), &settings)?;
            println!("adapter: {}", ctx.describe());
            // A CPU adapter's figures are the host CPU's: name it with them.
            let cpu = ctx.is_cpu_adapter().then(|| settings.host_cpu.clone().unwrap_or_else(|| "unknown".into()));
            if let Some(c) = &cpu {
                println!("cpu: {c} (every figure below is this CPU's, through the adapter)");
            }
            // Made before the timed start-up, as `train` makes it.
            println!("matmul variant: {}", ctx.matmul_choice().describe());
            println!("reductions: {}", ctx.reduce_choice().describe());
            let step = bench::run_step_bench(&ctx, batch_size, if quick { 20 } else { 100 }, launch, settings.warmup)?;
            print!("{}", bench::format_step(&step));
            println!(
                "kernels: {}, median over trials ('*' = variant the trainer uses)",
                gan_wgpu::timing::kernel_timing(&ctx)
            );
            let rows = bench::run_kernel_bench(&ctx, &bench::BenchOptions { quick, batch: batch_size })?;
            print!("{}", bench::format_rows(&rows));
            if let Some(path) = json {
                std::fs::write(
                    &path,
                    bench::to_json(
                        Some(&step),
                        &rows,
                        &ctx.describe(),
                        cpu.as_deref(),
                        ctx.matmul_choice(),
                        gan_wgpu::timing::kernel_timing(&ctx),
                    ),
                )
                .map_err(|e| GanError::io(&path, e))?;
            }
            Ok(())
        }
        Command::ShowData { data: dir, out } => {
            let set = data::load(dir.as_deref())?;
            let n = set.count.min(25);
            let imgs: Vec<Vec<u8>> = (0..n).map(|i| set.image(i).to_vec()).collect();
            images::save_grid(&out, &imgs, set.height, set.width)?;
            println!("{n} training images from {} -> {}", set.source, out.display());
            Ok(())
        }
        Command::Train(a) => {
            let data_dir = a.data.clone();
            // A resumed run goes on in its own folder unless told otherwise.
            let out = match (&a.out, &a.resume) {
                (Some(o), _) => o.clone(),
                (None, Some(r)) => train::run_dir_of(r),
                (None, None) => PathBuf::from(defaults::OUT_DIR),
            };
            let cfg = TrainConfig {
                epochs: a.epochs,
                gan: GanConfig {
                    batch: a.batch_size,
                    latent: a.latent_size,
                    seed: a.seed,
                    adam: AdamConfig { lr: a.lr, beta1: a.beta1, beta2: a.beta2, eps: defaults::EPS },
                    model: a.model,
                },
                log_every: a.log_every,
                out,
                resume: a.resume,
                limit: a.limit,
                stop_after_steps: a.stop_after_steps,
                pause_after_steps: a.pause_after_steps,
                warmup: settings.warmup,
            };
            cfg.validate()?;
            match &cfg.resume {
                Some(r) => println!("outputs in {} (resuming {})", cfg.out.display(), r.display()),
                None => println!("outputs in {}", cfg.out.display()),
            }
            // A new run locks its folder before loading anything, so a second
            // run into it fails at once. A resumed run is first checked
            // against its state (data, limit, sizes), so a mismatch writes nothing.
            let early_lock = match cfg.resume {
                None => Some(train::prepare_out_dir(&cfg.out)?),
                Some(_) => None,
            };
            let set = data::load(data_dir.as_deref())?;
            let _lock = match early_lock {
                Some(l) => l,
                None => {
                    train::check_resume(&cfg, &set)?;
                    train::prepare_out_dir(&cfg.out)?
                }
            };
            let dataset_bytes = (set.pixels.len() as u64).div_ceil(4) * 4;
            let need = Requirements {
                // The whole dataset is one storage binding.
                max_storage_buffer_binding_size: dataset_bytes,
                max_buffer_size: dataset_bytes,
                ..Requirements::default()
            };
            let choice = settings.device_choice(a.device.as_deref())?;
            let ctx = gan_wgpu::autotune::open(&choice, &need, &settings)?;
            let mut quality = QualityHook::new(
                a.eval_every,
                data_dir,
                cfg.out.clone(),
                cfg.resume.clone(),
                set.clone(),
                settings.cache_dir.clone(),
            );
            let mut report = train_reporter();
            let summary = train::train_with_hook(
                &ctx,
                &cfg,
                &set,
                &interrupt,
                &mut |ctx, gan, epoch, steps| quality.after_epoch(ctx, gan, epoch, steps),
                &mut report,
            )?;
            if summary.interrupted && interrupt.load(Ordering::Relaxed) {
                return Err(GanError::Interrupted);
            }
            println!(
                "done: {} epochs, {} steps; outputs in {}",
                summary.progress.epoch,
                summary.progress.steps_done,
                cfg.out.display()
            );
            Ok(())
        }
        Command::Sample(a) => sample(a, &settings),
        Command::Eval(a) => eval(a, &settings),
    }
}

fn sample(a: SampleArgs, settings: &Settings) -> gan_wgpu::Result<()> {
    positive("--count", a.count as f64)?;
    if a.out.is_none() && a.idx.is_none() {
        return Err(GanError::Flag { flag: "--out", why: "give --out FILE.png and/or --idx FILE".into() });
    }
    // Read and check the files before opening a device.
    checkpoint::Loaded::open(&a.checkpoint)?;
    let latent_file = a.latent.as_ref().map(|p| checkpoint::read_npy_f32_2d(p).map(|l| (p, l))).transpose()?;
    let ctx =
        gan_wgpu::autotune::open(&settings.device_choice(a.device.as_deref())?, &Requirements::default(), settings)?;
    let g = evaluate::load_generator(&ctx, &a.checkpoint)?;
    let dim = g.height * g.width;
    let (count, z) = match latent_file {
        Some((p, (rows, cols, z))) => {
            if cols != g.latent {
                return Err(GanError::data(
                    p,
                    format!("latent codes are {cols} wide, the generator takes {}", g.latent),
                ));
            }
            (rows, z)
        }
        None => (a.count, evaluate::sample_latents(a.count, g.latent, a.seed)),
    };
    // A conditional generator: the classes of each row (every row has the
    // same codes); an unconditional one takes no class.
    let rows: Option<Vec<u32>> = match (g.net.spec.embedding.as_ref(), a.class, a.classes) {
        (None, None, None) => None,
        (None, ..) => {
            let flag = if a.class.is_some() { "--class" } else { "--classes" };
            return Err(GanError::Flag {
                flag,
                why: format!(
                    "{} is an unconditional generator (no label embedding): train with --model cgan to choose classes",
                    a.checkpoint.display()
                ),
            });
        }
        (Some(e), class, classes) => {
            let rows = match (class, classes) {
                (Some(k), _) => vec![k],
                (None, Some(ks)) => ks,
                (None, None) => (0..e.classes as u32).collect(),
            };
            if let Some(k) = rows.iter().find(|&&k| k as usize >= e.classes) {
                let flag = if a.class.is_some() { "--class" } else { "--classes" };
                return Err(GanError::Flag {
                    flag,
                    why: format!("{k} is not a class of this generator (0..{})", e.classes - 1),
                });
            }
            Some(rows)
        }
    };
    let (z, labels, cols) = match &rows {
        None => (z, None, None),
        Some(rows) => {
            let labels: Vec<u32> = rows.iter().flat_map(|&k| std::iter::repeat_n(k, count)).collect();
            let z: Vec<f32> = rows.iter().flat_map(|_| z.iter().copied()).collect();
            (z, Some(labels), (rows.len() > 1).then_some(count))
        }
    };
    let total = labels.as_ref().map_or(count, Vec::len);
    let sampler = train::Sampler::new(&ctx, &g.net, total)?;
    let out = sampler.run_labeled(&ctx, &z, labels.as_deref())?;
    let imgs = train::images_from_outputs(&out, dim);
    let count = total;
    if let Some(p) = &a.out {
        match cols {
            Some(c) => images::save_grid_with_columns(p, &imgs, g.height, g.width, c)?,
            None => images::save_grid(p, &imgs, g.height, g.width)?,
        }
        match &rows {
            Some(r) => println!(
                "{count} samples, classes {} -> {}",
                r.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
                p.display()
            ),
            None => println!("{count} samples -> {}", p.display()),
        }
    }
    if let Some(p) = &a.idx {
        let pixels: Vec<u8> = imgs.concat();
        checkpoint::atomic_write(p, &data::idx_bytes(count, g.height, g.width, &pixels))?;
        println!("{count} samples (IDX uint8 {count}x{}x{}) -> {}", g.height, g.width, p.display());
    }
    Ok(())
}

/// Prints the trainer's events: notes and logged steps on stdout, and on a
/// terminal a progress bar per epoch on stderr.
fn train_reporter() -> impl FnMut(train::TrainEvent) {
    use train::TrainEvent;
    let terminal = std::io::stderr().is_terminal();
    let mut bar: Option<indicatif::ProgressBar> = None;
    move |event: TrainEvent| match event {
        TrainEvent::Note(line) | TrainEvent::Logged(line) => match &bar {
            Some(b) => b.println(line),
            None => println!("{line}"),
        },
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
                println!("time of epoch {epoch} is {seconds:.2}s");
            }
        }
    }
}

/// Prints the classifier's training progress on stderr: a bar on a
/// terminal, a line per epoch otherwise.
fn classifier_progress() -> impl FnMut(&classifier::Progress) {
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template("classifier {msg} [{bar:30}] {pos}/{len} steps, eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    move |p: &classifier::Progress| {
        let msg =
            format!("epoch {}/{}: loss {:.4}, batch accuracy {:.1}%", p.epoch, p.epochs, p.loss, 100.0 * p.accuracy);
        match &bar {
            Some(b) => {
                b.set_length((p.steps * p.epochs) as u64);
                b.set_position((p.epoch * p.steps + p.step) as u64);
                b.set_message(msg);
                if p.epoch + 1 == p.epochs && p.step == p.steps {
                    b.finish_and_clear();
                }
            }
            None if p.step == p.steps => eprintln!("classifier {msg}"),
            None => {}
        }
    }
}

/// The classifier for a data set: `--classifier FILE`, else the cached or
/// newly trained one, with progress shown.
fn classifier_for(
    ctx: &GpuContext,
    file: Option<&std::path::Path>,
    train_set: &data::ImageSet,
    test: &data::ImageSet,
    cache_dir: Option<&std::path::Path>,
) -> gan_wgpu::Result<classifier::Classifier> {
    match file {
        Some(p) => classifier::load(p),
        None => {
            eprintln!(
                "classifier: looking in the cache, else training one on {} ({} images)",
                train_set.source, train_set.count
            );
            classifier::load_or_train(
                ctx,
                train_set,
                test,
                &classifier::ClassifierConfig::default(),
                cache_dir,
                &mut classifier_progress(),
            )
        }
    }
}

/// The classifier's line; `accuracy_name` says what its accuracy was
/// measured on (`EvalSplits::accuracy_name`).
fn describe_classifier(c: &classifier::Classifier, accuracy_name: &str) -> String {
    format!(
        "{}-512-256-{} MLP, {accuracy_name} {:.2}%, {} (training took {:.1} s)",
        c.height * c.width,
        c.classes,
        100.0 * c.test_accuracy,
        c.origin,
        c.train_seconds
    )
}

/// Samples scored by `train --eval-every` (and their latent-code seed).
const QUALITY_SAMPLES: usize = defaults::EVAL_COUNT;
const QUALITY_SEED: u64 = defaults::SEED;

/// `train --eval-every N`: after every N-th epoch, scores 10,000 samples of
/// the generator, appends to quality.csv, draws quality.png, prints a line,
/// and warns on too few classes or a rising FID. The classifier and the
/// reference statistics are made at the first evaluation.
struct QualityHook {
    every: usize,
    data: Option<PathBuf>,
    out: PathBuf,
    resume: Option<PathBuf>,
    train_set: data::ImageSet,
    /// Where the trained classifier is cached (`Settings::cache_dir`).
    cache_dir: Option<PathBuf>,
    evaluator: Option<evaluate::Evaluator>,
    rows: Option<Vec<evaluate::QualityRow>>,
    disabled: bool,
}

impl QualityHook {
    fn new(
        every: usize,
        data: Option<PathBuf>,
        out: PathBuf,
        resume: Option<PathBuf>,
        train_set: data::ImageSet,
        cache_dir: Option<PathBuf>,
    ) -> Self {
        QualityHook { every, data, out, resume, train_set, cache_dir, evaluator: None, rows: None, disabled: false }
    }

    fn after_epoch(&mut self, ctx: &GpuContext, gan: &train::Gan, epoch: usize, steps: u64) -> gan_wgpu::Result<()> {
        if self.every == 0 || self.disabled || !(epoch + 1).is_multiple_of(self.every) {
            return Ok(());
        }
        if self.evaluator.is_none() {
            let made = (|| -> gan_wgpu::Result<evaluate::Evaluator> {
                classifier::classes_of(&self.train_set)?;
                let splits = data::eval_splits(self.data.as_deref(), &self.train_set)?;
                let c = classifier_for(ctx, None, &splits.train, &splits.reference, self.cache_dir.as_deref())?;
                println!("quality: classifier {}", describe_classifier(&c, splits.accuracy_name()));
                println!("quality: reference {}", splits.describe());
                evaluate::Evaluator::new(ctx, c, &splits.reference)
            })();
            match made {
                Ok(ev) => self.evaluator = Some(ev),
                Err(e) => {
                    eprintln!("warning: --eval-every is off for this run: {e}");
                    self.disabled = true;
                    return Ok(());
                }
            }
        }
        let ev = self.evaluator.as_ref().expect("made above");
        let csv = self.out.join("quality.csv");
        if self.rows.is_none() {
            // A resumed run keeps the rows of the steps before it.
            let from = self.resume.as_deref().map(train::run_dir_of).unwrap_or_else(|| self.out.clone());
            let mut rows = evaluate::read_quality_csv(&from.join("quality.csv"), steps)?;
            rows.retain(|r| r.step < steps);
            self.rows = Some(rows);
        }
        let t = std::time::Instant::now();
        let s = ev.score_generator(ctx, &gan.g, QUALITY_SAMPLES, QUALITY_SEED)?;
        let seconds = t.elapsed().as_secs_f64();
        let rows = self.rows.as_mut().expect("read above");
        rows.push(evaluate::QualityRow {
            epoch,
            step: steps,
            fid: s.fid,
            inception_score: s.inception_score,
            classes_covered: s.classes_covered,
            seconds,
            conditional: s.conditional.as_ref().map(|c| (c.accuracy, c.mean_fid())),
        });
        checkpoint::atomic_write(&csv, evaluate::quality_csv(rows).as_bytes())?;
        let points: Vec<(u64, f64, usize)> = rows.iter().map(|r| (r.step, r.fid, r.classes_covered)).collect();
        images::save_quality_plot(&self.out.join("quality.png"), &points, ev.classifier.classes)?;
        let conditional = s.conditional.as_ref().map_or(String::new(), |c| {
            format!(", conditional accuracy {:.2}%, mean class FID {:.2}", 100.0 * c.accuracy, c.mean_fid())
        });
        println!(
            "quality after epoch {epoch}: FID {:.2}, IS {:.2}, {}/{} classes covered{conditional} ({} samples, {:.1} s)",
            s.fid, s.inception_score, s.classes_covered, ev.classifier.classes, s.n, seconds
        );
        for w in evaluate::warnings(rows, ev.classifier.classes) {
            eprintln!("warning: {w}");
        }
        Ok(())
    }
}

fn eval(a: EvalArgs, settings: &Settings) -> gan_wgpu::Result<()> {
    positive("--count", a.count as f64)?;
    if a.samples.is_none() && a.checkpoint.is_none() && !a.baselines {
        return Err(GanError::Flag {
            flag: "--samples",
            why: "give --samples FILE.idx, --checkpoint G.safetensors and/or --baselines".into(),
        });
    }
    let full_train = data::load(a.data.as_deref())?;
    classifier::classes_of(&full_train)?;
    let splits = data::eval_splits(a.data.as_deref(), &full_train)?;
    drop(full_train);
    let (train_set, reference) = (&splits.train, &splits.reference);
    let samples = a.samples.as_ref().map(|p| data::read_images(p, None)).transpose()?;
    if let Some(s) = &samples {
        if (s.height, s.width) != (reference.height, reference.width) {
            return Err(GanError::data(
                &s.source,
                format!(
                    "samples are {}x{}, the reference images {}x{}",
                    s.height, s.width, reference.height, reference.width
                ),
            ));
        }
    }
    let ctx =
        gan_wgpu::autotune::open(&settings.device_choice(a.device.as_deref())?, &Requirements::default(), settings)?;
    let c = classifier_for(&ctx, a.classifier.as_deref(), train_set, reference, settings.cache_dir.as_deref())?;
    println!("classifier: {}", describe_classifier(&c, splits.accuracy_name()));
    let ev = evaluate::Evaluator::new(&ctx, c, reference)?;
    println!("reference: {}", splits.describe());
    println!(
        "FID here is the Frechet distance in this classifier's {}-d penultimate features (not Inception's: not comparable with published FIDs)",
        classifier::FEATURE_DIM
    );
    let mut rows: Vec<(String, gan_wgpu::quality::Score)> = Vec::new();
    if let Some(s) = &samples {
        rows.push((format!("samples {}", s.source), ev.score_pixels(&ctx, &s.pixels, s.count)?));
    }
    if let Some(p) = &a.checkpoint {
        let g = evaluate::load_generator(&ctx, p)?;
        if g.height * g.width != reference.dim() {
            return Err(GanError::Checkpoint {
                path: p.clone(),
                why: format!(
                    "the generator makes {}x{} images, the reference set has {}x{}",
                    g.height, g.width, reference.height, reference.width
                ),
            });
        }
        let score = ev.score_generator(&ctx, &g.net, a.count, a.seed)?;
        rows.push((format!("generator {} ({} samples, seed {})", p.display(), a.count, a.seed), score));
    }
    let mut baselines = Vec::new();
    if a.baselines {
        let n = a.count.min(train_set.count);
        let dim = train_set.dim();
        baselines.push((
            "real train images (the floor)".to_string(),
            ev.score_pixels(&ctx, &train_set.pixels[..n * dim], n)?,
        ));
        let mut r = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(a.seed);
        let noise: Vec<u8> = (0..n * dim).map(|_| rand::Rng::random::<u8>(&mut r)).collect();
        baselines.push(("uniform noise".to_string(), ev.score_pixels(&ctx, &noise, n)?));
        let labels = train_set.labels.as_ref().expect("classes_of checked the labels");
        let one: Vec<u8> = (0..train_set.count)
            .filter(|&i| labels[i] == 1)
            .take(n)
            .flat_map(|i| train_set.image(i).to_vec())
            .collect();
        let k = one.len() / dim;
        baselines.push(("collapsed: real images of class 1 only".to_string(), ev.score_pixels(&ctx, &one, k)?));
    }
    println!("{:<58} {:>6} {:>9} {:>6} {:>8}  class histogram", "set", "n", "FID", "IS", "classes");
    for (name, s) in rows.iter().chain(&baselines) {
        println!(
            "{:<58} {:>6} {:>9.2} {:>6.2} {:>5}/{:<2}  {:?}",
            name, s.n, s.fid, s.inception_score, s.classes_covered, ev.classifier.classes, s.class_histogram
        );
    }
    for (name, s) in &rows {
        if let Some(c) = &s.conditional {
            println!(
                "{name}: conditional accuracy {:.2}% (the classifier agrees with the class asked for), FID per class {}, mean {:.2}",
                100.0 * c.accuracy,
                c.fid_per_class.iter().enumerate().map(|(k, f)| format!("{k}:{f:.1}")).collect::<Vec<_>>().join(" "),
                c.mean_fid()
            );
        }
    }
    if let Some(path) = &a.json {
        let score_json = |s: &gan_wgpu::quality::Score| {
            let mut v = serde_json::json!({
                "n": s.n,
                "fid": s.fid,
                "inception_score": s.inception_score,
                "classes_covered": s.classes_covered,
                "class_histogram": s.class_histogram,
            });
            if let Some(c) = &s.conditional {
                v["conditional_accuracy"] = c.accuracy.into();
                v["fid_per_class"] = c.fid_per_class.clone().into();
                v["mean_class_fid"] = c.mean_fid().into();
            }
            v
        };
        let mut v = match rows.first() {
            Some((name, s)) => {
                let mut v = score_json(s);
                v["set"] = name.clone().into();
                v
            }
            None => serde_json::json!({}),
        };
        v["classifier"] = serde_json::json!({
            "test_accuracy": ev.classifier.test_accuracy,
            "accuracy_measured_on": splits.describe(),
            "train_seconds": ev.classifier.train_seconds,
            "origin": ev.classifier.origin,
            "feature_dim": classifier::FEATURE_DIM,
        });
        v["reference"] = ev.reference_desc.clone().into();
        if rows.len() > 1 {
            v["others"] = rows[1..]
                .iter()
                .map(|(n, s)| {
                    let mut j = score_json(s);
                    j["set"] = n.clone().into();
                    j
                })
                .collect();
        }
        if !baselines.is_empty() {
            v["baselines"] = baselines
                .iter()
                .map(|(n, s)| {
                    let mut j = score_json(s);
                    j["set"] = n.clone().into();
                    j
                })
                .collect();
        }
        let text = serde_json::to_string_pretty(&v).map_err(|e| GanError::data(path, e.to_string()))?;
        checkpoint::atomic_write(path, text.as_bytes())?;
    }
    Ok(())
}

fn main() -> ExitCode {
    // A reader that stops early (`gan-wgpu bench | head`) ends the process
    // quietly, as it does any Unix tool, instead of a panic in println!.
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of SIGPIPE at start-up,
    // before any thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let launch = std::time::Instant::now();
    let cli = Cli::parse();
    let interrupt = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupt.clone();
        // Ctrl-C or SIGTERM: finish the step, save a resumable state, exit 130.
        let _ = ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                eprintln!("second interrupt: exiting now");
                std::process::exit(130);
            }
            eprintln!("interrupt: finishing the current step and saving a resumable state...");
        });
    }
    match run(cli, interrupt, launch) {
        Ok(()) => ExitCode::SUCCESS,
        Err(GanError::Interrupted) => ExitCode::from(130),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
