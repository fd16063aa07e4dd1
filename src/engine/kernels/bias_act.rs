//! Fused bias + activation (shaders/bias_act.wgsl): launchers and CPU reference.

use super::reduce::{Reduce, TREE_COLS};
use super::{grid_1d, groups_for, kernel, uniform, unused_slot, Dispatch, Slot};
use crate::engine::context::GpuContext;
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};

pub const FILE: &str = include_str!("../../../shaders/bias_act.wgsl");
/// What the launchers compile: activation.wgsl, tree_reduce.wgsl, then this file.
pub const SOURCE: &str = concat!(
    include_str!("../../../shaders/activation.wgsl"),
    include_str!("../../../shaders/tree_reduce.wgsl"),
    include_str!("../../../shaders/bias_act.wgsl")
);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Identity,
    Relu,
    /// LeakyReLU with slope 0.2.
    LeakyRelu,
    Tanh,
    Sigmoid,
}

impl Act {
    pub const ALL: [Act; 5] = [Act::Identity, Act::Relu, Act::LeakyRelu, Act::Tanh, Act::Sigmoid];
    pub fn code(self) -> u32 {
        self as u32
    }
    pub fn name(self) -> &'static str {
        match self {
            Act::Identity => "identity",
            Act::Relu => "relu",
            Act::LeakyRelu => "leaky_relu_0.2",
            Act::Tanh => "tanh",
            Act::Sigmoid => "sigmoid",
        }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    cols: u32,
    act: u32,
    has_bias: u32,
}

fn params(rows: usize, cols: usize, act: Act, has_bias: bool) -> Params {
    Params { rows: rows as u32, cols: cols as u32, act: act.code(), has_bias: has_bias as u32 }
}

fn check_bias(bias: Option<&GpuTensor>, cols: usize) -> Result<()> {
    match bias {
        Some(b) if b.numel() != cols => {
            Err(GanError::shape(&b.label, format!("bias has {} elements, the layer has {cols} columns", b.numel())))
        }
        _ => Ok(()),
    }
}

/// x = act(x + bias), in place on x [rows, cols].
pub fn forward(ctx: &GpuContext, act: Act, x: &GpuTensor, bias: Option<&GpuTensor>) -> Result<Dispatch> {
    let [rows, cols] = x.dims2()?;
    check_bias(bias, cols)?;
    let kern =
        kernel(ctx, "bias_act.wgsl", SOURCE, "bias_act_forward", &[Slot::Uniform, Slot::Read, Slot::ReadWrite], &[]);
    let p = uniform(ctx, &x.label, &params(rows, cols, act, bias.is_some()));
    let unused = unused_slot(ctx);
    let bias = bias.unwrap_or(&unused);
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("bias+{} forward {}", act.name(), x.label),
        vec![p.as_entire_binding(), bias.binding(), x.binding()],
        grid_1d(rows * cols, 256),
    ))
}

/// dy = dy * act'(y) in place, dbias = column sums of the result.
pub fn backward(
    ctx: &GpuContext,
    act: Act,
    y: &GpuTensor,
    dy: &GpuTensor,
    dbias: Option<&GpuTensor>,
) -> Result<Dispatch> {
    backward_with(ctx, act, y, dy, dbias, Reduce::for_adapter(ctx))
}

/// `backward` with the column sums in the given shape.
pub fn backward_with(
    ctx: &GpuContext,
    act: Act,
    y: &GpuTensor,
    dy: &GpuTensor,
    dbias: Option<&GpuTensor>,
    reduce: Reduce,
) -> Result<Dispatch> {
    let [rows, cols] = y.dims2()?;
    dy.expect_shape(&[rows, cols])?;
    check_bias(dbias, cols)?;
    let (entry, groups) = match reduce {
        Reduce::Column => ("bias_act_backward", groups_for(cols, 64)),
        Reduce::Tree => ("bias_act_backward_tree", groups_for(cols, TREE_COLS)),
    };
    let kern = kernel(
        ctx,
        "bias_act.wgsl",
        SOURCE,
        entry,
        &[Slot::Uniform, Slot::Unused, Slot::ReadWrite, Slot::Read, Slot::ReadWrite],
        &[],
    );
    let p = uniform(ctx, &dy.label, &params(rows, cols, act, dbias.is_some()));
    let unused_dbias = unused_slot(ctx);
    let dbias = dbias.unwrap_or(&unused_dbias);
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("bias+{} backward ({}) {}", act.name(), reduce.name(), dy.label),
        vec![p.as_entire_binding(), dy.binding(), y.binding(), dbias.binding()],
        [groups, 1, 1],
    ))
}

pub fn cpu_act(act: Act, v: f32) -> f32 {
    match act {
        Act::Identity => v,
        Act::Relu => v.max(0.0),
        Act::LeakyRelu => {
            if v > 0.0 {
                v
            } else {
                0.2 * v
            }
        }
        Act::Tanh => v.tanh(),
        Act::Sigmoid => 1.0 / (1.0 + (-v).exp()),
    }
}

/// Derivative of the activation, written in terms of its output.
pub fn cpu_act_grad_from_output(act: Act, y: f32) -> f32 {
    match act {
        Act::Identity => 1.0,
        Act::Relu => (y > 0.0) as u8 as f32,
        Act::LeakyRelu => {
            if y > 0.0 {
                1.0
            } else {
                0.2
            }
        }
        Act::Tanh => 1.0 - y * y,
        Act::Sigmoid => y * (1.0 - y),
    }
}

/// CPU reference of `forward`.
pub fn cpu_forward(act: Act, x: &[f32], bias: Option<&[f32]>, rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows * cols];
    for r in 0..rows {
        for c in 0..cols {
            let b = bias.map_or(0.0, |b| b[c]);
            out[r * cols + c] = cpu_act(act, x[r * cols + c] + b);
        }
    }
    out
}

/// CPU reference of `backward`: (dz, dbias).
// Plain index loops on purpose: the reference reads like the math.
#[allow(clippy::needless_range_loop)]
pub fn cpu_backward(act: Act, y: &[f32], dy: &[f32], rows: usize, cols: usize) -> (Vec<f32>, Vec<f32>) {
    let mut dz = vec![0f32; rows * cols];
    let mut dbias = vec![0f32; cols];
    for c in 0..cols {
        let mut sum = 0f64;
        for r in 0..rows {
            let i = r * cols + c;
            dz[i] = dy[i] * cpu_act_grad_from_output(act, y[i]);
            sum += dz[i] as f64;
        }
        dbias[c] = sum as f32;
    }
    (dz, dbias)
}
