//! gan-wgpu command line.

use clap::{Parser, Subcommand};
use gan_wgpu::kernels::adam::AdamConfig;
use gan_wgpu::train::{self, GanConfig, TrainConfig};
use gan_wgpu::{checkpoint, context, data, images, model, DeviceChoice, GanError, GpuContext, Requirements};
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
        #[arg(long, value_name = "N", default_value_t = 128)]
        batch_size: usize,
    },
}

#[derive(clap::Args)]
struct TrainArgs {
    /// Number of passes over the data set (epochs are numbered from 0, as the tutorial's files).
    #[arg(long, value_name = "N", default_value_t = 200)]
    epochs: usize,
    /// Real images per step (the generator makes as many), at least 2.
    #[arg(long, value_name = "N", default_value_t = 128)]
    batch_size: usize,
    /// Length of the generator's latent code z.
    #[arg(long, value_name = "N", default_value_t = 100)]
    latent_size: usize,
    /// Adam learning rate of both networks.
    #[arg(long, value_name = "RATE", default_value_t = 2e-4)]
    lr: f32,
    /// Adam beta1 (first-moment decay), in [0, 1).
    #[arg(long, value_name = "B", default_value_t = 0.5)]
    beta1: f32,
    /// Adam beta2 (second-moment decay), in [0, 1).
    #[arg(long, value_name = "B", default_value_t = 0.999)]
    beta2: f32,
    /// Seed of the initial weights, the shuffles and the latent codes.
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// Adapter: auto, discrete, integrated, cpu or an index from `gan-wgpu devices` (default: GAN_WGPU_DEVICE, else auto).
    #[arg(long, value_name = "DEVICE")]
    device: Option<String>,
    /// Image folder in the seed's layout (DIR/train/train-images-idx3-ubyte[.gz]); default: the bundled MNIST.
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Output folder for images, checkpoints, losses and the resumable state.
    #[arg(long, value_name = "DIR", default_value = "result")]
    out: PathBuf,
    /// Continue the run whose output folder (or state file) this is, with its loss history (no default: a new run).
    #[arg(long, value_name = "DIR")]
    resume: Option<PathBuf>,
    /// Print and record the losses every N steps.
    #[arg(long, value_name = "N", default_value_t = 10)]
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
struct SampleArgs {
    /// Generator checkpoint to sample from (a generator_{epoch}.safetensors file).
    #[arg(long, value_name = "FILE")]
    checkpoint: PathBuf,
    /// Number of images to generate (ignored with --latent).
    #[arg(long, value_name = "N", default_value_t = 25)]
    count: usize,
    /// Seed of the latent codes (ignored with --latent).
    #[arg(long, value_name = "S", default_value_t = 0)]
    seed: u64,
    /// float32 .npy file of shape (count, latent size) holding the latent codes (default: drawn from --seed).
    #[arg(long, value_name = "FILE")]
    latent: Option<PathBuf>,
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
    match cli.command {
        Command::Devices => {
            print!("{}", context::describe_adapters()?);
            Ok(())
        }
        Command::Bench { quick, json, device, batch_size } => {
            positive("--batch-size", batch_size as f64)?;
            let choice = DeviceChoice::from_flag_or_env(device.as_deref())?;
            let ctx = GpuContext::new(&choice, &Requirements::default())?;
            println!("adapter: {}", ctx.describe());
            // Made before the timed start-up, as `train` makes it.
            println!("matmul variant: {}", ctx.matmul_choice().describe());
            println!("reductions: {}", ctx.reduce_choice().describe());
            let step = gan_wgpu::bench::run_step_bench(&ctx, batch_size, if quick { 20 } else { 100 }, launch)?;
            print!("{}", gan_wgpu::bench::format_step(&step));
            println!(
                "kernels: {}, median over trials ('*' = variant the trainer uses)",
                gan_wgpu::bench::kernel_timing(&ctx)
            );
            let rows =
                gan_wgpu::bench::run_kernel_bench(&ctx, &gan_wgpu::bench::BenchOptions { quick, batch: batch_size })?;
            print!("{}", gan_wgpu::bench::format_rows(&rows));
            if let Some(path) = json {
                std::fs::write(
                    &path,
                    gan_wgpu::bench::to_json(
                        Some(&step),
                        &rows,
                        &ctx.describe(),
                        ctx.matmul_choice(),
                        gan_wgpu::bench::kernel_timing(&ctx),
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
            positive("--epochs", a.epochs as f64)?;
            positive("--batch-size", a.batch_size as f64)?;
            if a.batch_size < 2 {
                return Err(GanError::Flag {
                    flag: "--batch-size",
                    why: "batch norm needs at least 2 samples a batch".into(),
                });
            }
            positive("--latent-size", a.latent_size as f64)?;
            positive("--lr", a.lr as f64)?;
            positive("--log-every", a.log_every as f64)?;
            for (flag, b) in [("--beta1", a.beta1), ("--beta2", a.beta2)] {
                if !(0.0..1.0).contains(&b) {
                    return Err(GanError::Flag { flag, why: format!("must be in [0, 1), got {b}") });
                }
            }
            if a.limit == Some(0) {
                return Err(GanError::Flag { flag: "--limit", why: "must be greater than zero".into() });
            }
            train::prepare_out_dir(&a.out)?;
            let set = data::load(a.data.as_deref())?;
            let dataset_bytes = (set.pixels.len() as u64).div_ceil(4) * 4;
            let need = Requirements {
                // The whole dataset is one storage binding.
                max_storage_buffer_binding_size: dataset_bytes,
                max_buffer_size: dataset_bytes,
                ..Requirements::default()
            };
            let choice = DeviceChoice::from_flag_or_env(a.device.as_deref())?;
            let ctx = GpuContext::new(&choice, &need)?;
            let cfg = TrainConfig {
                epochs: a.epochs,
                gan: GanConfig {
                    batch: a.batch_size,
                    latent: a.latent_size,
                    seed: a.seed,
                    adam: AdamConfig { lr: a.lr, beta1: a.beta1, beta2: a.beta2, eps: 1e-8 },
                },
                log_every: a.log_every,
                out: a.out,
                resume: a.resume,
                limit: a.limit,
                stop_after_steps: a.stop_after_steps,
                pause_after_steps: a.pause_after_steps,
                quiet: false,
            };
            let summary = train::train(&ctx, &cfg, &set, &interrupt)?;
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
        Command::Sample(a) => sample(a),
    }
}

fn sample(a: SampleArgs) -> gan_wgpu::Result<()> {
    positive("--count", a.count as f64)?;
    if a.out.is_none() && a.idx.is_none() {
        return Err(GanError::Flag { flag: "--out", why: "give --out FILE.png and/or --idx FILE".into() });
    }
    // The checkpoint says its own sizes: latent from model.0.weight [128, latent],
    // image size from model.11.weight [dim, 1024] and the metadata.
    let file = checkpoint::Loaded::open(&a.checkpoint)?;
    let bad = |why: String| GanError::Checkpoint { path: a.checkpoint.clone(), why };
    let meta = file.metadata()?;
    if meta.get("network").is_some_and(|n| n != "generator") {
        return Err(bad(format!("this is a {} checkpoint, a generator checkpoint is expected", meta["network"])));
    }
    let latent = match file.shape_of("model.0.weight").as_deref() {
        Some([_, l]) => *l,
        _ => return Err(bad("tensor 'model.0.weight' is missing or not 2-D: not a generator checkpoint".into())),
    };
    let dim = match file.shape_of("model.11.weight").as_deref() {
        Some([d, _]) => *d,
        _ => return Err(bad("tensor 'model.11.weight' is missing or not 2-D: not a generator checkpoint".into())),
    };
    let spec = model::generator_spec(latent, dim);
    let ck = checkpoint::load_network(&a.checkpoint, &spec)?;
    let (h, w) = checkpoint::image_shape(&a.checkpoint, &meta, dim)?;
    let (count, z) = match &a.latent {
        Some(p) => {
            let (rows, cols, z) = checkpoint::read_npy_f32_2d(p)?;
            if cols != latent {
                return Err(GanError::data(p, format!("latent codes are {cols} wide, the generator takes {latent}")));
            }
            (rows, z)
        }
        None => (
            a.count,
            gan_wgpu::kernels::rng::cpu_normal(
                a.count * latent,
                gan_wgpu::kernels::rng::RngStream { seed: a.seed, stream: 2, draw_base: 0 },
                0,
            ),
        ),
    };
    let ctx = GpuContext::new(&DeviceChoice::from_flag_or_env(a.device.as_deref())?, &Requirements::default())?;
    let counters = gan_wgpu::GpuTensor::zeros(&ctx, &[4], "counters");
    let g = gan_wgpu::network::GpuNet::new(&ctx, spec, &ck.params, &counters, AdamConfig::default())?;
    g.write_bn(&ctx, &ck.bn)?;
    let sampler = train::Sampler::new(&ctx, &g, count)?;
    let out = sampler.run(&ctx, &z)?;
    let imgs = train::images_from_outputs(&out, dim);
    if let Some(p) = &a.out {
        images::save_grid(p, &imgs, h, w)?;
        println!("{count} samples -> {}", p.display());
    }
    if let Some(p) = &a.idx {
        let pixels: Vec<u8> = imgs.concat();
        checkpoint::atomic_write(p, &data::idx_bytes(count, h, w, &pixels))?;
        println!("{count} samples (IDX uint8 {count}x{h}x{w}) -> {}", p.display());
    }
    Ok(())
}

fn main() -> ExitCode {
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
