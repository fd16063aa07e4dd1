//! Conv2d's forward and weight gradient as implicit GEMMs
//! (shaders/conv_gemm_sg.wgsl): the subgroup matmul reading its patches
//! straight from the NHWC image, no columns written. Needs SUBGROUP (a
//! module of its own) and channels in multiples of 4. The reference is
//! conv.rs's explicit path: im2col then the matmul (and, for the whole,
//! `conv::cpu_conv2d`).

use super::bias_act::Act;
use super::conv::{self, ConvGeometry};
use super::matmul::{Epilogue, Form, Params, Variant};
use super::{groups_for, kernel, uniform, Dispatch, Slot};
use crate::engine::context::GpuContext;
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};

pub const FILE: &str = include_str!("../../../shaders/conv_gemm_sg.wgsl");
/// activation.wgsl, matmul_common.wgsl and matmul_sg.wgsl (whose helpers
/// and tile sizes it uses), then conv_gemm_sg.wgsl.
pub const SOURCE: &str = concat!(
    include_str!("../../../shaders/activation.wgsl"),
    include_str!("../../../shaders/matmul_common.wgsl"),
    include_str!("../../../shaders/matmul_sg.wgsl"),
    include_str!("../../../shaders/conv_gemm_sg.wgsl")
);

/// Whether this adapter and geometry can take the implicit GEMM: the
/// subgroup matmul is usable and a k-step of 4 stays inside one tap.
pub fn applies(ctx: &GpuContext, g: &ConvGeometry) -> bool {
    Variant::subgroups_usable(ctx) && g.c.is_multiple_of(4)
}

/// Whether the weight gradient's implicit GEMM applies to `g` with `lead`
/// rows of dW (Conv2d's output channels, ConvTranspose2d's input ones):
/// `applies`, and the TN form's vec4 loads along lead and positions.
pub fn applies_to_weight_grad(ctx: &GpuContext, g: &ConvGeometry, lead: usize) -> bool {
    applies(ctx, g) && lead.is_multiple_of(4) && g.positions().is_multiple_of(4)
}

/// dW [lead, k*k*c] = dy^T im2col(x): dy [positions, lead], x the image
/// [n*h*w, c]. Conv2d's weight gradient (dy its output's gradient), and
/// ConvTranspose2d's (x^T im2col(dy): pass its input as `dy` and its
/// output's gradient as the image).
pub fn weight_grad(
    ctx: &GpuContext,
    dy: &GpuTensor,
    x: &GpuTensor,
    dw: &GpuTensor,
    g: &ConvGeometry,
) -> Result<Dispatch> {
    let [m, lead] = dy.dims2()?;
    if !applies_to_weight_grad(ctx, g, lead) {
        return Err(GanError::shape(
            &dw.label,
            format!(
                "the implicit-GEMM weight gradient needs subgroups of 8 or more and channels ({}), rows ({lead}) and positions ({}) in multiples of 4",
                g.c,
                g.positions()
            ),
        ));
    }
    let k = g.patch();
    if x.numel() != g.image_len() || m != g.positions() || dw.dims2()? != [lead, k] {
        return Err(GanError::shape(
            &dw.label,
            format!(
                "implicit weight gradient: dy '{}' {:?}, image '{}' {:?}, dW {:?} do not fit {g:?}",
                dy.label, dy.shape, x.label, x.shape, dw.shape
            ),
        ));
    }
    let slots = [Slot::Uniform, Slot::Unused, Slot::Unused, Slot::ReadWrite, Slot::Read, Slot::Read, Slot::Unused];
    let kern = kernel(ctx, "conv_gemm_sg.wgsl", SOURCE, "conv_weight_grad_sg", &slots, &conv::constants(g));
    let params = uniform(
        ctx,
        &dw.label,
        &Params { m: lead as u32, n: k as u32, k: m as u32, act: 0, has_bias: 0, form: Form::TN.code(), _pad: [0; 2] },
    );
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("implicit conv dW {lead}x{k}x{m} -> {}", dw.label),
        vec![params.as_entire_binding(), dw.binding(), dy.binding(), x.binding()],
        [groups_for(k, 32), groups_for(lead, 32), 1],
    ))
}

/// y [positions, out] = act(im2col(x) W^T + bias) with x the image
/// [n*h*w, c] and W [out, k*k*c] (the engine's weight order).
pub fn conv2d_forward(
    ctx: &GpuContext,
    x: &GpuTensor,
    weight: &GpuTensor,
    y: &GpuTensor,
    g: &ConvGeometry,
    epilogue: Epilogue,
) -> Result<Dispatch> {
    if !applies(ctx, g) {
        return Err(GanError::shape(
            &y.label,
            format!(
                "the implicit-GEMM convolution needs subgroups of 8 or more and channels in multiples of 4 ({} here)",
                g.c
            ),
        ));
    }
    let (m, k) = (g.positions(), g.patch());
    let [out, wk] = weight.dims2()?;
    if x.numel() != g.image_len() || wk != k || y.dims2()? != [m, out] {
        return Err(GanError::shape(
            &y.label,
            format!(
                "implicit conv: image '{}' {:?}, weight '{}' {:?}, output {:?} do not fit {g:?}",
                x.label, x.shape, weight.label, weight.shape, y.shape
            ),
        ));
    }
    if let Some(b) = epilogue.bias {
        if b.numel() != out {
            return Err(GanError::shape(&b.label, format!("bias has {} elements for {out} channels", b.numel())));
        }
    }
    let slots = [Slot::Uniform, Slot::Unused, Slot::Unused, Slot::ReadWrite, Slot::Read, Slot::Read, Slot::Read];
    let kern = kernel(ctx, "conv_gemm_sg.wgsl", SOURCE, "conv_gemm_sg", &slots, &conv::constants(g));
    let params = uniform(
        ctx,
        &y.label,
        &Params {
            m: m as u32,
            n: out as u32,
            k: k as u32,
            act: epilogue.act.code(),
            has_bias: epilogue.bias.is_some() as u32,
            form: Form::NT.code(),
            _pad: [0; 2],
        },
    );
    let bias = epilogue.bias.unwrap_or(x);
    let act = if epilogue.act == Act::Identity { String::new() } else { format!(" +{}", epilogue.act.name()) };
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("implicit conv {m}x{out}x{k}{act} -> {}", y.label),
        vec![params.as_entire_binding(), y.binding(), x.binding(), weight.binding(), bias.binding()],
        [groups_for(out, 32), groups_for(m, 32), 1],
    ))
}
