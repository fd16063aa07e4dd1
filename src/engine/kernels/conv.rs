//! Convolutions as matmuls (shaders/conv.wgsl): im2col and col2im on NHWC
//! images, their launchers, and CPU references: the two movements in plain
//! loops, and Conv2d and ConvTranspose2d computed directly (PyTorch's
//! definitions, no columns) to check the whole against.
//!
//! NHWC, because the matmul over patches gives [N*OH*OW, OC] rows that are
//! already NHWC, and every per-channel kernel (bias and activation,
//! batch norm and its reductions) then works on it as on a dense layer's
//! [rows, features], with rows = N*H*W: BatchNorm2d is BatchNorm1d over
//! those rows. For 1-channel images NHWC and NCHW are the same bytes.
//!
//! Columns are in (kh, kw, c) order, the image's own, and so are the
//! engine's convolution weights (`to_patch_order`; checkpoints keep
//! PyTorch's order): a layer whose kernel covers its whole image at one
//! position then needs no columns at all, its image is its column row.

use super::{grid_1d, kernel, uniform, Dispatch, Slot};
use crate::engine::context::GpuContext;
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};

pub const SOURCE: &str = include_str!("../../../shaders/conv.wgsl");

/// An image [n, h, w, c] and the grid [n, oh, ow] of k x k kernel positions
/// over it (stride, zero padding `pad`). For Conv2d the image is the input;
/// for ConvTranspose2d it is the output (the grid is the input).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub n: usize,
    pub h: usize,
    pub w: usize,
    pub c: usize,
    pub oh: usize,
    pub ow: usize,
    pub k: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvGeometry {
    /// A Conv2d's geometry: image h x w, grid (h + 2 pad - k) / stride + 1.
    pub fn conv(n: usize, h: usize, w: usize, c: usize, k: usize, stride: usize, pad: usize) -> Self {
        let out = |s: usize| (s + 2 * pad).saturating_sub(k) / stride.max(1) + 1;
        ConvGeometry { n, h, w, c, oh: out(h), ow: out(w), k, stride, pad }
    }

    /// A ConvTranspose2d's geometry for an input grid ih x iw: image
    /// (ih - 1) stride - 2 pad + k.
    pub fn transposed(n: usize, ih: usize, iw: usize, c: usize, k: usize, stride: usize, pad: usize) -> Self {
        let out = |s: usize| ((s - 1) * stride + k).saturating_sub(2 * pad);
        ConvGeometry { n, h: out(ih), w: out(iw), c, oh: ih, ow: iw, k, stride, pad }
    }

    /// Rows of the columns: kernel positions, n * oh * ow.
    pub fn positions(&self) -> usize {
        self.n * self.oh * self.ow
    }

    /// Width of a column row: k * k * c.
    pub fn patch(&self) -> usize {
        self.k * self.k * self.c
    }

    /// One kernel position covering the whole image (k = h = w, no
    /// padding): im2col and col2im are then the identity, the image
    /// [n, k, k, c] being the columns [n, k k c] byte for byte.
    pub fn is_whole(&self) -> bool {
        self.oh == 1 && self.ow == 1 && self.pad == 0 && self.h == self.k && self.w == self.k
    }

    /// Elements of the image, n * h * w * c.
    pub fn image_len(&self) -> usize {
        self.n * self.h * self.w * self.c
    }

    /// The same geometry for the first `n` images.
    pub fn with_batch(self, n: usize) -> Self {
        ConvGeometry { n, ..self }
    }

    fn check(&self, what: &str) -> Result<()> {
        let round_trip = ConvGeometry::conv(self.n, self.h, self.w, self.c, self.k, self.stride, self.pad);
        if self.k == 0 || self.stride == 0 || self.pad >= self.k || (round_trip.oh, round_trip.ow) != (self.oh, self.ow)
        {
            return Err(GanError::shape(what, format!("inconsistent convolution geometry {self:?}")));
        }
        Ok(())
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    v: [u32; 12],
}

fn params(g: &ConvGeometry) -> Params {
    let mut v = [0u32; 12];
    for (slot, x) in v.iter_mut().zip([g.n, g.h, g.w, g.c, g.oh, g.ow, g.k, g.stride, g.pad]) {
        *slot = x as u32;
    }
    Params { v }
}

/// The geometry but n as the shaders' pipeline constants (conv.wgsl's and
/// conv_gemm_sg.wgsl's names).
pub(super) fn constants(g: &ConvGeometry) -> [(&'static str, f64); 8] {
    [
        ("C", g.c as f64),
        ("H", g.h as f64),
        ("W", g.w as f64),
        ("OH", g.oh as f64),
        ("OW", g.ow as f64),
        ("K", g.k as f64),
        ("STRIDE", g.stride as f64),
        ("PAD", g.pad as f64),
    ]
}

fn expect_len(t: &GpuTensor, len: usize, what: &str) -> Result<()> {
    if t.numel() != len {
        return Err(GanError::shape(&t.label, format!("{} elements, {what} needs {len}", t.numel())));
    }
    Ok(())
}

/// cols [positions, patch] = the patches of image `x` [n*h*w, c].
pub fn im2col(ctx: &GpuContext, x: &GpuTensor, cols: &GpuTensor, g: &ConvGeometry) -> Result<Dispatch> {
    g.check(&cols.label)?;
    expect_len(x, g.image_len(), "the image")?;
    expect_len(cols, g.positions() * g.patch(), "the columns")?;
    let kern = kernel(ctx, "conv.wgsl", SOURCE, "im2col", &[Slot::Uniform, Slot::Read, Slot::ReadWrite], &constants(g));
    let u = uniform(ctx, &cols.label, &params(g));
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("im2col {}", cols.label),
        vec![u.as_entire_binding(), x.binding(), cols.binding()],
        grid_1d(g.positions() * g.c, 256),
    ))
}

/// x [n*h*w, c] = each element's sum of the column entries that cover it.
pub fn col2im(ctx: &GpuContext, cols: &GpuTensor, x: &GpuTensor, g: &ConvGeometry) -> Result<Dispatch> {
    g.check(&x.label)?;
    expect_len(x, g.image_len(), "the image")?;
    expect_len(cols, g.positions() * g.patch(), "the columns")?;
    let kern = kernel(ctx, "conv.wgsl", SOURCE, "col2im", &[Slot::Uniform, Slot::Read, Slot::ReadWrite], &constants(g));
    let u = uniform(ctx, &x.label, &params(g));
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("col2im {}", x.label),
        vec![u.as_entire_binding(), cols.binding(), x.binding()],
        grid_1d(x.numel(), 256),
    ))
}

/// The image position patch entry (kh, kw, c) of position (n, oh, ow)
/// reads, if inside the image.
fn source(g: &ConvGeometry, n: usize, oh: usize, ow: usize, c: usize, kh: usize, kw: usize) -> Option<usize> {
    let ih = (oh * g.stride + kh).checked_sub(g.pad).filter(|&i| i < g.h)?;
    let iw = (ow * g.stride + kw).checked_sub(g.pad).filter(|&i| i < g.w)?;
    Some(((n * g.h + ih) * g.w + iw) * g.c + c)
}

/// Visits every tap inside the image as (position row, channel, kh, kw,
/// image index), in the order (n, oh, ow, c, kh, kw).
fn for_each_tap(g: &ConvGeometry, mut f: impl FnMut(usize, usize, usize, usize, usize)) {
    for n in 0..g.n {
        for oh in 0..g.oh {
            for ow in 0..g.ow {
                let row = (n * g.oh + oh) * g.ow + ow;
                for c in 0..g.c {
                    for kh in 0..g.k {
                        for kw in 0..g.k {
                            if let Some(i) = source(g, n, oh, ow, c, kh, kw) {
                                f(row, c, kh, kw, i);
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Column index of patch entry (kh, kw, c).
fn patch_col(g: &ConvGeometry, c: usize, kh: usize, kw: usize) -> usize {
    (kh * g.k + kw) * g.c + c
}

pub fn cpu_im2col(x: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let width = g.patch();
    let mut cols = vec![0.0; g.positions() * width];
    for_each_tap(g, |row, c, kh, kw, i| cols[row * width + patch_col(g, c, kh, kw)] = x[i]);
    cols
}

/// col2im summed per image element in the shader's order (kh, then kw,
/// ascending), so that the GPU's result equals it exactly.
pub fn cpu_col2im(cols: &[f32], g: &ConvGeometry) -> Vec<f32> {
    let width = g.patch();
    let mut x = vec![0.0; g.image_len()];
    for n in 0..g.n {
        for ih in 0..g.h {
            for iw in 0..g.w {
                for c in 0..g.c {
                    let mut sum = 0.0f32;
                    for kh in 0..g.k {
                        let Some(th) = (ih + g.pad).checked_sub(kh) else { continue };
                        if th % g.stride != 0 || th / g.stride >= g.oh {
                            continue;
                        }
                        for kw in 0..g.k {
                            let Some(tw) = (iw + g.pad).checked_sub(kw) else { continue };
                            if tw % g.stride != 0 || tw / g.stride >= g.ow {
                                continue;
                            }
                            let row = (n * g.oh + th / g.stride) * g.ow + tw / g.stride;
                            sum += cols[row * width + patch_col(g, c, kh, kw)];
                        }
                    }
                    x[((n * g.h + ih) * g.w + iw) * g.c + c] = sum;
                }
            }
        }
    }
    x
}

/// PyTorch's Conv2d (no bias) computed directly, in f64: x NHWC [n, h, w,
/// c], weight in PyTorch's order [out, c, k, k]; returns [n, oh, ow, out].
pub fn cpu_conv2d(x: &[f32], weight: &[f32], out: usize, g: &ConvGeometry) -> Vec<f64> {
    let width = g.patch();
    let mut y = vec![0f64; g.positions() * out];
    for_each_tap(g, |row, c, kh, kw, i| {
        for o in 0..out {
            y[row * out + o] += weight[o * width + (c * g.k + kh) * g.k + kw] as f64 * x[i] as f64;
        }
    });
    y
}

/// PyTorch's ConvTranspose2d (no bias) computed directly, in f64: x NHWC
/// [n, oh, ow, inp] (the grid side of `g`), weight in PyTorch's order
/// [inp, g.c, k, k]; returns the image [n, h, w, g.c].
pub fn cpu_conv_transpose2d(x: &[f32], weight: &[f32], inp: usize, g: &ConvGeometry) -> Vec<f64> {
    let width = g.patch();
    let mut y = vec![0f64; g.image_len()];
    for_each_tap(g, |row, c, kh, kw, i| {
        for ic in 0..inp {
            y[i] += x[row * inp + ic] as f64 * weight[ic * width + (c * g.k + kh) * g.k + kw] as f64;
        }
    });
    y
}

/// A weight from PyTorch's order [lead, c, k, k] to the engine's
/// [lead, k, k, c] (the columns' order). `lead` is Conv2d's output
/// channels or ConvTranspose2d's input channels; `c` the image's channels.
pub fn to_patch_order(weight: &[f32], lead: usize, c: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0; weight.len()];
    for (pytorch, engine) in patch_order_pairs(lead, c, k) {
        out[engine] = weight[pytorch];
    }
    out
}

/// `to_patch_order`'s inverse: [lead, k, k, c] back to [lead, c, k, k].
pub fn to_pytorch_order(weight: &[f32], lead: usize, c: usize, k: usize) -> Vec<f32> {
    let mut out = vec![0.0; weight.len()];
    for (pytorch, engine) in patch_order_pairs(lead, c, k) {
        out[pytorch] = weight[engine];
    }
    out
}

/// (index in PyTorch's order, index in the engine's) for every element.
fn patch_order_pairs(lead: usize, c: usize, k: usize) -> impl Iterator<Item = (usize, usize)> {
    (0..lead).flat_map(move |l| {
        (0..c).flat_map(move |ci| (0..k * k).map(move |t| (((l * c + ci) * k * k) + t, (l * k * k + t) * c + ci)))
    })
}
