//! The page's engine on the native host: `Session` (the training run a
//! browser page drives without blocking) gives the CLI trainer's losses and
//! checkpoint files bit for bit, and the kernel self-test the page runs
//! passes on this adapter.

mod common;
use common::{ctx, random_set};
use gan_wgpu::train::{self, GanConfig, Session, TrainConfig};
use std::sync::atomic::AtomicBool;

#[test]
fn session_steps_equal_the_trainers_losses_and_checkpoints() {
    let Some(ctx) = ctx() else { return };
    let set = random_set(100, 28, 28, 41);
    let gan = GanConfig { batch: 32, seed: 17, ..GanConfig::default() };
    let dir = tempfile::tempdir().unwrap();
    let cfg = TrainConfig {
        epochs: 2,
        gan,
        log_every: 1,
        out: dir.path().to_path_buf(),
        resume: None,
        limit: None,
        stop_after_steps: None,
        pause_after_steps: None,
        warmup: true,
        overwrite: false,
        tensorboard: true,
        run_log: true,
    };
    let run = train::train(ctx, &cfg, &set, &AtomicBool::new(false)).unwrap();
    assert_eq!(run.losses.len(), 6, "3 steps an epoch, 2 epochs");

    let mut session = Session::new(ctx, gan, &set).unwrap();
    let mut readings = Vec::new();
    // Asking for more than the epoch holds stops at its end.
    let first = pollster::block_on(session.run_steps(ctx, 5)).unwrap();
    assert_eq!(first.len(), 3);
    readings.extend(first);
    let (g_bytes, d_bytes) = pollster::block_on(session.checkpoint_files(ctx)).unwrap();
    let ckpt = dir.path().join("checkpoints");
    assert!(g_bytes == std::fs::read(ckpt.join("generator_0.safetensors")).unwrap(), "generator after epoch 0");
    assert!(d_bytes == std::fs::read(ckpt.join("discriminator_0.safetensors")).unwrap(), "discriminator after epoch 0");
    readings.extend(pollster::block_on(session.run_steps(ctx, 1)).unwrap());
    readings.extend(pollster::block_on(session.run_steps(ctx, 2)).unwrap());
    assert_eq!(readings.len(), 6);
    for (row, r) in run.losses.iter().zip(&readings) {
        assert_eq!((row.epoch, row.step), (r.epoch, r.step));
        assert_eq!(
            (row.loss_d.to_bits(), row.loss_g.to_bits(), row.d_real.to_bits(), row.d_fake.to_bits()),
            (
                r.metrics.loss_d.to_bits(),
                r.metrics.loss_g.to_bits(),
                r.metrics.d_real.to_bits(),
                r.metrics.d_fake.to_bits()
            ),
            "step {}",
            r.step
        );
    }
    let (g_bytes, _) = pollster::block_on(session.checkpoint_files(ctx)).unwrap();
    assert!(g_bytes == std::fs::read(ckpt.join("generator_1.safetensors")).unwrap(), "generator after epoch 1");
    // The grid the page draws is the CLI's sampler on the fixed codes.
    let grid = pollster::block_on(session.grid(ctx)).unwrap();
    assert_eq!(grid.len(), 25 * 784);
    let loaded = gan_wgpu::eval::evaluate::generator_from(
        ctx,
        &gan_wgpu::io::checkpoint::Loaded::from_bytes(g_bytes, std::path::Path::new("generator.safetensors")).unwrap(),
    )
    .unwrap();
    let sampler = train::Sampler::new(ctx, &loaded.net, 25).unwrap();
    let out = sampler.run(ctx, &train::fixed_latent(100)).unwrap();
    assert_eq!(train::images_from_outputs(&out, 784).concat(), grid);
}

#[test]
fn the_page_self_test_passes_on_this_adapter() {
    let Some(ctx) = ctx() else { return };
    let results = pollster::block_on(gan_wgpu::engine::selftest::run_all(ctx));
    // Every shader file is exercised, the subgroup ones where subgroups are usable.
    let subgroups = gan_wgpu::engine::kernels::matmul::Variant::subgroups_usable(ctx);
    for shader in gan_wgpu::engine::kernels::SHADERS.iter().filter(|s| s.features.is_empty() || subgroups) {
        let covered = results.iter().any(|r| r.shader == shader.name)
            || ["activation.wgsl", "matmul_common.wgsl", "bce.wgsl", "philox.wgsl"].contains(&shader.name);
        assert!(covered, "{} is not in the self-test", shader.name);
    }
    let failed: Vec<String> = results
        .iter()
        .filter_map(|r| r.outcome.as_ref().err().map(|e| format!("{}: {}: {e}", r.shader, r.what)))
        .collect();
    assert!(failed.is_empty(), "{failed:#?}");
    assert!(results.len() >= 10);
}

/// The page's kernel choice, made here with the native clock: timed, then
/// verified; a variant that needs subgroups only where they are usable.
#[test]
fn choices_made_without_blocking_are_measured_and_verified() {
    let Some(ctx) = ctx() else { return };
    let origin = std::time::Instant::now();
    let clock = move || origin.elapsed().as_secs_f64() * 1e3;
    let (matmul, reduce) = pollster::block_on(gan_wgpu::engine::autotune::choose_without_blocking(ctx, Some(&clock)));
    assert!(matmul.how.starts_with("measured here: tiled "), "{}", matmul.how);
    assert!(matmul.how.ends_with("verified against naive on 6 small products"), "{}", matmul.how);
    assert!(reduce.how.starts_with("measured here: column "), "{}", reduce.how);
    assert!(reduce.how.ends_with("verified against the CPU references"), "{}", reduce.how);
    let (table, _) = pollster::block_on(gan_wgpu::engine::autotune::choose_without_blocking(ctx, None));
    assert!(table.how.starts_with("the table;"), "{}", table.how);
}
