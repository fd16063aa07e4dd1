//! Soak: a few thousand small training steps through the trainer's loop with
//! host and GPU memory flat. Alone in its test binary so that the process-wide
//! counters see nothing else.

mod common;
use gan_wgpu::kernels::adam::AdamConfig;
use gan_wgpu::model;
use gan_wgpu::train::{Gan, GanConfig, StepRunner};
use rand::Rng;

fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
    pages * 4096
}

#[test]
fn thousands_of_steps_keep_memory_flat() {
    let Some(ctx) = common::ctx() else { return };
    let mut r = common::rng(1);
    let n = 64;
    let data = gan_wgpu::data::ImageSet {
        count: n,
        height: 28,
        width: 28,
        pixels: (0..n * 784).map(|_| r.random::<u8>()).collect(),
        labels: None,
        source: "random".into(),
    };
    let batch = 4;
    let cfg =
        GanConfig { batch, latent: 100, seed: 3, adam: AdamConfig::default(), model: gan_wgpu::model::WhichModel::Gan };
    let gp = model::GanArchitecture::tutorial(100, 784).generator.init_params(&mut r);
    let dp = model::GanArchitecture::tutorial(100, 784).discriminator.init_params(&mut r);
    let gan = Gan::new(ctx, cfg, &data, &gp, &dp).unwrap();
    let mut runner = StepRunner::new(ctx);
    let steps_per_epoch = gan.steps_per_epoch();
    let mut readings = 0usize;
    let mut step = 0u64;
    let mut run = |count: u64, step: &mut u64, readings: &mut usize| {
        for _ in 0..count {
            let batch_in_epoch = (*step as usize) % steps_per_epoch;
            if batch_in_epoch == 0 {
                gan.start_epoch(ctx, *step as usize / steps_per_epoch, 0, *step).unwrap();
            }
            let tag = (*step + 1).is_multiple_of(10).then_some((0, batch_in_epoch, *step + 1));
            for r in runner.step(ctx, &gan, tag).unwrap() {
                assert!(r.metrics.loss_d.is_finite() && r.metrics.loss_g.is_finite());
                assert_eq!(r.first_nonfinite, None);
                *readings += 1;
            }
            *step += 1;
        }
        for _ in runner.finish(ctx).unwrap() {
            *readings += 1;
        }
    };
    // Warm-up: 200 steps (pipelines, caches and allocator pools settle).
    run(200, &mut step, &mut readings);
    let (buffers_a, bytes_a, allocs_a) = ctx.gpu_memory();
    let rss_a = rss_bytes();
    let t = std::time::Instant::now();
    run(2000, &mut step, &mut readings);
    let secs = t.elapsed().as_secs_f64();
    let (buffers_b, bytes_b, allocs_b) = ctx.gpu_memory();
    let rss_b = rss_bytes();
    eprintln!(
        "soak: 2000 steps at batch {batch} in {secs:.1} s ({:.1} ms a step), {readings} loss readings; \
         GPU buffers {buffers_a} -> {buffers_b}, buffer bytes {bytes_a} -> {bytes_b}, allocations {allocs_a} -> {allocs_b}; \
         host RSS {:.1} -> {:.1} MiB",
        secs * 1e3 / 2000.0,
        rss_a as f64 / 1048576.0,
        rss_b as f64 / 1048576.0
    );
    assert_eq!(readings, 220, "one reading every 10 steps");
    assert_eq!((buffers_a, bytes_a), (buffers_b, bytes_b), "GPU memory changed between step 200 and step 2200");
    assert!(rss_b < rss_a + 4 * 1048576, "host memory grew from {rss_a} to {rss_b} bytes");
}
