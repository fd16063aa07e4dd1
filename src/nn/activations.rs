//! A network's activation buffers: per layer its output, pre-activation
//! (before a batch norm) and convolution columns, allocated once for a
//! number of samples (only the column buffers the chosen kernels read);
//! views of the first rows for a smaller pass.

use crate::engine::context::GpuContext;
use crate::engine::kernels::embedding;
use crate::engine::kernels::matmul::Variant;
use crate::engine::tensor::GpuTensor;
use crate::error::Result;
use crate::nn::conv_layer;
use crate::nn::spec::LayerSpec;
use crate::nn::spec::NetSpec;

/// Which passes a set of buffers serves, for the column buffers they read
/// (`conv_layer::columns_read`): built with matmul `variant`, with a
/// backward computing weight gradients or not; `gradients` when the
/// buffers are a backward's gradient buffers.
#[derive(Clone, Copy, Debug)]
pub struct ColumnUse {
    pub variant: Variant,
    pub weight_grads: bool,
    pub gradients: bool,
}

impl ColumnUse {
    /// Whether those passes read layer `l`'s column buffer at `rows` samples.
    pub fn reads(&self, ctx: &GpuContext, l: &LayerSpec, rows: usize) -> bool {
        let (forward, backward) = conv_layer::columns_read(ctx, self.variant, l, rows, self.weight_grads);
        if self.gradients {
            backward
        } else {
            forward
        }
    }
}

/// Activation buffers of one layer: [rows, out] with rows = samples x the
/// layer's output positions (NHWC for convolutions).
#[derive(Clone)]
pub struct LayerActs {
    /// Batch-norm layers: the layer's output before it, overwritten with
    /// xhat in training.
    pub pre: Option<GpuTensor>,
    pub out: GpuTensor,
    /// Convolutions: their columns [positions, patch] (Conv2d: the input's
    /// im2col; ConvTranspose2d: x W). In gradient buffers: their gradient.
    pub cols: Option<GpuTensor>,
}

#[derive(Clone)]
pub struct Activations {
    /// Samples.
    pub rows: usize,
    pub layers: Vec<LayerActs>,
    /// A conditional network: its input joined with the label embedding,
    /// [rows, input + E] (in gradient buffers: that input's gradient).
    pub joined: Option<GpuTensor>,
    /// A conditional network's forward: the rows' labels, [rows] u32.
    pub labels: Option<GpuTensor>,
}

impl Activations {
    /// `out_override` replaces the last layer's output buffer (the generator
    /// writes its images straight into the discriminator's input).
    pub fn alloc(
        ctx: &GpuContext,
        spec: &NetSpec,
        rows: usize,
        label: &str,
        out_override: Option<GpuTensor>,
    ) -> Result<Self> {
        Self::alloc_labeled(ctx, spec, rows, label, out_override, None)
    }

    /// `alloc` for a conditional network's forward, reading the rows'
    /// labels from `labels` ([rows] u32).
    pub fn alloc_labeled(
        ctx: &GpuContext,
        spec: &NetSpec,
        rows: usize,
        label: &str,
        out_override: Option<GpuTensor>,
        labels: Option<&GpuTensor>,
    ) -> Result<Self> {
        Self::alloc_columns(ctx, spec, rows, label, out_override, labels, None)
    }

    /// `alloc_labeled` with only the column buffers `columns`' passes read
    /// (every non-whole convolution's when None).
    pub fn alloc_columns(
        ctx: &GpuContext,
        spec: &NetSpec,
        rows: usize,
        label: &str,
        out_override: Option<GpuTensor>,
        labels: Option<&GpuTensor>,
        columns: Option<ColumnUse>,
    ) -> Result<Self> {
        if let Some(l) = labels {
            l.expect_shape(&[rows])?;
        }
        let joined = spec.embedding.as_ref().map(|_| {
            GpuTensor::zeros(ctx, &[rows, embedding::padded_width(spec.layers[0].inp)], &format!("{label}.joined"))
        });
        let last = spec.layers.len() - 1;
        let mut layers = Vec::new();
        for (i, l) in spec.layers.iter().enumerate() {
            let n = rows * l.out_positions();
            let pre = l.bn.as_ref().map(|_| GpuTensor::zeros(ctx, &[n, l.out], &format!("{label}.{}.pre", l.name)));
            let out = match (&out_override, i == last) {
                (Some(o), true) => {
                    o.expect_shape(&[rows, l.out * l.out_positions()])?;
                    o.reshaped(&[n, l.out])?
                }
                _ => GpuTensor::zeros(ctx, &[n, l.out], &format!("{label}.{}.out", l.name)),
            };
            // A kernel covering its whole image reads or writes the image
            // as its columns: no buffer.
            let cols = l
                .geometry(rows)
                .filter(|g| !g.is_whole() && columns.is_none_or(|u| u.reads(ctx, l, rows)))
                .map(|g| GpuTensor::zeros(ctx, &[g.positions(), g.patch()], &format!("{label}.{}.cols", l.name)));
            layers.push(LayerActs { pre, out, cols });
        }
        Ok(Activations { rows, layers, joined, labels: labels.cloned() })
    }

    /// The first `rows` samples of every buffer.
    pub fn first_rows(&self, rows: usize) -> Result<Self> {
        let cut = |t: &GpuTensor| -> Result<GpuTensor> {
            let [n, cols] = t.dims2()?;
            let keep = n / self.rows * rows;
            t.view(0, &[keep, cols], &format!("{}[:{keep}]", t.label))
        };
        Ok(Activations {
            rows,
            joined: self.joined.as_ref().map(cut).transpose()?,
            labels: self.labels.as_ref().map(|l| l.view(0, &[rows], &format!("{}[:{rows}]", l.label))).transpose()?,
            layers: self
                .layers
                .iter()
                .map(|l| -> Result<LayerActs> {
                    Ok(LayerActs {
                        pre: l.pre.as_ref().map(cut).transpose()?,
                        out: cut(&l.out)?,
                        cols: l.cols.as_ref().map(cut).transpose()?,
                    })
                })
                .collect::<Result<_>>()?,
        })
    }

    /// The same buffers (views) without the column buffers `columns`'
    /// passes never read.
    pub fn keeping_read_columns(&self, ctx: &GpuContext, spec: &NetSpec, columns: ColumnUse) -> Self {
        let mut acts = self.clone();
        for (a, l) in acts.layers.iter_mut().zip(&spec.layers) {
            if !columns.reads(ctx, l, self.rows) {
                a.cols = None;
            }
        }
        acts
    }

    pub fn bytes(&self) -> u64 {
        self.layers
            .iter()
            .map(|l| l.out.bytes() + l.pre.as_ref().map_or(0, |p| p.bytes()) + l.cols.as_ref().map_or(0, |c| c.bytes()))
            .sum::<u64>()
            + self.joined.as_ref().map_or(0, |j| j.bytes())
    }
}
