//! The trainer on the GPU: exact resume, every output file, checkpoint round
//! trips (the step itself: tests/step_gpu.rs).

mod common;
use common::{ctx, random_set};
use gan_wgpu::engine::kernels::adam::AdamConfig;
use gan_wgpu::io::checkpoint;
use gan_wgpu::io::data;
use gan_wgpu::nn::gpu_net::GpuNet;
use gan_wgpu::train::{self, GanConfig, TrainConfig};
use std::sync::atomic::AtomicBool;

/// Random images with MNIST's shape (real data is not needed to check arithmetic).
fn small_run(out: &std::path::Path, epochs: usize, resume: bool, stop_after: Option<u64>) -> train::RunSummary {
    small_run_from(out, epochs, resume.then_some(out), stop_after)
}

/// A run into `out`, resumed from `from` when given.
fn small_run_from(
    out: &std::path::Path,
    epochs: usize,
    from: Option<&std::path::Path>,
    stop_after: Option<u64>,
) -> train::RunSummary {
    run_config(&small_config(out, epochs, from, stop_after))
}

fn run_config(cfg: &TrainConfig) -> train::RunSummary {
    let ctx = ctx().expect("adapter");
    let set = random_set(96, 28, 28, 3);
    train::train(ctx, cfg, &set, &AtomicBool::new(false)).unwrap()
}

/// The small run's configuration: gan, 96 random images, batch 32.
fn small_config(
    out: &std::path::Path,
    epochs: usize,
    from: Option<&std::path::Path>,
    stop_after: Option<u64>,
) -> TrainConfig {
    TrainConfig {
        epochs,
        gan: GanConfig { batch: 32, seed: 9, ..GanConfig::default() },
        log_every: 1,
        out: out.to_path_buf(),
        resume: from.map(|p| p.to_path_buf()),
        limit: None,
        stop_after_steps: stop_after,
        pause_after_steps: None,
        warmup: true,
        overwrite: false,
        tensorboard: true,
        run_log: true,
    }
}

fn assert_same_losses(a: &[gan_wgpu::io::images::LossRow], b: &[gan_wgpu::io::images::LossRow]) {
    assert_eq!(a.len(), b.len());
    for (a, b) in a.iter().zip(b) {
        assert_eq!(
            (a.epoch, a.step, a.loss_d.to_bits(), a.loss_g.to_bits(), a.d_real.to_bits(), a.d_fake.to_bits()),
            (b.epoch, b.step, b.loss_d.to_bits(), b.loss_g.to_bits(), b.d_real.to_bits(), b.d_fake.to_bits()),
            "step {}",
            a.step
        );
    }
}

/// The loss columns of a losses.csv (without the timing column).
fn csv_losses(run: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(run.join("losses.csv"))
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}

#[test]
fn resume_gives_bit_identical_losses_and_files() {
    if ctx().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let full = small_run(&dir.path().join("full"), 3, false, None);
    assert_eq!(full.losses.len(), 9);
    // Stopped mid-epoch (step 4 of 9, inside epoch 1), then resumed.
    let part = dir.path().join("part");
    let first = small_run(&part, 3, false, Some(4));
    assert!(first.interrupted);
    assert_eq!(first.progress.steps_done, 4);
    let rest = small_run(&part, 3, true, None);
    assert!(!rest.interrupted);
    // Stopped at an epoch boundary (after epoch 0 of 3), then resumed.
    let part2 = dir.path().join("part2");
    small_run(&part2, 1, false, None);
    let rest2 = small_run(&part2, 3, true, None);
    // Stopped mid-epoch, resumed into another folder: the history comes along.
    let part3 = dir.path().join("part3");
    small_run(&part3, 3, false, Some(5));
    let moved = dir.path().join("moved");
    let rest3 = small_run_from(&moved, 3, Some(&part3), None);
    for resumed in [&rest, &rest2, &rest3] {
        assert_same_losses(&resumed.losses, &full.losses);
    }
    let full_dir = dir.path().join("full");
    for run in [&part, &part2, &moved] {
        assert_eq!(csv_losses(run), csv_losses(&full_dir), "{}", run.display());
    }
    for grid in ["images/test_0.png", "images/test_ema_0.png"] {
        assert!(moved.join(grid).is_file(), "the earlier epoch grid {grid} comes along");
    }
    // The final checkpoints are identical, byte for byte (fixed metadata order).
    for name in ["generator_2.safetensors", "discriminator_2.safetensors", "generator_0.safetensors"] {
        let want = std::fs::read(full_dir.join("checkpoints").join(name)).unwrap();
        for run in [&part, &part2] {
            assert!(std::fs::read(run.join("checkpoints").join(name)).unwrap() == want, "{name} of {}", run.display());
        }
    }
    assert!(
        std::fs::read(moved.join("checkpoints/generator_2.safetensors")).unwrap()
            == std::fs::read(full_dir.join("checkpoints/generator_2.safetensors")).unwrap()
    );
}

/// A WGAN-GP run (its critic's penalty draws eps from the step counter, so
/// the state needs nothing new) stopped mid-epoch and resumed gives the
/// uninterrupted run's losses bit for bit, and its state records the loss,
/// the critic count and the penalty's weight for `--resume` to take.
#[test]
fn a_wgan_gp_run_resumes_bit_for_bit_and_records_its_settings() {
    if ctx().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = |out: &std::path::Path, from: Option<&std::path::Path>, stop_after| {
        let mut cfg = small_config(out, 3, from, stop_after);
        cfg.gan.loss = gan_wgpu::nn::loss::Loss::WganGp;
        (cfg.gan.n_critic, cfg.gan.gp_weight) = (2, 7.5);
        cfg
    };
    let full = run_config(&config(&dir.path().join("full"), None, None));
    assert!(full.losses.iter().all(|r| r.loss_d.is_finite() && r.loss_g.is_finite()));
    let part = dir.path().join("part");
    assert!(run_config(&config(&part, None, Some(4))).interrupted);
    let rec = train::recorded_run(&part).unwrap();
    assert_eq!((rec.loss, rec.n_critic, rec.gp_weight), (Some(gan_wgpu::nn::loss::Loss::WganGp), Some(2), Some(7.5)));
    let rest = run_config(&config(&part, Some(&part), None));
    assert_same_losses(&rest.losses, &full.losses);
}

/// State files sort by epoch and batch as numbers: past epoch 9999 the
/// names no longer sort as strings.
#[test]
fn the_latest_state_is_found_by_number_not_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let ck = dir.path().join("checkpoints");
    std::fs::create_dir_all(&ck).unwrap();
    for name in ["state_9999_00467.safetensors", "state_10000_00000.safetensors", "state_10000_00012.safetensors"] {
        std::fs::write(ck.join(name), b"").unwrap();
    }
    std::fs::write(ck.join("state_notes.txt"), b"").unwrap();
    let latest = train::find_latest_state(dir.path()).unwrap();
    assert_eq!(latest.file_name().unwrap(), "state_10000_00012.safetensors");
    let all = train::state_files(&ck).unwrap();
    let names: Vec<_> = all.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    assert_eq!(
        names,
        ["state_9999_00467.safetensors", "state_10000_00000.safetensors", "state_10000_00012.safetensors"]
    );
    assert_eq!(train::run_dir_of(&ck.join("state_9999_00467.safetensors")), dir.path());
    assert_eq!(train::run_dir_of(&ck), dir.path());
    assert_eq!(train::run_dir_of(dir.path()), dir.path());
}

/// The same tensors and metadata give the same bytes, whatever order the
/// metadata came in; the header's metadata keys are sorted.
#[test]
fn safetensors_files_are_byte_identical_for_identical_content() {
    let tensors = || vec![("w".to_string(), checkpoint::OwnedTensor::f32(vec![2, 2], &[1.0, 2.0, 3.0, 4.0]))];
    let meta: Vec<(String, String)> =
        ["epoch", "steps_done", "image_height", "image_width", "latent_size", "layers", "network", "format"]
            .iter()
            .enumerate()
            .map(|(i, k)| (k.to_string(), i.to_string()))
            .collect();
    let mut reversed = meta.clone();
    reversed.reverse();
    let a = checkpoint::safetensors_bytes(&tensors(), &meta).unwrap();
    let b = checkpoint::safetensors_bytes(&tensors(), &reversed).unwrap();
    assert!(a == b, "same content, different bytes");
    let header_len = u64::from_le_bytes(a[..8].try_into().unwrap()) as usize;
    let header = std::str::from_utf8(&a[8..8 + header_len]).unwrap();
    let pos: Vec<usize> =
        ["epoch", "format", "image_height", "image_width", "latent_size", "layers", "network", "steps_done"]
            .iter()
            .map(|k| header.find(&format!("\"{k}\"")).unwrap())
            .collect();
    assert!(pos.windows(2).all(|w| w[0] < w[1]), "metadata keys not sorted: {header}");
    // And the format's own reader takes it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.safetensors");
    checkpoint::save_safetensors(&path, &tensors(), &meta).unwrap();
    let loaded = checkpoint::Loaded::open(&path).unwrap();
    assert_eq!(loaded.f32("w", &[2, 2]).unwrap(), [1.0, 2.0, 3.0, 4.0]);
    assert_eq!(loaded.metadata().unwrap()["layers"], "5");
}

#[test]
fn a_short_run_writes_every_output_and_checkpoints_round_trip() {
    let Some(ctx) = ctx() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let s = small_run(&out, 2, false, None);
    assert_eq!(s.progress.epoch, 2);
    for f in [
        "images/test_0.png",
        "images/test_1.png",
        "images/test_ema_0.png",
        "images/test_ema_1.png",
        "checkpoints/generator_0.safetensors",
        "checkpoints/discriminator_0.safetensors",
        "checkpoints/generator_1.safetensors",
        "checkpoints/discriminator_1.safetensors",
        "checkpoints/state_0002_00000.safetensors",
        "losses.csv",
        "losses.png",
        "progress.gif",
        "fixed_latent.npy",
    ] {
        let p = out.join(f);
        assert!(p.is_file() && std::fs::metadata(&p).unwrap().len() > 0, "missing {f}");
    }
    let csv = std::fs::read_to_string(out.join("losses.csv")).unwrap();
    assert!(csv.starts_with("epoch,step,loss_d,loss_g,d_x,d_g_z,seconds\n"));
    assert_eq!(csv.lines().count(), 1 + 6);
    let gif =
        image::codecs::gif::GifDecoder::new(std::io::Cursor::new(std::fs::read(out.join("progress.gif")).unwrap()))
            .unwrap();
    assert_eq!(image::AnimationDecoder::into_frames(gif).count(), 2);

    // The generator checkpoint, read back, gives the epoch grid exactly;
    // the averaged generator's, the averaged grid.
    let spec = gan_wgpu::models::GanArchitecture::tutorial(100, 784).generator;
    let ck = checkpoint::load_network(&out.join("checkpoints/generator_1.safetensors"), &spec).unwrap();
    assert_eq!(ck.bn[1].as_ref().unwrap().num_batches_tracked, 6);
    let (rows, cols, latent) = checkpoint::read_npy_f32_2d(&out.join("fixed_latent.npy")).unwrap();
    assert_eq!((rows, cols), (25, 100));
    assert_eq!(latent, train::fixed_latent(100));
    let counters = gan_wgpu::GpuTensor::zeros(ctx, &[4], "counters");
    let grid_of = |checkpoint: &checkpoint::NetCheckpoint| {
        let g = GpuNet::new(ctx, spec.clone(), &checkpoint.params, &counters, AdamConfig::default()).unwrap();
        g.write_bn(ctx, &checkpoint.bn).unwrap();
        let sampler = train::Sampler::new(ctx, &g, 25).unwrap();
        train::images_from_outputs(&sampler.run(ctx, &latent).unwrap(), 784)
    };
    let averaged = checkpoint::load_network(&out.join("checkpoints/generator_ema_1.safetensors"), &spec).unwrap();
    let (trained_imgs, averaged_imgs) = (grid_of(&ck), grid_of(&averaged));
    assert_ne!(averaged_imgs, trained_imgs, "the averaged grid draws the trained generator");
    for (png, imgs) in [("images/test_1.png", trained_imgs), ("images/test_ema_1.png", averaged_imgs)] {
        let grid = image::open(out.join(png)).unwrap().to_luma8();
        let (scale, pad, cell) = (4u32, 4u32, 28 * 4 + 4);
        for (i, img) in imgs.iter().enumerate() {
            let (gx, gy) = (pad + (i as u32 % 5) * cell, pad + (i as u32 / 5) * cell);
            for y in 0..28u32 {
                for x in 0..28u32 {
                    assert_eq!(
                        grid.get_pixel(gx + x * scale, gy + y * scale)[0],
                        img[(y * 28 + x) as usize],
                        "{png}: sample {i} pixel ({x},{y})"
                    );
                }
            }
        }
    }
    // Without the average (--ema-decay 0) neither its checkpoint nor its grid.
    let plain = dir.path().join("plain");
    let mut cfg = small_config(&plain, 1, None, None);
    cfg.gan.ema_decay = 0.0;
    run_config(&cfg);
    assert!(plain.join("images/test_0.png").is_file());
    for f in ["images/test_ema_0.png", "checkpoints/generator_ema_0.safetensors"] {
        assert!(!plain.join(f).exists(), "{f} written with --ema-decay 0");
    }
    // Saving what was loaded and loading it again changes nothing.
    let again = dir.path().join("again.safetensors");
    checkpoint::save_network(&again, &spec, &ck.params, &ck.bn, Default::default()).unwrap();
    let ck2 = checkpoint::load_network(&again, &spec).unwrap();
    assert_eq!(ck.params, ck2.params);
    assert_eq!(ck.bn, ck2.bn);
    // A discriminator file is refused where a generator is expected.
    let err = checkpoint::load_network(&out.join("checkpoints/discriminator_1.safetensors"), &spec)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("discriminator checkpoint, a generator checkpoint is expected"), "{err}");
}

#[test]
fn idx_reader_reads_raw_and_gzip() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let set = random_set(5, 3, 4, 11);
    let bytes = data::idx_bytes(5, 3, 4, &set.pixels);
    let train = dir.path().join("train");
    std::fs::create_dir_all(&train).unwrap();
    std::fs::write(train.join("train-images-idx3-ubyte"), &bytes).unwrap();
    let raw = data::load_train_dir(dir.path()).unwrap();
    assert_eq!((raw.count, raw.height, raw.width), (5, 3, 4));
    assert_eq!(raw.pixels, set.pixels);
    std::fs::remove_file(train.join("train-images-idx3-ubyte")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes).unwrap();
    std::fs::write(train.join("train-images-idx3-ubyte.gz"), gz.finish().unwrap()).unwrap();
    let mut labels = vec![0, 0, 8, 1, 0, 0, 0, 5];
    labels.extend_from_slice(&[1, 2, 3, 4, 5]);
    std::fs::write(train.join("train-labels-idx1-ubyte"), &labels).unwrap();
    let gzd = data::load_train_dir(dir.path()).unwrap();
    assert_eq!(gzd.pixels, set.pixels);
    assert_eq!(gzd.labels.as_deref(), Some(&[1u8, 2, 3, 4, 5][..]));
    // The embedded MNIST is the canonical set.
    let mnist = data::embedded_mnist().unwrap();
    assert_eq!((mnist.count, mnist.height, mnist.width), (60_000, 28, 28));
    assert_eq!(mnist.labels.as_ref().unwrap().len(), 60_000);
}
