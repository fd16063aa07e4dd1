//! A network on the GPU: flat parameter, gradient and Adam moment buffers
//! (one Adam dispatch updates it all), per-layer batch-norm state, and the
//! builders that turn a NetSpec into forward and backward dispatch lists over
//! preallocated activation buffers (`activations.rs`; a convolution layer's
//! dispatches come from `conv_layer.rs`). Everything is built once.

use crate::engine::context::GpuContext;
use crate::engine::kernels::adam::{Adam, AdamConfig};
use crate::engine::kernels::batchnorm::{self, BnBackward, BnForward, BnGrads, BnTensors, RowGroup};
use crate::engine::kernels::bias_act::{self, Act};
use crate::engine::kernels::dropout::{self, DropoutDraw};
use crate::engine::kernels::matmul::{Epilogue, Form, Matmul, Variant};
use crate::engine::kernels::reduce::Reduce;
use crate::engine::kernels::{embedding, Dispatch};
use crate::engine::tensor::{FlatLayout, GpuTensor};
use crate::error::{GanError, Result};
use crate::nn::conv_layer::ConvPass;
use crate::nn::spec::BnStats;
use crate::nn::spec::LayerSpec;
use crate::nn::spec::NetSpec;

pub use crate::nn::activations::{Activations, ColumnUse, LayerActs};

pub struct GpuBn {
    pub running_mean: GpuTensor,
    pub running_var: GpuTensor,
    /// 1/sqrt(var + eps) of the last training forward, per row group, for
    /// backward.
    pub invstd: Vec<GpuTensor>,
    /// Where the batch-norm backward writes the gradients nobody reads
    /// (gamma, beta and the layer's bias: the bias of a layer without one,
    /// all three in a backward without parameter gradients), [out] each.
    pub scratch: [GpuTensor; 3],
}

/// Row groups a batch norm may normalise apart in one forward (a
/// discriminator's fake and real halves).
pub const MAX_BN_GROUPS: usize = 2;

pub struct GpuNet {
    pub spec: NetSpec,
    pub layout: FlatLayout,
    pub params: GpuTensor,
    pub grads: GpuTensor,
    pub m: GpuTensor,
    pub v: GpuTensor,
    pub bn: Vec<Option<GpuBn>>,
    /// A conditional network: its first layer's weight and weight gradient
    /// zero-padded to the joined rows' width, [out, W] (`embedding`).
    pub padded_first: Option<(GpuTensor, GpuTensor)>,
    pub adam: Adam,
}

impl GpuNet {
    /// Uploads `params` (flat, in `spec.layout()` order) and zeroes the rest.
    pub fn new(
        ctx: &GpuContext,
        spec: NetSpec,
        params: &[f32],
        counters: &GpuTensor,
        config: AdamConfig,
    ) -> Result<Self> {
        let layout = spec.layout();
        let n = layout.len;
        let name = spec.name;
        let params = GpuTensor::from_f32(ctx, &[n], &format!("{name}.params"), params)?;
        let grads = GpuTensor::zeros(ctx, &[n], &format!("{name}.grads"));
        let m = GpuTensor::zeros(ctx, &[n], &format!("{name}.adam_m"));
        let v = GpuTensor::zeros(ctx, &[n], &format!("{name}.adam_v"));
        let bn = spec
            .layers
            .iter()
            .map(|l| {
                l.bn.as_ref()
                    .map(|b| -> Result<GpuBn> {
                        Ok(GpuBn {
                            running_mean: GpuTensor::from_f32(
                                ctx,
                                &[l.out],
                                &format!("{name}.{b}.running_mean"),
                                &vec![0.0; l.out],
                            )?,
                            running_var: GpuTensor::from_f32(
                                ctx,
                                &[l.out],
                                &format!("{name}.{b}.running_var"),
                                &vec![1.0; l.out],
                            )?,
                            invstd: (0..MAX_BN_GROUPS)
                                .map(|g| GpuTensor::zeros(ctx, &[l.out], &format!("{name}.{b}.invstd[{g}]")))
                                .collect(),
                            scratch: ["dgamma", "dbeta", "dbias"]
                                .map(|g| GpuTensor::zeros(ctx, &[l.out], &format!("{name}.{b}.{g} (scratch)"))),
                        })
                    })
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        let adam = Adam::new(ctx, config, &params, &grads, &m, &v, counters)?;
        let padded_first = spec.embedding.as_ref().map(|_| {
            let l = &spec.layers[0];
            let shape = [l.out, embedding::padded_width(l.inp)];
            (
                GpuTensor::zeros(ctx, &shape, &format!("{name}.{}.weight (padded)", l.name)),
                GpuTensor::zeros(ctx, &shape, &format!("{name}.{}.weight grad (padded)", l.name)),
            )
        });
        Ok(GpuNet { spec, layout, params, grads, m, v, bn, padded_first, adam })
    }

    /// A forward-only copy of this network holding `params` (flat, in
    /// `spec.layout()` order) and running statistics of its own (reset as a
    /// new network's), for the generator's moving average. Everything a
    /// training pass needs (gradients, moments, Adam, batch-norm scratch and
    /// the padded weight's gradient) is this network's, shared and never
    /// used through the copy: it is only run in evaluation mode.
    pub fn forward_copy(&self, ctx: &GpuContext, params: &[f32]) -> Result<GpuNet> {
        let name = self.spec.name;
        let bn = self
            .bn
            .iter()
            .zip(&self.spec.layers)
            .map(|(b, l)| {
                b.as_ref()
                    .map(|b| -> Result<GpuBn> {
                        let stat = |what: &str, v: f32| {
                            let label = format!("{name} (average).{}.{what}", l.name);
                            GpuTensor::from_f32(ctx, &[l.out], &label, &vec![v; l.out])
                        };
                        Ok(GpuBn {
                            running_mean: stat("running_mean", 0.0)?,
                            running_var: stat("running_var", 1.0)?,
                            invstd: b.invstd.clone(),
                            scratch: b.scratch.clone(),
                        })
                    })
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        let padded_first = self.padded_first.as_ref().map(|(w, g)| {
            (GpuTensor::zeros(ctx, &w.shape, &format!("{name} (average) padded first weight")), g.clone())
        });
        Ok(GpuNet {
            spec: self.spec.clone(),
            layout: self.layout.clone(),
            params: GpuTensor::from_f32(ctx, &[self.layout.len], &format!("{name} (average).params"), params)?,
            grads: self.grads.clone(),
            m: self.m.clone(),
            v: self.v.clone(),
            bn,
            padded_first,
            adam: self.adam.clone(),
        })
    }

    /// Bytes a `forward_copy` holds of its own: parameters, the padded
    /// first weight, running statistics.
    pub fn forward_copy_bytes(&self) -> u64 {
        let bn: u64 = self.bn.iter().flatten().map(|b| b.running_mean.bytes() + b.running_var.bytes()).sum();
        self.params.bytes() + self.padded_first.as_ref().map_or(0, |(w, _)| w.bytes()) + bn
    }

    /// Tensor `name` (a `layout` entry) of `flat`: params, grads, or a
    /// buffer of the same layout.
    pub fn view_of(&self, flat: &GpuTensor, name: &str) -> Result<GpuTensor> {
        let (_, shape, off) = self
            .layout
            .find(name)
            .ok_or_else(|| GanError::shape(name, format!("no such tensor in the {}", self.spec.name)))?;
        flat.view(*off, shape, &format!("{}.{name}", flat.label))
    }

    pub fn param(&self, name: &str) -> Result<GpuTensor> {
        self.view_of(&self.params, name)
    }

    pub fn grad(&self, name: &str) -> Result<GpuTensor> {
        self.view_of(&self.grads, name)
    }

    /// Layer `l`'s weight as its matmul reads it (`LayerSpec::weight_matrix`),
    /// from `flat` (params or grads).
    fn weight_matrix(&self, flat: &GpuTensor, l: &LayerSpec) -> Result<GpuTensor> {
        self.view_of(flat, &format!("{}.weight", l.name))?.reshaped(&l.weight_matrix())
    }

    /// The batch-norm running statistics (blocking: `read_bn_async` on pollster).
    pub fn read_bn(&self, ctx: &GpuContext, batches_tracked: i64) -> Result<Vec<Option<BnStats>>> {
        pollster::block_on(self.read_bn_async(ctx, batches_tracked))
    }

    pub async fn read_bn_async(&self, ctx: &GpuContext, batches_tracked: i64) -> Result<Vec<Option<BnStats>>> {
        let mut out = Vec::with_capacity(self.bn.len());
        for b in &self.bn {
            out.push(match b {
                Some(b) => Some(BnStats {
                    running_mean: b.running_mean.read_f32_async(ctx).await?,
                    running_var: b.running_var.read_f32_async(ctx).await?,
                    num_batches_tracked: batches_tracked,
                }),
                None => None,
            });
        }
        Ok(out)
    }

    pub fn write_bn(&self, ctx: &GpuContext, stats: &[Option<BnStats>]) -> Result<()> {
        for (gpu, cpu) in self.bn.iter().zip(stats) {
            if let (Some(g), Some(c)) = (gpu, cpu) {
                g.running_mean.write_f32(ctx, &c.running_mean)?;
                g.running_var.write_f32(ctx, &c.running_var)?;
            }
        }
        Ok(())
    }

    /// Bytes held on the GPU: (parameters, gradients, Adam moments, batch-norm state).
    pub fn memory(&self) -> (u64, u64, u64, u64) {
        let bn: u64 = self.bn.iter().flatten().map(|b| b.running_mean.bytes() * (5 + MAX_BN_GROUPS as u64)).sum();
        let (pw, pg) = self.padded_first.as_ref().map_or((0, 0), |(w, g)| (w.bytes(), g.bytes()));
        (self.params.bytes() + pw, self.grads.bytes() + pg, self.m.bytes() + self.v.bytes(), bn)
    }
}

/// Where a training pass draws its dropout masks: the pass's Philox draw
/// (layer l uses `draw.layer(l)`) at the step in `counters[0]`. A forward
/// and the backward after it take the same masks.
#[derive(Clone, Copy)]
pub struct DropoutMasks<'a> {
    pub draw: DropoutDraw,
    pub counters: &'a GpuTensor,
}

/// The masks of a training pass over `net`, Err when it has dropout and
/// none are given.
fn masks_for<'a>(net: &GpuNet, train: bool, masks: Option<DropoutMasks<'a>>) -> Result<Option<DropoutMasks<'a>>> {
    match (train && net.spec.layers.iter().any(|l| l.dropout.is_some()), masks) {
        (true, None) => Err(GanError::shape(net.spec.name, "a training pass through dropout needs its masks' draw")),
        (true, m) => Ok(m),
        (false, _) => Ok(None),
    }
}

/// Forward dispatches: input [rows, in] through every layer into `acts`
/// (a network without dropout, or not training).
pub fn forward(
    ctx: &GpuContext,
    net: &GpuNet,
    input: &GpuTensor,
    acts: &Activations,
    train: bool,
    variant: Variant,
) -> Result<Vec<Dispatch>> {
    forward_grouped(ctx, net, (input, acts), train, variant, 1, None)
}

/// `forward` with the samples in `groups` equal row groups that each batch
/// norm normalises apart in training (a discriminator's [fake; real], as
/// PyTorch's two passes do), the last group's first (PyTorch's example
/// passes the real batch first: the running statistics see that order).
/// A training pass through dropout layers applies `masks` to their outputs.
pub fn forward_grouped(
    ctx: &GpuContext,
    net: &GpuNet,
    (input, acts): (&GpuTensor, &Activations),
    train: bool,
    variant: Variant,
    groups: usize,
    masks: Option<DropoutMasks>,
) -> Result<Vec<Dispatch>> {
    let masks = masks_for(net, train, masks)?;
    if groups == 0 || groups > MAX_BN_GROUPS {
        return Err(GanError::shape(net.spec.name, format!("{groups} batch-norm row groups (1..={MAX_BN_GROUPS})")));
    }
    let mut out = Vec::new();
    let mut x = input.clone();
    if let Some(e) = &net.spec.embedding {
        let (joined, labels) =
            acts.joined.as_ref().zip(acts.labels.as_ref()).ok_or_else(|| {
                GanError::shape(net.spec.name, "a conditional network's forward needs its rows' labels")
            })?;
        let table = net.param(&format!("{}.weight", e.name))?;
        let (padded, _) =
            net.padded_first.as_ref().ok_or_else(|| GanError::shape(net.spec.name, "no padded weight"))?;
        out.push(embedding::pad_weight(ctx, &net.param(&format!("{}.weight", net.spec.layers[0].name))?, padded)?);
        out.push(embedding::join(ctx, input, &table, labels, joined)?);
        x = joined.clone();
    }
    for (i, l) in net.spec.layers.iter().enumerate() {
        let a = &acts.layers[i];
        let w = match (i, &net.padded_first) {
            (0, Some((padded, _))) => padded.clone(),
            _ => net.weight_matrix(&net.params, l)?,
        };
        let b = if l.bias { Some(net.param(&format!("{}.bias", l.name))?) } else { None };
        let target = a.pre.as_ref().unwrap_or(&a.out);
        // The bias, and the activation when no batch norm comes between,
        // are applied in the matmul's epilogue (after col2im for a
        // transposed convolution).
        let act = if l.bn.is_some() { Act::Identity } else { l.act };
        let epilogue = Epilogue { bias: b.as_ref(), act };
        match l.geometry(acts.rows) {
            Some(geometry) => {
                let pass = ConvPass { layer: l, geometry, rows: acts.rows, weight: &w, cols: a.cols.as_ref(), variant };
                out.extend(pass.forward(ctx, &x, target, b.as_ref(), act)?);
            }
            None => out.push(Matmul::with_epilogue(ctx, Form::NT, variant, &x, &w, target, epilogue)?.dispatch),
        }
        if let (Some(bn_name), Some(state)) = (&l.bn, &net.bn[i]) {
            let gamma = net.param(&format!("{bn_name}.weight"))?;
            let beta = net.param(&format!("{bn_name}.bias"))?;
            let t = BnTensors {
                gamma: &gamma,
                beta: &beta,
                running_mean: &state.running_mean,
                running_var: &state.running_var,
            };
            if train {
                for g in (0..groups).rev() {
                    let group = RowGroup { index: g, count: groups };
                    let reduce = Reduce::for_adapter(ctx);
                    let tensors = BnForward { x: target, y: &a.out, bn: &t, invstd: &state.invstd[g] };
                    out.push(batchnorm::forward_train_group(ctx, &tensors, l.act, reduce, group)?);
                }
            } else {
                out.push(batchnorm::forward_eval(ctx, target, &a.out, &t, l.act)?);
            }
        }
        if let (Some(p), Some(m)) = (l.dropout, masks) {
            out.push(dropout::apply(ctx, &a.out, p, m.draw.layer(i), m.counters)?);
        }
        x = a.out.clone();
    }
    Ok(out)
}

/// A backward pass through `net` after a forward over `acts`: what it
/// reads and writes. `Backward::new` gives the common case (parameter
/// gradients, no input gradient, one row group, no dropout); set the rest
/// by field.
pub struct Backward<'a> {
    pub net: &'a GpuNet,
    /// The forward's input.
    pub input: &'a GpuTensor,
    pub acts: &'a Activations,
    /// Gradient buffers shaped like `acts` (the last layer's is not used).
    pub d_acts: &'a Activations,
    /// The gradient w.r.t. the last layer's output.
    pub d_out: &'a GpuTensor,
    /// Write the parameter gradients into `net.grads` (else only flow through).
    pub param_grads: bool,
    /// Receives the gradient w.r.t. the input, when given.
    pub d_input: Option<&'a GpuTensor>,
    pub variant: Variant,
    /// After a `forward_grouped` with this many row groups: each group's
    /// batch-norm backward apart, their parameter gradients summed.
    pub groups: usize,
    /// That forward's dropout masks (the gradient of a dropped output is
    /// multiplied by the same mask, in place).
    pub masks: Option<DropoutMasks<'a>>,
}

impl<'a> Backward<'a> {
    pub fn new(
        net: &'a GpuNet,
        (input, acts): (&'a GpuTensor, &'a Activations),
        (d_out, d_acts): (&'a GpuTensor, &'a Activations),
        variant: Variant,
    ) -> Self {
        Backward { net, input, acts, d_acts, d_out, param_grads: true, d_input: None, variant, groups: 1, masks: None }
    }

    /// The dispatches, last layer first.
    pub fn dispatches(&self, ctx: &GpuContext) -> Result<Vec<Dispatch>> {
        let pass = BackwardPass { ctx, b: self, masks: masks_for(self.net, true, self.masks)? };
        let mut out = Vec::new();
        for i in (0..self.net.spec.layers.len()).rev() {
            pass.layer(i, &mut out)?;
        }
        Ok(out)
    }
}

/// A `Backward` being recorded, with its dropout masks checked.
struct BackwardPass<'a> {
    ctx: &'a GpuContext,
    b: &'a Backward<'a>,
    masks: Option<DropoutMasks<'a>>,
}

impl BackwardPass<'_> {
    /// Layer i's backward: its dropout mask, its activation (and batch
    /// norm), then its weight (convolution or dense).
    fn layer(&self, i: usize, out: &mut Vec<Dispatch>) -> Result<()> {
        let (ctx, net, acts) = (self.ctx, self.b.net, self.b.acts);
        let l = &net.spec.layers[i];
        let a = &acts.layers[i];
        let last = net.spec.layers.len() - 1;
        let dy = if i == last { self.b.d_out.reshaped(&a.out.shape)? } else { self.b.d_acts.layers[i].out.clone() };
        if let (Some(p), Some(m)) = (l.dropout, self.masks) {
            out.push(dropout::apply(ctx, &dy, p, m.draw.layer(i), m.counters)?);
        }
        self.activation(i, &dy, out)?;
        let layer_input = match (i, &acts.joined) {
            (0, Some(j)) => j.clone(),
            (0, None) => self.b.input.clone(),
            _ => acts.layers[i - 1].out.clone(),
        };
        // Where the input's gradient goes: the layer below's, the caller's,
        // or (first layer, none asked) nowhere.
        let d_prev = if i > 0 { Some(self.b.d_acts.layers[i - 1].out.clone()) } else { self.b.d_input.cloned() };
        if let Some(geometry) = l.geometry(acts.rows) {
            let w = net.weight_matrix(&net.params, l)?;
            let dw = if self.b.param_grads { Some(net.weight_matrix(&net.grads, l)?) } else { None };
            let variant = self.b.variant;
            let pass = ConvPass { layer: l, geometry, rows: acts.rows, weight: &w, cols: a.cols.as_ref(), variant };
            let dcols = self.b.d_acts.layers[i].cols.as_ref();
            out.extend(pass.backward(ctx, &layer_input, &dy, dw.as_ref(), d_prev.as_ref(), dcols)?);
            return Ok(());
        }
        self.dense(i, (&dy, &layer_input), out)
    }

    /// Through layer i's activation into dy, in place: with its batch norm
    /// (each row group apart; gamma's, beta's and the bias's gradients), or
    /// the activation alone (and the bias's gradient).
    fn activation(&self, i: usize, dy: &GpuTensor, out: &mut Vec<Dispatch>) -> Result<()> {
        let (ctx, net) = (self.ctx, self.b.net);
        let (l, a) = (&net.spec.layers[i], &self.b.acts.layers[i]);
        let (Some(bn_name), Some(state)) = (&l.bn, &net.bn[i]) else {
            let dbias = if self.b.param_grads && l.bias { Some(net.grad(&format!("{}.bias", l.name))?) } else { None };
            if dbias.is_some() || l.act != Act::Identity {
                out.push(bias_act::backward(ctx, l.act, &a.out, dy, dbias.as_ref())?);
            }
            return Ok(());
        };
        let [sg, sb, sbias] = &state.scratch;
        let (dgamma, dbeta, dbias) = match (self.b.param_grads, l.bias) {
            (false, _) => (sg.clone(), sb.clone(), sbias.clone()),
            (true, has_bias) => (
                net.grad(&format!("{bn_name}.weight"))?,
                net.grad(&format!("{bn_name}.bias"))?,
                if has_bias { net.grad(&format!("{}.bias", l.name))? } else { sbias.clone() },
            ),
        };
        let gamma = net.param(&format!("{bn_name}.weight"))?;
        let pre = a.pre.as_ref().ok_or_else(|| GanError::shape(&l.name, "no saved pre-activation"))?;
        let grads = BnGrads { dgamma: &dgamma, dbeta: &dbeta, dbias: &dbias };
        for g in 0..self.b.groups {
            let tensors =
                BnBackward { dy, y: &a.out, xhat: pre, gamma: &gamma, invstd: &state.invstd[g], grads: &grads };
            let group = RowGroup { index: g, count: self.b.groups };
            out.push(batchnorm::backward_group(ctx, &tensors, l.act, g > 0, Reduce::for_adapter(ctx), group)?);
        }
        Ok(())
    }

    /// A dense layer's weight gradient and its input's gradient (the first
    /// layer: padded to vec4 width where the input is, and through the
    /// label embedding where there is one).
    fn dense(&self, i: usize, (dy, layer_input): (&GpuTensor, &GpuTensor), out: &mut Vec<Dispatch>) -> Result<()> {
        let (ctx, net, variant) = (self.ctx, self.b.net, self.b.variant);
        let l = &net.spec.layers[i];
        let padded = if i == 0 { net.padded_first.as_ref() } else { None };
        if self.b.param_grads {
            let dw = net.grad(&format!("{}.weight", l.name))?;
            match padded {
                Some((_, padded_dw)) => {
                    out.push(Matmul::new(ctx, Form::TN, variant, dy, layer_input, padded_dw)?.dispatch);
                    out.push(embedding::crop_grad(ctx, padded_dw, &dw)?);
                }
                None => out.push(Matmul::new(ctx, Form::TN, variant, dy, layer_input, &dw)?.dispatch),
            }
        }
        let w = match padded {
            Some((padded_w, _)) => padded_w.clone(),
            None => net.param(&format!("{}.weight", l.name))?,
        };
        if i > 0 {
            out.push(Matmul::new(ctx, Form::NN, variant, dy, &w, &self.b.d_acts.layers[i - 1].out)?.dispatch);
        } else if let Some(e) = &net.spec.embedding {
            self.embedding_input(e, dy, &w, out)?;
        } else if let Some(d_in) = self.b.d_input {
            out.push(Matmul::new(ctx, Form::NN, variant, dy, &w, d_in)?.dispatch);
        }
        Ok(())
    }

    /// The joined input's gradient: the embedding's columns give the
    /// table's gradient, the others the input's.
    fn embedding_input(
        &self,
        e: &crate::nn::spec::EmbeddingSpec,
        dy: &GpuTensor,
        w: &GpuTensor,
        out: &mut Vec<Dispatch>,
    ) -> Result<()> {
        let (ctx, net) = (self.ctx, self.b.net);
        let l = &net.spec.layers[0];
        if !self.b.param_grads && self.b.d_input.is_none() {
            return Ok(());
        }
        let d_joined =
            self.b.d_acts.joined.as_ref().ok_or_else(|| GanError::shape(&l.name, "no joined-input gradient buffer"))?;
        let labels = self.b.acts.labels.as_ref().ok_or_else(|| GanError::shape(&l.name, "no labels"))?;
        out.push(Matmul::new(ctx, Form::NN, self.b.variant, dy, w, d_joined)?.dispatch);
        let table = net.param(&format!("{}.weight", e.name))?;
        if self.b.param_grads {
            let d_table = net.grad(&format!("{}.weight", e.name))?;
            out.push(embedding::table_grad(ctx, d_joined, labels, &d_table, net.spec.input_dim())?);
        }
        if let Some(d_in) = self.b.d_input {
            out.push(embedding::split(ctx, d_joined, d_in, &table)?);
        }
        Ok(())
    }
}
