//! Softmax cross-entropy with integer labels (shaders/softmax_ce.wgsl), for
//! the classifier that scores samples: launcher and CPU reference.

use super::{kernel, uniform, Dispatch, Slot};
use crate::engine::context::GpuContext;
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};

pub const SOURCE: &str = include_str!("../../../shaders/softmax_ce.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    classes: u32,
    perm_len: u32,
    _pad: u32,
}

/// Loss and gradient for logits z [rows, classes]; row r's label is
/// labels[perm[counters[1] * rows + r]] (`labels`: u8 packed four to a u32,
/// see `gather::pack_pixels`). metrics[0..2] = (mean loss, correct rows).
pub fn softmax_ce(
    ctx: &GpuContext,
    z: &GpuTensor,
    dz: &GpuTensor,
    labels: &GpuTensor,
    perm: &GpuTensor,
    counters: &GpuTensor,
    metrics: &GpuTensor,
) -> Result<Dispatch> {
    let [rows, classes] = z.dims2()?;
    dz.expect_shape(&[rows, classes])?;
    if metrics.numel() < 2 || perm.numel() == 0 || classes == 0 {
        return Err(GanError::shape(
            &z.label,
            format!(
                "softmax_ce: metrics '{}' has {} elements (2 needed), perm '{}' {}, {classes} classes",
                metrics.label,
                metrics.numel(),
                perm.label,
                perm.numel()
            ),
        ));
    }
    use Slot::*;
    let kern = kernel(
        ctx,
        "softmax_ce.wgsl",
        SOURCE,
        "softmax_ce",
        &[Uniform, Read, ReadWrite, Read, Read, Read, ReadWrite],
        &[],
    );
    let p = uniform(
        ctx,
        &z.label,
        &Params { rows: rows as u32, classes: classes as u32, perm_len: perm.numel() as u32, _pad: 0 },
    );
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("softmax_ce {}", z.label),
        vec![
            p.as_entire_binding(),
            z.binding(),
            dz.binding(),
            labels.binding(),
            perm.binding(),
            counters.binding(),
            metrics.binding(),
        ],
        [1, 1, 1],
    ))
}

/// CPU reference: (mean loss, dz, rows whose first arg-max is the label),
/// in f64, as PyTorch's CrossEntropyLoss.
pub fn cpu_softmax_ce(z: &[f32], labels: &[u8], rows: usize, classes: usize) -> (f32, Vec<f32>, usize) {
    let mut loss = 0f64;
    let mut correct = 0;
    let mut dz = vec![0f32; rows * classes];
    for r in 0..rows {
        let row = &z[r * classes..(r + 1) * classes];
        let y = labels[r] as usize;
        let (mut arg, mut m) = (0, row[0]);
        for (c, &v) in row.iter().enumerate().skip(1) {
            if v > m {
                (arg, m) = (c, v);
            }
        }
        correct += (arg == y) as usize;
        let s: f64 = row.iter().map(|&v| ((v - m) as f64).exp()).sum();
        loss += s.ln() - (row[y.min(classes - 1)] - m) as f64;
        for c in 0..classes {
            let prob = ((row[c] - m) as f64).exp() / s;
            dz[r * classes + c] = ((prob - (c == y) as u8 as f64) / rows as f64) as f32;
        }
    }
    ((loss / rows as f64) as f32, dz, correct)
}
