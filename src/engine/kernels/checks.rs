//! What a kernel family's self-check (`ShaderFile::check`, run by
//! `engine::selftest::run_all` natively and in the page) is built from:
//! random inputs, outputs pre-filled with NaN, and the error a mismatch
//! becomes. A family keeps its check beside its launcher and CPU
//! reference (`hinge.rs`); the self-test runs every registered one.

use crate::engine::context::GpuContext;
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};
use rand::Rng;

/// A family's check future (boxed: the registry holds plain fn pointers).
pub type CheckFuture<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + 'a>>;

/// A family's self-check: what it checks, and the check.
pub type SelfCheck = (&'static str, for<'a> fn(&'a GpuContext) -> CheckFuture<'a>);

/// `n` uniform values in [lo, hi).
pub fn random(r: &mut rand_chacha::ChaCha8Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| r.random_range(lo..hi)).collect()
}

/// The error a disagreement of `what` becomes.
pub fn mismatch(what: &str) -> impl Fn(String) -> GanError + '_ {
    move |message| GanError::Device { during: format!("self-test {what}"), message }
}

/// A tensor of `shape` filled with NaN, so an output a kernel fails to
/// write cannot pass.
pub async fn nan_tensor(ctx: &GpuContext, shape: &[usize], label: &str) -> Result<GpuTensor> {
    let t = GpuTensor::zeros(ctx, shape, label);
    t.fill_nan(ctx)?;
    Ok(t)
}
