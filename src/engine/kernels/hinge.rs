//! The hinge loss and WGAN's critic loss on raw scores (shaders/hinge.wgsl):
//! launcher, CPU reference and self-check.

use super::{kernel, uniform, Dispatch, Slot};
use crate::engine::context::GpuContext;
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};

pub const SOURCE: &str = include_str!("../../../shaders/hinge.wgsl");

/// Which side of the game the loss is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HingeSide {
    /// relu(1 + s) on the first `n_zero` rows (fakes), relu(1 - s) on the rest.
    Discriminator,
    /// -s on every row.
    Generator,
    /// WGAN's critic: s on the first `n_zero` rows (fakes), -s on the rest.
    Critic,
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    n_zero: u32,
    out: u32,
    mode: u32,
}

/// Loss and gradient for score [n] (or [n, 1]); for the discriminator the
/// first `n_zero` rows are fakes. metrics[out..out+3] = (loss, mean s over
/// rows n_zero.., mean s over rows ..n_zero). A non-finite loss raises the
/// divergence flag in `counters` (see `adam::first_nonfinite_step`).
pub fn forward_backward(
    ctx: &GpuContext,
    (score, dscore): (&GpuTensor, &GpuTensor),
    side: HingeSide,
    n_zero: usize,
    (metrics, out): (&GpuTensor, usize),
    counters: &GpuTensor,
) -> Result<Dispatch> {
    let n = score.numel();
    let generator_rows_ok = side != HingeSide::Generator || n_zero == 0;
    if dscore.numel() != n || n_zero > n || out + 3 > metrics.numel() || !generator_rows_ok {
        return Err(GanError::shape(
            &score.label,
            format!(
                "hinge ({side:?}): score has {n} rows, dscore '{}' {}, n_zero {n_zero}, metrics '{}' {} (writes {}..{})",
                dscore.label,
                dscore.numel(),
                metrics.label,
                metrics.numel(),
                out,
                out + 3
            ),
        ));
    }
    let mode = match side {
        HingeSide::Discriminator => 0,
        HingeSide::Generator => 1,
        HingeSide::Critic => 2,
    };
    let p = uniform(ctx, &score.label, &Params { n: n as u32, n_zero: n_zero as u32, out: out as u32, mode });
    use Slot::*;
    let kern = kernel(
        ctx,
        "hinge.wgsl",
        SOURCE,
        "hinge_forward_backward",
        &[Uniform, Read, ReadWrite, ReadWrite, ReadWrite],
        &[],
    );
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("hinge {}", score.label),
        vec![p.as_entire_binding(), score.binding(), dscore.binding(), metrics.binding(), counters.binding()],
        [1, 1, 1],
    ))
}

/// CPU reference: (loss, dscore, mean s over rows n_zero.., mean s over rows ..n_zero).
pub fn cpu_forward_backward(score: &[f32], side: HingeSide, n_zero: usize) -> (f32, Vec<f32>, f32, f32) {
    let n = score.len();
    let w_zero = 1.0 / n_zero.max(1) as f64;
    let w_one = 1.0 / (n - n_zero).max(1) as f64;
    let (mut loss, mut s_one, mut s_zero) = (0f64, 0f64, 0f64);
    let mut dscore = vec![0f32; n];
    for (i, &s) in score.iter().enumerate() {
        let s64 = s as f64;
        match side {
            HingeSide::Generator => {
                loss -= w_one * s64;
                s_one += s64;
                dscore[i] = -w_one as f32;
            }
            HingeSide::Critic if i >= n_zero => {
                loss -= w_one * s64;
                s_one += s64;
                dscore[i] = -w_one as f32;
            }
            HingeSide::Critic => {
                loss += w_zero * s64;
                s_zero += s64;
                dscore[i] = w_zero as f32;
            }
            HingeSide::Discriminator if i >= n_zero => {
                let margin = 1.0 - s;
                loss += w_one * margin.max(0.0) as f64;
                s_one += s64;
                dscore[i] = if margin > 0.0 { -w_one as f32 } else { 0.0 };
            }
            HingeSide::Discriminator => {
                let margin = 1.0 + s;
                loss += w_zero * margin.max(0.0) as f64;
                s_zero += s64;
                dscore[i] = if margin > 0.0 { w_zero as f32 } else { 0.0 };
            }
        }
    }
    (loss as f32, dscore, (s_one * w_one) as f32, (s_zero * w_zero) as f32)
}

/// The self-test's check of this family (`engine::selftest::run_all`).
pub const SELF_CHECK: super::checks::SelfCheck =
    ("D's and G's hinge loss, WGAN's critic loss, and their gradients on 257 scores", |ctx| Box::pin(self_check(ctx)));

/// The hinge loss: D's two segments over 257 scores around the kinks (the
/// gradient over NaN), then G's side.
async fn self_check(ctx: &GpuContext) -> Result<()> {
    use super::checks::{mismatch, nan_tensor, random};
    use rand::SeedableRng;
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(31);
    let n = 257;
    let score = random(&mut r, n, -2.5, 2.5);
    let gs = GpuTensor::from_f32(ctx, &[n, 1], "score", &score)?;
    let gd = nan_tensor(ctx, &[n, 1], "dscore").await?;
    let metrics = nan_tensor(ctx, &[8], "metrics").await?;
    let counters = GpuTensor::zeros(ctx, &[4], "counters");
    let err = mismatch("hinge");
    for (side, n_zero) in [(HingeSide::Discriminator, 128), (HingeSide::Generator, 0), (HingeSide::Critic, 128)] {
        let d = forward_backward(ctx, (&gs, &gd), side, n_zero, (&metrics, 0), &counters)?;
        super::run(ctx, &[&d])?;
        let (loss, ds, s_one, s_zero) = cpu_forward_backward(&score, side, n_zero);
        let m = metrics.read_f32_async(ctx).await?;
        super::check_close("hinge metrics", &m[..3], &[loss, s_one, s_zero], 1e-5, 1e-5).map_err(&err)?;
        super::check_close("hinge dscore", &gd.read_f32_async(ctx).await?, &ds, 0.0, 1e-6).map_err(&err)?;
    }
    Ok(())
}
