//! Soak: a few thousand small training steps through the trainer's loop (a
//! `Session`, as `train` and the page drive it) with
//! host and GPU memory flat. Alone in its test binary so that the process-wide
//! counters see nothing else.

mod common;
use gan_wgpu::train::{GanConfig, Session};
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
    let data = gan_wgpu::io::data::ImageSet {
        count: n,
        height: 28,
        width: 28,
        pixels: (0..n * 784).map(|_| r.random::<u8>()).collect(),
        labels: None,
        channels: 1,
        class_names: Vec::new(),
        source: "random".into(),
    };
    let batch = 4;
    let cfg = GanConfig { batch, seed: 3, ..GanConfig::default() };
    let mut session = Session::new(ctx, cfg, &data).unwrap();
    let mut readings = 0usize;
    let mut step = 0u64;
    // Chunks of up to 10 steps, as `train` runs them at --log-every 10 (an
    // epoch here is 16 steps: chunks of 10 and 6, across epoch rollovers).
    let mut run = |count: u64, step: &mut u64, readings: &mut usize| {
        for r in pollster::block_on(session.run_for(ctx, count as usize, 10)).unwrap() {
            assert!(r.metrics.loss_d.is_finite() && r.metrics.loss_g.is_finite());
            assert_eq!(r.first_nonfinite, None);
            assert_eq!(r.step, *step + 1);
            *readings += 1;
            *step += 1;
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
    assert_eq!(readings, 2200, "one reading a step");
    assert_eq!((buffers_a, bytes_a), (buffers_b, bytes_b), "GPU memory changed between step 200 and step 2200");
    assert!(rss_b < rss_a + 4 * 1048576, "host memory grew from {rss_a} to {rss_b} bytes");
}
