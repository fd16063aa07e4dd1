//! Counter-based normal generator (shaders/rng.wgsl): launcher and CPU reference.

use super::{grid_1d, kernel, uniform, Dispatch, Slot};
use crate::engine::context::GpuContext;
use crate::engine::tensor::GpuTensor;
use crate::error::Result;

pub const FILE: &str = include_str!("../../../shaders/rng.wgsl");
pub const SOURCE: &str =
    concat!(include_str!("../../../shaders/philox.wgsl"), include_str!("../../../shaders/rng.wgsl"));

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    key_lo: u32,
    key_hi: u32,
    stream: u32,
    draw_base: u32,
    classes: u32,
    _pad: [u32; 2],
}

impl Params {
    /// `n` numbers of stream `s` (`classes`: rng_labels' range, else 0).
    fn new(n: usize, s: RngStream, classes: usize) -> Self {
        Params {
            n: n as u32,
            key_lo: s.seed as u32,
            key_hi: (s.seed >> 32) as u32,
            stream: s.stream,
            draw_base: s.draw_base,
            classes: classes as u32,
            _pad: [0; 2],
        }
    }
}

/// Which independent sequence a generator draws from.
#[derive(Clone, Copy, Debug)]
pub struct RngStream {
    pub seed: u64,
    pub stream: u32,
    pub draw_base: u32,
}

/// Fills `out` with N(0, 1) numbers for draw `draw_base + counters[0]`.
pub fn normal(ctx: &GpuContext, out: &GpuTensor, s: RngStream, counters: &GpuTensor) -> Result<Dispatch> {
    let n = out.numel();
    let kern = kernel(ctx, "rng.wgsl", SOURCE, "rng_normal", &[Slot::Uniform, Slot::ReadWrite, Slot::Read], &[]);
    let p = uniform(ctx, &out.label, &Params::new(n, s, 0));
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("rng normal {}", out.label),
        vec![p.as_entire_binding(), out.binding(), counters.binding()],
        grid_1d(n.div_ceil(4), 64),
    ))
}

/// Fills `labels` (u32) with numbers uniform in 0..classes for draw
/// `draw_base + counters[0]`: a conditional GAN's fake labels.
pub fn labels(
    ctx: &GpuContext,
    labels: &GpuTensor,
    classes: usize,
    s: RngStream,
    counters: &GpuTensor,
) -> Result<Dispatch> {
    let n = labels.numel();
    if classes == 0 {
        return Err(crate::error::GanError::shape(&labels.label, "labels drawn from 0 classes"));
    }
    let kern =
        kernel(ctx, "rng.wgsl", SOURCE, "rng_labels", &[Slot::Uniform, Slot::Unused, Slot::Read, Slot::ReadWrite], &[]);
    let p = uniform(ctx, &labels.label, &Params::new(n, s, classes));
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("rng labels {}", labels.label),
        vec![p.as_entire_binding(), counters.binding(), labels.binding()],
        grid_1d(n.div_ceil(4), 64),
    ))
}

/// CPU reference of `labels` with counters[0] = `steps_done`.
pub fn cpu_labels(n: usize, classes: usize, s: RngStream, steps_done: u32) -> Vec<u32> {
    let draw = s.draw_base.wrapping_add(steps_done);
    (0..n).map(|i| mulhilo(cpu_u32(s.seed, s.stream, draw, i), classes as u32).0).collect()
}

/// The i-th u32 of draw `draw` of `stream` under `seed`: bits[i % 4] of
/// Philox counter (i / 4, draw, stream, 0), as rng_labels and dropout.wgsl
/// read it.
pub fn cpu_u32(seed: u64, stream: u32, draw: u32, i: usize) -> u32 {
    philox4x32_10([(i / 4) as u32, draw, stream, 0], [seed as u32, (seed >> 32) as u32])[i % 4]
}

fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let prod = a as u64 * b as u64;
    ((prod >> 32) as u32, prod as u32)
}

/// Philox4x32-10, as in philox.wgsl.
pub fn philox4x32_10(counter: [u32; 4], key: [u32; 2]) -> [u32; 4] {
    let mut c = counter;
    let mut k = key;
    for _ in 0..10 {
        let (hi0, lo0) = mulhilo(0xD251_1F53, c[0]);
        let (hi1, lo1) = mulhilo(0xCD9E_8D57, c[2]);
        c = [hi1 ^ c[1] ^ k[0], lo1, hi0 ^ c[3] ^ k[1], lo0];
        k = [k[0].wrapping_add(0x9E37_79B9), k[1].wrapping_add(0xBB67_AE85)];
    }
    c
}

fn box_muller(x: u32, y: u32) -> [f32; 2] {
    let u1 = ((x >> 8) + 1) as f64 / 16_777_216.0;
    // In [-1/2, 1/2): the GPU's angle stays where WGSL bounds cos and sin.
    let u2 = (y >> 8) as f64 / 16_777_216.0 - 0.5;
    let r = (-2.0 * u1.ln()).sqrt();
    let theta = std::f64::consts::TAU * u2;
    [(r * theta.cos()) as f32, (r * theta.sin()) as f32]
}

/// CPU reference: the same numbers as `normal` with counters[0] = `steps_done`.
pub fn cpu_normal(n: usize, s: RngStream, steps_done: u32) -> Vec<f32> {
    let draw = s.draw_base.wrapping_add(steps_done);
    let key = [s.seed as u32, (s.seed >> 32) as u32];
    let mut out = Vec::with_capacity(n);
    for q in 0..n.div_ceil(4) {
        let bits = philox4x32_10([q as u32, draw, s.stream, 0], key);
        let z = [box_muller(bits[0], bits[1]), box_muller(bits[2], bits[3])].concat();
        for &v in z.iter().take(n - out.len().min(n)) {
            if out.len() < n {
                out.push(v);
            }
        }
    }
    out
}
