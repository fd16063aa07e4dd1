//! The model zoo: `WhichModel` (candle's enum, one trainer for every
//! model), each model's pair of networks (`GanArchitecture`, built in
//! `gan`, `cgan` and `dcgan`, one file a model), the evaluation
//! classifier's network (`classifier`), and the defaults as the page reads
//! them. Networks are named as PyTorch's modules name them, so checkpoints
//! load with `load_state_dict`.
//!
//! May import: `nn` (the specs), `engine`, `error`, `defaults`.

mod cgan;
mod classifier;
mod dcgan;
mod gan;

pub use cgan::CGAN_DROPOUT;
pub use classifier::classifier_spec;

use crate::defaults;
use crate::engine::kernels::bias_act::Act;
use crate::engine::kernels::matmul;
use crate::nn::spec::{ImageShape, LayerKind, LayerSpec, NetSpec};
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
    /// `shape` (`classes` labels for a conditional model; `dcgan_width`
    /// channels W for DCGAN). Err says why the images do not suit the model.
    pub fn architecture(
        self,
        latent: usize,
        shape: ImageShape,
        classes: usize,
        dcgan_width: usize,
    ) -> Result<GanArchitecture, String> {
        match self {
            WhichModel::Gan => Ok(GanArchitecture::tutorial(latent, shape.dim())),
            WhichModel::Cgan => Ok(GanArchitecture::conditional(latent, shape.dim(), classes)),
            WhichModel::Dcgan => GanArchitecture::dcgan(latent, shape, dcgan_width),
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

/// A dense layer `model.{i}`, its batch norm (if any) `model.{i + 1}`.
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

/// A GAN's two networks, sized from one config: what the trainer, its
/// resumable state, the pipeline warm-up, the sampler's fallback and bench
/// build from. The only place the tutorial's networks are named.
#[derive(Clone, Debug)]
pub struct GanArchitecture {
    pub generator: NetSpec,
    pub discriminator: NetSpec,
}

impl GanArchitecture {
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
/// seed, latent, grid_samples, epochs, model, models, loss, losses, classes, quality_count,
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
        "loss": crate::nn::loss::Loss::default().name(),
        "losses": crate::nn::loss::Loss::ALL.map(crate::nn::loss::Loss::name),
        "classes": defaults::CLASSES,
        "quality_count": defaults::LIVE_QUALITY_COUNT,
        "quality_every": defaults::LIVE_QUALITY_EVERY,
        "quality_classifier": defaults::LIVE_QUALITY_CLASSIFIER,
    })
    .to_string()
}
