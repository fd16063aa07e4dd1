//! Compiling the step's pipelines before its first step, on both CPU cores.

use super::{GanConfig, GpuContext};
// The warm-up itself is native only: a browser compiles at pipeline creation.
#[cfg(not(target_arch = "wasm32"))]
use super::{Dispatch, Gan, GanError, ImageSet, Instant, Result};
use crate::nn::spec::ImageShape;
#[cfg(not(target_arch = "wasm32"))]
use rand::SeedableRng;

/// Compiles the training step's pipelines before its first step, on both
/// CPU cores. Returns when every pipeline is compiled (or Mesa's shader cache
/// holds it); never fails: a problem is logged and the first step then
/// compiles what is left, as it would without this.
///
/// lavapipe compiles a pipeline with LLVM at its first dispatch, on the
/// device's one queue thread, which makes a first step on an empty shader
/// cache take about 3 s on one core. Here the main device and a second device
/// on the same adapter (a helper thread) split that work: each builds a
/// throwaway copy of the step (same batch size, so the same shapes and kernel
/// variants, on one batch of made-up pixels) and runs one workgroup of each
/// kernel, both taking pipelines from one list, biggest first, each only those
/// the other has not claimed. (Letting the helper run the step backwards while
/// the main device ran it forwards left them compiling the same big kernel
/// twice where they met, and the first step at 2.2-2.7 s.) The
/// main device's copy shares its pipeline objects with the real step through
/// the context's pipeline cache; what the helper compiled reaches the main
/// device through Mesa's shader cache. Neither copy touches the real step's
/// buffers. Only on CPU adapters (GPU drivers compile at pipeline creation);
/// the host decides whether to call it (`Settings::warmup`: not with Mesa's
/// cache off, not with GAN_WGPU_WARMUP=0).
pub fn warm_up_pipelines(ctx: &GpuContext, cfg: GanConfig, shape: ImageShape) {
    // A browser compiles at pipeline creation, and its GPU objects stay on
    // one thread: nothing to warm up there.
    #[cfg(target_arch = "wasm32")]
    let _ = (ctx, cfg, shape);
    #[cfg(not(target_arch = "wasm32"))]
    warm_up_on_two_devices(ctx, cfg, shape);
}

#[cfg(not(target_arch = "wasm32"))]
fn warm_up_on_two_devices(ctx: &GpuContext, cfg: GanConfig, shape: ImageShape) {
    if !ctx.is_cpu_adapter() {
        return;
    }
    let t = Instant::now();
    // The helper's device inherits the choices (`GpuContext::twin`); a
    // context whose kernels were not chosen warms up the reference ones.
    let shared = WarmupShared::default();
    let (main, helper) = std::thread::scope(|s| {
        // The helper opens its device itself, so the main side starts at once.
        let helper = s.spawn(|| {
            // Marks the helper done however it ends, a panic included, so
            // that the main side never waits for it in vain.
            let _done = HelperDone(&shared);
            ctx.twin().and_then(|twin| compile_step_pipelines(&twin, cfg, shape, &shared, false))
        });
        let main = compile_step_pipelines(ctx, cfg, shape, &shared, true);
        let helper = helper.join().unwrap_or_else(|_| {
            Err(GanError::Device { during: "pipeline warm-up".into(), message: "the helper thread panicked".into() })
        });
        (main, helper)
    });
    match (main, helper) {
        (Ok(m), Ok(h)) => log::info!(
            "pipeline warm-up: {} pipelines ready in {:.2} s ({m} compiled on the main device, {h} on a second one)",
            m + h,
            t.elapsed().as_secs_f64()
        ),
        (Ok(m), Err(e)) => log::info!(
            "pipeline warm-up: pipelines ready in {:.2} s, {m} compiled on the main device (the second one failed: {e})",
            t.elapsed().as_secs_f64()
        ),
        (Err(e), _) => log::warn!("pipeline warm-up failed (training is not affected): {e}"),
    }
}

#[cfg(not(target_arch = "wasm32"))]
/// What the two sides of `warm_up_pipelines` share: pipelines are named by
/// the index of their first use in the step's dispatch list.
#[derive(Default)]
struct WarmupShared {
    state: std::sync::Mutex<WarmupState>,
    changed: std::sync::Condvar,
}

#[cfg(not(target_arch = "wasm32"))]
#[derive(Default)]
struct WarmupState {
    /// Taken by one side for compiling.
    claimed: std::collections::HashSet<usize>,
    /// Compiled by either side (so in Mesa's shader cache).
    compiled: std::collections::HashSet<usize>,
    helper_done: bool,
}

#[cfg(not(target_arch = "wasm32"))]
impl WarmupShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, WarmupState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(not(target_arch = "wasm32"))]
struct HelperDone<'a>(&'a WarmupShared);

#[cfg(not(target_arch = "wasm32"))]
impl Drop for HelperDone<'_> {
    fn drop(&mut self) {
        self.0.lock().helper_done = true;
        self.0.changed.notify_all();
    }
}

#[cfg(not(target_arch = "wasm32"))]
/// One side of `warm_up_pipelines`: builds a throwaway step on `ctx` and runs
/// one workgroup of each pipeline's first use that the other side has not
/// claimed. The main side (`main`) then also runs the helper's pipelines as
/// each becomes ready, loading them from Mesa's cache into the pipeline
/// objects the real step shares, while the helper may still be compiling.
/// Returns how many pipelines this side compiled.
fn compile_step_pipelines(
    ctx: &GpuContext,
    cfg: GanConfig,
    shape: ImageShape,
    shared: &WarmupShared,
    main: bool,
) -> Result<usize> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let data = ImageSet {
        count: cfg.batch,
        height: shape.height,
        width: shape.width,
        channels: shape.channels,
        pixels: (0..cfg.batch * shape.dim()).map(|i| i as u8).collect(),
        // Labels for a conditional model: image i is class i mod K.
        labels: Some((0..cfg.batch).map(|i| (i % cfg.classes.max(1)) as u8).collect()),
        class_names: Vec::new(),
        source: "warm-up".into(),
    };
    let (g, d) = cfg.architecture(shape)?.init_params(&mut r);
    let gan = Gan::new(ctx, cfg, &data, &g, &d)?;
    let step = gan.dispatches();
    // One workgroup compiles the pipeline as well as the whole grid.
    let run_one = |i: usize| crate::engine::kernels::run(ctx, &[&Dispatch { groups: [1, 1, 1], ..step[i].clone() }]);
    // The first use of each pipeline, the same list on both sides (both build
    // the step from the same config). The big matmul kernels (0.4-0.8 s of
    // LLVM each on lavapipe, against 30-200 ms for the rest) go first, so
    // that the two sides end close together.
    let mut firsts: Vec<usize> =
        (0..step.len()).filter(|&i| !step[..i].iter().any(|e| e.pipeline == step[i].pipeline)).collect();
    let heavy = |d: &Dispatch| d.label.starts_with("matmul") && !d.label.contains(" naive ");
    firsts.sort_by_key(|&i| if heavy(&step[i]) { 0 } else { 1 });
    let mut compiled = 0;
    let mut left = Vec::new();
    for i in firsts {
        if !shared.lock().claimed.insert(i) {
            left.push(i);
            continue;
        }
        let t = Instant::now();
        run_one(i)?;
        log::debug!(
            "warm-up: {} compiled on the {} device in {:.3} s",
            step[i].label,
            if main { "main" } else { "second" },
            t.elapsed().as_secs_f64()
        );
        shared.lock().compiled.insert(i);
        shared.changed.notify_all();
        compiled += 1;
    }
    // The main side loads the helper's pipelines as they become ready (or
    // compiles them itself once the helper has stopped, whatever happened).
    while main && !left.is_empty() {
        let next = {
            let mut st = shared.lock();
            loop {
                if let Some(k) = left.iter().position(|i| st.helper_done || st.compiled.contains(i)) {
                    break left.swap_remove(k);
                }
                st = shared.changed.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        };
        run_one(next)?;
    }
    Ok(compiled)
}
