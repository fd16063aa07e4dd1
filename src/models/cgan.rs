//! The conditional GAN (`WhichModel::Cgan`) has the same layers, with a
//! label embedding nn.Embedding(classes, classes) named `label_emb` joined
//! after each network's input: G takes [z | emb(y)] (latent + classes), D
//! takes [image | emb(y)] (dim + classes). Its G uses LeakyReLU(0.2) where
//! the tutorial's uses ReLU, and its D has Dropout(0.5) after each hidden
//! LeakyReLU (model.0, model.3, model.6): without them it collapses.

use super::gan::{generator_spec, joined};
use super::{dense, GanArchitecture};
use crate::engine::kernels::bias_act::Act;
use crate::nn::spec::{EmbeddingSpec, InitScheme, LayerSpec, NetSpec};

/// The conditional discriminator's dropout probability.
pub const CGAN_DROPOUT: f32 = 0.5;

impl GanArchitecture {
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
}
