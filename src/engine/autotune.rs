//! Which matmul variant the trainer uses on an adapter: measured, never
//! guessed.
//!
//! - Every adapter is measured once: every variant on the model's largest
//!   product of each form (batch 128), each result checked against the naive
//!   kernel, the fastest correct one kept. The choice is cached per adapter,
//!   driver, crate version and matmul source in `matmul-autotune.tsv` under
//!   `$GAN_WGPU_CACHE_DIR`, else `$XDG_CACHE_HOME/gan-wgpu`, else
//!   `~/.cache/gan-wgpu` (`Settings::cache_dir`), so later launches start at
//!   once. On CPU adapters (lavapipe, SwiftShader) the key also holds the
//!   host CPU (`Settings::host_cpu`): the best variant there depends on the
//!   CPU family. A CPU adapter first runs each variant once on the largest
//!   product and times only those within `PRESCREEN_FACTOR` of the fastest,
//!   so the barrier-bound kernels (seconds a product there) cost one run.
//! - The table is the fallback when timing is off (`GAN_WGPU_AUTOTUNE=0`)
//!   or fails: on CPU adapters `sg32x32` where subgroups of 8 or more exist,
//!   else `reg4x4` (measured with `gan-wgpu bench`); `tiled` on GPUs.
//! - `GAN_WGPU_MATMUL=naive|tiled|reg4x4|sg32x32` overrides both.
//!
//! The choices are made here and set on the context (`open`,
//! `choose_kernels`, or `choose_without_blocking` in a page); the context
//! itself never chooses, and runs the reference kernels until it is told.

use crate::engine::context::{DeviceChoice, GpuContext, Requirements};
use crate::engine::kernels::bias_act::Act;
pub use crate::engine::kernels::choice::{Choice, ReduceChoice, Trial};
use crate::engine::kernels::matmul::{self, Form, Matmul, Variant};
use crate::engine::kernels::reduce::Reduce;
use crate::engine::kernels::{check_close, run};
use crate::engine::settings::Settings;
use crate::engine::tensor::GpuTensor;
use crate::engine::timing::{time_dispatch, time_on_host, HostClock};
use crate::error::{GanError, Result};
use rand::{Rng, SeedableRng};
use std::fmt::Write as _;
use std::path::Path;

/// The products measured: the model's largest of each form at batch 128
/// (G's last layer forward, its input gradient, its weight gradient).
pub const TUNE_SHAPES: [(Form, usize, usize, usize); 3] =
    [(Form::NT, 128, 784, 1024), (Form::NN, 128, 1024, 784), (Form::TN, 784, 1024, 128)];

/// File name of the cache, one line per adapter: key, variant, what was measured.
pub const CACHE_FILE: &str = "matmul-autotune.tsv";
/// File name of the verification cache, one line per adapter: key, the
/// variant that agreed with `naive` on `VERIFY_SHAPES` there.
pub const VERIFIED_FILE: &str = "matmul-verified.tsv";

/// Small products that divide no tile, of each form, on which the chosen
/// variant is checked against `naive` on the adapter it is chosen for:
/// vec4-aligned ones (where matmul_sg itself runs) and unaligned ones
/// (where the launcher falls back), the forward form with its epilogue.
pub const VERIFY_SHAPES: [(Form, usize, usize, usize); 6] = [
    (Form::NT, 36, 44, 20),
    (Form::NN, 36, 44, 20),
    (Form::TN, 36, 44, 20),
    (Form::NT, 37, 45, 23),
    (Form::NN, 37, 45, 23),
    (Form::TN, 37, 45, 23),
];

/// The fastest variant whose results agreed with the reference, if any.
pub fn fastest(trials: &[Trial]) -> Option<Variant> {
    trials.iter().filter(|t| t.matches_reference).min_by(|a, b| a.total_us.total_cmp(&b.total_us)).map(|t| t.variant)
}

/// `adapter_key`, with the host CPU for CPU adapters (their kernels run on
/// it): the key of the autotune's cache.
pub fn tune_key(ctx: &GpuContext, host_cpu: Option<&str>) -> String {
    let key = adapter_key(&ctx.info);
    if ctx.is_cpu_adapter() {
        format!("{key} cpu {}", host_cpu.unwrap_or("unknown")).replace(['\t', '\n', '\r'], " ")
    } else {
        key
    }
}

/// On CPU adapters, variants slower than this many times the fastest in one
/// run on the largest product are not timed further.
pub const PRESCREEN_FACTOR: f64 = 3.0;

/// What identifies an adapter's measurements: name, PCI ids, backend,
/// driver, and this build's matmul kernels (a new kernel means a new
/// measurement). Tabs and newlines become spaces (the cache is a TSV).
pub fn adapter_key(info: &wgpu::AdapterInfo) -> String {
    let key = format!(
        "{} [{:04x}:{:04x}] {:?} {} {} gan-wgpu {} matmul {:016x}",
        info.name,
        info.vendor,
        info.device,
        info.backend,
        info.driver,
        info.driver_info,
        env!("CARGO_PKG_VERSION"),
        stable_hash(matmul::SOURCE.as_bytes())
    );
    key.replace(['\t', '\n', '\r'], " ")
}

/// 64-bit FNV-1a: the same value for the same bytes on every build and
/// Rust release (std's DefaultHasher promises neither), so a cache key
/// written by one build is found by the next.
pub fn stable_hash(bytes: &[u8]) -> u64 {
    stable_hash_from(0xcbf2_9ce4_8422_2325, bytes)
}

/// `stable_hash` continued over more bytes: `stable_hash_from(stable_hash(a), b)`
/// is the hash of a then b, without joining them.
pub fn stable_hash_from(state: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(state, |h, &b| (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
}

/// Checks `variant` against `naive` on `shapes` (outputs pre-filled with NaN;
/// the forward form with a bias and tanh epilogue). Err names the first
/// product that disagreed.
pub fn verify(ctx: &GpuContext, variant: Variant, shapes: &[(Form, usize, usize, usize)]) -> Result<()> {
    pollster::block_on(verify_async(ctx, variant, shapes))
}

/// `verify` without blocking (a page awaits it).
pub async fn verify_async(ctx: &GpuContext, variant: Variant, shapes: &[(Form, usize, usize, usize)]) -> Result<()> {
    use crate::engine::kernels::bias_act::Act;
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    for &(form, m, n, k) in shapes {
        let (sa, sb) = form.operand_shapes(m, n, k);
        let mut random = |len: usize| -> Vec<f32> { (0..len).map(|_| r.random_range(-1.0f32..1.0)).collect() };
        let a = GpuTensor::from_f32(ctx, &sa, "verify a", &random(sa[0] * sa[1]))?;
        let b = GpuTensor::from_f32(ctx, &sb, "verify b", &random(sb[0] * sb[1]))?;
        let bias = GpuTensor::from_f32(ctx, &[n], "verify bias", &random(n))?;
        let c = GpuTensor::zeros(ctx, &[m, n], "verify c");
        let epilogue = if form == Form::NT {
            matmul::Epilogue { bias: Some(&bias), act: Act::Tanh }
        } else {
            matmul::Epilogue::NONE
        };
        let mut outputs = Vec::new();
        for v in [Variant::Naive, variant] {
            let mm = Matmul::with_epilogue(ctx, form, v, &a, &b, &c, epilogue)?;
            c.fill_nan(ctx)?;
            run(ctx, &[&mm.dispatch])?;
            outputs.push((mm.dispatch.label, c.read_f32_async(ctx).await?));
        }
        let atol = 2e-6 * k as f32 + 1e-6;
        check_close(&outputs[1].0, &outputs[1].1, &outputs[0].1, atol, 1e-4)
            .map_err(|why| GanError::Device { during: format!("verifying matmul {}", variant.name()), message: why })?;
    }
    ctx.check_health("verifying the matmul variant")
}

/// `choice`, verified on this adapter against `naive` on `VERIFY_SHAPES`
/// unless `cache` says it was before. A variant that disagrees is replaced by
/// the next simpler one that agrees (sg32x32, reg4x4, tiled, naive), and the
/// choice's text says so.
pub fn verified(ctx: &GpuContext, choice: Choice, cache: Option<&Path>) -> Choice {
    let key = adapter_key(&ctx.info);
    let text = cache.and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
    if cached_variant(&text, &key) == Some(choice.variant) {
        return Choice { how: format!("{}; verified against naive here earlier", choice.how), ..choice };
    }
    let (choice, agreed) = pollster::block_on(verified_async(ctx, choice));
    if let (Some(path), true) = (cache, agreed) {
        let written = path
            .parent()
            .map_or(Ok(()), |d| std::fs::create_dir_all(d).map_err(|e| GanError::io(d, e)))
            .and_then(|_| {
                crate::fs::atomic_write(path, with_cached_variant(&text, &key, choice.variant, "verified").as_bytes())
            });
        if let Err(e) = written {
            log::warn!("matmul verification: not cached: {e}");
        }
    }
    choice
}

/// `verified` without a cache and without blocking (a page awaits it).
/// Returns the choice and whether its variant agreed with `naive`.
pub async fn verified_async(ctx: &GpuContext, choice: Choice) -> (Choice, bool) {
    let fallbacks = [Variant::Subgroup, Variant::Reg, Variant::Tiled, Variant::Naive];
    let start = fallbacks.iter().position(|&v| v == choice.variant).unwrap_or(0);
    let mut failures = Vec::new();
    for &v in &fallbacks[start..] {
        if v == Variant::Subgroup && !Variant::subgroups_usable(ctx) {
            continue;
        }
        match verify_async(ctx, v, &VERIFY_SHAPES).await {
            Ok(()) => {
                let how = if failures.is_empty() {
                    format!("{}; verified against naive on {} small products", choice.how, VERIFY_SHAPES.len())
                } else {
                    format!("{}, but {}; {} agrees", choice.how, failures.join("; "), v.name())
                };
                return (Choice { variant: v, how, trials: choice.trials }, true);
            }
            Err(e) => {
                log::warn!("matmul {} disagrees with naive on this adapter, not used: {e}", v.name());
                failures.push(format!("{} disagreed with naive ({e})", v.name()));
            }
        }
    }
    // Even naive failed against itself: a broken device; keep the reference.
    let how = format!("{}, but {}", choice.how, failures.join("; "));
    (Choice { variant: Variant::Naive, how, trials: choice.trials }, false)
}

/// The kernel choices on a host that can neither block nor keep files (a
/// browser page); `GAN_WGPU_*` are not read. With a `clock`, as on GPUs
/// natively: every usable matmul variant but naive timed on `TUNE_SHAPES`
/// and both reduction shapes on the step's reductions, the fastest kept;
/// without one (or when timing fails), the tables. Each choice is then
/// verified on the adapter, with the same fallbacks as `choose` and
/// `choose_reduce`. Set them with `GpuContext::set_kernel_choices`.
pub async fn choose_without_blocking(ctx: &GpuContext, clock: Option<HostClock<'_>>) -> (Choice, ReduceChoice) {
    let matmul_first = match clock {
        Some(clock) => match time_matmuls_on_host(ctx, clock).await {
            Ok(trials) => {
                let best = trials.iter().min_by(|a, b| a.1.total_cmp(&b.1)).map(|t| t.0).unwrap_or(Variant::Naive);
                let list: Vec<String> = trials.iter().map(|(v, us)| format!("{} {us:.0} us", v.name())).collect();
                Choice { variant: best, how: format!("measured here: {}", list.join(", ")), trials: None }
            }
            Err(e) => table(ctx, &format!("the table: timing failed ({e})")),
        },
        None => table(ctx, "the table"),
    };
    let (matmul, _) = verified_async(ctx, matmul_first).await;
    let table_reduce = if ctx.is_cpu_adapter() { Reduce::Column } else { Reduce::Tree };
    let (first, how) = match clock {
        Some(clock) => {
            let mut us = Vec::new();
            for r in Reduce::ALL {
                let timed = match reduction_dispatches(ctx, r) {
                    Ok(ds) => time_on_host(ctx, &ds.iter().collect::<Vec<_>>(), 3, 3, clock).await,
                    Err(e) => Err(e),
                };
                us.push((r, timed));
            }
            match (&us[0].1, &us[1].1) {
                (Ok(a), Ok(b)) => {
                    let best = if a <= b { us[0].0 } else { us[1].0 };
                    (best, format!("measured here: {} {a:.0} us, {} {b:.0} us", us[0].0.name(), us[1].0.name()))
                }
                (Err(e), _) | (_, Err(e)) => (table_reduce, format!("the table: timing failed ({e})")),
            }
        }
        None => (table_reduce, "the table".to_string()),
    };
    let reduce = verified_reduce_async(ctx, ReduceChoice { variant: first, how }).await;
    (matmul, reduce)
}

/// `first`, verified on the adapter against the CPU references; if it
/// disagrees, the other shape, and the text says so.
async fn verified_reduce_async(ctx: &GpuContext, first: ReduceChoice) -> ReduceChoice {
    let other = if first.variant == Reduce::Column { Reduce::Tree } else { Reduce::Column };
    match verify_reduce_async(ctx, first.variant).await {
        Ok(()) => ReduceChoice { how: format!("{}; verified against the CPU references", first.how), ..first },
        Err(e) => {
            log::warn!("{} reductions disagree with the CPU references here, not used: {e}", first.variant.name());
            let how = match verify_reduce_async(ctx, other).await {
                Ok(()) => format!(
                    "{}, but {} disagreed with the CPU references ({e}); {} agrees",
                    first.how,
                    first.variant.name(),
                    other.name()
                ),
                Err(e2) => format!("{}, but both shapes disagreed with the CPU references ({e}; {e2})", first.how),
            };
            ReduceChoice { variant: other, how }
        }
    }
}

/// Microseconds for the three `TUNE_SHAPES` products together, for each
/// usable variant but naive (the reference, never the fastest), timed by
/// the host's clock.
async fn time_matmuls_on_host(ctx: &GpuContext, clock: HostClock<'_>) -> Result<Vec<(Variant, f64)>> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut operands = Vec::new();
    for &(form, m, n, k) in &TUNE_SHAPES {
        let (sa, sb) = form.operand_shapes(m, n, k);
        let mut random = |len: usize| -> Vec<f32> { (0..len).map(|_| r.random_range(-1.0f32..1.0)).collect() };
        let a = GpuTensor::from_f32(ctx, &sa, "autotune a", &random(sa[0] * sa[1]))?;
        let b = GpuTensor::from_f32(ctx, &sb, "autotune b", &random(sb[0] * sb[1]))?;
        operands.push((form, a, b, GpuTensor::zeros(ctx, &[m, n], "autotune c")));
    }
    let mut out = Vec::new();
    for v in [Variant::Tiled, Variant::Reg, Variant::Subgroup] {
        if v == Variant::Subgroup && !Variant::subgroups_usable(ctx) {
            continue;
        }
        let mut products = Vec::new();
        for (form, a, b, c) in &operands {
            products.push(Matmul::new(ctx, *form, v, a, b, c)?);
        }
        let ds: Vec<&crate::engine::kernels::Dispatch> = products.iter().map(|p| &p.dispatch).collect();
        out.push((v, time_on_host(ctx, &ds, 2, 3, clock).await?));
    }
    ctx.check_health("timing the matmul variants")?;
    Ok(out)
}

/// The cached variant for `key` in the cache text, if a line has one.
/// Lines that do not parse are ignored (they are measured again).
pub fn cached_variant(text: &str, key: &str) -> Option<Variant> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let mut fields = line.split('\t');
        (fields.next() == Some(key)).then(|| fields.next().and_then(Variant::parse)).flatten()
    })
}

/// The cache text with `key`'s line set to `variant` and `detail`, the
/// other adapters' lines kept.
pub fn with_cached_variant(text: &str, key: &str, variant: Variant, detail: &str) -> String {
    let mut out = String::from("# gan-wgpu matmul autotune: adapter key, variant, total us per variant\n");
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        if line.split('\t').next() != Some(key) {
            out.push_str(line);
            out.push('\n');
        }
    }
    let _ = writeln!(out, "{key}\t{}\t{}", variant.name(), detail.replace(['\t', '\n'], " "));
    out
}

/// Times every usable variant on `shapes` and checks each output against
/// the naive kernel's (outputs pre-filled with NaN, so a variant that skips
/// an element fails).
pub fn measure(ctx: &GpuContext, shapes: &[(Form, usize, usize, usize)]) -> Result<Vec<Trial>> {
    let variants: Vec<Variant> =
        Variant::ALL.into_iter().filter(|&v| v != Variant::Subgroup || Variant::subgroups_usable(ctx)).collect();
    let mut trials: Vec<Trial> =
        variants.iter().map(|&variant| Trial { variant, total_us: 0.0, matches_reference: true }).collect();
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    // CPU adapters pre-screen on the largest product (the first of them).
    let largest = shapes.iter().map(|s| s.1 * s.2 * s.3).max().unwrap_or(0);
    let mut screen = ctx.is_cpu_adapter();
    for &(form, m, n, k) in shapes {
        let (sa, sb) = form.operand_shapes(m, n, k);
        let mut random = |len: usize| -> Vec<f32> { (0..len).map(|_| r.random_range(-1.0f32..1.0)).collect() };
        let a = GpuTensor::from_f32(ctx, &sa, "autotune a", &random(sa[0] * sa[1]))?;
        let b = GpuTensor::from_f32(ctx, &sb, "autotune b", &random(sb[0] * sb[1]))?;
        let c = GpuTensor::zeros(ctx, &[m, n], "autotune c");
        let reference = {
            let mm = Matmul::new(ctx, form, Variant::Naive, &a, &b, &c)?;
            c.fill_nan(ctx)?;
            run(ctx, &[&mm.dispatch])?;
            c.read_f32(ctx)?
        };
        // CPU adapters: one run each on the largest product, then only the
        // variants within PRESCREEN_FACTOR of the fastest (the others keep an
        // infinite time, so they are never chosen).
        if screen && m * n * k == largest {
            screen = false;
            let mut once = Vec::with_capacity(trials.len());
            for trial in &trials {
                let mm = Matmul::new(ctx, form, trial.variant, &a, &b, &c)?;
                once.push(time_dispatch(ctx, &mm.dispatch, 1, 1)?.0);
            }
            let best = once.iter().copied().fold(f64::INFINITY, f64::min);
            for (trial, us) in trials.iter_mut().zip(once) {
                if us > PRESCREEN_FACTOR * best {
                    trial.total_us = f64::INFINITY;
                }
            }
        }
        for trial in trials.iter_mut().filter(|t| t.total_us.is_finite()) {
            let mm = Matmul::new(ctx, form, trial.variant, &a, &b, &c)?;
            c.fill_nan(ctx)?;
            let (median_us, _) = time_dispatch(ctx, &mm.dispatch, 5, 3)?;
            trial.total_us += median_us;
            let atol = 2e-6 * k as f32 + 1e-6;
            if let Err(why) = check_close(&mm.dispatch.label, &c.read_f32(ctx)?, &reference, atol, 1e-4) {
                log::warn!(
                    "matmul autotune: {} disagrees with the naive kernel, not used: {why}",
                    trial.variant.name()
                );
                trial.matches_reference = false;
            }
        }
    }
    ctx.check_health("matmul autotune")?;
    Ok(trials)
}

/// The cached choice for this adapter, else a measurement on `shapes`,
/// written to `cache` (a cache that cannot be written is logged, not fatal).
pub fn tune(
    ctx: &GpuContext,
    shapes: &[(Form, usize, usize, usize)],
    cache: Option<&Path>,
    host_cpu: Option<&str>,
) -> Result<Choice> {
    let key = tune_key(ctx, host_cpu);
    let text = cache.and_then(|p| std::fs::read_to_string(p).ok()).unwrap_or_default();
    if let (Some(path), Some(variant)) = (cache, cached_variant(&text, &key)) {
        return Ok(Choice {
            variant,
            how: format!("autotuned on this adapter earlier, cached in {}", path.display()),
            trials: None,
        });
    }
    let trials = measure(ctx, shapes)?;
    let variant = fastest(&trials).ok_or_else(|| GanError::Device {
        during: "matmul autotune".into(),
        message: "no matmul variant agreed with the naive kernel".into(),
    })?;
    let detail: Vec<String> = trials
        .iter()
        .map(|t| match (t.total_us.is_finite(), t.matches_reference) {
            (false, _) => format!("{} over {PRESCREEN_FACTOR}x the fastest in one run", t.variant.name()),
            (true, true) => format!("{} {:.0} us", t.variant.name(), t.total_us),
            (true, false) => format!("{} {:.0} us (wrong)", t.variant.name(), t.total_us),
        })
        .collect();
    let detail = detail.join(", ");
    let mut how = format!("autotuned on this adapter: {detail}");
    if let Some(path) = cache {
        let written = path
            .parent()
            .map_or(Ok(()), |d| std::fs::create_dir_all(d).map_err(|e| GanError::io(d, e)))
            .and_then(|_| crate::fs::atomic_write(path, with_cached_variant(&text, &key, variant, &detail).as_bytes()));
        match written {
            Ok(()) => {
                let _ = write!(how, "; cached in {}", path.display());
            }
            Err(e) => log::warn!("matmul autotune: the choice is not cached: {e}"),
        }
    }
    Ok(Choice { variant, how, trials: Some(trials) })
}

/// The table, for CPU adapters (measured, see README.md) and as the fallback.
fn table(ctx: &GpuContext, why: &str) -> Choice {
    let variant = if !ctx.is_cpu_adapter() {
        Variant::Tiled
    } else if Variant::subgroups_usable(ctx) {
        Variant::Subgroup
    } else {
        Variant::Reg
    };
    Choice { variant, how: why.to_string(), trials: None }
}

/// Makes and sets `ctx`'s kernel choices (`choose`, `choose_reduce`) unless
/// they were made. Native hosts; a page uses `choose_without_blocking`.
pub fn choose_kernels(ctx: &GpuContext, settings: &Settings) {
    if !ctx.kernels_chosen() {
        ctx.set_kernel_choices(choose(ctx, settings), choose_reduce(ctx, settings));
    }
}

/// A context on the adapter `choice` names with the limits `need` asks
/// for, opened as `settings` say, its kernels chosen (`choose_kernels`).
pub fn open(choice: &DeviceChoice, need: &Requirements, settings: &Settings) -> Result<GpuContext> {
    let ctx = GpuContext::new(choice, need, settings.device_options)?;
    choose_kernels(&ctx, settings);
    Ok(ctx)
}

/// The choice for `ctx`'s adapter (see the module header), verified on the
/// adapter (see `verified`). `choose_kernels` sets it on the context.
pub fn choose(ctx: &GpuContext, settings: &Settings) -> Choice {
    let choice = choose_unverified(ctx, settings);
    let verify_cache = settings.cache_dir.as_ref().map(|d| d.join(VERIFIED_FILE));
    let choice = verified(ctx, choice, verify_cache.as_deref());
    log::info!("matmul variant: {}", choice.describe());
    choice
}

fn choose_unverified(ctx: &GpuContext, settings: &Settings) -> Choice {
    if let Some(variant) = settings.matmul {
        return Choice { variant, how: "GAN_WGPU_MATMUL".into(), trials: None };
    }
    if settings.autotune == Some(false) {
        return table(ctx, "the table, GAN_WGPU_AUTOTUNE=0");
    }
    let cache = settings.cache_dir.as_ref().map(|d| d.join(CACHE_FILE));
    match tune(ctx, &TUNE_SHAPES, cache.as_deref(), settings.host_cpu.as_deref()) {
        Ok(choice) => choice,
        Err(e) => {
            log::warn!("matmul autotune failed, using the table: {e}");
            table(ctx, &format!("the table: the autotune failed ({e})"))
        }
    }
}

/// The reductions of one training step at batch 128 (batch-norm train
/// forward and backward at G's widest layer, the bias gradient of D's first
/// layer over [fake; real], BCE over [fake; real]), each with the given
/// shape; returns the sum of their median times in microseconds.
pub fn time_reductions(ctx: &GpuContext, reduce: Reduce) -> Result<f64> {
    let mut total = 0.0;
    for d in &reduction_dispatches(ctx, reduce)? {
        total += time_dispatch(ctx, d, 5, 3)?.0;
    }
    Ok(total)
}

/// The dispatches `time_reductions` times (their tensors live in the bind groups).
fn reduction_dispatches(ctx: &GpuContext, reduce: Reduce) -> Result<Vec<crate::engine::kernels::Dispatch>> {
    use crate::engine::kernels::{batchnorm, bce, bias_act};
    let t = |shape: &[usize], label: &str| GpuTensor::zeros(ctx, shape, label);
    let (rows, cols) = (128, 1024);
    let (x, y, dy) = (t(&[rows, cols], "x"), t(&[rows, cols], "y"), t(&[rows, cols], "dy"));
    let f = |label: &str| t(&[cols], label);
    let (gamma, beta, rm, rv, inv) = (f("gamma"), f("beta"), f("rm"), f("rv"), f("invstd"));
    let (dg, db, dbias) = (f("dgamma"), f("dbeta"), f("dbias"));
    let bn = batchnorm::BnTensors { gamma: &gamma, beta: &beta, running_mean: &rm, running_var: &rv };
    let grads = batchnorm::BnGrads { dgamma: &dg, dbeta: &db, dbias: &dbias };
    let (dy2, y2, db2) = (t(&[256, 512], "dy"), t(&[256, 512], "y"), t(&[512], "dbias"));
    let (p, dp, metrics, counters) = (t(&[256, 1], "p"), t(&[256, 1], "dp"), t(&[8], "metrics"), t(&[4], "counters"));
    let mut dispatches = vec![
        batchnorm::forward_train_with(
            ctx,
            &batchnorm::BnForward { x: &x, y: &y, bn: &bn, invstd: &inv },
            Act::Relu,
            reduce,
        )?,
        batchnorm::backward_with(
            ctx,
            &batchnorm::BnBackward { dy: &dy, y: &y, xhat: &x, gamma: &gamma, invstd: &inv, grads: &grads },
            Act::Relu,
            false,
            reduce,
        )?,
        bias_act::backward_with(ctx, bias_act::Act::LeakyRelu, &y2, &dy2, Some(&db2), reduce)?,
    ];
    dispatches.extend(bce::forward_backward_with(ctx, (&p, &dp), 128, (&metrics, 0), &counters, reduce)?);
    Ok(dispatches)
}

/// Checks the reductions in shape `reduce` against their CPU references on
/// small odd shapes (outputs pre-filled with NaN). Err names the first output
/// that disagreed.
pub fn verify_reduce(ctx: &GpuContext, reduce: Reduce) -> Result<()> {
    pollster::block_on(verify_reduce_async(ctx, reduce))
}

/// `verify_reduce` without blocking (a page awaits it).
pub async fn verify_reduce_async(ctx: &GpuContext, reduce: Reduce) -> Result<()> {
    use crate::engine::kernels::{batchnorm, bce, bias_act};
    let during = format!("verifying the {} reductions", reduce.name());
    let check = |what: &str, gpu: &[f32], cpu: &[f32], atol: f32, rtol: f32| -> Result<()> {
        check_close(&format!("{what} ({})", reduce.name()), gpu, cpu, atol, rtol)
            .map_err(|why| GanError::Device { during: during.clone(), message: why })
    };
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut random = |n: usize, lo: f32, hi: f32| -> Vec<f32> { (0..n).map(|_| r.random_range(lo..hi)).collect() };
    let nan = |shape: &[usize], label: &str| -> Result<GpuTensor> {
        let t = GpuTensor::zeros(ctx, shape, label);
        t.fill_nan(ctx)?;
        Ok(t)
    };
    for (rows, cols) in [(37usize, 13usize), (70, 1)] {
        // Batch-norm train forward, then backward from the CPU's saved tensors.
        let x = random(rows * cols, -2.0, 3.0);
        let (gamma, beta, dy) = (random(cols, 0.5, 1.5), random(cols, -0.5, 0.5), random(rows * cols, -1.0, 1.0));
        let (mut rm, mut rv) = (vec![0.0; cols], vec![1.0; cols]);
        let gx = GpuTensor::from_f32(ctx, &[rows, cols], "x", &x)?;
        let gy = nan(&[rows, cols], "y")?;
        let (gg, gb) =
            (GpuTensor::from_f32(ctx, &[cols], "gamma", &gamma)?, GpuTensor::from_f32(ctx, &[cols], "beta", &beta)?);
        let (grm, grv) = (GpuTensor::from_f32(ctx, &[cols], "rm", &rm)?, GpuTensor::from_f32(ctx, &[cols], "rv", &rv)?);
        let ginv = nan(&[cols], "invstd")?;
        let bn = batchnorm::BnTensors { gamma: &gg, beta: &gb, running_mean: &grm, running_var: &grv };
        run(
            ctx,
            &[&batchnorm::forward_train_with(
                ctx,
                &batchnorm::BnForward { x: &gx, y: &gy, bn: &bn, invstd: &ginv },
                Act::Relu,
                reduce,
            )?],
        )?;
        let cpu = batchnorm::cpu_forward_train(
            &x,
            batchnorm::CpuBn { rows, cols, gamma: &gamma, beta: &beta, act: Act::Relu },
            (&mut rm, &mut rv),
        );
        check("batchnorm xhat", &gx.read_f32_async(ctx).await?, &cpu.xhat, 2e-5, 1e-4)?;
        check("batchnorm y", &gy.read_f32_async(ctx).await?, &cpu.y, 2e-5, 1e-4)?;
        check("batchnorm running_var", &grv.read_f32_async(ctx).await?, &rv, 1e-6, 1e-5)?;
        let (gxh, gyc) = (
            GpuTensor::from_f32(ctx, &[rows, cols], "xhat", &cpu.xhat)?,
            GpuTensor::from_f32(ctx, &[rows, cols], "y", &cpu.y)?,
        );
        let gis = GpuTensor::from_f32(ctx, &[cols], "invstd", &cpu.invstd)?;
        let gdy = GpuTensor::from_f32(ctx, &[rows, cols], "dy", &dy)?;
        let (gdg, gdb, gdbias) = (nan(&[cols], "dgamma")?, nan(&[cols], "dbeta")?, nan(&[cols], "dbias")?);
        let grads = batchnorm::BnGrads { dgamma: &gdg, dbeta: &gdb, dbias: &gdbias };
        run(
            ctx,
            &[&batchnorm::backward_with(
                ctx,
                &batchnorm::BnBackward { dy: &gdy, y: &gyc, xhat: &gxh, gamma: &gg, invstd: &gis, grads: &grads },
                Act::Relu,
                false,
                reduce,
            )?],
        )?;
        let (dx, dgamma, dbeta, dbias) = batchnorm::cpu_backward(
            &dy,
            (&cpu.y, &cpu.xhat),
            &cpu.invstd,
            batchnorm::CpuBn { rows, cols, gamma: &gamma, beta: &beta, act: Act::Relu },
        );
        check("batchnorm dx", &gdy.read_f32_async(ctx).await?, &dx, 1e-5, 1e-3)?;
        check("batchnorm dgamma", &gdg.read_f32_async(ctx).await?, &dgamma, 1e-5 * rows as f32, 1e-4)?;
        check("batchnorm dbeta", &gdb.read_f32_async(ctx).await?, &dbeta, 1e-5 * rows as f32, 1e-4)?;
        check("batchnorm dbias", &gdbias.read_f32_async(ctx).await?, &dbias, 1e-4, 1e-3)?;
        // The bias gradient behind a tanh.
        let yv: Vec<f32> = random(rows * cols, -3.0, 3.0).iter().map(|v| v.tanh()).collect();
        let gyv = GpuTensor::from_f32(ctx, &[rows, cols], "y", &yv)?;
        let gdz = GpuTensor::from_f32(ctx, &[rows, cols], "dy", &dy)?;
        let gdbias2 = nan(&[cols], "dbias")?;
        run(ctx, &[&bias_act::backward_with(ctx, bias_act::Act::Tanh, &gyv, &gdz, Some(&gdbias2), reduce)?])?;
        let (dz, db) = bias_act::cpu_backward(bias_act::Act::Tanh, &yv, &dy, rows, cols);
        check("bias_act dz", &gdz.read_f32_async(ctx).await?, &dz, 1e-6, 1e-5)?;
        check("bias_act dbias", &gdbias2.read_f32_async(ctx).await?, &db, 1e-5 * rows as f32, 1e-4)?;
        // BCE over [fake; real].
        let prob = random(2 * rows, 0.01, 0.99);
        let gp = GpuTensor::from_f32(ctx, &[2 * rows, 1], "prob", &prob)?;
        let (gdp, gm) = (nan(&[2 * rows, 1], "dprob")?, nan(&[8], "metrics")?);
        let counters = GpuTensor::zeros(ctx, &[4], "counters");
        let d = bce::forward_backward_with(ctx, (&gp, &gdp), rows, (&gm, 0), &counters, reduce)?;
        run(ctx, &d.iter().collect::<Vec<_>>())?;
        let (loss, dprob, _, _) = bce::cpu_forward_backward(&prob, rows);
        check("bce dprob", &gdp.read_f32_async(ctx).await?, &dprob, 1e-6, 1e-5)?;
        let m = gm.read_f32_async(ctx).await?;
        check_close(&format!("bce loss ({})", reduce.name()), &m[..1], &[loss], 1e-5, 1e-5)
            .map_err(|why| GanError::Device { during: during.clone(), message: why })?;
    }
    ctx.check_health(&during)
}

/// The shape of the batch reductions for `ctx`'s adapter: `GAN_WGPU_REDUCE`
/// when set; `column` on CPU adapters (measured with `gan-wgpu bench`:
/// barrier-free wins on lavapipe); elsewhere both are timed on the step's
/// reductions and the faster kept. The choice is verified against the CPU
/// references on the adapter; if it disagrees, the other shape is used (and
/// verified). `choose_kernels` sets it on the context.
pub fn choose_reduce(ctx: &GpuContext, settings: &Settings) -> ReduceChoice {
    let first = if let Some(variant) = settings.reduce {
        ReduceChoice { variant, how: "GAN_WGPU_REDUCE".into() }
    } else if ctx.is_cpu_adapter() {
        ReduceChoice { variant: Reduce::Column, how: "the measured table for CPU adapters".into() }
    } else {
        match (time_reductions(ctx, Reduce::Column), time_reductions(ctx, Reduce::Tree)) {
            (Ok(column), Ok(tree)) => ReduceChoice {
                variant: if tree < column { Reduce::Tree } else { Reduce::Column },
                how: format!("measured here: column {column:.0} us, tree {tree:.0} us"),
            },
            (Err(e), _) | (_, Err(e)) => {
                ReduceChoice { variant: Reduce::Tree, how: format!("the default for GPUs: timing failed ({e})") }
            }
        }
    };
    let choice = pollster::block_on(verified_reduce_async(ctx, first));
    log::info!("reductions: {}", choice.describe());
    choice
}
