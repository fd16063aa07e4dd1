//! DCGAN (`WhichModel::Dcgan`, PyTorch's examples/dcgan for 28x28, width
//! W): G main.0 ConvTranspose2d(z, 2W, 7, 1, 0) main.1 BatchNorm2d ReLU,
//! main.3 ConvTranspose2d(2W, W, 4, 2, 1) main.4 BN ReLU, main.6
//! ConvTranspose2d(W, 1, 4, 2, 1) Tanh; D main.0 Conv2d(1, W, 4, 2, 1)
//! LeakyReLU(0.2), main.2 Conv2d(W, 2W, 4, 2, 1) main.3 BN LeakyReLU(0.2),
//! main.5 Conv2d(2W, 1, 7, 1, 0) Sigmoid; no biases; weights N(0, 0.02).
//! Images are NHWC (kernels/conv.rs says why).

use super::GanArchitecture;
use crate::engine::kernels::bias_act::Act;
use crate::nn::spec::{InitScheme, LayerKind, LayerSpec, NetSpec};

/// A DCGAN layer `main.{i}` without bias, its batch norm (if any) `main.{i + 1}`.
fn conv_layer(i: usize, kind: LayerKind, inp: usize, out: usize, bn: bool, act: Act) -> LayerSpec {
    let bn = bn.then(|| format!("main.{}", i + 1));
    LayerSpec { name: format!("main.{i}"), kind, inp, out, bias: false, bn, act, dropout: None }
}

impl GanArchitecture {
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
}
