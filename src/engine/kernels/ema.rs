//! Exponential moving average of a tensor over training steps
//! (shaders/ema.wgsl): launcher and CPU reference. The trainer keeps the
//! generator's averaged weights and batch-norm statistics with it.

use super::{grid_1d, kernel, uniform, Dispatch, Slot};
use crate::engine::context::GpuContext;
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};

pub const SOURCE: &str = include_str!("../../../shaders/ema.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    copy: u32,
    one_minus_decay: f32,
    every: u32,
}

/// Whether `decay` is one an average can use: [0, 1).
pub fn check_decay(decay: f32) -> std::result::Result<(), String> {
    if (0.0..1.0).contains(&decay) {
        Ok(())
    } else {
        Err(format!("the average's decay must be in [0, 1), got {decay}"))
    }
}

/// One step of `average += w (value - average)`, w = `weight(decay, t)`
/// with t = (counters[0] + 1) / every - 1 read on the GPU (the value's
/// updates before this one; the first copies). `every`: the averaged
/// network updates every `every`-th step (1, or the generator's --n-critic).
pub fn update(
    ctx: &GpuContext,
    (average, value): (&GpuTensor, &GpuTensor),
    decay: f32,
    counters: &GpuTensor,
    every: u32,
) -> Result<Dispatch> {
    check_decay(decay).map_err(|why| GanError::shape(&average.label, why))?;
    let n = average.numel();
    if value.numel() != n {
        return Err(GanError::shape(
            &average.label,
            format!("ema: {n} elements, the averaged '{}' has {}", value.label, value.numel()),
        ));
    }
    // Whole vec4s where the length allows (a network's padded flat buffers).
    let (entry, grid) =
        if n.is_multiple_of(4) { ("ema_update_vec4", grid_1d(n / 4, 256)) } else { ("ema_update", grid_1d(n, 256)) };
    let kern = kernel(ctx, "ema.wgsl", SOURCE, entry, &[Slot::Uniform, Slot::ReadWrite, Slot::Read, Slot::Read], &[]);
    let every = every.max(1);
    let params = Params { n: n as u32, copy: u32::from(decay == 0.0), one_minus_decay: one_minus(decay), every };
    let u = uniform(ctx, &average.label, &params);
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("ema {}", average.label),
        vec![u.as_entire_binding(), average.binding(), value.binding(), counters.binding()],
        grid,
    ))
}

/// 1 - decay, rounded once (from f64), as the kernel and reference take it.
fn one_minus(decay: f32) -> f32 {
    (1.0 - decay as f64) as f32
}

/// The weight of the newest value after `steps_done` earlier steps:
/// max(1 - decay, 9 / (10 + steps_done)), 1 at the first step.
pub fn weight(decay: f32, steps_done: u32) -> f32 {
    if steps_done == 0 || decay == 0.0 {
        1.0
    } else {
        one_minus(decay).max(9.0 / (10.0 + steps_done as f32))
    }
}

/// CPU reference of `update` with counters[0] = `steps_done`.
pub fn cpu_update(average: &mut [f32], value: &[f32], decay: f32, steps_done: u32) {
    let w = weight(decay, steps_done);
    for (a, &v) in average.iter_mut().zip(value) {
        *a = if w == 1.0 { v } else { *a + w * (v - *a) };
    }
}
