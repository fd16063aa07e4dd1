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
//! This module owns the model zoo: `WhichModel` (candle's enum, one trainer
//! for every model), each model's pair of networks (`GanArchitecture`), the
//! evaluation classifier's network, and the defaults as the page reads them.
//! May import: `nn` (the specs), `engine`, `error`, `defaults`.

use crate::defaults;
use crate::engine::kernels::bias_act::Act;
use crate::engine::kernels::matmul;
use crate::nn::spec::{EmbeddingSpec, InitScheme, LayerKind, LayerSpec, NetSpec};
use rand::Rng;

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

/// The defaults a page needs, as a JSON object: batch, lr, beta1, beta2,
/// seed, latent, grid_samples, epochs, model, models, classes, quality_count,
/// quality_every, quality_classifier.
pub fn defaults_json() -> String {
    // An f32 widened to f64 prints its binary expansion (0.00019999999...);
    // its shortest decimal form is what a person typed.
    let short = |x: f32| x.to_string().parse::<f64>().unwrap_or(x as f64);
    serde_json::json!({
        "batch": defaults::BATCH,
        "lr": short(defaults::LR),
        "beta1": short(defaults::BETA1),
        "beta2": short(defaults::BETA2),
        "seed": defaults::SEED,
        "latent": defaults::LATENT,
        "grid_samples": defaults::GRID_SAMPLES,
        "epochs": defaults::EPOCHS,
        "model": WhichModel::default().name(),
        "models": WhichModel::ALL.map(WhichModel::name),
        "classes": defaults::CLASSES,
        "quality_count": defaults::LIVE_QUALITY_COUNT,
        "quality_every": defaults::LIVE_QUALITY_EVERY,
        "quality_classifier": defaults::LIVE_QUALITY_CLASSIFIER,
    })
    .to_string()
}
