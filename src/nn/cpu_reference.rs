//! The CPU reference of a network and of a whole training step, built
//! from the kernels' CPU references in plain loops: what every GPU test of
//! the networks and the step is checked against.

use crate::engine::kernels::adam::{cpu_adam_update, AdamConfig};
use crate::engine::kernels::bias_act::{self, Act};
use crate::engine::kernels::dropout::{self, DropoutDraw};
use crate::engine::kernels::{batchnorm, conv, embedding, gradient_penalty, matmul};
use crate::engine::tensor::FlatLayout;
use crate::nn::loss::Loss;
use crate::nn::penalty;
use crate::nn::spec::BnStats;
use crate::nn::spec::LayerKind;
use crate::nn::spec::NetSpec;

/// A network on the CPU: the reference the GPU trainer is tested against.
#[derive(Clone, Debug)]
pub struct CpuNet {
    pub spec: NetSpec,
    pub layout: FlatLayout,
    pub params: Vec<f32>,
    pub m: Vec<f32>,
    pub v: Vec<f32>,
    pub bn: Vec<Option<BnStats>>,
}

/// What the backward pass needs from the forward, per layer.
pub struct LayerCache {
    /// The layer's input (the first layer's: joined with the embedding).
    pub input: Vec<f32>,
    /// The first layer of a conditional network: the labels of its rows.
    pub labels: Vec<u32>,
    /// Conv2d layers: the input's columns (im2col).
    pub cols: Vec<f32>,
    /// Batch-norm layers: xhat, and invstd per row group [groups, out].
    pub xhat: Vec<f32>,
    pub invstd: Vec<f32>,
    pub out: Vec<f32>,
    /// Dropout layers in training: the mask the output was multiplied by
    /// (0 or 1 / (1 - p)), which multiplies the gradient too; else empty.
    pub mask: Vec<f32>,
}

impl CpuNet {
    pub fn new(spec: NetSpec, params: Vec<f32>) -> Self {
        let layout = spec.layout();
        let n = layout.len;
        let bn = spec.layers.iter().map(|l| l.bn.as_ref().map(|_| BnStats::new(l.out))).collect();
        CpuNet { spec, layout, params, m: vec![0.0; n], v: vec![0.0; n], bn }
    }

    pub fn tensor(&self, name: &str) -> &[f32] {
        let (_, shape, off) = self.layout.find(name).unwrap_or_else(|| panic!("no tensor {name}"));
        &self.params[*off..off + shape.iter().product::<usize>()]
    }

    /// Forward over `samples` inputs; `train` uses batch statistics and
    /// updates the running ones. For an unconditional network.
    pub fn forward(&mut self, input: &[f32], samples: usize, train: bool) -> Vec<LayerCache> {
        self.forward_grouped(input, None, samples, train, 1, None)
    }

    /// `forward` with the samples' labels, which a conditional network joins
    /// to its input through its embedding (panics when it needs them and
    /// gets none: a reference for tests).
    pub fn forward_labeled(
        &mut self,
        input: &[f32],
        labels: Option<&[u32]>,
        samples: usize,
        train: bool,
    ) -> Vec<LayerCache> {
        self.forward_grouped(input, labels, samples, train, 1, None)
    }

    /// `forward_labeled` with the samples in `groups` equal groups that
    /// batch norm normalises apart in training (a discriminator's fake and
    /// real halves, as PyTorch's separate passes do), the last group's
    /// running-statistics update first (PyTorch's example passes the real
    /// half first), as the GPU does. `masks` (the pass's draw and the steps
    /// done) gives a training pass's dropout masks (panics when it needs
    /// them and gets none).
    pub fn forward_grouped(
        &mut self,
        input: &[f32],
        labels: Option<&[u32]>,
        samples: usize,
        train: bool,
        groups: usize,
        masks: Option<(DropoutDraw, u32)>,
    ) -> Vec<LayerCache> {
        let mut caches = Vec::new();
        let mut x = input.to_vec();
        let mut row_labels = Vec::new();
        if let Some(e) = &self.spec.embedding {
            let labels = labels.expect("a conditional network's forward needs labels");
            let table = self.tensor(&format!("{}.weight", e.name));
            x = embedding::cpu_join(input, self.spec.input_dim(), table, e.dim, labels);
            row_labels = labels.to_vec();
        }
        for (li, l) in self.spec.layers.clone().iter().enumerate() {
            let w = self.tensor(&format!("{}.weight", l.name)).to_vec();
            let bias = l.bias.then(|| self.tensor(&format!("{}.bias", l.name)).to_vec());
            let (rows_in, rows) = (samples * l.in_positions(), samples * l.out_positions());
            let mut cache = LayerCache {
                input: x.clone(),
                labels: std::mem::take(&mut row_labels),
                cols: vec![],
                xhat: vec![],
                invstd: vec![],
                out: vec![],
                mask: vec![],
            };
            let z = match (l.kind, l.geometry(samples)) {
                (LayerKind::Conv { .. }, Some(g)) => {
                    cache.cols = conv::cpu_im2col(&x, &g);
                    matmul::cpu_matmul(matmul::Form::NT, &cache.cols, &w, rows, l.out, g.patch())
                }
                (LayerKind::ConvTranspose { .. }, Some(g)) => {
                    let cols = matmul::cpu_matmul(matmul::Form::NN, &x, &w, rows_in, g.patch(), l.inp);
                    conv::cpu_col2im(&cols, &g)
                }
                _ => matmul::cpu_matmul(matmul::Form::NT, &x, &w, rows, l.out, l.inp),
            };
            if let Some(bn) = &l.bn {
                let pre = bias_act::cpu_forward(Act::Identity, &z, bias.as_deref(), rows, l.out);
                let gamma = self.tensor(&format!("{bn}.weight")).to_vec();
                let beta = self.tensor(&format!("{bn}.bias")).to_vec();
                let stats = self.bn[li].as_mut().expect("bn stats");
                if train {
                    let per = rows / groups;
                    cache.xhat = vec![0.0; rows * l.out];
                    cache.out = vec![0.0; rows * l.out];
                    cache.invstd = vec![0.0; groups * l.out];
                    for g in (0..groups).rev() {
                        let part = g * per * l.out..(g + 1) * per * l.out;
                        let bn = batchnorm::CpuBn { rows: per, cols: l.out, gamma: &gamma, beta: &beta, act: l.act };
                        let running = (&mut stats.running_mean[..], &mut stats.running_var[..]);
                        let f = batchnorm::cpu_forward_train(&pre[part.clone()], bn, running);
                        stats.num_batches_tracked += 1;
                        cache.xhat[part.clone()].copy_from_slice(&f.xhat);
                        cache.out[part].copy_from_slice(&f.y);
                        cache.invstd[g * l.out..(g + 1) * l.out].copy_from_slice(&f.invstd);
                    }
                } else {
                    let bn = batchnorm::CpuBn { rows, cols: l.out, gamma: &gamma, beta: &beta, act: l.act };
                    cache.out = batchnorm::cpu_forward_eval(&pre, bn, (&stats.running_mean, &stats.running_var));
                }
            } else {
                cache.out = bias_act::cpu_forward(l.act, &z, bias.as_deref(), rows, l.out);
            }
            if let (Some(p), true) = (l.dropout, train) {
                let (draw, steps_done) = masks.expect("a training pass through dropout needs its masks' draw");
                cache.mask = dropout::cpu_mask(cache.out.len(), p, draw.layer(li), steps_done);
                dropout::cpu_apply(&mut cache.out, &cache.mask);
            }
            x = cache.out.clone();
            caches.push(cache);
        }
        caches
    }

    /// Backward from d_out (gradient w.r.t. the last output). Returns the flat
    /// parameter gradient and the gradient w.r.t. the input.
    pub fn backward(&self, caches: &[LayerCache], d_out: &[f32], samples: usize) -> (Vec<f32>, Vec<f32>) {
        self.backward_grouped(caches, d_out, samples, 1)
    }

    /// `backward` after a `forward_grouped` with `groups` groups: each
    /// group's batch-norm backward apart, their parameter gradients summed.
    pub fn backward_grouped(
        &self,
        caches: &[LayerCache],
        d_out: &[f32],
        samples: usize,
        groups: usize,
    ) -> (Vec<f32>, Vec<f32>) {
        let mut grads = vec![0f32; self.layout.len];
        let mut dy = d_out.to_vec();
        let put = |grads: &mut Vec<f32>, name: &str, vals: &[f32]| {
            let (_, _, off) = self.layout.find(name).expect("grad entry");
            grads[*off..off + vals.len()].copy_from_slice(vals);
        };
        for (li, l) in self.spec.layers.iter().enumerate().rev() {
            let c = &caches[li];
            let (rows_in, rows) = (samples * l.in_positions(), samples * l.out_positions());
            dropout::cpu_apply(&mut dy, &c.mask);
            let dz = if let Some(bn) = &l.bn {
                let gamma = self.tensor(&format!("{bn}.weight"));
                let per = rows / groups;
                let mut dz = vec![0.0; rows * l.out];
                let (mut dgamma, mut dbeta, mut dbias) = (vec![0.0; l.out], vec![0.0; l.out], vec![0.0; l.out]);
                for g in 0..groups {
                    let part = g * per * l.out..(g + 1) * per * l.out;
                    let bn = batchnorm::CpuBn { rows: per, cols: l.out, gamma, beta: &[], act: l.act };
                    let saved = (&c.out[part.clone()], &c.xhat[part.clone()]);
                    let invstd = &c.invstd[g * l.out..(g + 1) * l.out];
                    let (dx, dg, db, dbi) = batchnorm::cpu_backward(&dy[part.clone()], saved, invstd, bn);
                    dz[part].copy_from_slice(&dx);
                    for (sum, v) in [(&mut dgamma, dg), (&mut dbeta, db), (&mut dbias, dbi)] {
                        sum.iter_mut().zip(v).for_each(|(s, v)| *s += v);
                    }
                }
                put(&mut grads, &format!("{bn}.weight"), &dgamma);
                put(&mut grads, &format!("{bn}.bias"), &dbeta);
                if l.bias {
                    put(&mut grads, &format!("{}.bias", l.name), &dbias);
                }
                dz
            } else {
                let (dz, dbias) = bias_act::cpu_backward(l.act, &c.out, &dy, rows, l.out);
                if l.bias {
                    put(&mut grads, &format!("{}.bias", l.name), &dbias);
                }
                dz
            };
            let w = self.tensor(&format!("{}.weight", l.name));
            let (dw, d_input) = match (l.kind, l.geometry(samples)) {
                (LayerKind::Conv { .. }, Some(g)) => {
                    let dw = matmul::cpu_matmul(matmul::Form::TN, &dz, &c.cols, l.out, g.patch(), rows);
                    let dcols = matmul::cpu_matmul(matmul::Form::NN, &dz, w, rows, g.patch(), l.out);
                    (dw, conv::cpu_col2im(&dcols, &g))
                }
                (LayerKind::ConvTranspose { .. }, Some(g)) => {
                    let dcols = conv::cpu_im2col(&dz, &g);
                    let dw = matmul::cpu_matmul(matmul::Form::TN, &c.input, &dcols, l.inp, g.patch(), rows_in);
                    (dw, matmul::cpu_matmul(matmul::Form::NT, &dcols, w, rows_in, l.inp, g.patch()))
                }
                _ => (
                    matmul::cpu_matmul(matmul::Form::TN, &dz, &c.input, l.out, l.inp, rows),
                    matmul::cpu_matmul(matmul::Form::NN, &dz, w, rows, l.inp, l.out),
                ),
            };
            put(&mut grads, &format!("{}.weight", l.name), &dw);
            dy = d_input;
        }
        if let Some(e) = &self.spec.embedding {
            let (d_x, d_table) =
                embedding::cpu_backward(&dy, self.spec.input_dim(), e.dim, e.classes, &caches[0].labels);
            put(&mut grads, &format!("{}.weight", e.name), &d_table);
            dy = d_x;
        }
        (grads, dy)
    }

    pub fn adam_step(&mut self, config: AdamConfig, t: u32, grads: &[f32]) {
        cpu_adam_update(config, t, &mut self.params, grads, &mut self.m, &mut self.v);
    }
}

/// What a CPU reference step produced, gradients included.
#[derive(Clone, Debug)]
pub struct CpuStep {
    pub metrics: StepMetrics,
    /// D's parameter gradient of the D step, flat.
    pub d_grads: Vec<f32>,
    /// G's parameter gradient of the G step, flat.
    pub g_grads: Vec<f32>,
}

/// Losses and discriminator outputs of one step.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StepMetrics {
    pub loss_d: f32,
    pub loss_g: f32,
    /// Mean D(x) over the real batch.
    pub d_real: f32,
    /// Mean D(G(z)) over the fake batch, before the D update.
    pub d_fake: f32,
}

/// What one CPU training step takes besides the two networks.
#[derive(Clone, Copy, Debug)]
pub struct CpuStepInput<'a> {
    /// The real batch [B, dim] and the latent codes [B, latent].
    pub real: &'a [f32],
    pub z: &'a [f32],
    /// A conditional pair: (the fake batch's drawn labels, the real batch's), B each.
    pub labels: Option<(&'a [u32], &'a [u32])>,
    pub batch: usize,
    pub adam: AdamConfig,
    /// The 1-based global step: D's Adam t, and the dropout masks' draw.
    pub t: u32,
    /// The run's seed (D's dropout masks, as the GPU trainer draws them).
    pub seed: u64,
    pub loss: Loss,
    /// G trains on steps n_critic, 2 n_critic, ...; its Adam counts its own steps.
    pub n_critic: u32,
    /// WGAN-GP's penalty weight (other losses ignore it).
    pub gp_weight: f32,
}

/// One training step on the CPU, as the GPU trainer records it: G forward
/// once (train mode); D step on [fake; real]; on G's steps, the G step with
/// the same fake batch and the updated D. A D-only step leaves G, and
/// `g_grads` empty and loss_g NaN.
pub fn cpu_train_step(g: &mut CpuNet, d: &mut CpuNet, input: &CpuStepInput) -> CpuStep {
    let CpuStepInput { real, z, labels, batch, adam, t, seed, loss, n_critic, gp_weight } = *input;
    let masks = |stream| Some((DropoutDraw { seed, stream }, t - 1));
    let (d_step, g_step) = (masks(dropout::D_STEP_STREAM), masks(dropout::G_STEP_STREAM));
    let dim = d.spec.input_dim();
    let fake_labels = labels.map(|l| l.0);
    let both_labels: Option<Vec<u32>> = labels.map(|(f, r)| [f, r].concat());
    let g_caches = g.forward_labeled(z, fake_labels, batch, true);
    let fake = g_caches.last().expect("generator output").out.clone();
    let mut d_in = fake.clone();
    d_in.extend_from_slice(real);
    let d_caches = d.forward_grouped(&d_in, both_labels.as_deref(), 2 * batch, true, 2, d_step);
    let out = &d_caches.last().expect("d output").out;
    let (mut loss_d, dout, d_real, d_fake) = loss.cpu_d_step(out, batch);
    let (mut d_grads, _) = d.backward_grouped(&d_caches, &dout, 2 * batch, 2);
    if loss.has_gradient_penalty() {
        let eps = gradient_penalty::cpu_eps(batch, seed, t - 1);
        let x_hat = gradient_penalty::cpu_mix(&d_in, &eps, dim);
        let p = penalty::cpu_penalty(&d.spec, &d.params, &x_hat, batch, gp_weight);
        d_grads.iter_mut().zip(&p.grads).for_each(|(g, extra)| *g += extra);
        loss_d += p.penalty;
    }
    d.adam_step(adam, t, &d_grads);
    if !t.is_multiple_of(n_critic.max(1)) {
        let metrics = StepMetrics { loss_d, loss_g: f32::NAN, d_real, d_fake };
        return CpuStep { metrics, d_grads, g_grads: Vec::new() };
    }

    let d_caches = d.forward_grouped(&fake, fake_labels, batch, true, 1, g_step);
    let out = &d_caches.last().expect("d output").out;
    let (loss_g, dout, _, _) = loss.cpu_g_step(out);
    let (_, d_fake_img) = d.backward(&d_caches, &dout, batch);
    debug_assert_eq!(d_fake_img.len(), batch * dim);
    let (g_grads, _) = g.backward(&g_caches, &d_fake_img, batch);
    g.adam_step(adam, t / n_critic.max(1), &g_grads);
    CpuStep { metrics: StepMetrics { loss_d, loss_g, d_real, d_fake }, d_grads, g_grads }
}
