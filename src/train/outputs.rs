//! What a run writes for a user: the epoch grids, checkpoints, losses.csv
//! and losses.png, progress.gif; and the history a resumed run carries over.

use super::{
    checkpoint, images, images_from_outputs, GanError, GpuContext, LossRow, Path, PathBuf, Result, Session, TrainConfig,
};

/// The rows of a losses.csv up to `up_to_step` (a missing file has none).
pub(super) fn read_losses_csv(path: &Path, up_to_step: u64) -> Result<Vec<LossRow>> {
    let Some(text) = checkpoint::read_text_if_exists(path)? else {
        return Ok(Vec::new());
    };
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            if f.len() != 7 {
                return None;
            }
            Some(LossRow {
                epoch: f[0].parse().ok()?,
                step: f[1].parse().ok()?,
                loss_d: f[2].parse().ok()?,
                loss_g: f[3].parse().ok()?,
                d_real: f[4].parse().ok()?,
                d_fake: f[5].parse().ok()?,
                seconds: f[6].parse().ok()?,
            })
        })
        .filter(|r| r.step <= up_to_step)
        .collect())
}

pub(super) fn losses_csv(rows: &[LossRow]) -> String {
    let mut s = String::from("epoch,step,loss_d,loss_g,d_x,d_g_z,seconds\n");
    for r in rows {
        // Shortest round-trip form: a resumed run reads these back bit-exact.
        s.push_str(&format!(
            "{},{},{},{},{},{},{:.6}\n",
            r.epoch, r.step, r.loss_d, r.loss_g, r.d_real, r.d_fake, r.seconds
        ));
    }
    s
}

pub(super) fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Copies the grids of epochs before `epochs` (images/test_{e}.png, and the
/// average's test_ema_{e}.png) from the folder a run resumes from into its
/// new output folder: the GIF is drawn from them.
pub(super) fn copy_epoch_grids(from: &Path, to: &Path, epochs: usize) -> Result<()> {
    for name in (0..epochs).flat_map(|e| [format!("test_{e}.png"), format!("test_ema_{e}.png")]) {
        let src = from.join("images").join(&name);
        let dst = to.join("images").join(&name);
        if src.is_file() && !dst.exists() {
            let bytes = std::fs::read(&src).map_err(|err| GanError::io(&src, err))?;
            checkpoint::atomic_write(&dst, &bytes)?;
        }
    }
    Ok(())
}

/// An epoch's grids inside the run folder with their TensorBoard tags: the
/// trained generator's, and its average's when the run keeps one.
pub(super) fn grid_files(epoch: usize, averaged: bool) -> Vec<(&'static str, PathBuf)> {
    let mut grids = vec![("grid/trained", Path::new("images").join(format!("test_{epoch}.png")))];
    if averaged {
        grids.push(("grid/averaged", Path::new("images").join(format!("test_ema_{epoch}.png"))));
    }
    grids
}

/// The averaged generator's checkpoint after epoch `epoch` (`--ema-decay`),
/// beside `generator_{epoch}.safetensors`.
fn averaged_generator_file(epoch: usize) -> String {
    format!("generator_ema_{epoch}.safetensors")
}

/// After epoch `epoch` (0-based, as the log counts it, and as the
/// tutorial's test_0.png and Generator0 are named): grids and checkpoints
/// (of the averaged generator too), losses.csv/png, GIF.
pub(super) fn write_epoch_outputs(
    ctx: &GpuContext,
    cfg: &TrainConfig,
    session: &Session,
    losses: &[LossRow],
    epoch: usize,
    steps_done: u64,
) -> Result<()> {
    let out = &cfg.out;
    let gan = &session.gan;
    let shape = gan.shape();
    let grids = grid_files(epoch, gan.g_ema.is_some());
    let samples = pollster::block_on(session.grid_outputs(ctx))?;
    images::save_grid(&out.join(&grids[0].1), &images_from_outputs(&samples, gan.dim), shape)?;
    if let (Some(samples), Some(averaged)) = (pollster::block_on(session.averaged_grid_outputs(ctx))?, grids.get(1)) {
        images::save_grid(&out.join(&averaged.1), &images_from_outputs(&samples, gan.dim), shape)?;
    }
    let (g_bytes, d_bytes) = pollster::block_on(gan.checkpoint_files_async(ctx, epoch, steps_done))?;
    checkpoint::atomic_write(&out.join("checkpoints").join(format!("generator_{epoch}.safetensors")), &g_bytes)?;
    checkpoint::atomic_write(&out.join("checkpoints").join(format!("discriminator_{epoch}.safetensors")), &d_bytes)?;
    if let Some(bytes) = pollster::block_on(gan.averaged_generator_file_async(ctx, epoch, steps_done))? {
        checkpoint::atomic_write(&out.join("checkpoints").join(averaged_generator_file(epoch)), &bytes)?;
    }
    checkpoint::atomic_write(&out.join("losses.csv"), losses_csv(losses).as_bytes())?;
    images::save_loss_plot(&out.join("losses.png"), losses)?;
    // progress.gif: epoch 0, every 5th epoch (4, 9, ...), and the latest.
    let frames: Vec<PathBuf> = (0..=epoch)
        .filter(|e| *e == 0 || (e + 1) % 5 == 0 || *e == epoch)
        .map(|e| out.join("images").join(format!("test_{e}.png")))
        .filter(|p| p.is_file())
        .collect();
    let refs: Vec<&Path> = frames.iter().map(PathBuf::as_path).collect();
    images::save_gif(&out.join("progress.gif"), &refs)
}
