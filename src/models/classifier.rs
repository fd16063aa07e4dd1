//! The classifier `eval` scores samples with: its network (the training
//! and the scores are `eval::classifier`'s).

use super::dense;
use crate::engine::kernels::bias_act::Act;
use crate::nn::spec::{InitScheme, NetSpec};

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
