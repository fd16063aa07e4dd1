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
//! A convolution is a dense layer on its patches (z = im2col(h) W^T), so the
//! same two products apply with the convolution's own passes: v_{i+1} is
//! the convolution of v_i (its columns written on the way), dP/dW_i its
//! weight gradient with input v_i and output gradient e_i.
//!
//! Dense and Conv2d layers without batch norm, dropout or label embedding:
//! batch norm mixes the samples, so the paper drops it (`GanConfig::architecture`
//! drops dcgan's), and `check_critic` refuses the rest.
//!
//! May import: `engine`, `error`, `nn`.

use crate::engine::context::GpuContext;
use crate::engine::kernels::bias_act::{self, Act};
use crate::engine::kernels::conv;
use crate::engine::kernels::matmul::{Form, Matmul, Variant};
use crate::engine::kernels::{gradient_penalty as gp, matmul, Dispatch};
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};
use crate::nn::conv_layer::ConvPass;
use crate::nn::gpu_net::{self, Activations, Backward, GpuNet};
use crate::nn::spec::{LayerKind, LayerSpec, NetSpec};

/// Where the penalty writes in the step's metrics: (penalty, mean norm of
/// grad_x D(x_hat)); the penalty is also added to loss_d (slot 0).
pub const METRICS_AT: usize = 6;

/// Ok when `spec` is a critic the double backward is written for.
pub fn check_critic(spec: &NetSpec) -> Result<()> {
    let why = |what: String| {
        Err(GanError::shape(
            spec.name,
            format!("{what}: the gradient penalty's double backward is written for critics of dense and Conv2d layers without batch norm"),
        ))
    };
    if spec.embedding.is_some() {
        return why("a label embedding".into());
    }
    for l in &spec.layers {
        if matches!(l.kind, LayerKind::ConvTranspose { .. }) {
            return why(format!("{} is a transposed convolution", l.name));
        }
        if l.bn.is_some() || l.dropout.is_some() {
            return why(format!("{} has batch norm or dropout", l.name));
        }
        if !matches!(l.act, Act::Identity | Act::Relu | Act::LeakyRelu) {
            return why(format!("{} ends in {}, not piecewise linear", l.name, l.act.name()));
        }
    }
    if spec.layers.last().is_some_and(|l| l.act != Act::Identity || spec.output_dim() != 1) {
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
        let (last, rows) = (layers.len() - 1, self.x_hat.dims2()?[0]);
        let mut out = Vec::new();
        for (i, l) in layers.iter().enumerate() {
            let v = if i == 0 { self.g.clone() } else { self.adjoints.layers[i - 1].out.clone() };
            let e = if i == last { self.ones.clone() } else { self.d_acts.layers[i].out.clone() };
            let weight =
                |flat: &GpuTensor| critic.view_of(flat, &format!("{}.weight", l.name))?.reshaped(&l.weight_matrix());
            let (w, dw) = (weight(&critic.params)?, weight(&self.grads)?);
            let next = &self.adjoints.layers[i].out;
            match l.geometry(rows) {
                Some(geometry) => {
                    let cols = self.adjoints.layers[i].cols.as_ref();
                    // The weight gradient reads v's columns, which the forward
                    // writes; the last layer's output (v_L) is needed only
                    // for them, and a whole-image kernel has none.
                    let needs_forward = i < last || !geometry.is_whole();
                    let pass = ConvPass { layer: l, geometry, rows, weight: &w, cols, variant };
                    if needs_forward {
                        out.extend(pass.forward(ctx, &v, next, None, Act::Identity)?);
                    }
                    out.extend(pass.backward(ctx, &v, &e, Some(&dw), None, None)?);
                }
                None => {
                    out.push(Matmul::new(ctx, Form::TN, variant, &e, &v, &dw)?.dispatch);
                    if i < last {
                        out.push(Matmul::new(ctx, Form::NT, variant, &v, &w, next)?.dispatch);
                    }
                }
            }
            if i < last && l.act != Act::Identity {
                out.push(bias_act::backward(ctx, l.act, &self.acts.layers[i].out, next, None)?);
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

/// A critic layer's linear part in plain loops: z = lin(h) (no bias), the
/// input's gradient from dz, the weight's from (h, dz). A Conv2d is a
/// dense layer on im2col(h).
struct CpuLinear<'a> {
    l: &'a LayerSpec,
    w: &'a [f32],
    bias: Option<&'a [f32]>,
    /// Samples, and rows of z (samples x output positions).
    samples: usize,
    rows: usize,
}

impl<'a> CpuLinear<'a> {
    fn new(spec: &'a NetSpec, params: &'a [f32], i: usize, samples: usize) -> Self {
        let layout = spec.layout();
        let l = &spec.layers[i];
        let get = |suffix: &str| {
            layout.find(&format!("{}.{suffix}", l.name)).map(|(_, shape, off)| {
                let n: usize = shape.iter().product();
                &params[*off..off + n]
            })
        };
        let w = get("weight").expect("a layer's weight");
        CpuLinear { l, w, bias: get("bias"), samples, rows: samples * l.out_positions() }
    }

    fn forward(&self, h: &[f32]) -> Vec<f32> {
        match self.l.geometry(self.samples) {
            Some(g) => matmul::cpu_matmul(Form::NT, &conv::cpu_im2col(h, &g), self.w, self.rows, self.l.out, g.patch()),
            None => matmul::cpu_matmul(Form::NT, h, self.w, self.rows, self.l.out, self.l.inp),
        }
    }

    fn input_grad(&self, dz: &[f32]) -> Vec<f32> {
        match self.l.geometry(self.samples) {
            Some(g) => {
                conv::cpu_col2im(&matmul::cpu_matmul(Form::NN, dz, self.w, self.rows, g.patch(), self.l.out), &g)
            }
            None => matmul::cpu_matmul(Form::NN, dz, self.w, self.rows, self.l.inp, self.l.out),
        }
    }

    fn weight_grad(&self, h: &[f32], dz: &[f32]) -> Vec<f32> {
        match self.l.geometry(self.samples) {
            Some(g) => matmul::cpu_matmul(Form::TN, dz, &conv::cpu_im2col(h, &g), self.l.out, g.patch(), self.rows),
            None => matmul::cpu_matmul(Form::TN, dz, h, self.l.out, self.l.inp, self.rows),
        }
    }
}

/// grad_x D(x_hat) [rows, dim] in plain loops, with what the double
/// backward reads: (g, each layer's output h_{i+1}, each layer's e_i).
fn cpu_input_gradient(
    spec: &NetSpec,
    params: &[f32],
    x_hat: &[f32],
    rows: usize,
) -> (Vec<f32>, Vec<Vec<f32>>, Vec<Vec<f32>>) {
    let lin: Vec<CpuLinear> = (0..spec.layers.len()).map(|i| CpuLinear::new(spec, params, i, rows)).collect();
    let mut h = vec![x_hat.to_vec()];
    for (i, l) in spec.layers.iter().enumerate() {
        let z = lin[i].forward(&h[i]);
        h.push(bias_act::cpu_forward(l.act, &z, lin[i].bias, lin[i].rows, l.out));
    }
    let last = spec.layers.len() - 1;
    let mut e = vec![Vec::new(); spec.layers.len()];
    e[last] = vec![1.0; rows];
    for i in (1..=last).rev() {
        let delta = lin[i].input_grad(&e[i]);
        let below = &lin[i - 1];
        e[i - 1] = bias_act::cpu_backward(below.l.act, &h[i], &delta, below.rows, below.l.out).0;
    }
    (lin[0].input_grad(&e[0]), h, e)
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
        let lin = CpuLinear::new(spec, params, i, rows);
        let dw = lin.weight_grad(&v, &e[i]);
        let (_, _, off) = layout.find(&format!("{}.weight", l.name)).expect("weight");
        grads[*off..off + dw.len()].copy_from_slice(&dw);
        if i < last {
            v = bias_act::cpu_backward(l.act, &h[i + 1], &lin.forward(&v), lin.rows, l.out).0;
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
