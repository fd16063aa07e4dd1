//! Networks as data: layers (dense or convolutional, optional batch norm,
//! activation, dropout), the label embedding, the initialisation schemes,
//! the flat parameter layout in PyTorch's state_dict order, and the batch
//! norms' running statistics. The models (`crate::models`) build their
//! networks from these; the GPU network (`gpu_net`), the CPU reference, the
//! checkpoints and the JSON form (`spec_json`) read them.
//!
//! May import: `engine` (kernel enums and geometry), `error`, `defaults`.

use crate::engine::kernels::bias_act::Act;
use crate::engine::kernels::conv::{self, ConvGeometry};
use crate::engine::tensor::FlatLayout;
use rand::Rng;

/// The images a pair of networks maps to and from: height x width pixels
/// of `channels` (1 grey, 3 RGB) bytes, stored and fed to the networks
/// row-major with the channels interleaved (HWC: NHWC for a batch, the
/// engine's convolution layout).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImageShape {
    pub height: usize,
    pub width: usize,
    pub channels: usize,
}

impl ImageShape {
    /// Grey images of height x width (MNIST's shape: `grey(28, 28)`).
    pub fn grey(height: usize, width: usize) -> Self {
        ImageShape { height, width, channels: 1 }
    }

    /// Values an image: height x width x channels.
    pub fn dim(&self) -> usize {
        self.height * self.width * self.channels
    }

    /// "28x28 grey", "64x64 RGB", "32x32, 2 channels".
    pub fn describe(&self) -> String {
        match self.channels {
            1 => format!("{}x{} grey", self.height, self.width),
            3 => format!("{}x{} RGB", self.height, self.width),
            c => format!("{}x{}, {c} channels", self.height, self.width),
        }
    }
}

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
        if let Err(why) = crate::engine::kernels::dropout::check_probability(p) {
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
