//! GPU tensors: a view (offset, shape, label) into a storage buffer. Elements
//! are 4 bytes (f32, or u32 for indices and packed u8 pixels). Views start at
//! 256-byte offsets so that any of them can be bound on its own; that lets a
//! whole network's parameters live in one flat buffer for a single Adam pass.

use crate::engine::context::GpuContext;
use crate::error::{GanError, Result};

/// Byte alignment of tensor views (WebGPU's min storage buffer offset alignment
/// is at most 256 on every adapter).
pub const VIEW_ALIGN: u64 = 256;

pub fn round_up(x: u64, to: u64) -> u64 {
    x.div_ceil(to) * to
}

#[derive(Clone, Debug)]
pub struct GpuTensor {
    pub buffer: wgpu::Buffer,
    /// Byte offset of element 0 in `buffer`.
    pub offset: u64,
    pub shape: Vec<usize>,
    pub label: String,
}

impl GpuTensor {
    /// A new zero-filled tensor in a buffer of its own.
    pub fn zeros(ctx: &GpuContext, shape: &[usize], label: &str) -> Self {
        let numel: usize = shape.iter().product();
        // vec4 views of the buffer need whole 16-byte elements; one extra
        // block lets a vec4 view cover a tail that is not a multiple of 4.
        let size = round_up((numel as u64 * 4).max(16), VIEW_ALIGN);
        let buffer = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        GpuTensor { buffer, offset: 0, shape: shape.to_vec(), label: label.to_string() }
    }

    pub fn from_f32(ctx: &GpuContext, shape: &[usize], label: &str, data: &[f32]) -> Result<Self> {
        let t = Self::zeros(ctx, shape, label);
        t.write_f32(ctx, data)?;
        Ok(t)
    }

    pub fn from_u32(ctx: &GpuContext, shape: &[usize], label: &str, data: &[u32]) -> Result<Self> {
        let t = Self::zeros(ctx, shape, label);
        t.write_u32(ctx, data)?;
        Ok(t)
    }

    /// (rows, cols) of a 2-D tensor, or an error naming it.
    pub fn dims2(&self) -> Result<[usize; 2]> {
        match self.shape[..] {
            [r, c] => Ok([r, c]),
            _ => Err(GanError::shape(&self.label, format!("expected a 2-D tensor, got {:?}", self.shape))),
        }
    }

    /// Errors unless the tensor has exactly `shape`.
    pub fn expect_shape(&self, shape: &[usize]) -> Result<()> {
        if self.shape != shape {
            return Err(GanError::shape(&self.label, format!("expected shape {shape:?}, got {:?}", self.shape)));
        }
        Ok(())
    }

    pub fn numel(&self) -> usize {
        self.shape.iter().product()
    }

    pub fn bytes(&self) -> u64 {
        self.numel() as u64 * 4
    }

    /// A view of `shape` starting `elem_offset` elements into this tensor.
    pub fn view(&self, elem_offset: usize, shape: &[usize], label: &str) -> Result<Self> {
        let numel: usize = shape.iter().product();
        if elem_offset + numel > self.numel() {
            return Err(GanError::shape(
                label,
                format!(
                    "view of {numel} elements at {elem_offset} exceeds '{}' of {} elements",
                    self.label,
                    self.numel()
                ),
            ));
        }
        let offset = self.offset + elem_offset as u64 * 4;
        if !offset.is_multiple_of(VIEW_ALIGN) {
            return Err(GanError::shape(
                label,
                format!("view offset {offset} bytes is not a multiple of {VIEW_ALIGN}"),
            ));
        }
        Ok(GpuTensor { buffer: self.buffer.clone(), offset, shape: shape.to_vec(), label: label.to_string() })
    }

    /// The same elements seen with another shape of equal size.
    pub fn reshaped(&self, shape: &[usize]) -> Result<Self> {
        if shape.iter().product::<usize>() != self.numel() {
            return Err(GanError::shape(&self.label, format!("cannot reshape {:?} to {shape:?}", self.shape)));
        }
        let mut t = self.clone();
        t.shape = shape.to_vec();
        Ok(t)
    }

    /// Binding of the view, rounded up to whole 16-byte blocks where the
    /// buffer has them (so vec4 views see every element).
    pub fn binding(&self) -> wgpu::BindingResource<'_> {
        let avail = self.buffer.size() - self.offset;
        let size = round_up(self.bytes().max(16), 16).min(avail);
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &self.buffer,
            offset: self.offset,
            size: wgpu::BufferSize::new(size),
        })
    }

    fn check_len(&self, len: usize) -> Result<()> {
        if len != self.numel() {
            return Err(GanError::shape(
                &self.label,
                format!("{len} values given for shape {:?} ({} elements)", self.shape, self.numel()),
            ));
        }
        Ok(())
    }

    pub fn write_f32(&self, ctx: &GpuContext, data: &[f32]) -> Result<()> {
        self.check_len(data.len())?;
        ctx.queue.write_buffer(&self.buffer, self.offset, bytemuck::cast_slice(data));
        Ok(())
    }

    pub fn write_u32(&self, ctx: &GpuContext, data: &[u32]) -> Result<()> {
        self.check_len(data.len())?;
        ctx.queue.write_buffer(&self.buffer, self.offset, bytemuck::cast_slice(data));
        Ok(())
    }

    /// Fills every element with NaN (tests pre-fill outputs so that an
    /// element a kernel forgets to write shows up).
    pub fn fill_nan(&self, ctx: &GpuContext) -> Result<()> {
        self.write_f32(ctx, &vec![f32::NAN; self.numel()])
    }

    /// Reads the tensor back without blocking: a copy into a staging buffer,
    /// mapped asynchronously. In a browser page the browser's event loop
    /// completes the mapping while the future waits; natively the device is
    /// polled until it is done. For checkpoints, samples and tests, never for
    /// the training step (the trainer's readback ring reads the losses).
    pub async fn read_u32_async(&self, ctx: &GpuContext) -> Result<Vec<u32>> {
        let size = round_up(self.bytes().max(4), 4);
        let staging = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(&self.buffer, self.offset, &staging, 0, size);
        ctx.queue.submit([enc.finish()]);
        let out = map_read(ctx, &staging, size, &format!("reading '{}'", self.label)).await?;
        ctx.check_health(&format!("reading '{}'", self.label))?;
        Ok(out)
    }

    pub async fn read_f32_async(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        Ok(self.read_u32_async(ctx).await?.into_iter().map(f32::from_bits).collect())
    }

    /// Reads the tensor back, blocking (`read_u32_async` on pollster). Native
    /// hosts only: a browser page cannot block.
    pub fn read_u32(&self, ctx: &GpuContext) -> Result<Vec<u32>> {
        pollster::block_on(self.read_u32_async(ctx))
    }

    pub fn read_f32(&self, ctx: &GpuContext) -> Result<Vec<f32>> {
        Ok(self.read_u32(ctx)?.into_iter().map(f32::from_bits).collect())
    }
}

/// Maps the first `size` bytes of `staging` (MAP_READ, its copy already
/// submitted) and returns them as words, then unmaps it. Awaits the mapping:
/// a browser's event loop completes it; natively the device is polled.
#[cfg_attr(target_arch = "wasm32", allow(unused_variables))]
pub(crate) async fn map_read(ctx: &GpuContext, staging: &wgpu::Buffer, size: u64, during: &str) -> Result<Vec<u32>> {
    let slice = staging.slice(..size);
    let (sender, receiver) = futures_intrusive::channel::shared::oneshot_channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = sender.send(r);
    });
    #[cfg(not(target_arch = "wasm32"))]
    ctx.wait(during)?;
    let result = receiver.receive().await;
    result
        .ok_or_else(|| "the mapping callback was dropped".to_string())
        .and_then(|r| r.map_err(|e| e.to_string()))
        .map_err(|message| GanError::Device { during: format!("{during}: mapping"), message })?;
    let view =
        slice.get_mapped_range().map_err(|e| GanError::Device { during: during.into(), message: e.to_string() })?;
    let out: Vec<u32> = bytemuck::cast_slice(&view[..]).to_vec();
    drop(view);
    staging.unmap();
    Ok(out)
}

/// Layout of named tensors packed into one flat buffer at 256-byte offsets.
#[derive(Clone, Debug)]
pub struct FlatLayout {
    pub entries: Vec<(String, Vec<usize>, usize)>,
    /// Total length in elements, padding included.
    pub len: usize,
}

impl FlatLayout {
    pub fn new(tensors: &[(String, Vec<usize>)]) -> Self {
        let align = (VIEW_ALIGN / 4) as usize;
        let mut len = 0;
        let mut entries = Vec::new();
        for (name, shape) in tensors {
            let n: usize = shape.iter().product();
            entries.push((name.clone(), shape.clone(), len));
            len = (len + n).div_ceil(align) * align;
        }
        FlatLayout { entries, len }
    }

    pub fn find(&self, name: &str) -> Option<&(String, Vec<usize>, usize)> {
        self.entries.iter().find(|e| e.0 == name)
    }
}
