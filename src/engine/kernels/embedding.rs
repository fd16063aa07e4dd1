//! A label embedding joined to a network's input (shaders/embedding.wgsl):
//! launchers and CPU references. The joined row is [x | table[label] | 0..],
//! the embedding's E columns after the input's X, zero-padded to a width W
//! that is a multiple of 4 (`padded_width`) so that the next layer's
//! matmuls stay on their aligned paths; that layer's weight is used through
//! a padded copy (`pad_weight`) and its gradient cropped back (`crop_grad`).

use super::{grid_1d, kernel, uniform, Dispatch, Slot};
use crate::engine::context::GpuContext;
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};

pub const SOURCE: &str = include_str!("../../../shaders/embedding.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    x_cols: u32,
    emb_cols: u32,
    classes: u32,
    width: u32,
    _pad: [u32; 3],
}

/// The joined rows' width for `cols` = X + E columns: the next multiple of 4.
pub fn padded_width(cols: usize) -> usize {
    cols.div_ceil(4) * 4
}

fn params(rows: usize, x_cols: usize, emb_cols: usize, classes: usize, width: usize) -> Params {
    Params {
        rows: rows as u32,
        x_cols: x_cols as u32,
        emb_cols: emb_cols as u32,
        classes: classes as u32,
        width: width as u32,
        _pad: [0; 3],
    }
}

/// Checks a joined buffer: [rows, W] with W >= X + E, W a multiple of 4.
fn check_joined(joined: &GpuTensor, rows: usize, cols: usize) -> Result<usize> {
    let [r, width] = joined.dims2()?;
    if r != rows || width < cols || width % 4 != 0 {
        return Err(GanError::shape(
            &joined.label,
            format!("[{r}, {width}] is not [{rows}, W] with W >= {cols} a multiple of 4"),
        ));
    }
    Ok(width)
}

/// joined = [x | table[labels] | 0] (the forward).
pub fn join(
    ctx: &GpuContext,
    x: &GpuTensor,
    table: &GpuTensor,
    labels: &GpuTensor,
    joined: &GpuTensor,
) -> Result<Dispatch> {
    use Slot::*;
    let [rows, x_cols] = x.dims2()?;
    let [classes, emb_cols] = table.dims2()?;
    let width = check_joined(joined, rows, x_cols + emb_cols)?;
    if labels.numel() != rows {
        return Err(GanError::shape(&labels.label, format!("{} labels for {rows} rows", labels.numel())));
    }
    let kern = kernel(ctx, "embedding.wgsl", SOURCE, "join", &[Uniform, Read, Read, Read, ReadWrite], &[]);
    let u = uniform(ctx, &joined.label, &params(rows, x_cols, emb_cols, classes, width));
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("embedding join {}", joined.label),
        vec![u.as_entire_binding(), x.binding(), table.binding(), labels.binding(), joined.binding()],
        grid_1d(joined.numel(), 256),
    ))
}

/// d_x = the first X columns of d_joined (the input's gradient).
pub fn split(ctx: &GpuContext, d_joined: &GpuTensor, d_x: &GpuTensor, table: &GpuTensor) -> Result<Dispatch> {
    use Slot::*;
    let [rows, x_cols] = d_x.dims2()?;
    let [classes, emb_cols] = table.dims2()?;
    let width = check_joined(d_joined, rows, x_cols + emb_cols)?;
    let kern = kernel(
        ctx,
        "embedding.wgsl",
        SOURCE,
        "split",
        &[Uniform, Unused, Unused, Unused, Unused, Read, ReadWrite],
        &[],
    );
    let u = uniform(ctx, &d_x.label, &params(rows, x_cols, emb_cols, classes, width));
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("embedding split {}", d_x.label),
        vec![u.as_entire_binding(), d_joined.binding(), d_x.binding()],
        grid_1d(d_x.numel(), 256),
    ))
}

/// d_table[k] = sum of the embedding columns of d_joined over the rows
/// labelled k (the table's gradient, overwritten). `x_cols` is X.
pub fn table_grad(
    ctx: &GpuContext,
    d_joined: &GpuTensor,
    labels: &GpuTensor,
    d_table: &GpuTensor,
    x_cols: usize,
) -> Result<Dispatch> {
    use Slot::*;
    let [classes, emb_cols] = d_table.dims2()?;
    let rows = labels.numel();
    let width = check_joined(d_joined, rows, x_cols + emb_cols)?;
    let kern = kernel(
        ctx,
        "embedding.wgsl",
        SOURCE,
        "table_grad",
        &[Uniform, Unused, Unused, Read, Unused, Read, Unused, ReadWrite],
        &[],
    );
    let u = uniform(ctx, &d_table.label, &params(rows, x_cols, emb_cols, classes, width));
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("embedding gradient {}", d_table.label),
        vec![u.as_entire_binding(), labels.binding(), d_joined.binding(), d_table.binding()],
        grid_1d(classes * emb_cols, 256),
    ))
}

/// `padded` [out, W] = `weight` [out, cols] with zero columns after; or,
/// with `crop`, `weight`'s gradient [out, cols] = the first cols columns
/// of `padded`'s.
fn pad_or_crop(ctx: &GpuContext, weight: &GpuTensor, padded: &GpuTensor, crop: bool) -> Result<Dispatch> {
    use Slot::*;
    let [out, cols] = weight.dims2()?;
    let width = check_joined(padded, out, cols)?;
    let (entry, src, dst) = if crop { ("crop_grad", padded, weight) } else { ("pad_weight", weight, padded) };
    let kern = kernel(
        ctx,
        "embedding.wgsl",
        SOURCE,
        entry,
        &[Uniform, Unused, Unused, Unused, Unused, Unused, Unused, Unused, Read, ReadWrite],
        &[],
    );
    let u = uniform(ctx, &dst.label, &params(out, cols, 0, 1, width));
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("embedding {entry} {}", dst.label),
        vec![u.as_entire_binding(), src.binding(), dst.binding()],
        grid_1d(dst.numel(), 256),
    ))
}

/// padded [out, W] = weight [out, cols] and zero columns.
pub fn pad_weight(ctx: &GpuContext, weight: &GpuTensor, padded: &GpuTensor) -> Result<Dispatch> {
    pad_or_crop(ctx, weight, padded, false)
}

/// grad [out, cols] = the first cols columns of padded_grad [out, W].
pub fn crop_grad(ctx: &GpuContext, padded_grad: &GpuTensor, grad: &GpuTensor) -> Result<Dispatch> {
    pad_or_crop(ctx, grad, padded_grad, true)
}

/// CPU reference of `join` (unpadded): rows of [x | table[label]], x [rows, x_cols].
pub fn cpu_join(x: &[f32], x_cols: usize, table: &[f32], emb_cols: usize, labels: &[u32]) -> Vec<f32> {
    let classes = table.len() / emb_cols;
    let mut out = Vec::with_capacity(labels.len() * (x_cols + emb_cols));
    for (r, &l) in labels.iter().enumerate() {
        let k = (l as usize).min(classes - 1);
        out.extend_from_slice(&x[r * x_cols..(r + 1) * x_cols]);
        out.extend_from_slice(&table[k * emb_cols..(k + 1) * emb_cols]);
    }
    out
}

/// CPU reference of `split` and `table_grad` (unpadded): (d_x [rows,
/// x_cols], d_table [classes, emb_cols]) from d_joined [rows, x_cols + emb_cols].
pub fn cpu_backward(
    d_joined: &[f32],
    x_cols: usize,
    emb_cols: usize,
    classes: usize,
    labels: &[u32],
) -> (Vec<f32>, Vec<f32>) {
    let width = x_cols + emb_cols;
    let mut d_x = Vec::with_capacity(labels.len() * x_cols);
    let mut d_table = vec![0f32; classes * emb_cols];
    for (r, &l) in labels.iter().enumerate() {
        let row = &d_joined[r * width..(r + 1) * width];
        d_x.extend_from_slice(&row[..x_cols]);
        let k = (l as usize).min(classes - 1);
        for j in 0..emb_cols {
            d_table[k * emb_cols + j] += row[x_cols + j];
        }
    }
    (d_x, d_table)
}

/// Pads each row of `m` [rows, cols] with zeros to `width` columns.
pub fn cpu_pad_columns(m: &[f32], cols: usize, width: usize) -> Vec<f32> {
    m.chunks(cols).flat_map(|r| r.iter().copied().chain(std::iter::repeat_n(0.0, width - cols))).collect()
}
