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
//! takes [image | emb(y)] (dim + classes). Its G uses LeakyReLU(0.2) where
//! the tutorial's uses ReLU, and its D has Dropout(0.5) after each hidden
//! LeakyReLU (model.0, model.3, model.6): without them it collapses.
//!
//! DCGAN (`WhichModel::Dcgan`, PyTorch's examples/dcgan for 28x28, width
//! W): G main.0 ConvTranspose2d(z, 2W, 7, 1, 0) main.1 BatchNorm2d ReLU,
//! main.3 ConvTranspose2d(2W, W, 4, 2, 1) main.4 BN ReLU, main.6
//! ConvTranspose2d(W, 1, 4, 2, 1) Tanh; D main.0 Conv2d(1, W, 4, 2, 1)
//! LeakyReLU(0.2), main.2 Conv2d(W, 2W, 4, 2, 1) main.3 BN LeakyReLU(0.2),
//! main.5 Conv2d(2W, 1, 7, 1, 0) Sigmoid; no biases; weights N(0, 0.02).
//! Images are NHWC (kernels/conv.rs says why).
//!
//! Also here: PyTorch's default initialisation and DCGAN's; the CPU
//! reference is in `cpu_reference`.

use crate::kernels::bias_act::Act;
use crate::kernels::conv::{self, ConvGeometry};
use crate::kernels::matmul;
use crate::tensor::FlatLayout;
use rand::Rng;

pub use crate::cpu_reference::{cpu_train_step, cpu_train_step_labeled, CpuNet, CpuStep, LayerCache, StepMetrics};

/// How a layer's weight meets its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerKind {
    /// Linear: y = x W^T, weight [out, inp].
    Dense,
    /// Conv2d on NHWC images h x w of `inp` channels: y = im2col(x) W^T,
    /// weight [out, k, k, inp] in the engine (flat [out, k k inp]),
    /// PyTorch's [out, inp, k, k] in checkpoints.
    Conv { h: usize, w: usize, k: usize, stride: usize, pad: usize },
    /// ConvTranspose2d from an h x w grid of `inp` channels: y =
    /// col2im(x W), weight [inp, k, k, out] in the engine (flat [inp,
    /// k k out]), PyTorch's [inp, out, k, k] in checkpoints.
    ConvTranspose { h: usize, w: usize, k: usize, stride: usize, pad: usize },
}

#[derive(Clone, Debug)]
pub struct LayerSpec {
    /// state_dict prefix of the layer, e.g. "model.2".
    pub name: String,
    pub kind: LayerKind,
    /// Input features (Dense) or channels (convolutions).
    pub inp: usize,
    /// Output features or channels.
    pub out: usize,
    /// Whether the layer has a bias (PyTorch's bias=...).
    pub bias: bool,
    /// state_dict prefix of the BatchNorm1d/2d that follows, if any.
    pub bn: Option<String>,
    pub act: Act,
    /// Dropout's probability after the activation, in training only
    /// (PyTorch's nn.Dropout, which takes a `model.N` index of its own);
    /// None: no dropout. Only after an activation with f(c v) = c f(v) for
    /// c >= 0 and without batch norm (`dropout_error`).
    pub dropout: Option<f32>,
}

impl LayerSpec {
    /// The convolution's geometry for `batch` images (None for Dense): the
    /// image is the input for Conv2d, the output for ConvTranspose2d.
    pub fn geometry(&self, batch: usize) -> Option<ConvGeometry> {
        match self.kind {
            LayerKind::Dense => None,
            LayerKind::Conv { h, w, k, stride, pad } => Some(ConvGeometry::conv(batch, h, w, self.inp, k, stride, pad)),
            LayerKind::ConvTranspose { h, w, k, stride, pad } => {
                Some(ConvGeometry::transposed(batch, h, w, self.out, k, stride, pad))
            }
        }
    }

    /// Spatial positions of one sample's input (1 for Dense).
    pub fn in_positions(&self) -> usize {
        match (self.kind, self.geometry(1)) {
            (LayerKind::Conv { .. }, Some(g)) => g.h * g.w,
            (LayerKind::ConvTranspose { .. }, Some(g)) => g.oh * g.ow,
            _ => 1,
        }
    }

    /// Spatial positions of one sample's output (1 for Dense).
    pub fn out_positions(&self) -> usize {
        match (self.kind, self.geometry(1)) {
            (LayerKind::Conv { .. }, Some(g)) => g.oh * g.ow,
            (LayerKind::ConvTranspose { .. }, Some(g)) => g.h * g.w,
            _ => 1,
        }
    }

    /// The weight's shape as PyTorch stores it.
    pub fn weight_shape(&self) -> Vec<usize> {
        match self.kind {
            LayerKind::Dense => vec![self.out, self.inp],
            LayerKind::Conv { k, .. } => vec![self.out, self.inp, k, k],
            LayerKind::ConvTranspose { k, .. } => vec![self.inp, self.out, k, k],
        }
    }

    /// The weight as the layer's matmul reads it: [out, inp] (Dense),
    /// [out, k k inp] (Conv2d), [inp, k k out] (ConvTranspose2d).
    pub fn weight_matrix(&self) -> [usize; 2] {
        let s = self.weight_shape();
        [s[0], s[1..].iter().product()]
    }

    /// A convolution weight's (lead, channels, k) for `conv::to_patch_order`:
    /// PyTorch's [lead, channels, k, k] is the engine's [lead, k, k,
    /// channels]. None for Dense.
    pub fn patch_order(&self) -> Option<(usize, usize, usize)> {
        match self.kind {
            LayerKind::Dense => None,
            LayerKind::Conv { k, .. } => Some((self.out, self.inp, k)),
            LayerKind::ConvTranspose { k, .. } => Some((self.inp, self.out, k)),
        }
    }

    /// PyTorch's fan-in of the weight: its dimension 1 times the kernel area.
    pub fn fan_in(&self) -> usize {
        self.weight_matrix()[1]
    }

    /// Why this layer's dropout cannot be trained, if it cannot: the
    /// backward reads the activation's derivative from the dropped output,
    /// which only identity, ReLU and LeakyReLU allow, and batch norm's
    /// backward reads the undropped output.
    pub fn dropout_error(&self) -> Option<String> {
        let p = self.dropout?;
        if let Err(why) = crate::kernels::dropout::check_probability(p) {
            return Some(why);
        }
        if !matches!(self.act, Act::Identity | Act::Relu | Act::LeakyRelu) {
            return Some(format!("dropout after {} (only after identity, relu or leaky_relu_0.2)", self.act.name()));
        }
        self.bn.as_ref().map(|b| format!("dropout after the batch norm {b} (not supported)"))
    }

    /// "Linear(784, 512)", "Conv2d(1, 64, 4, 2, 1, bias=False)", ...
    pub fn describe(&self) -> String {
        let bias = if self.bias { "" } else { ", bias=False" };
        match self.kind {
            LayerKind::Dense => format!("Linear({}, {}{bias})", self.inp, self.out),
            LayerKind::Conv { k, stride, pad, .. } => {
                format!("Conv2d({}, {}, {k}, {stride}, {pad}{bias})", self.inp, self.out)
            }
            LayerKind::ConvTranspose { k, stride, pad, .. } => {
                format!("ConvTranspose2d({}, {}, {k}, {stride}, {pad}{bias})", self.inp, self.out)
            }
        }
    }
}

/// How a network's parameters are drawn before training.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum InitScheme {
    /// PyTorch's defaults (weights and biases uniform in +-1/sqrt(fan_in);
    /// batch norm 1 and 0).
    #[default]
    PyTorch,
    /// The DCGAN paper's: weights N(0, 0.02), batch-norm gamma N(1, 0.02),
    /// beta 0.
    Dcgan,
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
    pub layers: Vec<LayerSpec>,
    pub init: InitScheme,
}

/// The models `train --model` builds: candle's `WhichModel`, one trainer for all.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WhichModel {
    /// The tutorial's fully-connected GAN.
    #[default]
    Gan,
    /// The same GAN conditioned on the class label (Mirza and Osindero 2014).
    Cgan,
    /// A convolutional GAN (Radford et al. 2015; PyTorch's examples/dcgan).
    Dcgan,
}

impl WhichModel {
    pub const ALL: [WhichModel; 3] = [WhichModel::Gan, WhichModel::Cgan, WhichModel::Dcgan];

    /// The name `--model` takes and state files record.
    pub fn name(self) -> &'static str {
        match self {
            WhichModel::Gan => "gan",
            WhichModel::Cgan => "cgan",
            WhichModel::Dcgan => "dcgan",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// The model's two networks for latent codes of `latent` and images of
    /// `height` x `width` pixels (`classes` labels for a conditional model;
    /// `dcgan_width` channels W for DCGAN). Err says why the images do not
    /// suit the model.
    pub fn architecture(
        self,
        latent: usize,
        (height, width): (usize, usize),
        classes: usize,
        dcgan_width: usize,
    ) -> Result<GanArchitecture, String> {
        match self {
            WhichModel::Gan => Ok(GanArchitecture::tutorial(latent, height * width)),
            WhichModel::Cgan => Ok(GanArchitecture::conditional(latent, height * width, classes)),
            WhichModel::Dcgan => GanArchitecture::dcgan(latent, (height, width), dcgan_width),
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

fn dense(i: usize, inp: usize, out: usize, bn: bool, act: Act) -> LayerSpec {
    LayerSpec {
        name: format!("model.{i}"),
        kind: LayerKind::Dense,
        inp,
        out,
        bias: true,
        bn: bn.then(|| format!("model.{}", i + 1)),
        act,
        dropout: None,
    }
}

/// A DCGAN layer `main.{i}` without bias, its batch norm (if any) `main.{i + 1}`.
fn conv_layer(i: usize, kind: LayerKind, inp: usize, out: usize, bn: bool, act: Act) -> LayerSpec {
    let bn = bn.then(|| format!("main.{}", i + 1));
    LayerSpec { name: format!("main.{i}"), kind, inp, out, bias: false, bn, act, dropout: None }
}

/// The conditional discriminator's dropout probability.
pub const CGAN_DROPOUT: f32 = 0.5;

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
    /// Embedding(classes, classes) `label_emb` joined after its input, and
    /// what keeps the pair from collapsing onto one image per class on
    /// MNIST (docs/quality.md): LeakyReLU(0.2) in G's hidden layers and
    /// Dropout(CGAN_DROPOUT) after D's hidden LeakyReLUs, which shifts D's
    /// names to model.0, model.3, model.6 as nn.Sequential counts them.
    pub fn conditional(latent: usize, image_dim: usize, classes: usize) -> Self {
        let emb = EmbeddingSpec { name: "label_emb".into(), classes, dim: classes };
        let mut generator = generator_spec(latent, image_dim, Some(emb.clone()));
        for l in generator.layers.iter_mut().filter(|l| l.act == Act::Relu) {
            l.act = Act::LeakyRelu;
        }
        let dropout = |l: LayerSpec| LayerSpec { dropout: Some(CGAN_DROPOUT), ..l };
        let discriminator = NetSpec {
            name: "discriminator",
            layers: vec![
                dropout(dense(0, joined(image_dim, &Some(emb.clone())), 512, false, Act::LeakyRelu)),
                dropout(dense(3, 512, 256, false, Act::LeakyRelu)),
                dense(6, 256, 1, false, Act::Sigmoid),
            ],
            embedding: Some(emb),
            init: InitScheme::PyTorch,
        };
        GanArchitecture { generator, discriminator }
    }

    /// DCGAN (see the module header) for square 1-channel images of side s
    /// (a multiple of 4; 28 for MNIST, where s / 4 = 7 is the first and last
    /// kernel), base width `w` channels.
    pub fn dcgan(latent: usize, (height, width): (usize, usize), w: usize) -> Result<Self, String> {
        if height != width || !height.is_multiple_of(4) || height == 0 || w == 0 {
            return Err(format!(
                "dcgan needs square images whose side is a multiple of 4 (MNIST's 28x28), and a width of at least 1; \
                 these are {height}x{width}, width {w}"
            ));
        }
        let (s, q) = (height, height / 4);
        let t = |h, k, stride, pad| LayerKind::ConvTranspose { h, w: h, k, stride, pad };
        let c = |h, k, stride, pad| LayerKind::Conv { h, w: h, k, stride, pad };
        let generator = NetSpec {
            name: "generator",
            embedding: None,
            layers: vec![
                conv_layer(0, t(1, q, 1, 0), latent, 2 * w, true, Act::Relu),
                conv_layer(3, t(q, 4, 2, 1), 2 * w, w, true, Act::Relu),
                conv_layer(6, t(2 * q, 4, 2, 1), w, 1, false, Act::Tanh),
            ],
            init: InitScheme::Dcgan,
        };
        let discriminator = NetSpec {
            name: "discriminator",
            embedding: None,
            layers: vec![
                conv_layer(0, c(s, 4, 2, 1), 1, w, false, Act::LeakyRelu),
                conv_layer(2, c(2 * q, 4, 2, 1), w, 2 * w, true, Act::LeakyRelu),
                conv_layer(5, c(q, q, 1, 0), 2 * w, 1, false, Act::Sigmoid),
            ],
            init: InitScheme::Dcgan,
        };
        Ok(GanArchitecture { generator, discriminator })
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
        init: InitScheme::PyTorch,
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
        init: InitScheme::PyTorch,
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
        init: InitScheme::PyTorch,
    }
}

impl NetSpec {
    /// Trainable tensors in state_dict order: the embedding's weight
    /// [classes, dim] if any, then per layer its weight (`weight_shape`),
    /// bias [out] if it has one, then the batch norm's weight (gamma) and
    /// bias (beta).
    pub fn param_entries(&self) -> Vec<(String, Vec<usize>)> {
        let mut v = Vec::new();
        if let Some(e) = &self.embedding {
            v.push((format!("{}.weight", e.name), vec![e.classes, e.dim]));
        }
        for l in &self.layers {
            v.push((format!("{}.weight", l.name), l.weight_shape()));
            if l.bias {
                v.push((format!("{}.bias", l.name), vec![l.out]));
            }
            if let Some(bn) = &l.bn {
                v.push((format!("{bn}.weight"), vec![l.out]));
                v.push((format!("{bn}.bias"), vec![l.out]));
            }
        }
        v
    }

    /// The flat parameters' layout: `param_entries` in order, each tensor
    /// in PyTorch's element order except convolution weights, which are
    /// in the engine's (`LayerSpec::patch_order`).
    pub fn layout(&self) -> FlatLayout {
        FlatLayout::new(&self.param_entries())
    }

    /// Converts flat parameters (or anything laid out like them: gradients,
    /// Adam moments) from PyTorch's element order to the engine's.
    pub fn params_from_pytorch(&self, flat: &mut [f32]) {
        self.reorder(flat, conv::to_patch_order)
    }

    /// `params_from_pytorch`'s inverse, for a checkpoint.
    pub fn params_to_pytorch(&self, flat: &mut [f32]) {
        self.reorder(flat, conv::to_pytorch_order)
    }

    fn reorder(&self, flat: &mut [f32], f: fn(&[f32], usize, usize, usize) -> Vec<f32>) {
        let layout = self.layout();
        for l in &self.layers {
            let Some((lead, c, k)) = l.patch_order() else { continue };
            let (_, _, off) = layout.find(&format!("{}.weight", l.name)).expect("a layer's weight entry");
            let w = &mut flat[*off..off + lead * c * k * k];
            let reordered = f(w, lead, c, k);
            w.copy_from_slice(&reordered);
        }
    }

    /// Values of one sample's data input (z, an image), without the
    /// embedding's columns.
    pub fn input_dim(&self) -> usize {
        let first = &self.layers[0];
        first.inp * first.in_positions() - self.embedding.as_ref().map_or(0, |e| e.dim)
    }

    /// Values of one sample's output (an image's pixels, D's 1).
    pub fn output_dim(&self) -> usize {
        self.layers.last().map_or(0, |l| l.out * l.out_positions())
    }

    /// `self.init`'s scheme. PyTorch's defaults: weight and bias uniform in
    /// +-1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5) gives the same
    /// bound), batch-norm gamma 1, beta 0. DCGAN's: weights N(0, 0.02),
    /// gamma N(1, 0.02), beta 0. An embedding is N(0, 1), drawn after every
    /// layer so that a network without one draws as before. Returns the
    /// flat parameter vector (drawn in PyTorch's order, then converted to
    /// the engine's).
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
            match (self.init, is_bn, name.ends_with(".weight")) {
                (InitScheme::PyTorch, true, weight) => dst.fill(if weight { 1.0 } else { 0.0 }),
                (InitScheme::PyTorch, false, _) => {
                    let layer =
                        self.layers.iter().find(|l| name.starts_with(&format!("{}.", l.name))).expect("layer of entry");
                    let bound = 1.0 / (layer.fan_in() as f32).sqrt();
                    dst.iter_mut().for_each(|x| *x = rng.random_range(-bound..bound));
                }
                (InitScheme::Dcgan, true, true) => dst.iter_mut().for_each(|x| *x = 1.0 + 0.02 * normal(rng)),
                (InitScheme::Dcgan, false, true) => dst.iter_mut().for_each(|x| *x = 0.02 * normal(rng)),
                (InitScheme::Dcgan, _, false) => dst.fill(0.0),
            }
        }
        if let Some(e) = &self.embedding {
            let (_, _, off) = layout.find(&format!("{}.weight", e.name)).expect("embedding entry");
            for x in &mut flat[*off..off + e.classes * e.dim] {
                *x = normal(rng);
            }
        }
        self.params_from_pytorch(&mut flat);
        flat
    }
}

/// One N(0, 1) draw (Box-Muller, the cosine branch).
fn normal(rng: &mut impl Rng) -> f32 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
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
