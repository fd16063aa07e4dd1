//! The GAN resident on the GPU with its whole training step prebuilt, and
//! the sampler that runs the generator in evaluation mode.

use super::{
    checkpoint, dropout, ema, gather, gpu_net, images, rng, Activations, AdamConfig, ColumnUse, DataIdentity, Dispatch,
    DropoutDraw, DropoutMasks, GanError, GpuContext, GpuNet, GpuTensor, ImageSet, NetSpec, Result, StepMetrics,
    Variant, WhichModel, FIXED_LATENT_SEED, GRID_SAMPLES, METRICS_LEN,
};
use crate::nn::gpu_net::Backward;
use crate::nn::loss::Loss;
use crate::nn::penalty::Penalty;
use crate::nn::spec::ImageShape;
use rand::SeedableRng;

/// The hyper-parameters that shape the GPU graph.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GanConfig {
    pub batch: usize,
    pub latent: usize,
    pub seed: u64,
    pub adam: AdamConfig,
    /// Which pair of networks to train.
    pub model: WhichModel,
    /// DCGAN's base channel count W (`--width`; other models ignore it).
    pub dcgan_width: usize,
    /// Decay of the generator's averaged copy (`--ema-decay`); 0: none.
    pub ema_decay: f32,
    /// The objective (`--loss`): its kernels and D's output layer.
    pub loss: Loss,
    /// D steps per G step (`--n-critic`): every step trains D, and G trains
    /// on steps N, 2N, ... (1-based), as PyTorch-GAN and Burn's wgan count.
    pub n_critic: usize,
    /// The gradient penalty's weight lambda under `--loss wgan-gp`
    /// (`--gp-weight`); other losses ignore it.
    pub gp_weight: f32,
    /// The classes a conditional model draws labels of: the data's
    /// (`ImageSet::class_names`), MNIST's 10 by default.
    pub classes: usize,
    /// The most bytes of pixels one GPU buffer of the data set holds; None:
    /// the device's largest storage binding (a smaller cap tests the shards).
    pub data_shard_bytes: Option<u64>,
}

impl Default for GanConfig {
    /// The tutorial's run: every value from `crate::defaults`. Hosts and
    /// tests set only what they change (`GanConfig { batch: 32, ..Default::default() }`).
    fn default() -> Self {
        use crate::defaults;
        GanConfig {
            batch: defaults::BATCH,
            latent: defaults::LATENT,
            seed: defaults::SEED,
            adam: AdamConfig::default(),
            model: WhichModel::default(),
            dcgan_width: defaults::DCGAN_WIDTH,
            ema_decay: defaults::EMA_DECAY,
            loss: Loss::default(),
            n_critic: defaults::N_CRITIC,
            gp_weight: defaults::GP_WEIGHT,
            classes: defaults::CLASSES,
            data_shard_bytes: None,
        }
    }
}

impl GanConfig {
    /// Whether 1-based global step `step` trains G (every `n_critic`-th).
    pub fn trains_g_at(&self, step: u64) -> bool {
        step.is_multiple_of(self.n_critic.max(1) as u64)
    }

    /// The networks this config trains on images of `shape` (a conditional
    /// model draws `classes` labels); an error names the flag and why the
    /// images do not suit the model. D's output layer is the loss's (a
    /// sigmoid for BCE, none for hinge).
    pub fn architecture(&self, shape: ImageShape) -> Result<crate::models::GanArchitecture> {
        let mut arch = self
            .model
            .architecture(self.latent, shape, self.classes, self.dcgan_width)
            .map_err(|why| GanError::Flag { flag: "--model", why })?;
        if let Some(last) = arch.discriminator.layers.last_mut() {
            last.act = self.loss.d_output();
        }
        if self.loss.has_gradient_penalty() {
            // A critic without batch norm: the penalty is per sample (the paper's).
            for l in &mut arch.discriminator.layers {
                l.bn = None;
            }
            crate::nn::penalty::check_critic(&arch.discriminator).map_err(|e| GanError::Flag {
                flag: "--loss",
                why: format!("wgan-gp with --model {}: {e}", self.model),
            })?;
        }
        Ok(arch)
    }

    /// Checks that this config's networks on images of `shape` fit the
    /// device's buffers before anything is allocated: each network's
    /// parameters are one storage binding, and so is D's input [2B, dim].
    /// Err names the limit, the buffer, and both sizes.
    pub fn check_fits(&self, ctx: &GpuContext, shape: ImageShape) -> Result<()> {
        let arch = self.architecture(shape)?;
        let l = &ctx.limits;
        let has = l.max_storage_buffer_binding_size.min(l.max_buffer_size);
        let buffers = [
            ("the generator's parameters", arch.generator.layout().len as u64 * 4),
            ("the discriminator's parameters", arch.discriminator.layout().len as u64 * 4),
            ("D's input [fake; real]", 2 * self.batch as u64 * shape.dim() as u64 * 4),
        ];
        match buffers.into_iter().find(|&(_, bytes)| bytes > has) {
            Some((what, needed)) => Err(GanError::Limit {
                adapter: ctx.describe(),
                limit: if l.max_buffer_size < l.max_storage_buffer_binding_size {
                    "max_buffer_size"
                } else {
                    "max_storage_buffer_binding_size"
                },
                needed,
                has,
                hint: format!(" ({what}, one buffer, for {} images; smaller images need less)", shape.describe()),
            }),
            None => Ok(()),
        }
    }

    /// Checks the values (the CLI's flags, the page's form): errors name the
    /// CLI flag and what is wrong.
    pub fn validate(&self) -> Result<()> {
        positive("--batch-size", self.batch as f64)?;
        if self.batch < 2 {
            return Err(GanError::Flag {
                flag: "--batch-size",
                why: format!("batch norm needs at least 2 samples a batch, got {}", self.batch),
            });
        }
        positive("--latent-size", self.latent as f64)?;
        positive("--width", self.dcgan_width as f64)?;
        positive("--lr", self.adam.lr as f64)?;
        for (flag, b) in [("--beta1", self.adam.beta1), ("--beta2", self.adam.beta2)] {
            if !(0.0..1.0).contains(&b) {
                return Err(GanError::Flag { flag, why: format!("must be in [0, 1), got {b}") });
            }
        }
        positive("--n-critic", self.n_critic as f64)?;
        if !(self.gp_weight >= 0.0 && self.gp_weight.is_finite()) {
            return Err(GanError::Flag {
                flag: "--gp-weight",
                why: format!("must be finite and >= 0, got {}", self.gp_weight),
            });
        }
        crate::engine::kernels::ema::check_decay(self.ema_decay)
            .map_err(|why| GanError::Flag { flag: "--ema-decay", why })
    }
}

/// The dispatches that move `avg` (the generator's average) one step
/// towards `g`: its parameters and each batch norm's running statistics
/// (`every`: G updates every `every`-th step).
fn ema_dispatches(
    ctx: &GpuContext,
    (avg, g): (&GpuNet, &GpuNet),
    cfg: &GanConfig,
    counters: &GpuTensor,
) -> Result<Vec<Dispatch>> {
    let (decay, every) = (cfg.ema_decay, cfg.n_critic as u32);
    let mut out = vec![ema::update(ctx, (&avg.params, &g.params), decay, counters, every)?];
    for (a, v) in avg.bn.iter().zip(&g.bn) {
        if let (Some(a), Some(v)) = (a, v) {
            out.push(ema::update(ctx, (&a.running_mean, &v.running_mean), decay, counters, every)?);
            out.push(ema::update(ctx, (&a.running_var, &v.running_var), decay, counters, every)?);
        }
    }
    Ok(out)
}

/// The Philox stream of a conditional model's fake labels (the latent codes
/// draw stream 0 of the same seed).
pub const FAKE_LABEL_STREAM: u32 = 2;

/// The labels a conditional model trains on, checked: present, and each
/// below `classes`. Errors name the data set.
fn conditioning_labels(data: &ImageSet, classes: usize, model: WhichModel) -> Result<Vec<u8>> {
    let labels = data.labels.as_ref().ok_or_else(|| {
        GanError::data(
            &data.source,
            format!(
                "--model {} needs the images' labels, and this data set has none (a train-labels-idx1-ubyte file beside the images)",
                model.name()
            ),
        )
    })?;
    if let Some((i, l)) = labels.iter().enumerate().find(|(_, &l)| l as usize >= classes) {
        return Err(GanError::data(
            &data.source,
            format!("label {l} of image {i} is not below {classes}, the classes --model {} draws", model.name()),
        ));
    }
    Ok(labels[..data.count].to_vec())
}

/// Ok when `v` is finite and above zero, else an error naming `flag`.
pub(crate) fn positive(flag: &'static str, v: f64) -> Result<()> {
    if v > 0.0 && v.is_finite() {
        Ok(())
    } else {
        Err(GanError::Flag { flag, why: format!("must be greater than zero, got {v}") })
    }
}

/// The step's dispatches in order, and their named ranges.
#[derive(Default)]
struct StepGraph {
    step: Vec<Dispatch>,
    phases: Vec<(&'static str, std::ops::Range<usize>)>,
}

impl StepGraph {
    fn phase(&mut self, name: &'static str, dispatches: Vec<Dispatch>) {
        let start = self.step.len();
        self.step.extend(dispatches);
        self.phases.push((name, start..self.step.len()));
    }
}

/// Buffers and views only the recorded step uses (the dispatches hold them).
struct StepViews {
    /// Rows 0..B of D's input: G's output.
    fake: GpuTensor,
    g_grads: Activations,
    d_grads: Activations,
    /// D's activations and gradients, first B rows: its pass in G's step.
    d_acts_b: Activations,
    d_grads_b: Activations,
    d_prob_grad_b: GpuTensor,
}

impl StepViews {
    /// G's and D's activations (returned: the Gan keeps them) and the rest.
    /// Only the column buffers the chosen kernels read are made (implicit
    /// GEMMs read their patches from the images).
    fn alloc(
        ctx: &GpuContext,
        (g, d): (&GpuNet, &GpuNet),
        (d_input, d_prob_grad): (&GpuTensor, &GpuTensor),
        d_labels: Option<&GpuTensor>,
        variant: Variant,
    ) -> Result<((Activations, Activations), StepViews)> {
        let b = d_input.shape[0] / 2;
        let dim = d_input.shape[1];
        let fake = d_input.view(0, &[b, dim], "fake")?;
        let g_labels = d_labels.map(|l| l.view(0, &[b], "fake labels")).transpose()?;
        let acts_use = ColumnUse { variant, weight_grads: true, gradients: false };
        let grads_use = ColumnUse { gradients: true, ..acts_use };
        let g_acts =
            Activations::alloc_columns(ctx, &g.spec, b, "g", Some(fake.clone()), g_labels.as_ref(), Some(acts_use))?;
        let g_grads = Activations::alloc_columns(ctx, &g.spec, b, "g_grad", None, None, Some(grads_use))?;
        let d_acts = Activations::alloc_columns(ctx, &d.spec, 2 * b, "d", None, d_labels, Some(acts_use))?;
        let d_grads = Activations::alloc_columns(ctx, &d.spec, 2 * b, "d_grad", None, None, Some(grads_use))?;
        // D's pass in G's step computes no weight gradient.
        let d_acts_b =
            d_acts.first_rows(b)?.keeping_read_columns(ctx, &d.spec, ColumnUse { weight_grads: false, ..acts_use });
        let d_grads_b = d_grads.first_rows(b)?;
        let d_prob_grad_b = d_prob_grad.view(0, &[b, 1], "d_prob_grad[:B]")?;
        Ok(((g_acts, d_acts), StepViews { fake, g_grads, d_grads, d_acts_b, d_grads_b, d_prob_grad_b }))
    }
}

/// The GAN resident on the GPU, with its whole training step prebuilt.
pub struct Gan {
    pub cfg: GanConfig,
    /// Image height x width x channels = dim, carried from the data set
    /// into the grids and the checkpoint metadata.
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    pub dim: usize,
    pub g: GpuNet,
    pub d: GpuNet,
    /// The generator's exponential moving average over the steps (weights
    /// and batch-norm running statistics, a horizon growing with the run:
    /// `ema.wgsl`),
    /// written beside each checkpoint; None when `cfg.ema_decay` is 0. A
    /// `GpuNet::forward_copy` of `g`: only run in evaluation mode.
    pub g_ema: Option<GpuNet>,
    /// [steps done, batch within the epoch, divergence flag, 0]; the flag is
    /// raised by Adam and BCE (see `adam::first_nonfinite_step`).
    pub counters: GpuTensor,
    pub metrics: GpuTensor,
    pub z: GpuTensor,
    /// [2B, dim]: rows 0..B = G(z), rows B..2B = the real batch.
    pub d_input: GpuTensor,
    /// The data set's pixels, in shards of whole images (`DataShards`).
    pub data_shards: DataShards,
    /// A conditional model: the data set's labels, u8 packed four to a u32.
    pub labels: Option<GpuTensor>,
    /// A conditional model: [2B] u32, rows 0..B the fake batch's drawn
    /// labels (G's too), rows B..2B the real batch's.
    pub d_labels: Option<GpuTensor>,
    pub perm: GpuTensor,
    pub n_images: usize,
    /// The data the run trains on, recorded in every checkpoint. `Gan::new`
    /// takes the set it is given; a trainer that cut the set to `--limit`
    /// sets the whole set's identity here.
    pub data: DataIdentity,
    pub variant: Variant,
    /// G's activations (training forward), [B, width] per layer.
    pub g_acts: Activations,
    /// D's activations, [2B, width] per layer: rows 0..B are overwritten by
    /// the G step's forward on G(z) with the updated D.
    pub d_acts: Activations,
    /// Gradient of the loss w.r.t. D's output, [2B, 1] (rows 0..B reused by
    /// the G step).
    pub d_prob_grad: GpuTensor,
    /// Gradient of loss_g w.r.t. G(z), [B, dim].
    pub d_fake_grad: GpuTensor,
    /// WGAN-GP's gradient penalty: its buffers (None for other losses).
    pub penalty: Option<Penalty>,
    activation_bytes: u64,
    step: Vec<Dispatch>,
    /// Named, contiguous ranges of `step`, for the benchmark's breakdown.
    pub phases: Vec<(&'static str, std::ops::Range<usize>)>,
    /// The range of `step` that trains G (from D's forward on G(z) through
    /// G's average), left out of a D-only step (`--n-critic`).
    pub g_step: std::ops::Range<usize>,
}

impl Gan {
    /// The GAN on `data` from the given initial parameters: its buffers
    /// (`alloc`), then its step recorded phase by phase (`record_phases`).
    pub fn new(ctx: &GpuContext, cfg: GanConfig, data: &ImageSet, g_params: &[f32], d_params: &[f32]) -> Result<Self> {
        let (mut gan, views) = Self::alloc(ctx, cfg, data, (g_params, d_params))?;
        gan.record_phases(ctx, &views)?;
        Ok(gan)
    }

    /// Every buffer of the step, made once; the step itself is left empty.
    fn alloc(ctx: &GpuContext, cfg: GanConfig, data: &ImageSet, params: (&[f32], &[f32])) -> Result<(Self, StepViews)> {
        let (b, dim) = (cfg.batch, data.dim());
        let variant = Variant::for_adapter(ctx);
        let counters = GpuTensor::zeros(ctx, &[4], "counters");
        let arch = cfg.architecture(data.shape())?;
        let classes = arch.classes();
        let labels = match classes {
            Some(k) => Some(GpuTensor::from_u32(
                ctx,
                &[data.count.div_ceil(4)],
                "dataset labels (u8 x4)",
                &gather::pack_pixels(&conditioning_labels(data, k, cfg.model)?),
            )?),
            None => None,
        };
        let mut g = GpuNet::new(ctx, arch.generator, params.0, &counters, cfg.adam)?;
        g.adam.set_every(ctx, cfg.n_critic as u32);
        let g_ema = match cfg.ema_decay {
            0.0 => None,
            _ => Some(g.forward_copy(ctx, params.0)?),
        };
        let d = GpuNet::new(ctx, arch.discriminator, params.1, &counters, cfg.adam)?;
        let data_shards = DataShards::upload(ctx, &data.pixels, dim, cfg.data_shard_bytes)?;
        let d_input = GpuTensor::zeros(ctx, &[2 * b, dim], "d_input [fake; real]");
        let d_labels = classes.map(|_| GpuTensor::zeros(ctx, &[2 * b], "labels [fake; real]"));
        let d_prob_grad = GpuTensor::zeros(ctx, &[2 * b, 1], "d_prob_grad");
        let (acts, views) = StepViews::alloc(ctx, (&g, &d), (&d_input, &d_prob_grad), d_labels.as_ref(), variant)?;
        let penalty = match cfg.loss.has_gradient_penalty() {
            true => Some(Penalty::alloc(ctx, &d, b, cfg.gp_weight)?),
            false => None,
        };
        let gan = Gan {
            cfg,
            data: DataIdentity::of(data, None),
            height: data.height,
            width: data.width,
            channels: data.channels,
            dim,
            g,
            d,
            g_ema,
            counters,
            metrics: GpuTensor::zeros(ctx, &[METRICS_LEN], "metrics"),
            z: GpuTensor::zeros(ctx, &[b, cfg.latent], "z"),
            d_input,
            data_shards,
            labels,
            d_labels,
            perm: GpuTensor::zeros(ctx, &[data.count], "epoch permutation"),
            n_images: data.count,
            variant,
            g_acts: acts.0,
            d_acts: acts.1,
            d_prob_grad,
            d_fake_grad: GpuTensor::zeros(ctx, &[b, dim], "d_fake_grad"),
            penalty,
            activation_bytes: 0,
            step: Vec::new(),
            phases: Vec::new(),
            g_step: 0..0,
        };
        Ok((gan, views))
    }

    /// Records the step's phases in order (`phases` names them): the data,
    /// G's forward, D's step, G's step (a range a D-only step leaves out),
    /// the counters.
    fn record_phases(&mut self, ctx: &GpuContext, v: &StepViews) -> Result<()> {
        let mut graph = StepGraph::default();
        graph.phase("latent + batch", self.data_phase(ctx)?);
        graph.phase("G forward", gpu_net::forward(ctx, &self.g, &self.z, &self.g_acts, true, self.variant)?);
        self.d_step_phases(ctx, v, &mut graph)?;
        let g_start = graph.step.len();
        self.g_step_phases(ctx, v, &mut graph)?;
        self.g_step = g_start..graph.step.len();
        graph.phase("counters", vec![gather::advance_counters(ctx, &self.counters)?]);
        self.step = graph.step;
        self.phases = graph.phases;
        self.activation_bytes = self.z.bytes() + self.d_input.bytes() + self.g_acts.bytes() - v.fake.bytes()
            + v.g_grads.bytes()
            + self.d_acts.bytes()
            + v.d_grads.bytes()
            + self.d_prob_grad.bytes()
            + self.d_fake_grad.bytes()
            + self.d_labels.as_ref().map_or(0, |l| l.bytes());
        Ok(())
    }

    /// The latent codes, the real batch and (conditional) both batches' labels.
    fn data_phase(&self, ctx: &GpuContext) -> Result<Vec<Dispatch>> {
        let (cfg, b) = (&self.cfg, self.cfg.batch);
        let mut out = vec![rng::normal(
            ctx,
            &self.z,
            rng::RngStream { seed: cfg.seed, stream: 0, draw_base: 0 },
            &self.counters,
        )?];
        for shard in self.data_shards.shards() {
            out.push(gather::gather_batch_shard(ctx, shard, &self.perm, &self.d_input, (b, b), &self.counters)?);
        }
        if let (Some(k), Some(all), Some(dl)) = (self.classes(), &self.labels, &self.d_labels) {
            let fake_labels = dl.view(0, &[b], "fake labels")?;
            let stream = rng::RngStream { seed: cfg.seed, stream: FAKE_LABEL_STREAM, draw_base: 0 };
            out.push(rng::labels(ctx, &fake_labels, k, stream, &self.counters)?);
            out.push(gather::gather_labels(ctx, all, &self.perm, dl, b, b, &self.counters)?);
        }
        Ok(out)
    }

    /// D's dropout masks for its pass in the D step and in the G step.
    fn dropout_masks(&self) -> Result<(DropoutMasks<'_>, DropoutMasks<'_>)> {
        let max_layers = (dropout::G_STEP_STREAM - dropout::D_STEP_STREAM) as usize;
        if self.d.spec.layers.len() > max_layers {
            let why = format!("more than {max_layers} layers: their dropout streams would overlap");
            return Err(GanError::shape("discriminator", why));
        }
        let masks =
            |stream| DropoutMasks { draw: DropoutDraw { seed: self.cfg.seed, stream }, counters: &self.counters };
        Ok((masks(dropout::D_STEP_STREAM), masks(dropout::G_STEP_STREAM)))
    }

    /// D's step on [G(z); x]: forward (batch norm in D, dcgan's, normalises
    /// the fake and the real half apart, as PyTorch's separate passes do),
    /// the loss, backward, Adam.
    fn d_step_phases(&self, ctx: &GpuContext, v: &StepViews, graph: &mut StepGraph) -> Result<()> {
        let (d, b, variant) = (&self.d, self.cfg.batch, self.variant);
        let (masks, _) = self.dropout_masks()?;
        let forward = gpu_net::forward_grouped(ctx, d, (&self.d_input, &self.d_acts), true, variant, 2, Some(masks))?;
        graph.phase("D forward (2B)", forward);
        let d_out = &self.d_acts.layers.last().expect("d output").out;
        let loss = self.cfg.loss.d_step(ctx, (d_out, &self.d_prob_grad), b, &self.metrics, &self.counters)?;
        graph.phase("loss D", loss);
        let backward = Backward {
            groups: 2,
            masks: Some(masks),
            ..Backward::new(d, (&self.d_input, &self.d_acts), (&self.d_prob_grad, &v.d_grads), variant)
        };
        let backward = backward.dispatches(ctx)?;
        graph.phase("D backward", backward);
        if let Some(penalty) = &self.penalty {
            let counters = (&self.metrics, &self.counters);
            for (name, dispatches) in penalty.phases(ctx, d, (&self.d_input, self.cfg.seed), counters, variant)? {
                graph.phase(name, dispatches);
            }
        }
        graph.phase("Adam D", vec![d.adam.dispatch.clone()]);
        Ok(())
    }

    /// G's step through the updated D on the same G(z): D's forward, the
    /// loss, backward through D to G(z) (no weight gradient) and through G,
    /// Adam, and the average.
    fn g_step_phases(&self, ctx: &GpuContext, v: &StepViews, graph: &mut StepGraph) -> Result<()> {
        let (d, variant) = (&self.d, self.variant);
        let (_, masks) = self.dropout_masks()?;
        let forward = gpu_net::forward_grouped(ctx, d, (&v.fake, &v.d_acts_b), true, variant, 1, Some(masks))?;
        graph.phase("D forward (B)", forward);
        let d_out = &v.d_acts_b.layers.last().expect("d output").out;
        graph.phase("loss G", self.cfg.loss.g_step(ctx, (d_out, &v.d_prob_grad_b), &self.metrics, &self.counters)?);
        let backward = Backward {
            param_grads: false,
            d_input: Some(&self.d_fake_grad),
            masks: Some(masks),
            ..Backward::new(d, (&v.fake, &v.d_acts_b), (&v.d_prob_grad_b, &v.d_grads_b), variant)
        };
        let backward = backward.dispatches(ctx)?;
        graph.phase("D backward to G(z)", backward);
        let g_backward = Backward::new(&self.g, (&self.z, &self.g_acts), (&self.d_fake_grad, &v.g_grads), variant)
            .dispatches(ctx)?;
        graph.phase("G backward", g_backward);
        graph.phase("Adam G", vec![self.g.adam.dispatch.clone()]);
        if let Some(avg) = &self.g_ema {
            graph.phase("G average", ema_dispatches(ctx, (avg, &self.g), &self.cfg, &self.counters)?);
        }
        Ok(())
    }

    /// The classes a conditional model draws (None: unconditional).
    pub fn classes(&self) -> Option<usize> {
        self.g.spec.embedding.as_ref().map(|e| e.classes)
    }

    pub fn dispatch_count(&self) -> usize {
        self.step.len()
    }

    /// Records one whole training step, D's and G's, into `enc` (one
    /// compute pass).
    pub fn record_step(&self, enc: &mut wgpu::CommandEncoder) {
        let mut pass =
            enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("train step"), timestamp_writes: None });
        crate::engine::kernels::record_all(&mut pass, &self.step);
    }

    /// Records 1-based global step `step` as the schedule has it
    /// (`GanConfig::trains_g_at`): the whole step, or D's alone (every phase
    /// but G's: the data, G's forward, D's step and the counters).
    pub fn record_step_at(&self, enc: &mut wgpu::CommandEncoder, step: u64) {
        if self.cfg.trains_g_at(step) {
            return self.record_step(enc);
        }
        let mut pass =
            enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("D step"), timestamp_writes: None });
        crate::engine::kernels::record_all(&mut pass, &self.step[..self.g_step.start]);
        crate::engine::kernels::record_all(&mut pass, &self.step[self.g_step.end..]);
    }

    /// Records one step with one compute pass per phase, each writing GPU
    /// timestamps at its start and end into `timer` (2 queries per phase).
    pub fn record_step_timed(&self, enc: &mut wgpu::CommandEncoder, timer: &crate::engine::timing::PassTimer) {
        self.record_ranges_timed(enc, &self.phases, timer);
    }

    /// Records the step with `ranges` (consecutive, covering it) each in a
    /// pass of its own, timed by `timer`'s queries 2i and 2i + 1.
    pub fn record_ranges_timed(
        &self,
        enc: &mut wgpu::CommandEncoder,
        ranges: &[(&str, std::ops::Range<usize>)],
        timer: &crate::engine::timing::PassTimer,
    ) {
        for (i, (name, range)) in ranges.iter().enumerate() {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(name),
                timestamp_writes: Some(timer.writes(i as u32)),
            });
            for d in &self.step[range.clone()] {
                d.record(&mut pass);
            }
        }
    }

    /// The dispatches of one step, in order.
    pub fn dispatches(&self) -> &[Dispatch] {
        &self.step
    }

    pub fn steps_per_epoch(&self) -> usize {
        self.n_images / self.cfg.batch
    }

    /// The shuffled order of epoch `epoch`: a function of the seed and the
    /// epoch only, so a resumed run sees the same batches.
    pub fn permutation(seed: u64, epoch: usize, n: usize) -> Vec<u32> {
        let mut perm: Vec<u32> = (0..n as u32).collect();
        let mut r =
            rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        rand::seq::SliceRandom::shuffle(&mut perm[..], &mut r);
        perm
    }

    /// Uploads epoch `epoch`'s permutation and sets the batch and step counters.
    pub fn start_epoch(&self, ctx: &GpuContext, epoch: usize, batch_in_epoch: usize, steps_done: u64) -> Result<()> {
        self.perm.write_u32(ctx, &Self::permutation(self.cfg.seed, epoch, self.n_images))?;
        self.counters.write_u32(ctx, &[steps_done as u32, batch_in_epoch as u32, 0, 0])
    }

    /// Reads the metrics of the last step (blocking; tests and tools).
    pub fn read_metrics(&self, ctx: &GpuContext) -> Result<StepMetrics> {
        Ok(metrics_from(&self.metrics.read_f32(ctx)?))
    }

    /// The first 1-based global step at which a parameter or a loss went
    /// non-finite since the epoch started, if any (blocking read of the
    /// counters' flag).
    pub fn first_nonfinite_step(&self, ctx: &GpuContext) -> Result<Option<u64>> {
        Ok(crate::engine::kernels::adam::first_nonfinite_step(&self.counters.read_u32(ctx)?))
    }

    /// The generator's and the discriminator's checkpoint files as the CLI
    /// writes them after epoch `epoch` (PyTorch state_dict names, metadata:
    /// epoch, steps done, image shape, latent size, layers).
    pub async fn checkpoint_files_async(
        &self,
        ctx: &GpuContext,
        epoch: usize,
        steps_done: u64,
    ) -> Result<(Vec<u8>, Vec<u8>)> {
        let g = self.generator_file_async(ctx, &self.g, epoch, steps_done, None).await?;
        // D's batch norms (dcgan) update three times a step, as in
        // PyTorch's example: the real half, the fake half, the G step's pass.
        let d_bn = self.d.read_bn_async(ctx, 3 * steps_done as i64).await?;
        let d = checkpoint::network_bytes(
            &self.d.spec,
            &self.d.params.read_f32_async(ctx).await?,
            &d_bn,
            self.checkpoint_meta(&self.d.spec, epoch, steps_done),
        )?;
        Ok((g, d))
    }

    /// The averaged generator's checkpoint file after epoch `epoch` (as
    /// `checkpoint_files_async`'s, with its decay in the metadata); None
    /// without an average.
    pub async fn averaged_generator_file_async(
        &self,
        ctx: &GpuContext,
        epoch: usize,
        steps_done: u64,
    ) -> Result<Option<Vec<u8>>> {
        match &self.g_ema {
            Some(avg) => {
                Ok(Some(self.generator_file_async(ctx, avg, epoch, steps_done, Some(self.cfg.ema_decay)).await?))
            }
            None => Ok(None),
        }
    }

    async fn generator_file_async(
        &self,
        ctx: &GpuContext,
        net: &GpuNet,
        epoch: usize,
        steps_done: u64,
        ema_decay: Option<f32>,
    ) -> Result<Vec<u8>> {
        let mut meta = self.checkpoint_meta(&net.spec, epoch, steps_done);
        if let Some(decay) = ema_decay {
            meta.push(("ema_decay".to_string(), decay.to_string()));
        }
        let bn = net.read_bn_async(ctx, steps_done as i64).await?;
        checkpoint::network_bytes(&net.spec, &net.params.read_f32_async(ctx).await?, &bn, meta)
    }

    /// A checkpoint's metadata: epoch, steps done, image shape, latent
    /// size, layers, and the data's identity (`DataIdentity::meta`).
    fn checkpoint_meta(&self, net: &NetSpec, epoch: usize, steps_done: u64) -> Vec<(String, String)> {
        [
            ("epoch", epoch.to_string()),
            ("steps_done", steps_done.to_string()),
            ("image_height", self.height.to_string()),
            ("image_width", self.width.to_string()),
            ("latent_size", self.cfg.latent.to_string()),
            ("layers", net.layers.len().to_string()),
        ]
        .into_iter()
        // Grey checkpoints record no channels (as before colour existed).
        .chain((self.channels != 1).then(|| ("image_channels", self.channels.to_string())))
        .map(|(k, v)| (k.to_string(), v))
        .chain(self.data.meta())
        .collect()
    }

    /// The images this GAN makes and learns from.
    pub fn shape(&self) -> ImageShape {
        ImageShape { height: self.height, width: self.width, channels: self.channels }
    }

    /// Bytes on the GPU: (parameters, gradients, moments, activations, dataset).
    pub fn memory(&self) -> [(&'static str, u64); 5] {
        let (gp, gg, gm, gbn) = self.g.memory();
        let (dp, dg, dm, dbn) = self.d.memory();
        let average = self.g_ema.as_ref().map_or(0, GpuNet::forward_copy_bytes);
        [
            ("parameters", gp + dp + gbn + dbn + average),
            ("gradients", gg + dg),
            ("Adam moments", gm + dm),
            ("activations", self.activation_bytes),
            ("dataset", self.data_shards.bytes() + self.perm.bytes() + self.labels.as_ref().map_or(0, |l| l.bytes())),
        ]
    }
}

pub fn metrics_from(m: &[f32]) -> StepMetrics {
    StepMetrics { loss_d: m[0], d_real: m[1], d_fake: m[2], loss_g: m[3] }
}

/// The generator in evaluation mode (running statistics) on `n` latent
/// codes (and, for a conditional generator, `n` labels).
pub struct Sampler {
    pub n: usize,
    z: GpuTensor,
    labels: Option<GpuTensor>,
    acts: Activations,
    dispatches: Vec<Dispatch>,
}

impl Sampler {
    pub fn new(ctx: &GpuContext, g: &GpuNet, n: usize) -> Result<Self> {
        let z = GpuTensor::zeros(ctx, &[n, g.spec.input_dim()], "sample z");
        let labels = g.spec.embedding.as_ref().map(|_| GpuTensor::zeros(ctx, &[n], "sample labels"));
        let acts = Activations::alloc_labeled(ctx, &g.spec, n, "sample", None, labels.as_ref())?;
        let dispatches = gpu_net::forward(ctx, g, &z, &acts, false, Variant::for_adapter(ctx))?;
        Ok(Sampler { n, z, labels, acts, dispatches })
    }

    /// Whether the generator takes a class per sample.
    pub fn is_conditional(&self) -> bool {
        self.labels.is_some()
    }

    /// Generator outputs in [-1, 1], [n, dim] flattened (blocking), for an
    /// unconditional generator.
    pub fn run(&self, ctx: &GpuContext, latent: &[f32]) -> Result<Vec<f32>> {
        pollster::block_on(self.run_labeled_async(ctx, latent, None))
    }

    /// `run` with each sample's class (`labels`, n of them), which a
    /// conditional generator needs and an unconditional one refuses.
    pub fn run_labeled(&self, ctx: &GpuContext, latent: &[f32], labels: Option<&[u32]>) -> Result<Vec<f32>> {
        pollster::block_on(self.run_labeled_async(ctx, latent, labels))
    }

    /// `run_labeled` without blocking (a page awaits it).
    pub async fn run_labeled_async(
        &self,
        ctx: &GpuContext,
        latent: &[f32],
        labels: Option<&[u32]>,
    ) -> Result<Vec<f32>> {
        match (&self.labels, labels) {
            (Some(t), Some(l)) => {
                if l.len() != self.n {
                    return Err(GanError::shape("sample labels", format!("{} labels for {} samples", l.len(), self.n)));
                }
                t.write_u32(ctx, l)?
            }
            (None, None) => {}
            (Some(_), None) => {
                return Err(GanError::shape("generator", "a conditional generator needs a class for each sample"))
            }
            (None, Some(_)) => return Err(GanError::shape("generator", "an unconditional generator takes no classes")),
        }
        self.z.write_f32(ctx, latent)?;
        let refs: Vec<&Dispatch> = self.dispatches.iter().collect();
        crate::engine::kernels::run(ctx, &refs)?;
        self.acts.layers.last().expect("output").out.read_f32_async(ctx).await
    }
}

/// The 25 latent codes of the per-epoch grids.
pub fn fixed_latent(latent: usize) -> Vec<f32> {
    fixed_codes(GRID_SAMPLES, latent)
}

/// The first `n` codes of the fixed latent stream (seed FIXED_LATENT_SEED).
fn fixed_codes(n: usize, latent: usize) -> Vec<f32> {
    rng::cpu_normal(n * latent, rng::RngStream { seed: FIXED_LATENT_SEED, stream: 1, draw_base: 0 }, 0)
}

/// What an epoch grid is drawn from: the latent codes, image after image,
/// and a conditional model's classes.
#[derive(Clone, Debug, PartialEq)]
pub struct GridInputs {
    pub latents: Vec<f32>,
    pub labels: Option<Vec<u32>>,
}

impl GridInputs {
    /// An unconditional model: the 25 fixed codes (a 5x5 grid). A
    /// conditional one: a row per class, `classes` columns, column c the
    /// fixed code c in every row (the same style, each class).
    pub fn fixed(latent: usize, classes: Option<usize>) -> Self {
        match classes {
            None => GridInputs { latents: fixed_latent(latent), labels: None },
            Some(k) => {
                let codes = fixed_codes(k, latent);
                GridInputs {
                    latents: (0..k).flat_map(|_| codes.iter().copied()).collect(),
                    labels: Some((0..k * k).map(|i| (i / k) as u32).collect()),
                }
            }
        }
    }

    pub fn len(&self) -> usize {
        self.labels.as_ref().map_or(GRID_SAMPLES, Vec::len)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub fn images_from_outputs(out: &[f32], dim: usize) -> Vec<Vec<u8>> {
    out.chunks(dim).map(|c| c.iter().map(|&g| images::to_pixel(g)).collect()).collect()
}

/// A data set's pixels on the GPU as shards of whole images, each at most
/// the device's largest storage binding (or `GanConfig::data_shard_bytes`):
/// one buffer when the set fits one, as on MNIST. The batch gather runs
/// once per shard, each filling the rows whose images it holds, so the
/// batch is the same bytes however the set is held.
pub struct DataShards {
    /// (pixels packed four to a u32, first image, images).
    pub parts: Vec<(GpuTensor, usize, usize)>,
}

impl DataShards {
    /// Images a shard of `dim`-byte images holds on `ctx` with `cap`.
    pub fn images_per_shard(ctx: &GpuContext, dim: usize, cap: Option<u64>) -> usize {
        let l = &ctx.limits;
        let bytes = (l.max_storage_buffer_binding_size).min(l.max_buffer_size).min(cap.unwrap_or(u64::MAX)) & !3;
        ((bytes / dim.max(1) as u64) as usize).max(1)
    }

    /// Uploads `pixels`, images of `dim` bytes one after another.
    pub fn upload(ctx: &GpuContext, pixels: &[u8], dim: usize, cap: Option<u64>) -> Result<Self> {
        let (images, per) = (pixels.len() / dim.max(1), Self::images_per_shard(ctx, dim, cap));
        let mut parts = Vec::new();
        for first in (0..images).step_by(per) {
            let count = per.min(images - first);
            let bytes = &pixels[first * dim..(first + count) * dim];
            let label = format!("dataset pixels (u8 x4), images {first}..{}", first + count);
            let t = GpuTensor::from_u32(ctx, &[bytes.len().div_ceil(4)], &label, &gather::pack_pixels(bytes))?;
            parts.push((t, first, count));
        }
        Ok(DataShards { parts })
    }

    pub fn shards(&self) -> impl Iterator<Item = gather::DataShard<'_>> {
        self.parts.iter().map(|(pixels, first, count)| gather::DataShard { pixels, first: *first, count: *count })
    }

    pub fn bytes(&self) -> u64 {
        self.parts.iter().map(|p| p.0.bytes()).sum()
    }

    /// "one GPU buffer" or "3 GPU buffers of up to 100,000 images".
    pub fn describe(&self) -> String {
        match self.parts.as_slice() {
            [_] => "one GPU buffer".to_string(),
            parts => {
                format!("{} GPU buffers of up to {} images", parts.len(), parts.iter().map(|p| p.2).max().unwrap_or(0))
            }
        }
    }
}
