//! The reference GAN's two networks as data: dense layers (with optional
//! batch norm) and their activations, named as PyTorch's nn.Sequential
//! `model` names them, so checkpoints load with `load_state_dict`.
//!
//! Generator (latent -> image): model.0 Linear(latent,128) ReLU, model.2
//! Linear(128,256) model.3 BatchNorm1d ReLU, model.5 Linear(256,512) model.6
//! BN ReLU, model.8 Linear(512,1024) model.9 BN ReLU, model.11
//! Linear(1024,dim) Tanh. Discriminator (image -> probability): model.0
//! Linear(dim,512) LeakyReLU(0.2), model.2 Linear(512,256) LeakyReLU(0.2),
//! model.4 Linear(256,1) Sigmoid.
//!
//! The conditional GAN (`WhichModel::Cgan`) has the same layers, with a
//! label embedding nn.Embedding(classes, classes) named `label_emb` joined
//! after each network's input: G takes [z | emb(y)] (latent + classes), D
//! takes [image | emb(y)] (dim + classes).
//!
//! Also here: PyTorch's default initialisation and a CPU reference of a
//! whole training step built from the kernels' CPU references.

use crate::kernels::adam::{cpu_adam_update, AdamConfig};
use crate::kernels::bias_act::{self, Act};
use crate::kernels::{batchnorm, bce, embedding, matmul};
use crate::tensor::FlatLayout;
use rand::Rng;

#[derive(Clone, Debug)]
pub struct DenseSpec {
    /// state_dict prefix of the Linear, e.g. "model.2".
    pub name: String,
    pub inp: usize,
    pub out: usize,
    /// state_dict prefix of the BatchNorm1d that follows, if any.
    pub bn: Option<String>,
    pub act: Act,
}

/// A label embedding (PyTorch's nn.Embedding(classes, dim)) whose row for
/// each sample's label is joined after the network's input: the first
/// layer takes input + dim columns.
#[derive(Clone, Debug, PartialEq)]
pub struct EmbeddingSpec {
    /// state_dict prefix, e.g. "label_emb".
    pub name: String,
    pub classes: usize,
    pub dim: usize,
}

#[derive(Clone, Debug)]
pub struct NetSpec {
    pub name: &'static str,
    /// The label embedding joined to the input, for a conditional network.
    pub embedding: Option<EmbeddingSpec>,
    pub layers: Vec<DenseSpec>,
}

/// The models `train --model` builds: candle's `WhichModel`, one trainer for all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WhichModel {
    /// The tutorial's fully-connected GAN.
    #[default]
    Gan,
    /// The same GAN conditioned on the class label (Mirza and Osindero 2014).
    Cgan,
}

impl WhichModel {
    pub const ALL: [WhichModel; 2] = [WhichModel::Gan, WhichModel::Cgan];

    /// The name `--model` takes and state files record.
    pub fn name(self) -> &'static str {
        match self {
            WhichModel::Gan => "gan",
            WhichModel::Cgan => "cgan",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The model's two networks for latent codes of `latent` and images of
    /// `image_dim` pixels (`classes` labels for a conditional model).
    pub fn architecture(self, latent: usize, image_dim: usize, classes: usize) -> GanArchitecture {
        match self {
            WhichModel::Gan => GanArchitecture::tutorial(latent, image_dim),
            WhichModel::Cgan => GanArchitecture::conditional(latent, image_dim, classes),
        }
    }

    pub fn is_conditional(self) -> bool {
        self == WhichModel::Cgan
    }
}

impl std::fmt::Display for WhichModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for WhichModel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::from_name(s)
            .ok_or_else(|| format!("no model \"{s}\": the models are {}", Self::ALL.map(WhichModel::name).join(", ")))
    }
}

fn dense(i: usize, inp: usize, out: usize, bn: bool, act: Act) -> DenseSpec {
    DenseSpec { name: format!("model.{i}"), inp, out, bn: bn.then(|| format!("model.{}", i + 1)), act }
}

/// A GAN's two networks, sized from one config: what the trainer, its
/// resumable state, the pipeline warm-up, the sampler's fallback and bench
/// build from. The only place the tutorial's networks are named.
#[derive(Clone, Debug)]
pub struct GanArchitecture {
    pub generator: NetSpec,
    pub discriminator: NetSpec,
}

impl GanArchitecture {
    /// The tutorial's pair (see the module header) for latent codes of
    /// `latent` and images of `image_dim` pixels.
    pub fn tutorial(latent: usize, image_dim: usize) -> Self {
        GanArchitecture {
            generator: generator_spec(latent, image_dim, None),
            discriminator: discriminator_spec(image_dim, None),
        }
    }

    /// The conditional pair: the tutorial's layers, each network with an
    /// Embedding(classes, classes) `label_emb` joined after its input.
    pub fn conditional(latent: usize, image_dim: usize, classes: usize) -> Self {
        let emb = EmbeddingSpec { name: "label_emb".into(), classes, dim: classes };
        GanArchitecture {
            generator: generator_spec(latent, image_dim, Some(emb.clone())),
            discriminator: discriminator_spec(image_dim, Some(emb)),
        }
    }

    /// The number of classes a conditional pair draws (None: unconditional).
    pub fn classes(&self) -> Option<usize> {
        self.generator.embedding.as_ref().map(|e| e.classes)
    }

    /// PyTorch's default initialisation of both networks from one stream,
    /// the generator first: (generator, discriminator) parameters.
    pub fn init_params(&self, rng: &mut impl Rng) -> (Vec<f32>, Vec<f32>) {
        let g = self.generator.init_params(rng);
        let d = self.discriminator.init_params(rng);
        (g, d)
    }
}

/// Width of the input joined with the embedding's columns.
fn joined(input: usize, embedding: &Option<EmbeddingSpec>) -> usize {
    input + embedding.as_ref().map_or(0, |e| e.dim)
}

fn generator_spec(latent: usize, image_dim: usize, embedding: Option<EmbeddingSpec>) -> NetSpec {
    NetSpec {
        name: "generator",
        layers: vec![
            dense(0, joined(latent, &embedding), 128, false, Act::Relu),
            dense(2, 128, 256, true, Act::Relu),
            dense(5, 256, 512, true, Act::Relu),
            dense(8, 512, 1024, true, Act::Relu),
            dense(11, 1024, image_dim, false, Act::Tanh),
        ],
        embedding,
    }
}

fn discriminator_spec(image_dim: usize, embedding: Option<EmbeddingSpec>) -> NetSpec {
    NetSpec {
        name: "discriminator",
        layers: vec![
            dense(0, joined(image_dim, &embedding), 512, false, Act::LeakyRelu),
            dense(2, 512, 256, false, Act::LeakyRelu),
            dense(4, 256, 1, false, Act::Sigmoid),
        ],
        embedding,
    }
}

/// The classifier that scores samples (`gan-wgpu eval`): image -> logits,
/// PyTorch's nn.Sequential(Linear(dim,512), BatchNorm1d, ReLU, Linear(512,256),
/// BatchNorm1d, ReLU, Linear(256,classes)): model.0/1, model.3/4, model.6.
/// Its features are the 256 outputs of model.5 (after the second ReLU).
pub fn classifier_spec(image_dim: usize, classes: usize) -> NetSpec {
    NetSpec {
        name: "classifier",
        embedding: None,
        layers: vec![
            dense(0, image_dim, 512, true, Act::Relu),
            dense(3, 512, 256, true, Act::Relu),
            dense(6, 256, classes, false, Act::Identity),
        ],
    }
}

impl NetSpec {
    /// Trainable tensors in state_dict order: the embedding's weight
    /// [classes, dim] if any, then per layer weight [out, in], bias [out],
    /// then the batch norm's weight (gamma) and bias (beta).
    pub fn param_entries(&self) -> Vec<(String, Vec<usize>)> {
        let mut v = Vec::new();
        if let Some(e) = &self.embedding {
            v.push((format!("{}.weight", e.name), vec![e.classes, e.dim]));
        }
        for l in &self.layers {
            v.push((format!("{}.weight", l.name), vec![l.out, l.inp]));
            v.push((format!("{}.bias", l.name), vec![l.out]));
            if let Some(bn) = &l.bn {
                v.push((format!("{bn}.weight"), vec![l.out]));
                v.push((format!("{bn}.bias"), vec![l.out]));
            }
        }
        v
    }

    pub fn layout(&self) -> FlatLayout {
        FlatLayout::new(&self.param_entries())
    }

    /// Columns of the data input (z, an image), without the embedding's.
    pub fn input_dim(&self) -> usize {
        self.layers[0].inp - self.embedding.as_ref().map_or(0, |e| e.dim)
    }

    /// PyTorch defaults: Linear weight and bias uniform in +-1/sqrt(fan_in)
    /// (kaiming_uniform with a = sqrt(5) gives the same bound); batch-norm
    /// gamma 1, beta 0; an embedding N(0, 1) (Box-Muller, drawn after every
    /// layer so that a network without one draws as before). Returns the
    /// flat parameter vector.
    pub fn init_params(&self, rng: &mut impl Rng) -> Vec<f32> {
        let layout = self.layout();
        let mut flat = vec![0f32; layout.len];
        for (name, shape, off) in &layout.entries {
            let n: usize = shape.iter().product();
            let dst = &mut flat[*off..off + n];
            if self.embedding.as_ref().is_some_and(|e| *name == format!("{}.weight", e.name)) {
                continue;
            }
            let is_bn = self.layers.iter().any(|l| l.bn.as_deref().is_some_and(|b| name.starts_with(&format!("{b}."))));
            if is_bn {
                let v = if name.ends_with(".weight") { 1.0 } else { 0.0 };
                dst.iter_mut().for_each(|x| *x = v);
            } else {
                let layer =
                    self.layers.iter().find(|l| name.starts_with(&format!("{}.", l.name))).expect("layer of entry");
                let bound = 1.0 / (layer.inp as f32).sqrt();
                dst.iter_mut().for_each(|x| *x = rng.random_range(-bound..bound));
            }
        }
        if let Some(e) = &self.embedding {
            let (_, _, off) = layout.find(&format!("{}.weight", e.name)).expect("embedding entry");
            for x in &mut flat[*off..off + e.classes * e.dim] {
                let u1: f64 = 1.0 - rng.random::<f64>();
                let u2: f64 = rng.random::<f64>();
                *x = ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32;
            }
        }
        flat
    }
}

/// Running statistics of the batch norms, per layer (None where a layer has none).
#[derive(Clone, Debug, PartialEq)]
pub struct BnStats {
    pub running_mean: Vec<f32>,
    pub running_var: Vec<f32>,
    pub num_batches_tracked: i64,
}

impl BnStats {
    pub fn new(features: usize) -> Self {
        BnStats { running_mean: vec![0.0; features], running_var: vec![1.0; features], num_batches_tracked: 0 }
    }
}

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
    /// Batch-norm layers: xhat.
    pub xhat: Vec<f32>,
    pub invstd: Vec<f32>,
    pub out: Vec<f32>,
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

    /// Forward over `rows` inputs; `train` uses batch statistics and updates
    /// the running ones. For an unconditional network.
    pub fn forward(&mut self, input: &[f32], rows: usize, train: bool) -> Vec<LayerCache> {
        self.forward_labeled(input, None, rows, train)
    }

    /// `forward` with the rows' labels, which a conditional network joins
    /// to its input through its embedding (panics when it needs them and
    /// gets none: a reference for tests).
    pub fn forward_labeled(
        &mut self,
        input: &[f32],
        labels: Option<&[u32]>,
        rows: usize,
        train: bool,
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
            let b = self.tensor(&format!("{}.bias", l.name)).to_vec();
            let z = matmul::cpu_matmul(matmul::Form::NT, &x, &w, rows, l.out, l.inp);
            let mut cache = LayerCache {
                input: x.clone(),
                labels: std::mem::take(&mut row_labels),
                xhat: vec![],
                invstd: vec![],
                out: vec![],
            };
            if let Some(bn) = &l.bn {
                let pre = bias_act::cpu_forward(Act::Identity, &z, Some(&b), rows, l.out);
                let gamma = self.tensor(&format!("{bn}.weight")).to_vec();
                let beta = self.tensor(&format!("{bn}.bias")).to_vec();
                let stats = self.bn[li].as_mut().expect("bn stats");
                if train {
                    let f = batchnorm::cpu_forward_train(
                        &pre,
                        rows,
                        l.out,
                        &gamma,
                        &beta,
                        &mut stats.running_mean,
                        &mut stats.running_var,
                        l.act == Act::Relu,
                    );
                    stats.num_batches_tracked += 1;
                    cache.xhat = f.xhat;
                    cache.invstd = f.invstd;
                    cache.out = f.y;
                } else {
                    cache.out = batchnorm::cpu_forward_eval(
                        &pre,
                        rows,
                        l.out,
                        &gamma,
                        &beta,
                        &stats.running_mean,
                        &stats.running_var,
                        l.act == Act::Relu,
                    );
                }
            } else {
                cache.out = bias_act::cpu_forward(l.act, &z, Some(&b), rows, l.out);
            }
            x = cache.out.clone();
            caches.push(cache);
        }
        caches
    }

    /// Backward from d_out (gradient w.r.t. the last output). Returns the flat
    /// parameter gradient and the gradient w.r.t. the input.
    pub fn backward(&self, caches: &[LayerCache], d_out: &[f32], rows: usize) -> (Vec<f32>, Vec<f32>) {
        let mut grads = vec![0f32; self.layout.len];
        let mut dy = d_out.to_vec();
        let put = |grads: &mut Vec<f32>, name: &str, vals: &[f32]| {
            let (_, _, off) = self.layout.find(name).expect("grad entry");
            grads[*off..off + vals.len()].copy_from_slice(vals);
        };
        for (li, l) in self.spec.layers.iter().enumerate().rev() {
            let c = &caches[li];
            let dz = if let Some(bn) = &l.bn {
                let gamma = self.tensor(&format!("{bn}.weight"));
                let (dx, dgamma, dbeta, dbias) =
                    batchnorm::cpu_backward(&dy, &c.out, &c.xhat, gamma, &c.invstd, rows, l.out, l.act == Act::Relu);
                put(&mut grads, &format!("{bn}.weight"), &dgamma);
                put(&mut grads, &format!("{bn}.bias"), &dbeta);
                put(&mut grads, &format!("{}.bias", l.name), &dbias);
                dx
            } else {
                let (dz, dbias) = bias_act::cpu_backward(l.act, &c.out, &dy, rows, l.out);
                put(&mut grads, &format!("{}.bias", l.name), &dbias);
                dz
            };
            let dw = matmul::cpu_matmul(matmul::Form::TN, &dz, &c.input, l.out, l.inp, rows);
            put(&mut grads, &format!("{}.weight", l.name), &dw);
            let w = self.tensor(&format!("{}.weight", l.name));
            dy = matmul::cpu_matmul(matmul::Form::NN, &dz, w, rows, l.inp, l.out);
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

/// One training step on the CPU, as the GPU trainer records it: G forward
/// once (train mode); D step on [fake; real]; G step with the same fake batch
/// and the updated D. `t` is the 1-based step number for Adam.
pub fn cpu_train_step(
    g: &mut CpuNet,
    d: &mut CpuNet,
    real: &[f32],
    z: &[f32],
    batch: usize,
    config: AdamConfig,
    t: u32,
) -> CpuStep {
    cpu_train_step_labeled(g, d, real, z, None, batch, config, t)
}

/// `cpu_train_step` for a conditional pair: `labels` = (the fake batch's
/// drawn labels, the real batch's labels), B each.
#[allow(clippy::too_many_arguments)]
pub fn cpu_train_step_labeled(
    g: &mut CpuNet,
    d: &mut CpuNet,
    real: &[f32],
    z: &[f32],
    labels: Option<(&[u32], &[u32])>,
    batch: usize,
    config: AdamConfig,
    t: u32,
) -> CpuStep {
    let dim = d.spec.input_dim();
    let fake_labels = labels.map(|l| l.0);
    let both_labels: Option<Vec<u32>> = labels.map(|(f, r)| [f, r].concat());
    let g_caches = g.forward_labeled(z, fake_labels, batch, true);
    let fake = g_caches.last().expect("generator output").out.clone();
    let mut d_in = fake.clone();
    d_in.extend_from_slice(real);
    let d_caches = d.forward_labeled(&d_in, both_labels.as_deref(), 2 * batch, true);
    let prob = &d_caches.last().expect("d output").out;
    let (loss_d, dprob, d_real, d_fake) = bce::cpu_forward_backward(prob, batch);
    let (d_grads, _) = d.backward(&d_caches, &dprob, 2 * batch);
    d.adam_step(config, t, &d_grads);

    let d_caches = d.forward_labeled(&fake, fake_labels, batch, true);
    let prob = &d_caches.last().expect("d output").out;
    let (loss_g, dprob, _, _) = bce::cpu_forward_backward(prob, 0);
    let (_, d_fake_img) = d.backward(&d_caches, &dprob, batch);
    debug_assert_eq!(d_fake_img.len(), batch * dim);
    let (g_grads, _) = g.backward(&g_caches, &d_fake_img, batch);
    g.adam_step(config, t, &g_grads);
    CpuStep { metrics: StepMetrics { loss_d, loss_g, d_real, d_fake }, d_grads, g_grads }
}

/// The matmul shapes of one training step at `batch`: (m, n, k, form, what).
pub fn matmul_shapes(batch: usize) -> Vec<(usize, usize, usize, matmul::Form, String)> {
    let arch = GanArchitecture::tutorial(crate::defaults::LATENT, 784);
    let layers: Vec<(usize, usize)> = [arch.generator, arch.discriminator]
        .iter()
        .flat_map(|net| net.layers.iter().map(|l| (l.inp, l.out)).collect::<Vec<_>>())
        .collect();
    let mut v = Vec::new();
    for &(inp, out) in &layers {
        v.push((batch, out, inp, matmul::Form::NT, format!("fwd {inp}->{out}")));
    }
    for (inp, out) in layers {
        v.push((batch, inp, out, matmul::Form::NN, format!("dX {inp}<-{out}")));
        v.push((out, inp, batch, matmul::Form::TN, format!("dW {out}x{inp}")));
    }
    v
}
