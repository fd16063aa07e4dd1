//! BatchNorm1d (and BatchNorm2d on NHWC rows) with the activation after it
//! fused (shaders/batchnorm.wgsl): launchers and CPU reference.

use super::bias_act::{cpu_act, cpu_act_grad_from_output, Act};
use super::reduce::{Reduce, TREE_COLS};
use super::{grid_1d, groups_for, kernel, uniform, Dispatch, Slot};
use crate::engine::context::GpuContext;
use crate::engine::tensor::GpuTensor;
use crate::error::Result;

pub const FILE: &str = include_str!("../../../shaders/batchnorm.wgsl");
/// What the launchers compile: tree_reduce.wgsl, then this file.
pub const SOURCE: &str = concat!(
    include_str!("../../../shaders/activation.wgsl"),
    include_str!("../../../shaders/tree_reduce.wgsl"),
    include_str!("../../../shaders/batchnorm.wgsl")
);
pub const EPS: f32 = 1e-5;
pub const MOMENTUM: f32 = 0.1;

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    momentum: f32,
    eps: f32,
    first_row: u32,
    _pad: [u32; 3],
}

/// Which rows of the buffers a launch normalises: group `index` of `count`
/// equal groups (a discriminator's fake and real halves are two).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowGroup {
    pub index: usize,
    pub count: usize,
}

impl RowGroup {
    /// Every row.
    pub const ALL: RowGroup = RowGroup { index: 0, count: 1 };

    /// (first row, rows) of the group among `rows`; Err unless they divide.
    fn range(self, rows: usize, label: &str) -> Result<(usize, usize)> {
        if self.count == 0 || self.index >= self.count || !rows.is_multiple_of(self.count) {
            return Err(crate::error::GanError::shape(
                label,
                format!("{rows} rows do not make row group {} of {}", self.index, self.count),
            ));
        }
        let per = rows / self.count;
        Ok((self.index * per, per))
    }
}

fn params(rows: usize, cols: usize, first_row: usize) -> Params {
    Params {
        rows: rows as u32,
        cols: cols as u32,
        momentum: MOMENTUM,
        eps: EPS,
        first_row: first_row as u32,
        _pad: [0; 3],
    }
}

/// The per-feature tensors of one batch-norm layer.
pub struct BnTensors<'a> {
    pub gamma: &'a GpuTensor,
    pub beta: &'a GpuTensor,
    pub running_mean: &'a GpuTensor,
    pub running_var: &'a GpuTensor,
}

/// A training forward's tensors: x [rows, cols] in, y [rows, cols] out,
/// the layer's parameters and running statistics, and the batch's invstd
/// [cols] it saves for the backward.
#[derive(Clone, Copy)]
pub struct BnForward<'a> {
    pub x: &'a GpuTensor,
    pub y: &'a GpuTensor,
    pub bn: &'a BnTensors<'a>,
    pub invstd: &'a GpuTensor,
}

/// A backward's tensors: dy [rows, cols] (the gradient w.r.t. y, becomes
/// dx), the forward's y and xhat, gamma and invstd [cols], and the
/// gradients it writes.
#[derive(Clone, Copy)]
pub struct BnBackward<'a> {
    pub dy: &'a GpuTensor,
    pub y: &'a GpuTensor,
    pub xhat: &'a GpuTensor,
    pub gamma: &'a GpuTensor,
    pub invstd: &'a GpuTensor,
    pub grads: &'a BnGrads<'a>,
}

fn check_features(cols: usize, ts: &[&GpuTensor]) -> Result<()> {
    for t in ts {
        t.expect_shape(&[cols])?;
    }
    Ok(())
}

fn act_constant(act: Act) -> [(&'static str, f64); 1] {
    [("ACT", act.code() as f64)]
}

/// Training forward: x [rows, cols] becomes xhat, y = act(gamma xhat + beta),
/// running statistics updated, invstd [cols] saved.
pub fn forward_train(ctx: &GpuContext, t: &BnForward, act: Act) -> Result<Dispatch> {
    forward_train_with(ctx, t, act, Reduce::for_adapter(ctx))
}

/// `forward_train` with the batch sums in the given shape.
pub fn forward_train_with(ctx: &GpuContext, t: &BnForward, act: Act, reduce: Reduce) -> Result<Dispatch> {
    forward_train_group(ctx, t, act, reduce, RowGroup::ALL)
}

/// `forward_train_with` on one row group of the buffers, with its own
/// batch statistics (its invstd in `invstd`; the running statistics take
/// one update per group launched).
pub fn forward_train_group(
    ctx: &GpuContext,
    t: &BnForward,
    act: Act,
    reduce: Reduce,
    group: RowGroup,
) -> Result<Dispatch> {
    let BnForward { x, y, bn, invstd } = *t;
    let [rows, cols] = x.dims2()?;
    let (first_row, group_rows) = group.range(rows, &x.label)?;
    y.expect_shape(&[rows, cols])?;
    check_features(cols, &[bn.gamma, bn.beta, bn.running_mean, bn.running_var, invstd])?;
    use Slot::*;
    let kern = kernel(
        ctx,
        "batchnorm.wgsl",
        SOURCE,
        entry("bn_forward_train", reduce),
        &[Uniform, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite, ReadWrite],
        &act_constant(act),
    );
    let p = uniform(ctx, &x.label, &params(group_rows, cols, first_row));
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("batchnorm train forward ({}) {}{}", reduce.name(), x.label, group_label(group)),
        vec![
            p.as_entire_binding(),
            bn.gamma.binding(),
            bn.beta.binding(),
            x.binding(),
            y.binding(),
            bn.running_mean.binding(),
            bn.running_var.binding(),
            invstd.binding(),
        ],
        column_groups(cols, reduce),
    ))
}

fn group_label(group: RowGroup) -> String {
    if group.count == 1 {
        String::new()
    } else {
        format!(" (row group {} of {})", group.index, group.count)
    }
}

fn entry(name: &'static str, reduce: Reduce) -> &'static str {
    match (name, reduce) {
        (_, Reduce::Column) => name,
        ("bn_forward_train", Reduce::Tree) => "bn_forward_train_tree",
        (_, Reduce::Tree) => "bn_backward_tree",
    }
}

fn column_groups(cols: usize, reduce: Reduce) -> [u32; 3] {
    match reduce {
        Reduce::Column => [groups_for(cols, 64), 1, 1],
        Reduce::Tree => [groups_for(cols, TREE_COLS), 1, 1],
    }
}

/// Evaluation forward from running statistics; x is left unchanged.
pub fn forward_eval(ctx: &GpuContext, x: &GpuTensor, y: &GpuTensor, bn: &BnTensors, act: Act) -> Result<Dispatch> {
    let [rows, cols] = x.dims2()?;
    y.expect_shape(&[rows, cols])?;
    check_features(cols, &[bn.gamma, bn.beta, bn.running_mean, bn.running_var])?;
    use Slot::*;
    let kern = kernel(
        ctx,
        "batchnorm.wgsl",
        SOURCE,
        "bn_forward_eval",
        &[Uniform, Read, Read, ReadWrite, ReadWrite, ReadWrite, ReadWrite],
        &act_constant(act),
    );
    let p = uniform(ctx, &x.label, &params(rows, cols, 0));
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("batchnorm eval forward {}", x.label),
        vec![
            p.as_entire_binding(),
            bn.gamma.binding(),
            bn.beta.binding(),
            x.binding(),
            y.binding(),
            bn.running_mean.binding(),
            bn.running_var.binding(),
        ],
        grid_1d(rows * cols, 64),
    ))
}

/// Gradients of one batch-norm layer.
pub struct BnGrads<'a> {
    pub dgamma: &'a GpuTensor,
    pub dbeta: &'a GpuTensor,
    /// Bias gradient of the dense layer feeding this batch norm.
    pub dbias: &'a GpuTensor,
}

/// Backward: dy [rows, cols] (gradient w.r.t. the activation output y)
/// becomes dx; dgamma, dbeta and the preceding bias gradient are written.
pub fn backward(ctx: &GpuContext, t: &BnBackward, act: Act) -> Result<Dispatch> {
    backward_with(ctx, t, act, false, Reduce::for_adapter(ctx))
}

/// `backward` with the batch sums in the given shape; with `accumulate`
/// dgamma, dbeta and dbias are added to (a second row group's sums).
pub fn backward_with(ctx: &GpuContext, t: &BnBackward, act: Act, accumulate: bool, reduce: Reduce) -> Result<Dispatch> {
    backward_group(ctx, t, act, accumulate, reduce, RowGroup::ALL)
}

/// `backward_with` on one row group (its invstd in `invstd`); the second
/// group of two accumulates.
pub fn backward_group(
    ctx: &GpuContext,
    t: &BnBackward,
    act: Act,
    accumulate: bool,
    reduce: Reduce,
    group: RowGroup,
) -> Result<Dispatch> {
    let BnBackward { dy, y, xhat, gamma, invstd, grads } = *t;
    let [rows, cols] = dy.dims2()?;
    let (first_row, group_rows) = group.range(rows, &dy.label)?;
    y.expect_shape(&[rows, cols])?;
    xhat.expect_shape(&[rows, cols])?;
    check_features(cols, &[gamma, invstd, grads.dgamma, grads.dbeta, grads.dbias])?;
    use Slot::*;
    let kern = kernel(
        ctx,
        "batchnorm.wgsl",
        SOURCE,
        entry("bn_backward", reduce),
        &[
            Uniform, Read, Unused, ReadWrite, ReadWrite, Unused, Unused, ReadWrite, ReadWrite, ReadWrite, ReadWrite,
            ReadWrite,
        ],
        &[("ACT", act.code() as f64), ("ACCUMULATE", accumulate as u8 as f64)],
    );
    let p = uniform(ctx, &dy.label, &params(group_rows, cols, first_row));
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("batchnorm backward ({}) {}{}", reduce.name(), dy.label, group_label(group)),
        vec![
            p.as_entire_binding(),
            gamma.binding(),
            xhat.binding(),
            y.binding(),
            invstd.binding(),
            dy.binding(),
            grads.dgamma.binding(),
            grads.dbeta.binding(),
            grads.dbias.binding(),
        ],
        column_groups(cols, reduce),
    ))
}

/// CPU reference state and results of a training forward.
pub struct CpuBnForward {
    pub xhat: Vec<f32>,
    pub y: Vec<f32>,
    pub invstd: Vec<f32>,
}

/// A batch norm as its CPU references see it: input [rows, cols], the
/// per-column scale `gamma` and shift `beta` [cols], then `act`.
#[derive(Clone, Copy)]
pub struct CpuBn<'a> {
    pub rows: usize,
    pub cols: usize,
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub act: Act,
}

/// CPU reference of the training forward; updates the running statistics
/// (mean, var) [cols] in place.
pub fn cpu_forward_train(x: &[f32], bn: CpuBn, running: (&mut [f32], &mut [f32])) -> CpuBnForward {
    let CpuBn { rows, cols, gamma, beta, act } = bn;
    let (running_mean, running_var) = running;
    let mut out = CpuBnForward { xhat: vec![0.0; rows * cols], y: vec![0.0; rows * cols], invstd: vec![0.0; cols] };
    let n = rows as f64;
    for c in 0..cols {
        let mean = (0..rows).map(|r| x[r * cols + c] as f64).sum::<f64>() / n;
        let var = (0..rows).map(|r| (x[r * cols + c] as f64 - mean).powi(2)).sum::<f64>() / n;
        let inv = 1.0 / (var + EPS as f64).sqrt();
        out.invstd[c] = inv as f32;
        let unbiased = var * n / (n - 1.0).max(1.0);
        let m = MOMENTUM as f64;
        running_mean[c] = ((1.0 - m) * running_mean[c] as f64 + m * mean) as f32;
        running_var[c] = ((1.0 - m) * running_var[c] as f64 + m * unbiased) as f32;
        for r in 0..rows {
            let i = r * cols + c;
            let xh = ((x[i] as f64 - mean) * inv) as f32;
            out.xhat[i] = xh;
            out.y[i] = cpu_act(act, gamma[c] * xh + beta[c]);
        }
    }
    out
}

/// CPU reference of the evaluation forward from the running statistics
/// (mean, var) [cols].
pub fn cpu_forward_eval(x: &[f32], bn: CpuBn, running: (&[f32], &[f32])) -> Vec<f32> {
    let CpuBn { rows, cols, gamma, beta, act } = bn;
    let (running_mean, running_var) = running;
    let mut y = vec![0.0; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let i = r * cols + c;
            let xh = (x[i] - running_mean[c]) / (running_var[c] + EPS).sqrt();
            y[i] = cpu_act(act, gamma[c] * xh + beta[c]);
        }
    }
    y
}

/// CPU reference of the backward from the training forward's saved
/// (y, xhat) [rows, cols] and invstd [cols]: (dx, dgamma, dbeta, dbias).
pub fn cpu_backward(
    dy: &[f32],
    saved: (&[f32], &[f32]),
    invstd: &[f32],
    bn: CpuBn,
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let CpuBn { rows, cols, gamma, act, .. } = bn;
    let (y, xhat) = saved;
    let mut dx = vec![0.0; rows * cols];
    let (mut dgamma, mut dbeta, mut dbias) = (vec![0.0; cols], vec![0.0; cols], vec![0.0; cols]);
    let n = rows as f64;
    for c in 0..cols {
        let g = |i: usize| -> f64 { dy[i] as f64 * cpu_act_grad_from_output(act, y[i]) as f64 };
        let sum_g: f64 = (0..rows).map(|r| g(r * cols + c)).sum();
        let sum_gx: f64 = (0..rows).map(|r| g(r * cols + c) * xhat[r * cols + c] as f64).sum();
        dbeta[c] = sum_g as f32;
        dgamma[c] = sum_gx as f32;
        let scale = gamma[c] as f64 * invstd[c] as f64 / n;
        let mut sum_dx = 0.0;
        for r in 0..rows {
            let i = r * cols + c;
            let v = scale * (n * g(i) - sum_g - xhat[i] as f64 * sum_gx);
            dx[i] = v as f32;
            sum_dx += v;
        }
        dbias[c] = sum_dx as f32;
    }
    (dx, dgamma, dbeta, dbias)
}
