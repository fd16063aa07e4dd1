//! Inverted dropout in place (shaders/dropout.wgsl): launcher and CPU
//! reference. The same dispatch serves the forward pass (on a layer's
//! output) and the backward pass (on the gradient w.r.t. that output): the
//! mask is recomputed from the seed, the stream and the step counter.

use super::{grid_1d, kernel, uniform, Dispatch, Slot};
use crate::engine::context::GpuContext;
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};

pub const FILE: &str = include_str!("../../../shaders/dropout.wgsl");
pub const SOURCE: &str =
    concat!(include_str!("../../../shaders/philox.wgsl"), include_str!("../../../shaders/dropout.wgsl"));

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    key_lo: u32,
    key_hi: u32,
    stream: u32,
    threshold: u32,
    scale: f32,
    _pad: [u32; 2],
}

/// The Philox streams of a GAN's discriminator dropout masks: the D
/// step's pass over [fake; real] draws streams D_STEP_STREAM + layer, the
/// G step's pass over the fake batch G_STEP_STREAM + layer (each pass its
/// own masks, as PyTorch's separate calls draw; a D of up to 16 layers).
/// Streams 0 to 2 are the latent codes', the grids' and the fake labels'.
pub const D_STEP_STREAM: u32 = 16;
pub const G_STEP_STREAM: u32 = 32;

/// Which masks a pass draws: layer `l` of the pass uses Philox stream
/// `stream + l` of `seed`, at draw counters[0] (the steps done).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutDraw {
    pub seed: u64,
    pub stream: u32,
}

impl DropoutDraw {
    /// The draw of layer `layer` of the pass.
    pub fn layer(self, layer: usize) -> DropoutDraw {
        DropoutDraw { stream: self.stream + layer as u32, ..self }
    }
}

/// (threshold, scale) for drop probability `p`: an element is kept when its
/// u32 is at least round(p 2^32), and scaled by 1 / (1 - p).
fn threshold_scale(p: f32) -> (u32, f32) {
    let threshold = (p as f64 * 4_294_967_296.0).round().min(u32::MAX as f64) as u32;
    (threshold, 1.0 / (1.0 - p))
}

/// Checks a drop probability: in [0, 1).
pub fn check_probability(p: f32) -> std::result::Result<(), String> {
    if (0.0..1.0).contains(&p) {
        Ok(())
    } else {
        Err(format!("dropout probability {p} is not in [0, 1)"))
    }
}

/// Multiplies `x` in place by the mask of `draw` at the step counters[0].
pub fn apply(ctx: &GpuContext, x: &GpuTensor, p: f32, draw: DropoutDraw, counters: &GpuTensor) -> Result<Dispatch> {
    check_probability(p).map_err(|why| GanError::shape(&x.label, why))?;
    let n = x.numel();
    let (threshold, scale) = threshold_scale(p);
    let params = Params {
        n: n as u32,
        key_lo: draw.seed as u32,
        key_hi: (draw.seed >> 32) as u32,
        stream: draw.stream,
        threshold,
        scale,
        _pad: [0; 2],
    };
    let kern = kernel(ctx, "dropout.wgsl", SOURCE, "dropout_apply", &[Slot::Uniform, Slot::ReadWrite, Slot::Read], &[]);
    let u = uniform(ctx, &x.label, &params);
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("dropout {}", x.label),
        vec![u.as_entire_binding(), x.binding(), counters.binding()],
        grid_1d(n.div_ceil(4), 64),
    ))
}

/// CPU reference: the mask `apply` multiplies by with counters[0] =
/// `steps_done`, [n] values 0 or 1 / (1 - p).
pub fn cpu_mask(n: usize, p: f32, draw: DropoutDraw, steps_done: u32) -> Vec<f32> {
    let (threshold, scale) = threshold_scale(p);
    let kept = |i| super::rng::cpu_u32(draw.seed, draw.stream, steps_done, i) >= threshold;
    (0..n).map(|i| if kept(i) { scale } else { 0.0 }).collect()
}

/// CPU reference of `apply`: x[i] * mask[i], 0 where dropped.
pub fn cpu_apply(x: &mut [f32], mask: &[f32]) {
    for (v, &m) in x.iter_mut().zip(mask) {
        *v = if m == 0.0 { 0.0 } else { *v * m };
    }
}
