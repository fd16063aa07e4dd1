//! Batch gather from the u8 dataset and the step counters (shaders/gather.wgsl):
//! launchers and CPU reference.

use super::{grid_1d, kernel, uniform, Dispatch, Slot};
use crate::engine::context::GpuContext;
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};

pub const SOURCE: &str = include_str!("../../../shaders/gather.wgsl");

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    rows: u32,
    dim: u32,
    row_offset: u32,
    perm_len: u32,
    first_image: u32,
    images: u32,
    _pad: [u32; 2],
}

/// Images [first, first + count) of a data set, packed (`pack_pixels`)
/// from their own first byte into one buffer: a data set larger than one
/// storage binding is held as several.
#[derive(Clone, Copy)]
pub struct DataShard<'a> {
    pub pixels: &'a GpuTensor,
    pub first: usize,
    pub count: usize,
}

/// Packs u8 pixels four to a u32, little-endian, as gather.wgsl reads them.
pub fn pack_pixels(pixels: &[u8]) -> Vec<u32> {
    pixels
        .chunks(4)
        .map(|c| {
            let mut w = [0u8; 4];
            w[..c.len()].copy_from_slice(c);
            u32::from_le_bytes(w)
        })
        .collect()
}

/// out rows [row_offset, row_offset + rows) = scaled images
/// perm[counters[1] * rows + r] of the packed dataset `pixels` (images of `dim` bytes).
pub fn gather_batch(
    ctx: &GpuContext,
    pixels: &GpuTensor,
    perm: &GpuTensor,
    out: &GpuTensor,
    row_offset: usize,
    rows: usize,
    counters: &GpuTensor,
) -> Result<Dispatch> {
    let whole = DataShard { pixels, first: 0, count: u32::MAX as usize };
    gather_batch_shard(ctx, whole, perm, out, (row_offset, rows), counters)
}

/// `gather_batch` of the rows whose image lies in `shard`; the other rows
/// are left as they are (one dispatch per shard fills them all).
pub fn gather_batch_shard(
    ctx: &GpuContext,
    shard: DataShard,
    perm: &GpuTensor,
    out: &GpuTensor,
    (row_offset, rows): (usize, usize),
    counters: &GpuTensor,
) -> Result<Dispatch> {
    let pixels = shard.pixels;
    let [out_rows, dim] = out.dims2()?;
    if row_offset + rows > out_rows || perm.numel() < rows {
        return Err(GanError::shape(
            &out.label,
            format!("gather of {rows} rows at {row_offset} into {out_rows} rows from {} indices", perm.numel()),
        ));
    }
    let kern = kernel(
        ctx,
        "gather.wgsl",
        SOURCE,
        "gather_batch",
        &[Slot::Uniform, Slot::Read, Slot::Read, Slot::ReadWrite, Slot::Read],
        &[],
    );
    let p = uniform(
        ctx,
        &out.label,
        &Params {
            rows: rows as u32,
            dim: dim as u32,
            row_offset: row_offset as u32,
            perm_len: perm.numel() as u32,
            first_image: shard.first as u32,
            images: shard.count.min(u32::MAX as usize) as u32,
            _pad: [0; 2],
        },
    );
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("gather {}", out.label),
        vec![p.as_entire_binding(), pixels.binding(), perm.binding(), out.binding(), counters.binding()],
        grid_1d(rows * dim, 256),
    ))
}

/// labels_out[row_offset + r] = the label of image perm[counters[1] * rows + r]
/// (the rows `gather_batch` gathers with the same offset and rows) from the
/// packed u8 labels `labels` (`pack_pixels`).
pub fn gather_labels(
    ctx: &GpuContext,
    labels: &GpuTensor,
    perm: &GpuTensor,
    labels_out: &GpuTensor,
    row_offset: usize,
    rows: usize,
    counters: &GpuTensor,
) -> Result<Dispatch> {
    use Slot::*;
    if row_offset + rows > labels_out.numel() || perm.numel() < rows {
        return Err(GanError::shape(
            &labels_out.label,
            format!(
                "gather of {rows} labels at {row_offset} into {} from {} indices",
                labels_out.numel(),
                perm.numel()
            ),
        ));
    }
    let kern = kernel(
        ctx,
        "gather.wgsl",
        SOURCE,
        "gather_labels",
        &[Uniform, Read, Read, Unused, Read, Unused, ReadWrite],
        &[],
    );
    let p = uniform(
        ctx,
        &labels_out.label,
        &Params {
            rows: rows as u32,
            dim: 1,
            row_offset: row_offset as u32,
            perm_len: perm.numel() as u32,
            first_image: 0,
            images: u32::MAX,
            _pad: [0; 2],
        },
    );
    Ok(Dispatch::new(
        ctx,
        &kern,
        &format!("gather labels {}", labels_out.label),
        vec![p.as_entire_binding(), labels.binding(), perm.binding(), counters.binding(), labels_out.binding()],
        grid_1d(rows, 256),
    ))
}

/// CPU reference of gather_labels: the labels of `rows` images from perm[batch * rows].
pub fn cpu_gather_labels(labels: &[u8], perm: &[u32], batch: usize, rows: usize) -> Vec<u32> {
    (0..rows).map(|r| labels[perm[(batch * rows + r).min(perm.len() - 1)] as usize] as u32).collect()
}

/// counters[0] += 1 (steps done), counters[1] += 1 (batch within the epoch).
pub fn advance_counters(ctx: &GpuContext, counters: &GpuTensor) -> Result<Dispatch> {
    use Slot::*;
    let kern = kernel(
        ctx,
        "gather.wgsl",
        SOURCE,
        "advance_counters",
        &[Unused, Unused, Unused, Unused, Unused, ReadWrite],
        &[],
    );
    Ok(Dispatch::new(ctx, &kern, "advance counters", vec![counters.binding()], [1, 1, 1]))
}

/// CPU reference of gather_batch: `rows` images starting at perm[batch * rows].
pub fn cpu_gather(pixels: &[u8], dim: usize, perm: &[u32], batch: usize, rows: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(rows * dim);
    for r in 0..rows {
        let img = perm[(batch * rows + r).min(perm.len() - 1)] as usize;
        for c in 0..dim {
            out.push((pixels[img * dim + c] as f32 - 127.5) / 127.5);
        }
    }
    out
}
