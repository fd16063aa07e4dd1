//! gan-wgpu command line.

use clap::{Parser, Subcommand};
use gan_wgpu::{context, DeviceChoice, GanError, GpuContext, Requirements};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "gan-wgpu",
    version,
    about = "Train a GAN on MNIST entirely on the GPU (WebGPU compute shaders)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List every GPU adapter with the limits and features that matter here.
    Devices,
    /// Time every kernel and variant at the model's real shapes.
    Bench {
        /// Fewer repetitions; skips the naive reference matmul.
        #[arg(long)]
        quick: bool,
        /// Write the figures as JSON to this file too.
        #[arg(long)]
        json: Option<std::path::PathBuf>,
        /// auto, discrete, integrated, cpu or an index from `gan-wgpu devices`.
        #[arg(long)]
        device: Option<String>,
        #[arg(long, default_value_t = 128)]
        batch_size: usize,
    },
}

fn run(cli: Cli) -> gan_wgpu::Result<()> {
    match cli.command {
        Command::Devices => {
            print!("{}", context::describe_adapters()?);
            Ok(())
        }
        Command::Bench {
            quick,
            json,
            device,
            batch_size,
        } => {
            let choice = DeviceChoice::from_flag_or_env(device.as_deref())?;
            let ctx = GpuContext::new(&choice, &Requirements::default())?;
            println!("adapter: {}", ctx.describe());
            println!("timing: wall clock around a synchronised submit, median over trials ('*' = variant the trainer uses)");
            let rows = gan_wgpu::bench::run_kernel_bench(
                &ctx,
                &gan_wgpu::bench::BenchOptions {
                    quick,
                    batch: batch_size,
                },
            )?;
            print!("{}", gan_wgpu::bench::format_rows(&rows));
            if let Some(path) = json {
                std::fs::write(&path, gan_wgpu::bench::rows_to_json(&rows, &ctx.describe()))
                    .map_err(|e| GanError::io(&path, e))?;
            }
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(GanError::Interrupted) => ExitCode::from(130),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
