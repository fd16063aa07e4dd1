//! Binary cross-entropy as PyTorch's BCELoss (shaders/bce.wgsl): launcher and CPU reference.

use super::reduce::{Reduce, BCE_ROWS_PER_GROUP};
use super::{groups_for, kernel, uniform, Dispatch, Slot};
use crate::engine::context::GpuContext;
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};

pub const SOURCE: &str = include_str!("../../../shaders/bce.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    n_zero: u32,
    out: u32,
    _pad: u32,
}

/// Loss and gradient for prob [n] (or [n, 1]): the first `n_zero` rows have
/// target 0, the rest target 1, each segment averaged on its own.
/// metrics[out..out+3] = (loss, mean p over target 1, mean p over target 0).
/// A non-finite loss raises the divergence flag in `counters` (see
/// `adam::first_nonfinite_step`).
pub fn forward_backward(
    ctx: &GpuContext,
    (prob, dprob): (&GpuTensor, &GpuTensor),
    n_zero: usize,
    (metrics, out): (&GpuTensor, usize),
    counters: &GpuTensor,
) -> Result<Vec<Dispatch>> {
    forward_backward_with(ctx, (prob, dprob), n_zero, (metrics, out), counters, Reduce::for_adapter(ctx))
}

/// `forward_backward` with the sums in the given shape: one dispatch
/// (`Column`), or two (`Tree`: per-group sums, then their total).
pub fn forward_backward_with(
    ctx: &GpuContext,
    (prob, dprob): (&GpuTensor, &GpuTensor),
    n_zero: usize,
    (metrics, out): (&GpuTensor, usize),
    counters: &GpuTensor,
    reduce: Reduce,
) -> Result<Vec<Dispatch>> {
    let n = prob.numel();
    if dprob.numel() != n || n_zero > n || out + 3 > metrics.numel() {
        return Err(GanError::shape(
            &prob.label,
            format!(
                "bce: prob has {n} rows, dprob '{}' {}, n_zero {n_zero}, metrics '{}' {} (writes {}..{})",
                dprob.label,
                dprob.numel(),
                metrics.label,
                metrics.numel(),
                out,
                out + 3
            ),
        ));
    }
    let p = uniform(ctx, &prob.label, &Params { n: n as u32, n_zero: n_zero as u32, out: out as u32, _pad: 0 });
    use Slot::*;
    match reduce {
        Reduce::Column => {
            let kern = kernel(
                ctx,
                "bce.wgsl",
                SOURCE,
                "bce_forward_backward",
                &[Uniform, Read, ReadWrite, ReadWrite, ReadWrite],
                &[],
            );
            Ok(vec![Dispatch::new(
                ctx,
                &kern,
                &format!("bce {}", prob.label),
                vec![p.as_entire_binding(), prob.binding(), dprob.binding(), metrics.binding(), counters.binding()],
                [1, 1, 1],
            )])
        }
        Reduce::Tree => {
            let groups = n.div_ceil(BCE_ROWS_PER_GROUP).max(1);
            let partials = GpuTensor::zeros(ctx, &[groups, 4], &format!("{} bce partial sums", prob.label));
            let partial = kernel(
                ctx,
                "bce.wgsl",
                SOURCE,
                "bce_partial",
                &[Uniform, Read, ReadWrite, Unused, Unused, ReadWrite],
                &[],
            );
            let finish = kernel(
                ctx,
                "bce.wgsl",
                SOURCE,
                "bce_finish",
                &[Uniform, Unused, Unused, ReadWrite, ReadWrite, ReadWrite],
                &[],
            );
            Ok(vec![
                Dispatch::new(
                    ctx,
                    &partial,
                    &format!("bce partial sums {}", prob.label),
                    vec![p.as_entire_binding(), prob.binding(), dprob.binding(), partials.binding()],
                    [groups_for(n, BCE_ROWS_PER_GROUP).max(1), 1, 1],
                ),
                Dispatch::new(
                    ctx,
                    &finish,
                    &format!("bce total {}", prob.label),
                    vec![p.as_entire_binding(), metrics.binding(), counters.binding(), partials.binding()],
                    [1, 1, 1],
                ),
            ])
        }
    }
}

fn clamped_log(v: f32) -> f64 {
    if v <= 0.0 {
        -100.0
    } else {
        (v.ln() as f64).max(-100.0)
    }
}

/// CPU reference: (loss, dprob, mean p over target 1, mean p over target 0).
pub fn cpu_forward_backward(prob: &[f32], n_zero: usize) -> (f32, Vec<f32>, f32, f32) {
    let n = prob.len();
    let n_one = n - n_zero;
    let w_zero = 1.0 / n_zero.max(1) as f64;
    let w_one = 1.0 / n_one.max(1) as f64;
    let mut loss = 0f64;
    let (mut p_one, mut p_zero) = (0f64, 0f64);
    let mut dprob = vec![0f32; n];
    for (i, &q) in prob.iter().enumerate() {
        let one = i >= n_zero;
        let (t, w) = if one { (1.0, w_one) } else { (0.0, w_zero) };
        let denom = ((q * (1.0 - q)) as f64).max(1e-12);
        dprob[i] = (w * (q as f64 - t) / denom) as f32;
        if one {
            loss -= w * clamped_log(q);
            p_one += q as f64;
        } else {
            loss -= w * clamped_log(1.0 - q);
            p_zero += q as f64;
        }
    }
    (loss as f32, dprob, (p_one * w_one) as f32, (p_zero * w_zero) as f32)
}
