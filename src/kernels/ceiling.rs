//! The adapter's ceilings (shaders/ceiling.wgsl): a load-free FMA loop and a
//! streaming copy, for the benchmark; launchers and CPU references.

use super::{grid_1d, kernel, uniform, Dispatch, Slot};
use crate::context::GpuContext;
use crate::error::{GanError, Result};
use crate::tensor::GpuTensor;

pub const SOURCE: &str = include_str!("../../shaders/ceiling.wgsl");

/// The FMA loop's multiplier and addend: acc converges to b / (1 - a) = 1,
/// so no value grows or vanishes however long the loop.
pub const FMA_A: f32 = 0.999;
pub const FMA_B: f32 = 0.001;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    iters: u32,
    a: f32,
    b: f32,
}

/// out[i] for i < out.numel(): `iters` rounds of 8 vec4 FMAs with nothing
/// loaded (see the shader). FLOPs: `fma_flops(out.numel(), iters)`.
pub fn fma_peak(ctx: &GpuContext, out: &GpuTensor, iters: u32) -> Result<Dispatch> {
    let n = out.numel();
    let kern = kernel(
        ctx,
        "ceiling.wgsl",
        SOURCE,
        "fma_peak",
        &[Slot::Uniform, Slot::Unused, Slot::Unused, Slot::ReadWrite],
        &[],
    );
    let p = uniform(ctx, &out.label, &Params { n: n as u32, iters, a: FMA_A, b: FMA_B });
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("fma peak {n}x{iters}"),
        vec![p.as_entire_binding(), out.binding()],
        grid_1d(n, 64),
    ))
}

pub fn fma_flops(n: usize, iters: u32) -> f64 {
    n as f64 * iters as f64 * 8.0 * 4.0 * 2.0
}

/// dst = src, vec4 by vec4 (lengths in floats, multiples of 4, equal).
pub fn stream_copy(ctx: &GpuContext, src: &GpuTensor, dst: &GpuTensor) -> Result<Dispatch> {
    let n = src.numel();
    if !n.is_multiple_of(4) || dst.numel() != n {
        return Err(GanError::shape(
            &dst.label,
            format!("a copy of {n} floats into {} (both a multiple of 4, equal)", dst.numel()),
        ));
    }
    let kern = kernel(
        ctx,
        "ceiling.wgsl",
        SOURCE,
        "stream_copy",
        &[Slot::Uniform, Slot::Read, Slot::ReadWrite, Slot::Unused],
        &[],
    );
    let p = uniform(ctx, &dst.label, &Params { n: (n / 4) as u32, iters: 0, a: 0.0, b: 0.0 });
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("stream copy {n}"),
        vec![p.as_entire_binding(), src.binding(), dst.binding()],
        grid_1d(n / 4, 64),
    ))
}

/// The FMA loop on the CPU (f64 carried, rounded to f32 per step as the GPU
/// may round a non-fused fma): out[i] for i < n.
pub fn cpu_fma_peak(n: usize, iters: u32) -> Vec<f32> {
    (0..n)
        .map(|i| {
            let start = i as f32 / n as f32;
            let mut total = 0f32;
            for j in 0..8 {
                let mut acc = j as f32 / 8.0 + start;
                for _ in 0..iters {
                    acc = acc.mul_add(FMA_A, FMA_B);
                }
                total += 4.0 * acc;
            }
            total
        })
        .collect()
}
