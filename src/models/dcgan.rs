//! DCGAN (`WhichModel::Dcgan`), PyTorch's examples/dcgan, width W = ngf =
//! ndf, nc image channels; no biases; weights N(0, 0.02).
//!
//! 28x28 (MNIST's stack): G main.0 ConvTranspose2d(z, 2W, 7, 1, 0) main.1
//! BatchNorm2d ReLU, main.3 ConvTranspose2d(2W, W, 4, 2, 1) main.4 BN
//! ReLU, main.6 ConvTranspose2d(W, nc, 4, 2, 1) Tanh; D main.0 Conv2d(nc,
//! W, 4, 2, 1) LeakyReLU(0.2), main.2 Conv2d(W, 2W, 4, 2, 1) main.3 BN
//! LeakyReLU(0.2), main.5 Conv2d(2W, 1, 7, 1, 0) Sigmoid.
//!
//! 64x64 (examples/dcgan exactly): G ConvTranspose2d(z, 8W, 4, 1, 0) BN
//! ReLU, then ConvTranspose2d(4, 2, 1) to 4W, 2W and W, each with BN ReLU,
//! then ConvTranspose2d(W, nc, 4, 2, 1) Tanh (main.0, 3, 6, 9, 12); D
//! Conv2d(nc, W, 4, 2, 1) LeakyReLU, then Conv2d(4, 2, 1) to 2W, 4W and
//! 8W, each with BN LeakyReLU, then Conv2d(8W, 1, 4, 1, 0) Sigmoid
//! (main.0, 2, 5, 8, 11). 32x32: the same pattern one layer shorter (G from
//! 4W, D up to 4W).
//! Images are NHWC (kernels/conv.rs says why).

use super::GanArchitecture;
use crate::engine::kernels::bias_act::Act;
use crate::nn::spec::{ImageShape, InitScheme, LayerKind, LayerSpec, NetSpec};

/// The image sides dcgan builds a stack for.
pub const DCGAN_SIDES: [usize; 3] = [28, 32, 64];

/// A DCGAN layer `main.{i}` without bias, its batch norm (if any) `main.{i + 1}`.
fn conv_layer(i: usize, kind: LayerKind, inp: usize, out: usize, bn: bool, act: Act) -> LayerSpec {
    let bn = bn.then(|| format!("main.{}", i + 1));
    LayerSpec { name: format!("main.{i}"), kind, inp, out, bias: false, bn, act, dropout: None }
}

fn up(h: usize, k: usize, stride: usize, pad: usize) -> LayerKind {
    LayerKind::ConvTranspose { h, w: h, k, stride, pad }
}

fn down(h: usize, k: usize, stride: usize, pad: usize) -> LayerKind {
    LayerKind::Conv { h, w: h, k, stride, pad }
}

impl GanArchitecture {
    /// DCGAN (see the module header) for square images of a side in
    /// `DCGAN_SIDES`, base width `w` channels.
    pub fn dcgan(latent: usize, shape: ImageShape, w: usize) -> Result<Self, String> {
        let ImageShape { height, width, channels } = shape;
        if height != width || !DCGAN_SIDES.contains(&height) || w == 0 {
            return Err(format!(
                "dcgan needs square images of side 28 (MNIST's), 32 or 64 (--image-size for an image folder), and a width of at least 1; \
                 these are {height}x{width}, width {w}"
            ));
        }
        Ok(match height {
            28 => Self::dcgan_28(latent, channels, w),
            side => Self::dcgan_pyramid(latent, side, channels, w),
        })
    }

    /// MNIST's stack: 1 -> 7 -> 14 -> 28 and back.
    fn dcgan_28(latent: usize, nc: usize, w: usize) -> Self {
        let generator = vec![
            conv_layer(0, up(1, 7, 1, 0), latent, 2 * w, true, Act::Relu),
            conv_layer(3, up(7, 4, 2, 1), 2 * w, w, true, Act::Relu),
            conv_layer(6, up(14, 4, 2, 1), w, nc, false, Act::Tanh),
        ];
        let discriminator = vec![
            conv_layer(0, down(28, 4, 2, 1), nc, w, false, Act::LeakyRelu),
            conv_layer(2, down(14, 4, 2, 1), w, 2 * w, true, Act::LeakyRelu),
            conv_layer(5, down(7, 7, 1, 0), 2 * w, 1, false, Act::Sigmoid),
        ];
        Self::dcgan_pair(generator, discriminator)
    }

    /// examples/dcgan's pyramid for side 32 (3 doublings) or 64 (4): G 1 ->
    /// 4 -> 8 -> ... -> side, channels halving from 2^(n-1) W to W, then nc;
    /// D the mirror.
    fn dcgan_pyramid(latent: usize, side: usize, nc: usize, w: usize) -> Self {
        let doublings = (side / 4).trailing_zeros() as usize;
        let widths: Vec<usize> = (0..doublings).rev().map(|i| w << i).collect();
        let mut generator = vec![conv_layer(0, up(1, 4, 1, 0), latent, widths[0], true, Act::Relu)];
        for (i, pair) in widths.windows(2).enumerate() {
            generator.push(conv_layer(3 * (i + 1), up(4 << i, 4, 2, 1), pair[0], pair[1], true, Act::Relu));
        }
        generator.push(conv_layer(3 * doublings, up(side / 2, 4, 2, 1), w, nc, false, Act::Tanh));
        let mut discriminator = vec![conv_layer(0, down(side, 4, 2, 1), nc, w, false, Act::LeakyRelu)];
        for (i, pair) in widths.iter().rev().collect::<Vec<_>>().windows(2).enumerate() {
            discriminator.push(conv_layer(
                2 + 3 * i,
                down(side >> (i + 1), 4, 2, 1),
                *pair[0],
                *pair[1],
                true,
                Act::LeakyRelu,
            ));
        }
        discriminator.push(conv_layer(2 + 3 * (doublings - 1), down(4, 4, 1, 0), widths[0], 1, false, Act::Sigmoid));
        Self::dcgan_pair(generator, discriminator)
    }

    fn dcgan_pair(generator: Vec<LayerSpec>, discriminator: Vec<LayerSpec>) -> Self {
        GanArchitecture {
            generator: NetSpec { name: "generator", embedding: None, layers: generator, init: InitScheme::Dcgan },
            discriminator: NetSpec {
                name: "discriminator",
                embedding: None,
                layers: discriminator,
                init: InitScheme::Dcgan,
            },
        }
    }
}
