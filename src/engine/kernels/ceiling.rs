//! The adapter's ceilings (shaders/ceiling.wgsl): two load-free FMA loops
//! (one loop-carried update per multiply-add, and the chunked one a kernel
//! can reach: one per FMA_CHAIN) and a streaming copy, for the benchmark;
//! launchers and CPU references.

use super::{grid_1d, kernel, uniform, Dispatch, Slot};
use crate::engine::context::GpuContext;
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};

pub const SOURCE: &str = include_str!("../../../shaders/ceiling.wgsl");

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

/// Dependent multiply-adds per loop-carried update in `fma_chunked`
/// (FMA_CHAIN in the shader).
pub const FMA_CHAIN: u32 = 8;

/// The two FMA loops of ceiling.wgsl.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FmaLoop {
    /// `fma_peak`: 8 vec4 accumulators, each loop-carried once per multiply-add.
    PerFma,
    /// `fma_chunked`: 4 vec4 accumulators in registers, each loop-carried
    /// once per FMA_CHAIN multiply-adds: the limit a kernel can reach.
    Chunked,
}

impl FmaLoop {
    pub const ALL: [FmaLoop; 2] = [FmaLoop::PerFma, FmaLoop::Chunked];

    fn entry(self) -> &'static str {
        match self {
            FmaLoop::PerFma => "fma_peak",
            FmaLoop::Chunked => "fma_chunked",
        }
    }

    /// vec4 accumulators per invocation.
    pub fn accumulators(self) -> usize {
        match self {
            FmaLoop::PerFma => 8,
            FmaLoop::Chunked => 4,
        }
    }

    /// Dependent multiply-adds each accumulator takes in `iters` iterations.
    pub fn steps(self, iters: u32) -> u32 {
        match self {
            FmaLoop::PerFma => iters,
            FmaLoop::Chunked => iters * FMA_CHAIN,
        }
    }

    /// Multiply-adds per invocation and iteration.
    fn fmas_per_iter(self) -> f64 {
        (self.accumulators() * 4) as f64 * self.steps(1) as f64
    }

    /// FLOPs of `n` invocations of `iters` iterations (an FMA is 2).
    pub fn flops(self, n: usize, iters: u32) -> f64 {
        n as f64 * iters as f64 * self.fmas_per_iter() * 2.0
    }

    /// How far the GPU's out[i] may stand from `cpu_fma_loop`'s: a GPU may
    /// round a non-fused fma twice, so each step adds at most an ULP of a
    /// value near 1, and the contraction (a = 0.999) keeps the sum of the
    /// steps' errors, times the values summed (4 a vec4 accumulator),
    /// under values * steps * 2^-23.
    pub fn tolerance(self, iters: u32) -> f32 {
        (4 * self.accumulators()) as f32 * self.steps(iters) as f32 * 2f32.powi(-23) + 1e-6
    }
}

/// out[i] for i < out.numel() from the FMA loop `kind` (see the shader).
/// FLOPs: `kind.flops(out.numel(), iters)`.
pub fn fma_loop(ctx: &GpuContext, kind: FmaLoop, out: &GpuTensor, iters: u32) -> Result<Dispatch> {
    let n = out.numel();
    let kern = kernel(
        ctx,
        "ceiling.wgsl",
        SOURCE,
        kind.entry(),
        &[Slot::Uniform, Slot::Unused, Slot::Unused, Slot::ReadWrite],
        &[],
    );
    let p = uniform(ctx, &out.label, &Params { n: n as u32, iters, a: FMA_A, b: FMA_B });
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("{} {n}x{iters}", kind.entry()),
        vec![p.as_entire_binding(), out.binding()],
        grid_1d(n, 64),
    ))
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

/// An FMA loop on the CPU (rounded to f32 per step, as the GPU may round a
/// non-fused fma): out[i] for i < n. Accumulator j of the loop's
/// `kind.accumulators()` starts at j / accumulators + i / n and takes
/// `kind.steps(iters)` steps; out[i] is 4 times their sum (vec4 lanes).
pub fn cpu_fma_loop(kind: FmaLoop, n: usize, iters: u32) -> Vec<f32> {
    let accs = kind.accumulators();
    (0..n)
        .map(|i| {
            let start = i as f32 / n as f32;
            let mut total = 0f32;
            for j in 0..accs {
                let mut acc = j as f32 / accs as f32 + start;
                for _ in 0..kind.steps(iters) {
                    acc = acc.mul_add(FMA_A, FMA_B);
                }
                total += 4.0 * acc;
            }
            total
        })
        .collect()
}
