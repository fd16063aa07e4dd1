//! Shared test helpers: one GPU context per test binary, seeded random data.
#![allow(dead_code)]

use gan_wgpu::{DeviceChoice, GpuContext, Requirements};
use rand::{Rng, SeedableRng};
use std::sync::OnceLock;

/// The shared context, or None when no adapter exists and the run allows
/// skipping. With GAN_WGPU_REQUIRE_GPU=1 (as in CI) a missing adapter fails.
pub fn ctx() -> Option<&'static GpuContext> {
    static CTX: OnceLock<Option<GpuContext>> = OnceLock::new();
    CTX.get_or_init(|| {
        match GpuContext::new(&DeviceChoice::from_flag_or_env(None).unwrap(), &Requirements::default()) {
            Ok(c) => {
                eprintln!("test adapter: {}", c.describe());
                Some(c)
            }
            Err(e) => {
                if std::env::var("GAN_WGPU_REQUIRE_GPU").as_deref() == Ok("1") {
                    panic!("GAN_WGPU_REQUIRE_GPU=1 but no usable adapter: {e}");
                }
                eprintln!("SKIPPING GPU TEST: {e}");
                None
            }
        }
    })
    .as_ref()
}

pub fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

pub fn uniform_vec(rng: &mut impl Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Asserts |gpu - cpu| <= atol + rtol |cpu| everywhere.
pub fn assert_close(what: &str, gpu: &[f32], cpu: &[f32], atol: f32, rtol: f32) {
    if let Err(msg) = gan_wgpu::kernels::check_close(what, gpu, cpu, atol, rtol) {
        panic!("{msg}");
    }
}
