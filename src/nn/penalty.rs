//! WGAN-GP's gradient penalty (Gulrajani et al. 2017) through a dense
//! critic, and its gradient with respect to every critic weight: the
//! double backward, on the GPU and in plain loops.
//!
//! The critic: layers i = 0..L-1, z_i = h_i W_i^T + b_i, h_{i+1} = phi_i(z_i),
//! h_0 = x_hat [B, dim], the score s = z_{L-1} (no output activation).
//! 1. forward on x_hat, keeping every h_{i+1};
//! 2. backward to the input from ds = 1 on every row: e_{L-1} = 1,
//!    delta_i = e_i W_i (the gradient w.r.t. h_i), e_{i-1} = delta_i * phi'_{i-1};
//!    g = delta_0 = grad_x D(x_hat) [B, dim];
//! 3. P = (lambda / B) sum_r (||g_r|| - 1)^2 and v_0 = dP/dg (gradient_penalty.wgsl);
//! 4. through the backward pass again, forwards: with phi' constant almost
//!    everywhere (LeakyReLU, ReLU and identity are piecewise linear), delta_i
//!    is linear in each W_i, so
//!    `dP/dW_i = e_i^T v_i` (the weight-gradient matmul, TN) and
//!    `v_{i+1} = (v_i W_i^T) * phi'_i` (a forward matmul, NT, then the mask),
//!    and the biases get no gradient from P.
//!
//! The penalty's gradients go to a buffer of D's layout (`Penalty::grads`)
//! and are added to the loss's (`gradient_penalty::add`) before Adam.
//!
//! Dense layers without batch norm, dropout or label embedding only: batch
//! norm mixes the samples (the paper drops it), and the convolutional
//! critic's double backward is not written yet (`check_critic` says so).
//!
//! May import: `engine`, `error`, `nn`.

use crate::engine::context::GpuContext;
use crate::engine::kernels::bias_act::{self, Act};
use crate::engine::kernels::matmul::{Form, Matmul, Variant};
use crate::engine::kernels::{gradient_penalty as gp, matmul, Dispatch};
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};
use crate::nn::gpu_net::{self, Activations, Backward, GpuNet};
use crate::nn::spec::{LayerKind, NetSpec};

/// Where the penalty writes in the step's metrics: (penalty, mean norm of
/// grad_x D(x_hat)); the penalty is also added to loss_d (slot 0).
pub const METRICS_AT: usize = 6;

/// Ok when `spec` is a critic the double backward is written for.
pub fn check_critic(spec: &NetSpec) -> Result<()> {
    let why = |what: String| {
        Err(GanError::shape(
            spec.name,
            format!("{what}: the gradient penalty's double backward is written for dense critics (--model gan)"),
        ))
    };
    if spec.embedding.is_some() {
        return why("a label embedding".into());
    }
    for l in &spec.layers {
        if l.kind != LayerKind::Dense {
            return why(format!("{} is a convolution", l.name));
        }
        if l.bn.is_some() || l.dropout.is_some() {
            return why(format!("{} has batch norm or dropout", l.name));
        }
        if !matches!(l.act, Act::Identity | Act::Relu | Act::LeakyRelu) {
            return why(format!("{} ends in {}, not piecewise linear", l.name, l.act.name()));
        }
    }
    if spec.layers.last().is_some_and(|l| l.act != Act::Identity || l.out != 1) {
        return why("the critic's last layer is not one raw score".into());
    }
    Ok(())
}

/// The penalty's buffers for a critic over batches of `batch` samples.
pub struct Penalty {
    pub lambda: f32,
    /// The interpolates [B, dim] and their weights eps [B].
    pub x_hat: GpuTensor,
    pub eps: GpuTensor,
    /// The critic's forward on x_hat (h_{i+1} in layers[i].out).
    pub acts: Activations,
    /// Its backward to x_hat: e_i in layers[i].out (i < L-1).
    pub d_acts: Activations,
    /// ds = 1 [B, 1]: e_{L-1}.
    ones: GpuTensor,
    /// grad_x D(x_hat) [B, dim], then dP/dg in place.
    pub g: GpuTensor,
    /// ||g_r|| [B].
    pub norms: GpuTensor,
    /// v_{i+1} in layers[i].out (i < L-1).
    adjoints: Activations,
    /// dP/d(parameters) in the critic's layout (weights; biases stay 0).
    pub grads: GpuTensor,
}

impl Penalty {
    pub fn alloc(ctx: &GpuContext, critic: &GpuNet, batch: usize, lambda: f32) -> Result<Self> {
        check_critic(&critic.spec)?;
        let (spec, dim) = (&critic.spec, critic.spec.input_dim());
        Ok(Penalty {
            lambda,
            x_hat: GpuTensor::zeros(ctx, &[batch, dim], "gp x_hat"),
            eps: GpuTensor::zeros(ctx, &[batch], "gp eps"),
            acts: Activations::alloc(ctx, spec, batch, "gp", None)?,
            d_acts: Activations::alloc(ctx, spec, batch, "gp_grad", None)?,
            ones: GpuTensor::from_f32(ctx, &[batch, 1], "gp ds = 1", &vec![1.0; batch])?,
            g: GpuTensor::zeros(ctx, &[batch, dim], "gp grad_x D(x_hat)"),
            norms: GpuTensor::zeros(ctx, &[batch], "gp norms"),
            adjoints: Activations::alloc(ctx, spec, batch, "gp_adjoint", None)?,
            grads: GpuTensor::zeros(ctx, &[critic.layout.len], "gp grads"),
        })
    }

    /// The penalty's phases after the loss's backward (which wrote
    /// `critic.grads`), before Adam: (name, dispatches) in order. `d_input`
    /// is [G(z); x] [2B, dim]; eps is drawn from `seed` at the step counter.
    pub fn phases(
        &self,
        ctx: &GpuContext,
        critic: &GpuNet,
        (d_input, seed): (&GpuTensor, u64),
        (metrics, counters): (&GpuTensor, &GpuTensor),
        variant: Variant,
    ) -> Result<Vec<(&'static str, Vec<Dispatch>)>> {
        let forward = gpu_net::forward(ctx, critic, &self.x_hat, &self.acts, true, variant)?;
        let backward = Backward {
            param_grads: false,
            d_input: Some(&self.g),
            ..Backward::new(critic, (&self.x_hat, &self.acts), (&self.ones, &self.d_acts), variant)
        };
        let norms = vec![
            gp::norms(ctx, &self.g, &self.norms, self.lambda)?,
            gp::total(ctx, &self.norms, self.lambda, (metrics, METRICS_AT, 0), counters)?,
        ];
        Ok(vec![
            ("GP interpolates", vec![gp::mix(ctx, d_input, (&self.x_hat, &self.eps), seed, counters)?]),
            ("GP D forward (x_hat)", forward),
            ("GP D backward to x_hat", backward.dispatches(ctx)?),
            ("GP norms", norms),
            ("GP double backward", self.double_backward(ctx, critic, variant)?),
            ("GP add", vec![gp::add(ctx, &critic.grads, &self.grads)?]),
        ])
    }

    /// Step 4 of the module header, first layer first.
    fn double_backward(&self, ctx: &GpuContext, critic: &GpuNet, variant: Variant) -> Result<Vec<Dispatch>> {
        let layers = &critic.spec.layers;
        let last = layers.len() - 1;
        let mut out = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let v = if i == 0 { self.g.clone() } else { self.adjoints.layers[i - 1].out.clone() };
            let e = if i == last { self.ones.clone() } else { self.d_acts.layers[i].out.clone() };
            let dw = critic.view_of(&self.grads, &format!("{}.weight", l.name))?;
            out.push(Matmul::new(ctx, Form::TN, variant, &e, &v, &dw)?.dispatch);
            if i < last {
                let w = critic.param(&format!("{}.weight", l.name))?;
                let next = &self.adjoints.layers[i].out;
                out.push(Matmul::new(ctx, Form::NT, variant, &v, &w, next)?.dispatch);
                if l.act != Act::Identity {
                    out.push(bias_act::backward(ctx, l.act, &self.acts.layers[i].out, next, None)?);
                }
            }
        }
        Ok(out)
    }
}

/// What the CPU reference of the penalty gives.
#[derive(Clone, Debug)]
pub struct CpuPenalty {
    pub penalty: f32,
    pub mean_norm: f32,
    /// grad_x D(x_hat) [rows, dim] and its row norms.
    pub g: Vec<f32>,
    pub norms: Vec<f32>,
    /// dP/d(parameters), flat in the critic's layout.
    pub grads: Vec<f32>,
}

/// The critic's layer i as the CPU reference reads it: (W [out, inp], bias).
fn cpu_layer<'a>(spec: &NetSpec, params: &'a [f32], i: usize) -> (&'a [f32], Option<&'a [f32]>) {
    let layout = spec.layout();
    let l = &spec.layers[i];
    let get = |suffix: &str| {
        layout.find(&format!("{}.{suffix}", l.name)).map(|(_, shape, off)| {
            let n: usize = shape.iter().product();
            &params[*off..off + n]
        })
    };
    (get("weight").expect("a dense layer's weight"), get("bias"))
}

/// grad_x D(x_hat) [rows, dim] in plain loops, with what the double
/// backward reads: (g, each layer's output h_{i+1}, each layer's e_i).
fn cpu_input_gradient(
    spec: &NetSpec,
    params: &[f32],
    x_hat: &[f32],
    rows: usize,
) -> (Vec<f32>, Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let mut h = vec![x_hat.to_vec()];
    for (i, l) in spec.layers.iter().enumerate() {
        let (w, b) = cpu_layer(spec, params, i);
        let z = matmul::cpu_matmul(Form::NT, &h[i], w, rows, l.out, l.inp);
        h.push(bias_act::cpu_forward(l.act, &z, b, rows, l.out));
    }
    let last = spec.layers.len() - 1;
    let mut e = vec![Vec::new(); spec.layers.len()];
    e[last] = vec![1.0; rows];
    for i in (1..=last).rev() {
        let (w, _) = cpu_layer(spec, params, i);
        let l = &spec.layers[i];
        let delta = matmul::cpu_matmul(Form::NN, &e[i], w, rows, l.inp, l.out);
        e[i - 1] = bias_act::cpu_backward(spec.layers[i - 1].act, &h[i], &delta, rows, l.inp).0;
    }
    let l0 = &spec.layers[0];
    let g = matmul::cpu_matmul(Form::NN, &e[0], cpu_layer(spec, params, 0).0, rows, l0.inp, l0.out);
    (g, h, e)
}

/// The penalty and its gradient w.r.t. the critic's parameters on `x_hat`
/// [rows, dim], in plain loops (f64 sums in the matmuls).
pub fn cpu_penalty(spec: &NetSpec, params: &[f32], x_hat: &[f32], rows: usize, lambda: f32) -> CpuPenalty {
    let (g, h, e) = cpu_input_gradient(spec, params, x_hat, rows);
    let (penalty, mean_norm, norms, mut v) = gp::cpu_penalty(&g, rows, lambda);
    let layout = spec.layout();
    let mut grads = vec![0.0; layout.len];
    let last = spec.layers.len() - 1;
    for (i, l) in spec.layers.iter().enumerate() {
        let dw = matmul::cpu_matmul(Form::TN, &e[i], &v, l.out, l.inp, rows);
        let (_, _, off) = layout.find(&format!("{}.weight", l.name)).expect("weight");
        grads[*off..off + dw.len()].copy_from_slice(&dw);
        if i < last {
            let (w, _) = cpu_layer(spec, params, i);
            let next = matmul::cpu_matmul(Form::NT, &v, w, rows, l.out, l.inp);
            v = bias_act::cpu_backward(l.act, &h[i + 1], &next, rows, l.out).0;
        }
    }
    CpuPenalty { penalty, mean_norm, g, norms, grads }
}

/// The penalty alone (finite differences of `cpu_penalty`'s gradient).
pub fn cpu_penalty_value(spec: &NetSpec, params: &[f32], x_hat: &[f32], rows: usize, lambda: f32) -> f64 {
    let (g, _, _) = cpu_input_gradient(spec, params, x_hat, rows);
    let dim = g.len() / rows;
    let sum: f64 = g
        .chunks(dim)
        .map(|row| {
            let n = row.iter().map(|&v| v as f64 * v as f64).sum::<f64>().sqrt();
            (n - 1.0) * (n - 1.0)
        })
        .sum();
    lambda as f64 * sum / rows as f64
}
