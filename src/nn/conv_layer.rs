//! A convolution layer's dispatches (`network.rs` builds the rest): which
//! way each product runs and which column buffers it reads.
//!
//! Three ways, per layer and adapter:
//! - the kernel covers the whole image at one position (DCGAN's 7x7 layers
//!   on a 1x1 grid): the image is the column row, a plain matmul, no columns;
//! - implicit GEMM (`kernels::conv_gemm`, with the subgroup matmul, channels
//!   in multiples of 4): Conv2d's forward and weight gradient, and
//!   ConvTranspose2d's input and weight gradients, read their patches from
//!   the image; only the col2im side (Conv2d's input gradient,
//!   ConvTranspose2d's forward) keeps columns;
//! - explicit columns (`kernels::conv`): im2col / col2im around the matmul.

use crate::engine::context::GpuContext;
use crate::engine::kernels::bias_act::{self, Act};
use crate::engine::kernels::conv::{self, ConvGeometry};
use crate::engine::kernels::conv_gemm;
use crate::engine::kernels::matmul::{Epilogue, Form, Matmul, Variant};
use crate::engine::kernels::Dispatch;
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};
use crate::nn::spec::LayerKind;
use crate::nn::spec::LayerSpec;

/// Whether a Conv2d forward (or a ConvTranspose2d input gradient) with
/// matmul `variant` reads its patches from the image (conv_gemm) rather
/// than from columns: with the subgroup matmul, on channels in multiples
/// of 4 (on lavapipe it runs faster than the matmul over written columns,
/// docs/performance.md).
pub fn uses_implicit_gemm(ctx: &GpuContext, variant: Variant, g: &ConvGeometry) -> bool {
    variant == Variant::Subgroup && !g.is_whole() && conv_gemm::applies(ctx, g)
}

/// Whether layer `l`'s weight gradient is an implicit GEMM too (for a
/// ConvTranspose2d, then its input gradient as well: no columns at all on
/// its backward).
pub fn uses_implicit_weight_grad(ctx: &GpuContext, variant: Variant, l: &LayerSpec, g: &ConvGeometry) -> bool {
    let lead = match l.kind {
        LayerKind::ConvTranspose { .. } => l.inp,
        _ => l.out,
    };
    uses_implicit_gemm(ctx, variant, g) && conv_gemm::applies_to_weight_grad(ctx, g, lead)
}

/// Which of layer `l`'s column buffers (at `rows` samples) its passes read:
/// (the activations', the gradients'), for a backward computing weight
/// gradients or not.
pub fn columns_read(
    ctx: &GpuContext,
    variant: Variant,
    l: &LayerSpec,
    rows: usize,
    weight_grads: bool,
) -> (bool, bool) {
    let Some(g) = l.geometry(rows).filter(|g| !g.is_whole()) else { return (false, false) };
    let implicit_dw = uses_implicit_weight_grad(ctx, variant, l, &g);
    match l.kind {
        LayerKind::Conv { .. } => (!uses_implicit_gemm(ctx, variant, &g) || (weight_grads && !implicit_dw), true),
        _ => (true, !implicit_dw),
    }
}

fn no_cols(l: &LayerSpec) -> GanError {
    GanError::shape(&l.name, "a convolution without its column buffer")
}

/// The tensors of one convolution layer's pass.
pub struct ConvPass<'a> {
    pub layer: &'a LayerSpec,
    pub geometry: ConvGeometry,
    /// Samples in the pass.
    pub rows: usize,
    /// The weight as its matmul reads it ([out, k k c] or [inp, k k out]).
    pub weight: &'a GpuTensor,
    /// The activations' columns (Conv2d: im2col(x); ConvTranspose2d: x W).
    pub cols: Option<&'a GpuTensor>,
    pub variant: Variant,
}

impl ConvPass<'_> {
    /// Forward: input x (NHWC rows) into `target` ([rows positions, out]),
    /// with the bias and the activation (`act`) applied.
    pub fn forward(
        &self,
        ctx: &GpuContext,
        x: &GpuTensor,
        target: &GpuTensor,
        bias: Option<&GpuTensor>,
        act: Act,
    ) -> Result<Vec<Dispatch>> {
        let (l, g, w, variant) = (self.layer, &self.geometry, self.weight, self.variant);
        let epilogue = Epilogue { bias, act };
        let mut out = Vec::new();
        let conv2d = matches!(l.kind, LayerKind::Conv { .. });
        if g.is_whole() {
            // The image is the column row: Conv2d is y [n, out] = x [n,
            // k k c] W^T; ConvTranspose2d is y [n, k k out] = x [n, inp] W.
            let x2 = x.reshaped(&[self.rows, l.inp * l.in_positions()])?;
            let y2 = target.reshaped(&[self.rows, l.out * l.out_positions()])?;
            if conv2d {
                out.push(Matmul::with_epilogue(ctx, Form::NT, variant, &x2, w, &y2, epilogue)?.dispatch);
            } else {
                // The epilogue (A*B^T only) is per column: here a column is a (kh, kw, out).
                out.push(Matmul::new(ctx, Form::NN, variant, &x2, w, &y2)?.dispatch);
                if bias.is_some() || act != Act::Identity {
                    out.push(bias_act::forward(ctx, act, target, bias)?);
                }
            }
        } else if conv2d {
            // Columns are written where the buffer exists (the explicit
            // weight gradient reads them); the product reads the image
            // where the implicit GEMM applies.
            if let Some(cols) = self.cols {
                out.push(conv::im2col(ctx, x, cols, g)?);
            }
            if uses_implicit_gemm(ctx, variant, g) {
                out.push(conv_gemm::conv2d_forward(ctx, x, w, target, g, epilogue)?);
            } else {
                let cols = self.cols.ok_or_else(|| no_cols(l))?;
                out.push(Matmul::with_epilogue(ctx, Form::NT, variant, cols, w, target, epilogue)?.dispatch);
            }
        } else {
            let cols = self.cols.ok_or_else(|| no_cols(l))?;
            let x2 = x.reshaped(&[g.positions(), l.inp])?;
            out.push(Matmul::new(ctx, Form::NN, variant, &x2, w, cols)?.dispatch);
            out.push(conv::col2im(ctx, cols, target, g)?);
            if bias.is_some() || act != Act::Identity {
                out.push(bias_act::forward(ctx, act, target, bias)?);
            }
        }
        Ok(out)
    }

    /// Backward from dy (the gradient before the layer's bias and
    /// activation, [rows positions, out]): the weight gradient into `dw`
    /// when given, the input's into `dx` when given; `dcols` is the
    /// gradients' column buffer.
    pub fn backward(
        &self,
        ctx: &GpuContext,
        input: &GpuTensor,
        dy: &GpuTensor,
        dw: Option<&GpuTensor>,
        dx: Option<&GpuTensor>,
        dcols: Option<&GpuTensor>,
    ) -> Result<Vec<Dispatch>> {
        let (l, g, w, variant) = (self.layer, &self.geometry, self.weight, self.variant);
        let mut out = Vec::new();
        let conv2d = matches!(l.kind, LayerKind::Conv { .. });
        if g.is_whole() {
            // A dense layer on [n, k k c] rows. Conv2d: dW = dy^T x, dx =
            // dy W; ConvTranspose2d: dW = x^T dy, dx = dy W^T.
            let x2 = input.reshaped(&[self.rows, l.inp * l.in_positions()])?;
            let dy2 = dy.reshaped(&[self.rows, l.out * l.out_positions()])?;
            if let Some(dw) = dw {
                let (a, b) = if conv2d { (&dy2, &x2) } else { (&x2, &dy2) };
                out.push(Matmul::new(ctx, Form::TN, variant, a, b, dw)?.dispatch);
            }
            if let Some(dx) = dx {
                let dx2 = dx.reshaped(&[self.rows, l.inp * l.in_positions()])?;
                let form = if conv2d { Form::NN } else { Form::NT };
                out.push(Matmul::new(ctx, form, variant, &dy2, w, &dx2)?.dispatch);
            }
            return Ok(out);
        }
        let implicit_dw = uses_implicit_weight_grad(ctx, variant, l, g);
        if conv2d {
            // y = cols W^T: dW = dy^T cols; dcols = dy W; dx = col2im(dcols).
            if let Some(dw) = dw {
                if implicit_dw {
                    out.push(conv_gemm::weight_grad(ctx, dy, input, dw, g)?);
                } else {
                    let cols = self.cols.ok_or_else(|| no_cols(l))?;
                    out.push(Matmul::new(ctx, Form::TN, variant, dy, cols, dw)?.dispatch);
                }
            }
            if let Some(dx) = dx {
                let dcols = dcols.ok_or_else(|| no_cols(l))?;
                out.push(Matmul::new(ctx, Form::NN, variant, dy, w, dcols)?.dispatch);
                out.push(conv::col2im(ctx, dcols, dx, g)?);
            }
        } else {
            // y = col2im(x W): dcols = im2col(dy); dW = x^T dcols; dx = dcols
            // W^T. Implicit: dW = x^T im2col(dy) and dx = im2col(dy) W^T
            // read dy's patches in place.
            let x2 = input.reshaped(&[g.positions(), l.inp])?;
            let dx2 = dx.map(|d| d.reshaped(&[g.positions(), l.inp])).transpose()?;
            if implicit_dw {
                if let Some(dw) = dw {
                    out.push(conv_gemm::weight_grad(ctx, &x2, dy, dw, g)?);
                }
                if let Some(dx2) = &dx2 {
                    out.push(conv_gemm::conv2d_forward(ctx, dy, w, dx2, g, Epilogue::NONE)?);
                }
            } else {
                let dcols = dcols.ok_or_else(|| no_cols(l))?;
                out.push(conv::im2col(ctx, dy, dcols, g)?);
                if let Some(dw) = dw {
                    out.push(Matmul::new(ctx, Form::TN, variant, &x2, dcols, dw)?.dispatch);
                }
                if let Some(dx2) = &dx2 {
                    out.push(Matmul::new(ctx, Form::NT, variant, dcols, w, dx2)?.dispatch);
                }
            }
        }
        Ok(out)
    }
}
