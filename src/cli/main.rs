//! gan-wgpu command line.

/// Set by `train --log-format json`: stdout carries only the JSON lines,
/// and every other line the CLI writes goes to stderr.
static JSON_STDOUT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// println!, or eprintln! while stdout carries the JSON stream.
macro_rules! say {
    ($($arg:tt)*) => {
        if crate::JSON_STDOUT.load(std::sync::atomic::Ordering::Relaxed) {
            eprintln!($($arg)*)
        } else {
            println!($($arg)*)
        }
    };
}

mod bench;
mod bench_conv;
mod bench_log;
mod compare;
mod data_args;
mod eval;
mod sample;
mod train_cmd;

use clap::{Parser, Subcommand};
use gan_wgpu::engine::context;
use gan_wgpu::engine::kernels::adam::AdamConfig;
use gan_wgpu::eval::{classifier, evaluate};
use gan_wgpu::io::{checkpoint, data, images};
use gan_wgpu::models::WhichModel;
use gan_wgpu::nn::loss::Loss;
use gan_wgpu::train::{self, GanConfig, TrainConfig};
use gan_wgpu::{defaults, GanError, GpuContext, Requirements, Settings};
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
#[command(
    name = "gan-wgpu",
    version,
    about = "Train a GAN on MNIST or your own pictures entirely on the GPU (WebGPU compute shaders)"
)]
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
        #[command(flatten)]
        data: data_args::DataArgs,
        /// PNG file to write the grid to.
        #[arg(long, value_name = "FILE", default_value = "data_grid.png")]
        out: PathBuf,
    },
    /// List every GPU adapter with the limits and features that matter here.
    Devices,
    /// Compare runs side by side: a table of their differing settings, FID, time and status, a figure of their curves and a sheet of their latest grids.
    Compare(compare::CompareArgs),
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
        /// The model whose training step is timed (the kernel and convolution tables are the same for every model).
        #[arg(long, value_name = "MODEL", default_value_t = WhichModel::default())]
        model: WhichModel,
        /// The loss of the timed step, with its default --n-critic (the step's time is the mean over D-only and full steps).
        #[arg(long, value_name = "LOSS", default_value_t = Loss::default())]
        loss: Loss,
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
    /// The networks: gan (the tutorial's), cgan (the same, conditioned on the class label; needs labelled data) or dcgan (convolutional, PyTorch's examples/dcgan; images of 28x28, 32x32 or 64x64).
    #[arg(long, value_name = "MODEL", default_value_t = WhichModel::default())]
    model: WhichModel,
    /// dcgan's base channel count W (ngf = ndf): 28x28 G 2W, W; 32x32 G 4W, 2W, W; 64x64 G 8W, 4W, 2W, W (D the mirror).
    #[arg(long, value_name = "W", default_value_t = defaults::DCGAN_WIDTH)]
    width: usize,
    /// The loss: bce (the tutorial's, on D's sigmoid), hinge (on D's raw score: D minimises E[relu(1 - D(x))] + E[relu(1 + D(G(z)))], G minimises -E[D(G(z))]) or wgan-gp (Wasserstein with gradient penalty on the critic's raw score: D minimises E[D(G(z))] - E[D(x)] + lambda E[(||grad D(x_hat)|| - 1)^2]; --model gan).
    #[arg(long, value_name = "LOSS", default_value_t = Loss::default())]
    loss: Loss,
    /// Discriminator steps per generator step: every batch trains D, and G trains every N-th batch [default: 1, 5 with --loss wgan-gp].
    #[arg(long, value_name = "N")]
    n_critic: Option<usize>,
    /// The gradient penalty's weight lambda under --loss wgan-gp.
    #[arg(long, value_name = "LAMBDA", default_value_t = defaults::GP_WEIGHT)]
    gp_weight: f32,
    /// Decay of an exponential moving average of the generator, in [0, 1): checkpoints/generator_ema_N.safetensors and images/test_ema_N.png, scored by --eval-every beside the trained one; 0: none.
    #[arg(long, value_name = "DECAY", default_value_t = defaults::EMA_DECAY)]
    ema_decay: f32,
    /// Adapter: auto, discrete, integrated, cpu or an index from `gan-wgpu devices` (default: GAN_WGPU_DEVICE, else auto).
    #[arg(long, value_name = "DEVICE")]
    device: Option<String>,
    #[command(flatten)]
    data: data_args::DataArgs,
    /// Output folder for images, checkpoints, losses and the resumable state (default: with --resume the resumed run's folder, else ./result). One run at a time writes a folder.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// A new run into a folder that holds a run moves that run's files into DIR/previous-<time>/ (nothing is deleted) instead of refusing.
    #[arg(long)]
    overwrite: bool,
    /// Continue the run whose output folder (or state file) this is, with its loss history and, for every flag not given again, its settings (--data too) (no default: a new run).
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
    /// Hold the data set in GPU buffers of at most N bytes each (tests; default: the device's largest storage binding).
    #[arg(long, hide = true, value_name = "N")]
    data_shard_bytes: Option<u64>,
    /// What stdout carries: text (the log lines) or json (metrics.jsonl's lines as they are written; every other line goes to stderr).
    #[arg(long, value_name = "FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Write no TensorBoard event file (tensorboard/); metrics.jsonl and summary.json are always written.
    #[arg(long)]
    no_tensorboard: bool,
    /// Write no metrics.jsonl, event file or summary.json (measuring what they cost: docs/performance.md).
    #[arg(long, hide = true)]
    no_run_log: bool,
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
    /// The data to score against (a labelled image folder, or IDX files: the classifier trains on DIR/train, the reference is DIR/test, else images held out); --image-size and --channels default to the generator's recorded data.
    #[command(flatten)]
    data: data_args::DataArgs,
    /// Classifier checkpoint to use instead of the cached or newly trained one.
    #[arg(long, value_name = "FILE")]
    classifier: Option<PathBuf>,
    /// Also write the numbers as JSON to this file (keys fid, inception_score, classes_covered, class_histogram, n).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Also score three reference sets: real training images (the floor), uniform noise, and one class only.
    #[arg(long)]
    baselines: bool,
    /// Write the classifier in half precision with the reference set's feature Gaussian (safetensors, 1.3 MB for 28x28 images) to this file: what the web page scores with.
    #[arg(long, value_name = "FILE")]
    export_classifier: Option<PathBuf>,
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
    /// Folder to write every sample into as its own PNG (sample_00000.png, ...; grey or RGB).
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// IDX uint8 file for every sample, pixel = round((g + 1) * 127.5): dims (n, h, w), or (n, h, w, 3) for colour (give this and/or --out).
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

/// `given`: the ids of the flags the command line set (not defaulted).
fn run(
    cli: Cli,
    given: &std::collections::HashSet<String>,
    interrupt: Arc<AtomicBool>,
    launch: std::time::Instant,
) -> gan_wgpu::Result<()> {
    // Every GAN_WGPU_* setting, checked before any adapter work.
    let settings = Settings::from_env()?;
    match cli.command {
        Command::Devices => {
            print!("{}", context::describe_adapters()?);
            Ok(())
        }
        Command::Bench { quick, json, device, batch_size, model, loss } => {
            positive("--batch-size", batch_size as f64)?;
            let choice = settings.device_choice(device.as_deref())?;
            let ctx = gan_wgpu::engine::autotune::open(&choice, &Requirements::default(), &settings)?;
            println!("adapter: {}", ctx.describe());
            // A CPU adapter's figures are the host CPU's: name it with them.
            let cpu = ctx.is_cpu_adapter().then(|| settings.host_cpu.clone().unwrap_or_else(|| "unknown".into()));
            if let Some(c) = &cpu {
                println!("cpu: {c} (every figure below is this CPU's, through the adapter)");
            }
            // Made before the timed start-up, as `train` makes it.
            println!("matmul variant: {}", ctx.matmul_choice().describe());
            println!("reductions: {}", ctx.reduce_choice().describe());
            let steps = if quick { 20 } else { 100 };
            let step = bench::run_step_bench(&ctx, (model, loss), batch_size, steps, launch, settings.warmup)?;
            print!("{}", bench::format_step(&step));
            println!(
                "kernels: {}, median over trials ('*' = variant the trainer uses)",
                gan_wgpu::engine::timing::kernel_timing(&ctx)
            );
            let rows = bench::run_kernel_bench(&ctx, &bench::BenchOptions { quick, batch: batch_size })?;
            print!("{}", bench::format_rows(&rows));
            println!(
                "convolutions of dcgan's step (width {}), columns and matmul, against the matmul alone:",
                defaults::DCGAN_WIDTH
            );
            let conv = bench_conv::run_conv_bench(&ctx, batch_size, quick)?;
            print!("{}", bench_conv::format_conv(&conv));
            if let Some(path) = json {
                std::fs::write(
                    &path,
                    bench::to_json(
                        Some(&step),
                        &rows,
                        bench_conv::conv_json(&conv),
                        &ctx.describe(),
                        cpu.as_deref(),
                        ctx.matmul_choice(),
                        gan_wgpu::engine::timing::kernel_timing(&ctx),
                    ),
                )
                .map_err(|e| GanError::io(&path, e))?;
            }
            Ok(())
        }
        Command::ShowData { data: dir, out } => {
            let set = dir.load(&settings)?;
            let n = set.count.min(25);
            let imgs: Vec<Vec<u8>> = (0..n).map(|i| set.image(i).to_vec()).collect();
            images::save_grid(&out, &imgs, set.shape())?;
            println!("{n} training images from {} -> {}", set.source, out.display());
            Ok(())
        }
        Command::Train(a) => train_cmd::train(a, given, &settings, &interrupt),
        Command::Compare(a) => compare::compare(a),
        Command::Sample(a) => sample::sample(a, &settings),
        Command::Eval(a) => eval::eval(a, &settings),
    }
}

/// The ids of the subcommand's flags that the command line set, as opposed
/// to those left at their defaults (`train --resume` fills those from the run).
fn flags_given(matches: &clap::ArgMatches) -> std::collections::HashSet<String> {
    let Some((_, sub)) = matches.subcommand() else { return Default::default() };
    sub.ids()
        .filter(|id| sub.value_source(id.as_str()) == Some(clap::parser::ValueSource::CommandLine))
        .map(|id| id.as_str().to_string())
        .collect()
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
    let matches = <Cli as clap::CommandFactory>::command().get_matches();
    let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let given = flags_given(&matches);
    let interrupt = Arc::new(AtomicBool::new(false));
    {
        let flag = interrupt.clone();
        // Ctrl-C or SIGTERM: finish the step, save a resumable state, exit 130.
        let _ = ctrlc::set_handler(move || {
            if flag.swap(true, Ordering::SeqCst) {
                eprintln!("second interrupt: exiting now");
                std::process::exit(gan_wgpu::error::exit_code::INTERRUPTED.into());
            }
            eprintln!("interrupt: finishing the current step and saving a resumable state...");
        });
    }
    match run(cli, &given, interrupt, launch) {
        Ok(()) => ExitCode::SUCCESS,
        Err(GanError::Interrupted) => ExitCode::from(gan_wgpu::error::exit_code::INTERRUPTED),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
