//! WGAN-GP's gradient penalty pieces (shaders/gradient_penalty.wgsl):
//! launchers, CPU references and the family's self-check. The passes through
//! the critic between them are `nn::penalty`'s.

use super::{grid_1d, kernel, uniform, Dispatch, Slot};
use crate::engine::context::GpuContext;
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};

pub const FILE: &str = include_str!("../../../shaders/gradient_penalty.wgsl");
pub const SOURCE: &str =
    concat!(include_str!("../../../shaders/philox.wgsl"), include_str!("../../../shaders/gradient_penalty.wgsl"));

/// The Philox stream the interpolation weights eps are drawn from (the
/// dropout streams take 16..48).
pub const EPS_STREAM: u32 = 48;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    dim: u32,
    key_lo: u32,
    key_hi: u32,
    stream: u32,
    out: u32,
    loss_at: u32,
    lambda: f32,
}

impl Params {
    fn rows(rows: usize, dim: usize) -> Self {
        Params { rows: rows as u32, dim: dim as u32, key_lo: 0, key_hi: 0, stream: 0, out: 0, loss_at: 0, lambda: 0.0 }
    }
}

const SLOTS: usize = 6;

fn launch(
    ctx: &GpuContext,
    entry: &'static str,
    p: &Params,
    bound: [Option<&GpuTensor>; SLOTS - 1],
    grid: [u32; 3],
) -> Result<Dispatch> {
    let mut slots = vec![Slot::Uniform];
    slots.extend(bound.iter().enumerate().map(|(i, t)| match (i, t) {
        (_, None) => Slot::Unused,
        (0, Some(_)) => Slot::Read,
        _ => Slot::ReadWrite,
    }));
    let kern = kernel(ctx, "gradient_penalty.wgsl", SOURCE, entry, &slots, &[]);
    let u = uniform(ctx, entry, p);
    let mut bindings = vec![u.as_entire_binding()];
    bindings.extend(bound.iter().flatten().map(|t| t.binding()));
    let label = bound.iter().flatten().map(|t| t.label.as_str()).collect::<Vec<_>>().join(", ");
    Ok(Dispatch::new(ctx, &kern, &format!("{entry} {label}"), bindings, grid))
}

fn shape_error(what: &GpuTensor, why: String) -> GanError {
    GanError::shape(&what.label, why)
}

/// x_hat [B, dim] = eps x + (1 - eps) G(z) from `d_input` [2B, dim] (fakes
/// first), eps [B] drawn from `seed`'s stream `EPS_STREAM` at counters[0].
pub fn mix(
    ctx: &GpuContext,
    d_input: &GpuTensor,
    (x_hat, eps): (&GpuTensor, &GpuTensor),
    seed: u64,
    counters: &GpuTensor,
) -> Result<Dispatch> {
    let [rows, dim] = x_hat.dims2()?;
    if d_input.numel() != 2 * rows * dim || eps.numel() != rows {
        let why = format!("x_hat [{rows}, {dim}] from {} values, eps {}", d_input.numel(), eps.numel());
        return Err(shape_error(d_input, why));
    }
    let p = Params { key_lo: seed as u32, key_hi: (seed >> 32) as u32, stream: EPS_STREAM, ..Params::rows(rows, dim) };
    let bound = [Some(d_input), Some(x_hat), Some(eps), None, Some(counters)];
    let grid = [dim.div_ceil(4).div_ceil(64) as u32, rows as u32, 1];
    launch(ctx, "gp_mix", &p, bound, grid)
}

/// Per row of `g` [B, dim]: its norm into `norms` [B], and g scaled in place
/// into the penalty's gradient w.r.t. g (weight `lambda`).
pub fn norms(ctx: &GpuContext, g: &GpuTensor, norms: &GpuTensor, lambda: f32) -> Result<Dispatch> {
    let [rows, dim] = g.dims2()?;
    if norms.numel() != rows {
        return Err(shape_error(norms, format!("{} norms for {rows} rows", norms.numel())));
    }
    let p = Params { lambda, ..Params::rows(rows, dim) };
    launch(ctx, "gp_norms", &p, [None, Some(g), Some(norms), None, None], [rows as u32, 1, 1])
}

/// The penalty and the mean norm into metrics[out], metrics[out + 1]; the
/// penalty added to metrics[loss_at].
pub fn total(
    ctx: &GpuContext,
    norms: &GpuTensor,
    lambda: f32,
    (metrics, out, loss_at): (&GpuTensor, usize, usize),
    counters: &GpuTensor,
) -> Result<Dispatch> {
    if out + 2 > metrics.numel() || loss_at >= metrics.numel() {
        return Err(shape_error(metrics, format!("writes {out}..{} and {loss_at} of {}", out + 2, metrics.numel())));
    }
    let p = Params { out: out as u32, loss_at: loss_at as u32, lambda, ..Params::rows(norms.numel(), 0) };
    launch(ctx, "gp_total", &p, [None, None, Some(norms), Some(metrics), Some(counters)], [1, 1, 1])
}

/// grads += extra, element-wise.
pub fn add(ctx: &GpuContext, grads: &GpuTensor, extra: &GpuTensor) -> Result<Dispatch> {
    let n = grads.numel();
    if extra.numel() != n {
        return Err(shape_error(extra, format!("{} values added to {n}", extra.numel())));
    }
    launch(ctx, "gp_add", &Params::rows(n, 0), [Some(extra), Some(grads), None, None, None], grid_1d(n, 64))
}

/// CPU reference of `mix`'s eps for step counter `steps_done`.
pub fn cpu_eps(rows: usize, seed: u64, steps_done: u32) -> Vec<f32> {
    (0..rows)
        .map(|r| (super::rng::cpu_u32(seed, EPS_STREAM, steps_done, r) >> 8) as f32 * (1.0 / 16_777_216.0))
        .collect()
}

/// CPU reference of `mix`: x_hat [rows, dim] from d_input [2 rows, dim].
pub fn cpu_mix(d_input: &[f32], eps: &[f32], dim: usize) -> Vec<f32> {
    let rows = eps.len();
    let mut out = vec![0.0; rows * dim];
    for r in 0..rows {
        for j in 0..dim {
            let (fake, real) = (d_input[r * dim + j], d_input[(rows + r) * dim + j]);
            out[r * dim + j] = eps[r] * real + (1.0 - eps[r]) * fake;
        }
    }
    out
}

/// CPU reference of `norms` and `total`: (penalty, mean norm, norms, d
/// penalty / d g) for g [rows, dim].
pub fn cpu_penalty(g: &[f32], rows: usize, lambda: f32) -> (f32, f32, Vec<f32>, Vec<f32>) {
    let dim = g.len() / rows;
    let (mut penalty, mut norm_sum) = (0f64, 0f64);
    let mut norms = vec![0.0; rows];
    let mut dg = vec![0.0; g.len()];
    for r in 0..rows {
        let row = &g[r * dim..(r + 1) * dim];
        let n = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
        norms[r] = n as f32;
        penalty += (n - 1.0) * (n - 1.0);
        norm_sum += n;
        let c = if n > 0.0 { 2.0 * lambda as f64 / rows as f64 * (n - 1.0) / n } else { 0.0 };
        for j in 0..dim {
            dg[r * dim + j] = (c * row[j] as f64) as f32;
        }
    }
    let w = 1.0 / rows as f64;
    ((lambda as f64 * penalty * w) as f32, (norm_sum * w) as f32, norms, dg)
}

/// The self-test's check of this family (`engine::selftest::run_all`).
pub const SELF_CHECK: super::checks::SelfCheck =
    ("the gradient penalty's interpolation, norms, total and sum on odd shapes", |ctx| Box::pin(self_check(ctx)));

/// Each entry point against its CPU reference: 7 rows of 45 pixels, outputs
/// over NaN, the step counter at 5.
async fn self_check(ctx: &GpuContext) -> Result<()> {
    use super::checks::{mismatch, nan_tensor, random};
    use rand::SeedableRng;
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(48);
    let (rows, dim, seed, lambda) = (7, 45, 0x5eed_0000_0001_u64, 10.0);
    let err = mismatch("gradient penalty");
    let d_input = random(&mut r, 2 * rows * dim, -1.0, 1.0);
    let gd = GpuTensor::from_f32(ctx, &[2 * rows, dim], "d_input", &d_input)?;
    let (x_hat, eps) = (nan_tensor(ctx, &[rows, dim], "x_hat").await?, nan_tensor(ctx, &[rows], "eps").await?);
    let counters = GpuTensor::from_u32(ctx, &[4], "counters", &[5, 0, 0, 0])?;
    // Rows of norm near 1 and one of 0 (its gradient is 0, as torch.norm's).
    let mut g = random(&mut r, rows * dim, -0.3, 0.3);
    g[dim..2 * dim].fill(0.0);
    let gg = GpuTensor::from_f32(ctx, &[rows, dim], "g", &g)?;
    let gn = nan_tensor(ctx, &[rows], "norms").await?;
    let metrics = GpuTensor::from_f32(ctx, &[8], "metrics", &[0.5; 8])?;
    let sum = GpuTensor::from_f32(ctx, &[rows * dim], "sum", &g)?;
    let extra = GpuTensor::from_f32(ctx, &[rows * dim], "extra", &d_input[..rows * dim])?;
    let steps = [
        mix(ctx, &gd, (&x_hat, &eps), seed, &counters)?,
        norms(ctx, &gg, &gn, lambda)?,
        total(ctx, &gn, lambda, (&metrics, 6, 0), &counters)?,
        add(ctx, &sum, &extra)?,
    ];
    super::run(ctx, &steps.iter().collect::<Vec<_>>())?;
    let want_eps = cpu_eps(rows, seed, 5);
    super::check_close("eps", &eps.read_f32_async(ctx).await?, &want_eps, 0.0, 0.0).map_err(&err)?;
    let want_x = cpu_mix(&d_input, &want_eps, dim);
    super::check_close("x_hat", &x_hat.read_f32_async(ctx).await?, &want_x, 1e-6, 1e-6).map_err(&err)?;
    let (penalty, mean_norm, want_norms, dg) = cpu_penalty(&g, rows, lambda);
    super::check_close("norms", &gn.read_f32_async(ctx).await?, &want_norms, 1e-6, 1e-5).map_err(&err)?;
    super::check_close("d penalty / d g", &gg.read_f32_async(ctx).await?, &dg, 1e-6, 1e-5).map_err(&err)?;
    let m = metrics.read_f32_async(ctx).await?;
    let want_m = [0.5 + penalty, penalty, mean_norm];
    super::check_close("penalty metrics", &[m[0], m[6], m[7]], &want_m, 1e-5, 1e-5).map_err(&err)?;
    let want_sum: Vec<f32> = g.iter().zip(&d_input).map(|(a, b)| a + b).collect();
    super::check_close("grads + extra", &sum.read_f32_async(ctx).await?, &want_sum, 0.0, 0.0).map_err(&err)?;
    Ok(())
}
