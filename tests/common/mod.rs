//! Shared test helpers: one GPU context per test binary, seeded random data.
#![allow(dead_code)]

use gan_wgpu::{GpuContext, Requirements, Settings};
use rand::{Rng, SeedableRng};
use std::sync::OnceLock;

/// Opting out of the GPU tests: with GAN_WGPU_SKIP_GPU_TESTS=1 a missing
/// adapter skips them, each saying so on stderr. Without it (the default, and
/// in CI) a missing adapter fails every GPU test.
pub const SKIP_VAR: &str = "GAN_WGPU_SKIP_GPU_TESTS";

/// The shared context. Without an adapter this panics (the test fails),
/// unless skipping was asked for with GAN_WGPU_SKIP_GPU_TESTS=1: then it
/// prints what is skipped and returns None.
pub fn ctx() -> Option<&'static GpuContext> {
    static CTX: OnceLock<Result<GpuContext, String>> = OnceLock::new();
    let made = CTX.get_or_init(|| {
        let settings = Settings::from_env().map_err(|e| e.to_string())?;
        let c = gan_wgpu::engine::autotune::open(
            &settings.device_choice(None).map_err(|e| e.to_string())?,
            &Requirements::default(),
            &settings,
        )
        .map_err(|e| e.to_string())?;
        eprintln!("test adapter: {}", c.describe());
        Ok(c)
    });
    match made {
        Ok(c) => Some(c),
        Err(e) => {
            let test = std::thread::current().name().unwrap_or("?").to_string();
            if std::env::var(SKIP_VAR).as_deref() == Ok("1") {
                eprintln!("SKIPPED GPU test {test} ({SKIP_VAR}=1): no usable adapter: {e}");
                None
            } else {
                panic!("no usable GPU adapter for {test}: {e} (set {SKIP_VAR}=1 to skip the GPU tests instead)");
            }
        }
    }
}

/// `n` random u8 images of `h` x `w`, without labels.
pub fn random_set(n: usize, h: usize, w: usize, seed: u64) -> gan_wgpu::io::data::ImageSet {
    let mut r = rng(seed);
    gan_wgpu::io::data::ImageSet {
        count: n,
        height: h,
        width: w,
        pixels: (0..n * h * w).map(|_| r.random::<u8>()).collect(),
        labels: None,
        channels: 1,
        class_names: Vec::new(),
        source: "random".into(),
    }
}

pub fn rng(seed: u64) -> rand_chacha::ChaCha8Rng {
    rand_chacha::ChaCha8Rng::seed_from_u64(seed)
}

pub fn uniform_vec(rng: &mut impl Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| rng.random_range(lo..hi)).collect()
}

/// Asserts |gpu - cpu| <= atol + rtol |cpu| everywhere.
pub fn assert_close(what: &str, gpu: &[f32], cpu: &[f32], atol: f32, rtol: f32) {
    if let Err(msg) = gan_wgpu::engine::kernels::check_close(what, gpu, cpu, atol, rtol) {
        panic!("{msg}");
    }
}

/// A dense critic of odd widths (no width divides a tile): `widths[0]`
/// inputs, hidden layers with `hidden` activations, one raw score.
pub fn odd_critic(widths: &[usize], hidden: gan_wgpu::engine::kernels::bias_act::Act) -> gan_wgpu::nn::spec::NetSpec {
    use gan_wgpu::engine::kernels::bias_act::Act;
    use gan_wgpu::nn::spec::{InitScheme, LayerKind, LayerSpec, NetSpec};
    let last = widths.len() - 2;
    let layers = (0..=last)
        .map(|i| LayerSpec {
            name: format!("model.{}", 2 * i),
            kind: LayerKind::Dense,
            inp: widths[i],
            out: widths[i + 1],
            bias: true,
            bn: None,
            act: if i == last { Act::Identity } else { hidden },
            dropout: None,
        })
        .collect();
    NetSpec { name: "critic", layers, embedding: None, init: InitScheme::PyTorch }
}

/// A convolutional critic on 7x7 images of 2 channels that divides no tile:
/// Conv2d(2, 3, 4, stride 2, pad 1) -> 3x3 with `hidden`, Conv2d(3, 4, 3,
/// pad 1) -> 3x3 with `hidden`, Conv2d(4, 1, 3) over the whole 3x3 -> one
/// raw score; no biases (dcgan's).
pub fn odd_conv_critic(hidden: gan_wgpu::engine::kernels::bias_act::Act) -> gan_wgpu::nn::spec::NetSpec {
    use gan_wgpu::engine::kernels::bias_act::Act;
    use gan_wgpu::nn::spec::{InitScheme, LayerKind, LayerSpec, NetSpec};
    let conv = |i: usize, (h, k, stride, pad): (usize, usize, usize, usize), inp, out, act| LayerSpec {
        name: format!("main.{i}"),
        kind: LayerKind::Conv { h, w: h, k, stride, pad },
        inp,
        out,
        bias: false,
        bn: None,
        act,
        dropout: None,
    };
    let layers = vec![
        conv(0, (7, 4, 2, 1), 2, 3, hidden),
        conv(2, (3, 3, 1, 1), 3, 4, hidden),
        conv(4, (3, 3, 1, 0), 4, 1, Act::Identity),
    ];
    NetSpec { name: "critic", layers, embedding: None, init: InitScheme::PyTorch }
}
