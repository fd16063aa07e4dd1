//! The tutorial's GAN (`WhichModel::Gan`): its two networks as data, dense layers (with optional
//! batch norm) and their activations, named as PyTorch's nn.Sequential
//! `model` names them, so checkpoints load with `load_state_dict`.
//!
//! Generator (latent -> image): model.0 Linear(latent,128) ReLU, model.2
//! Linear(128,256) model.3 BatchNorm1d ReLU, model.5 Linear(256,512) model.6
//! BN ReLU, model.8 Linear(512,1024) model.9 BN ReLU, model.11
//! Linear(1024,dim) Tanh. Discriminator (image -> probability): model.0
//! Linear(dim,512) LeakyReLU(0.2), model.2 Linear(512,256) LeakyReLU(0.2),
//! model.4 Linear(256,1) Sigmoid.

use super::{dense, GanArchitecture};
use crate::engine::kernels::bias_act::Act;
use crate::nn::spec::{EmbeddingSpec, InitScheme, NetSpec};

impl GanArchitecture {
    /// The tutorial's pair (see the module header) for latent codes of
    /// `latent` and images of `image_dim` pixels.
    pub fn tutorial(latent: usize, image_dim: usize) -> Self {
        GanArchitecture {
            generator: generator_spec(latent, image_dim, None),
            discriminator: discriminator_spec(image_dim, None),
        }
    }
}

/// Width of the input joined with the embedding's columns.
pub(super) fn joined(input: usize, embedding: &Option<EmbeddingSpec>) -> usize {
    input + embedding.as_ref().map_or(0, |e| e.dim)
}

pub(super) fn generator_spec(latent: usize, image_dim: usize, embedding: Option<EmbeddingSpec>) -> NetSpec {
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
