//! The GAN on the GPU and its training loop.
//!
//! One training step, recorded into one compute pass of one submission:
//!   z ~ N(0,1) [B, latent] (Philox, draw = step counter);
//!   real batch gathered into rows B..2B of the discriminator input;
//!   G forward (training mode) writes G(z) into rows 0..B;
//!   D forward on [G(z); x] (2B rows; D has no batch norm, so one pass over
//!   both halves equals two), BCE with targets [0; 1] gives loss_d, D
//!   backward, Adam on D;
//!   D forward on G(z) with the updated D, BCE with target 1 gives loss_g,
//!   backward through D (input gradient only) and G, Adam on G;
//!   step counters advance.
//! G's forward runs once per step (its batch-norm running statistics move
//! once per step, as in PyTorch's DCGAN loop that reuses `fake`).
//! The host reads back only the 8-float metrics buffer every --log-every
//! steps, through a ring of staging buffers mapped a step or more later.

use crate::checkpoint::{self, Loaded, OwnedTensor};
use crate::context::GpuContext;
use crate::data::ImageSet;
use crate::error::{GanError, Result};
use crate::images::{self, LossRow};
use crate::kernels::adam::AdamConfig;
use crate::kernels::matmul::Variant;
use crate::kernels::{bce, gather, rng, Dispatch};
use crate::model::{self, BnStats, NetSpec, StepMetrics};
use crate::network::{self, Activations, GpuNet};
use crate::tensor::GpuTensor;
use rand::SeedableRng;
use std::collections::VecDeque;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Seed of the 25 fixed latent codes of the per-epoch grids.
pub const FIXED_LATENT_SEED: u64 = 1234;
pub const GRID_SAMPLES: usize = 25;
const STATE_FORMAT: &str = "gan-wgpu-state-1";
/// Metrics buffer: [loss_d, D(x), D(G(z)), loss_g, D(G(z)) after the D step, unused x3].
const METRICS_LEN: usize = 8;
/// A readback slot: the metrics, then the 4 step counters (divergence flag).
const READBACK_BYTES: u64 = (METRICS_LEN * 4 + 16) as u64;

/// The hyper-parameters that shape the GPU graph.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GanConfig {
    pub batch: usize,
    pub latent: usize,
    pub seed: u64,
    pub adam: AdamConfig,
}

/// The GAN resident on the GPU, with its whole training step prebuilt.
pub struct Gan {
    pub cfg: GanConfig,
    /// Image height x width = dim, carried from the data set into the grids
    /// and the checkpoint metadata.
    pub height: usize,
    pub width: usize,
    pub dim: usize,
    pub g: GpuNet,
    pub d: GpuNet,
    /// [steps done, batch within the epoch, divergence flag, 0]; the flag is
    /// raised by Adam and BCE (see `adam::first_nonfinite_step`).
    pub counters: GpuTensor,
    pub metrics: GpuTensor,
    pub z: GpuTensor,
    /// [2B, dim]: rows 0..B = G(z), rows B..2B = the real batch.
    pub d_input: GpuTensor,
    pub pixels: GpuTensor,
    pub perm: GpuTensor,
    pub n_images: usize,
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
    activation_bytes: u64,
    step: Vec<Dispatch>,
    /// Named, contiguous ranges of `step`, for the benchmark's breakdown.
    pub phases: Vec<(&'static str, std::ops::Range<usize>)>,
}

impl Gan {
    pub fn new(ctx: &GpuContext, cfg: GanConfig, data: &ImageSet, g_params: &[f32], d_params: &[f32]) -> Result<Self> {
        let (b, dim) = (cfg.batch, data.dim());
        let variant = Variant::for_adapter(ctx);
        let counters = GpuTensor::zeros(ctx, &[4], "counters");
        let metrics = GpuTensor::zeros(ctx, &[METRICS_LEN], "metrics");
        let g = GpuNet::new(ctx, model::generator_spec(cfg.latent, dim), g_params, &counters, cfg.adam)?;
        let d = GpuNet::new(ctx, model::discriminator_spec(dim), d_params, &counters, cfg.adam)?;
        let pixels = GpuTensor::from_u32(
            ctx,
            &[data.pixels.len().div_ceil(4)],
            "dataset pixels (u8 x4)",
            &gather::pack_pixels(&data.pixels),
        )?;
        let perm = GpuTensor::zeros(ctx, &[data.count], "epoch permutation");
        let z = GpuTensor::zeros(ctx, &[b, cfg.latent], "z");
        let d_input = GpuTensor::zeros(ctx, &[2 * b, dim], "d_input [fake; real]");
        let fake = d_input.view(0, &[b, dim], "fake")?;
        let g_acts = Activations::alloc(ctx, &g.spec, b, "g", Some(fake.clone()))?;
        let g_grads = Activations::alloc(ctx, &g.spec, b, "g_grad", None)?;
        let d_acts = Activations::alloc(ctx, &d.spec, 2 * b, "d", None)?;
        let d_grads = Activations::alloc(ctx, &d.spec, 2 * b, "d_grad", None)?;
        let d_prob_grad = GpuTensor::zeros(ctx, &[2 * b, 1], "d_prob_grad");
        let d_fake_grad = GpuTensor::zeros(ctx, &[b, dim], "d_fake_grad");
        let d_acts_b = d_acts.first_rows(b)?;
        let d_grads_b = d_grads.first_rows(b)?;
        let d_prob_grad_b = d_prob_grad.view(0, &[b, 1], "d_prob_grad[:B]")?;

        let mut step = Vec::new();
        let mut phases = Vec::new();
        let mut phase = |name: &'static str, step: &mut Vec<Dispatch>, ds: Vec<Dispatch>| {
            let start = step.len();
            step.extend(ds);
            phases.push((name, start..step.len()));
        };
        let data_phase = vec![
            rng::normal(ctx, &z, rng::RngStream { seed: cfg.seed, stream: 0, draw_base: 0 }, &counters)?,
            gather::gather_batch(ctx, &pixels, &perm, &d_input, b, b, &counters)?,
        ];
        phase("latent + batch", &mut step, data_phase);
        phase("G forward", &mut step, network::forward(ctx, &g, &z, &g_acts, true, variant)?);
        // Discriminator step on [fake; real].
        phase("D forward (2B)", &mut step, network::forward(ctx, &d, &d_input, &d_acts, true, variant)?);
        let d_prob = &d_acts.layers.last().expect("d output").out;
        phase("loss D", &mut step, bce::forward_backward(ctx, d_prob, &d_prob_grad, b, &metrics, 0, &counters)?);
        phase(
            "D backward",
            &mut step,
            network::backward(ctx, &d, &d_input, &d_acts, &d_grads, &d_prob_grad, true, None, variant)?,
        );
        phase("Adam D", &mut step, vec![d.adam.dispatch.clone()]);
        // Generator step through the updated discriminator.
        phase("D forward (B)", &mut step, network::forward(ctx, &d, &fake, &d_acts_b, true, variant)?);
        let d_prob_b = &d_acts_b.layers.last().expect("d output").out;
        phase("loss G", &mut step, bce::forward_backward(ctx, d_prob_b, &d_prob_grad_b, 0, &metrics, 3, &counters)?);
        phase(
            "D backward to G(z)",
            &mut step,
            network::backward(
                ctx,
                &d,
                &fake,
                &d_acts_b,
                &d_grads_b,
                &d_prob_grad_b,
                false,
                Some(&d_fake_grad),
                variant,
            )?,
        );
        phase(
            "G backward",
            &mut step,
            network::backward(ctx, &g, &z, &g_acts, &g_grads, &d_fake_grad, true, None, variant)?,
        );
        phase("Adam G", &mut step, vec![g.adam.dispatch.clone()]);
        phase("counters", &mut step, vec![gather::advance_counters(ctx, &counters)?]);

        let activation_bytes = z.bytes() + d_input.bytes() + g_acts.bytes() - fake.bytes()
            + g_grads.bytes()
            + d_acts.bytes()
            + d_grads.bytes()
            + d_prob_grad.bytes()
            + d_fake_grad.bytes();
        Ok(Gan {
            cfg,
            height: data.height,
            width: data.width,
            dim,
            g,
            d,
            counters,
            metrics,
            z,
            d_input,
            pixels,
            perm,
            n_images: data.count,
            variant,
            g_acts,
            d_acts,
            d_prob_grad,
            d_fake_grad,
            activation_bytes,
            step,
            phases,
        })
    }

    pub fn dispatch_count(&self) -> usize {
        self.step.len()
    }

    /// Records one training step into `enc` (one compute pass).
    pub fn record_step(&self, enc: &mut wgpu::CommandEncoder) {
        let mut pass =
            enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("train step"), timestamp_writes: None });
        crate::kernels::record_all(&mut pass, &self.step);
    }

    /// Records one step with one compute pass per phase, each writing GPU
    /// timestamps at its start and end into `timer` (2 queries per phase).
    pub fn record_step_timed(&self, enc: &mut wgpu::CommandEncoder, timer: &crate::bench::PassTimer) {
        self.record_ranges_timed(enc, &self.phases, timer);
    }

    /// Records the step with `ranges` (consecutive, covering it) each in a
    /// pass of its own, timed by `timer`'s queries 2i and 2i + 1.
    pub fn record_ranges_timed(
        &self,
        enc: &mut wgpu::CommandEncoder,
        ranges: &[(&str, std::ops::Range<usize>)],
        timer: &crate::bench::PassTimer,
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
        Ok(crate::kernels::adam::first_nonfinite_step(&self.counters.read_u32(ctx)?))
    }

    /// Bytes on the GPU: (parameters, gradients, moments, activations, dataset).
    pub fn memory(&self) -> [(&'static str, u64); 5] {
        let (gp, gg, gm, gbn) = self.g.memory();
        let (dp, dg, dm, _) = self.d.memory();
        [
            ("parameters", gp + dp + gbn),
            ("gradients", gg + dg),
            ("Adam moments", gm + dm),
            ("activations", self.activation_bytes),
            ("dataset", self.pixels.bytes() + self.perm.bytes()),
        ]
    }
}

pub fn metrics_from(m: &[f32]) -> StepMetrics {
    StepMetrics { loss_d: m[0], d_real: m[1], d_fake: m[2], loss_g: m[3] }
}

/// The generator in evaluation mode (running statistics) on `n` latent codes.
pub struct Sampler {
    pub n: usize,
    z: GpuTensor,
    acts: Activations,
    dispatches: Vec<Dispatch>,
}

impl Sampler {
    pub fn new(ctx: &GpuContext, g: &GpuNet, n: usize) -> Result<Self> {
        let z = GpuTensor::zeros(ctx, &[n, g.spec.input_dim()], "sample z");
        let acts = Activations::alloc(ctx, &g.spec, n, "sample", None)?;
        let dispatches = network::forward(ctx, g, &z, &acts, false, Variant::for_adapter(ctx))?;
        Ok(Sampler { n, z, acts, dispatches })
    }

    /// Generator outputs in [-1, 1], [n, dim] flattened.
    pub fn run(&self, ctx: &GpuContext, latent: &[f32]) -> Result<Vec<f32>> {
        self.z.write_f32(ctx, latent)?;
        let refs: Vec<&Dispatch> = self.dispatches.iter().collect();
        crate::kernels::run(ctx, &refs)?;
        self.acts.layers.last().expect("output").out.read_f32(ctx)
    }
}

/// The 25 latent codes of the per-epoch grids.
pub fn fixed_latent(latent: usize) -> Vec<f32> {
    rng::cpu_normal(GRID_SAMPLES * latent, rng::RngStream { seed: FIXED_LATENT_SEED, stream: 1, draw_base: 0 }, 0)
}

pub fn images_from_outputs(out: &[f32], dim: usize) -> Vec<Vec<u8>> {
    out.chunks(dim).map(|c| c.iter().map(|&g| images::to_pixel(g)).collect()).collect()
}

#[derive(Clone, Debug)]
pub struct TrainConfig {
    pub epochs: usize,
    pub gan: GanConfig,
    pub log_every: u64,
    pub out: PathBuf,
    pub resume: Option<PathBuf>,
    /// Train on the first N images only (quick runs and tests).
    pub limit: Option<usize>,
    /// Stop (as if interrupted) after this many steps in this run; tests.
    pub stop_after_steps: Option<u64>,
    /// After this many steps of this run, say so on stdout and wait for an
    /// interrupt (tests: a signal at a known step).
    pub pause_after_steps: Option<u64>,
    pub quiet: bool,
}

/// Where a run stands; saved in the state file.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// 0-based epoch in progress (== epochs completed when batch_in_epoch is 0).
    pub epoch: usize,
    pub batch_in_epoch: usize,
    pub steps_done: u64,
}

pub struct RunSummary {
    pub progress: Progress,
    pub losses: Vec<LossRow>,
    pub interrupted: bool,
}

fn state_path(out: &Path, epoch: usize, batch: usize) -> PathBuf {
    out.join("checkpoints").join(format!("state_{epoch:04}_{batch:05}.safetensors"))
}

/// (epoch, batch) of a training-state file name, state_{epoch}_{batch}.safetensors.
fn state_position(name: &str) -> Option<(u64, u64)> {
    let (epoch, batch) = name.strip_prefix("state_")?.strip_suffix(".safetensors")?.split_once('_')?;
    Some((epoch.parse().ok()?, batch.parse().ok()?))
}

/// The training-state files (state_*.safetensors) in `dir`, oldest first:
/// by epoch, then batch, as numbers (past epoch 9999 the names no longer
/// sort as strings).
pub fn state_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<((u64, u64), PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| Some((state_position(&p.file_name()?.to_string_lossy())?, p)))
        .collect();
    v.sort();
    Ok(v.into_iter().map(|(_, p)| p).collect())
}

/// The output folder of the run that `resume` (a run folder, its
/// checkpoints folder, or a state file) belongs to.
pub fn run_dir_of(resume: &Path) -> PathBuf {
    let dir = if resume.is_file() { resume.parent().unwrap_or(Path::new(".")) } else { resume };
    if dir.file_name().is_some_and(|n| n == "checkpoints") && !dir.join("checkpoints").is_dir() {
        dir.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Newest training-state file in DIR/checkpoints (or DIR itself).
pub fn find_latest_state(dir: &Path) -> Result<PathBuf> {
    if dir.is_file() {
        return Ok(dir.to_path_buf());
    }
    let ck = if dir.join("checkpoints").is_dir() { dir.join("checkpoints") } else { dir.to_path_buf() };
    let mut states = state_files(&ck).map_err(|e| GanError::io(&ck, e))?;
    states.pop().ok_or_else(|| GanError::Checkpoint {
        path: ck,
        why: "no training state (state_*.safetensors) to resume from".into(),
    })
}

struct SavedState {
    g_params: Vec<f32>,
    d_params: Vec<f32>,
    g_m: Vec<f32>,
    g_v: Vec<f32>,
    d_m: Vec<f32>,
    d_v: Vec<f32>,
    g_bn: Vec<Option<BnStats>>,
    progress: Progress,
}

fn save_state(ctx: &GpuContext, gan: &Gan, cfg: &TrainConfig, p: &Progress) -> Result<PathBuf> {
    let mut tensors = Vec::new();
    for (prefix, net) in [("g", &gan.g), ("d", &gan.d)] {
        for (name, t) in [("params", &net.params), ("m", &net.m), ("v", &net.v)] {
            tensors.push((format!("{prefix}.{name}"), OwnedTensor::f32(vec![t.numel()], &t.read_f32(ctx)?)));
        }
    }
    for (i, bn) in gan.g.bn.iter().enumerate() {
        if let Some(b) = bn {
            tensors.push((
                format!("g.bn{i}.running_mean"),
                OwnedTensor::f32(vec![b.running_mean.numel()], &b.running_mean.read_f32(ctx)?),
            ));
            tensors.push((
                format!("g.bn{i}.running_var"),
                OwnedTensor::f32(vec![b.running_var.numel()], &b.running_var.read_f32(ctx)?),
            ));
        }
    }
    let g = &cfg.gan;
    let meta: Vec<(String, String)> = [
        ("format", STATE_FORMAT.to_string()),
        ("epoch", p.epoch.to_string()),
        ("batch_in_epoch", p.batch_in_epoch.to_string()),
        ("steps_done", p.steps_done.to_string()),
        ("seed", g.seed.to_string()),
        ("batch_size", g.batch.to_string()),
        ("latent_size", g.latent.to_string()),
        ("image_dim", gan.dim.to_string()),
        ("n_images", gan.n_images.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let path = state_path(&cfg.out, p.epoch, p.batch_in_epoch);
    checkpoint::save_safetensors(&path, &tensors, &meta)?;
    // Keep the two newest states; older ones only cost disk.
    if let Ok(old) = state_files(&cfg.out.join("checkpoints")) {
        let keep = old.len().saturating_sub(2);
        for q in &old[..keep] {
            let _ = std::fs::remove_file(q);
        }
    }
    Ok(path)
}

fn load_state(path: &Path, cfg: &TrainConfig, dim: usize, n_images: usize) -> Result<SavedState> {
    let f = Loaded::open(path)?;
    let meta = f.metadata()?;
    let bad = |why: String| GanError::Checkpoint { path: path.into(), why };
    if meta.get("format").map(String::as_str) != Some(STATE_FORMAT) {
        return Err(bad(format!("not a gan-wgpu training state (format {:?})", meta.get("format"))));
    }
    let num = |k: &str| -> Result<u64> {
        meta.get(k).and_then(|v| v.parse().ok()).ok_or_else(|| bad(format!("metadata '{k}' missing or not a number")))
    };
    for (k, want) in [
        ("batch_size", cfg.gan.batch as u64),
        ("latent_size", cfg.gan.latent as u64),
        ("image_dim", dim as u64),
        ("n_images", n_images as u64),
        ("seed", cfg.gan.seed),
    ] {
        let have = num(k)?;
        if have != want {
            return Err(bad(format!(
                "the run was started with {k} {have}; this run has {want} (pass the same flags to resume)"
            )));
        }
    }
    let g_spec = model::generator_spec(cfg.gan.latent, dim);
    let gl = g_spec.layout().len;
    let dl = model::discriminator_spec(dim).layout().len;
    let mut g_bn = Vec::new();
    for (i, l) in g_spec.layers.iter().enumerate() {
        g_bn.push(match l.bn {
            Some(_) => Some(BnStats {
                running_mean: f.f32(&format!("g.bn{i}.running_mean"), &[l.out])?,
                running_var: f.f32(&format!("g.bn{i}.running_var"), &[l.out])?,
                num_batches_tracked: num("steps_done")? as i64,
            }),
            None => None,
        });
    }
    Ok(SavedState {
        g_params: f.f32("g.params", &[gl])?,
        d_params: f.f32("d.params", &[dl])?,
        g_m: f.f32("g.m", &[gl])?,
        g_v: f.f32("g.v", &[gl])?,
        d_m: f.f32("d.m", &[dl])?,
        d_v: f.f32("d.v", &[dl])?,
        g_bn,
        progress: Progress {
            epoch: num("epoch")? as usize,
            batch_in_epoch: num("batch_in_epoch")? as usize,
            steps_done: num("steps_done")?,
        },
    })
}

/// The rows of a losses.csv up to `up_to_step` (a missing file has none).
fn read_losses_csv(path: &Path, up_to_step: u64) -> Result<Vec<LossRow>> {
    let Some(text) = checkpoint::read_text_if_exists(path)? else {
        return Ok(Vec::new());
    };
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            if f.len() != 7 {
                return None;
            }
            Some(LossRow {
                epoch: f[0].parse().ok()?,
                step: f[1].parse().ok()?,
                loss_d: f[2].parse().ok()?,
                loss_g: f[3].parse().ok()?,
                d_real: f[4].parse().ok()?,
                d_fake: f[5].parse().ok()?,
                seconds: f[6].parse().ok()?,
            })
        })
        .filter(|r| r.step <= up_to_step)
        .collect())
}

fn losses_csv(rows: &[LossRow]) -> String {
    let mut s = String::from("epoch,step,loss_d,loss_g,d_x,d_g_z,seconds\n");
    for r in rows {
        // Shortest round-trip form: a resumed run reads these back bit-exact.
        s.push_str(&format!(
            "{},{},{},{},{},{},{:.6}\n",
            r.epoch, r.step, r.loss_d, r.loss_g, r.d_real, r.d_fake, r.seconds
        ));
    }
    s
}

/// Staging buffers for the metrics, mapped asynchronously a step or more
/// after the copy so the host never stalls the GPU.
struct Readback {
    bufs: Vec<wgpu::Buffer>,
    states: Vec<Arc<AtomicU8>>,
    queue: VecDeque<(usize, usize, usize, u64)>, // (slot, epoch, batch, step)
    next: usize,
}

const PENDING: u8 = 0;
const READY: u8 = 1;
const FAILED: u8 = 2;
const IDLE: u8 = 3;

impl Readback {
    fn new(ctx: &GpuContext, slots: usize) -> Self {
        let bufs = (0..slots)
            .map(|i| {
                ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("metrics staging {i}")),
                    size: READBACK_BYTES,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
        Readback {
            bufs,
            states: (0..slots).map(|_| Arc::new(AtomicU8::new(IDLE))).collect(),
            queue: VecDeque::new(),
            next: 0,
        }
    }

    fn slot_free(&self) -> bool {
        self.states[self.next].load(Ordering::Acquire) == IDLE
    }

    /// Records the copy of the metrics, then the counters (with the
    /// divergence flag), into the next slot.
    fn record_copy(&self, enc: &mut wgpu::CommandEncoder, metrics: &GpuTensor, counters: &GpuTensor) {
        let metrics_bytes = (METRICS_LEN * 4) as u64;
        enc.copy_buffer_to_buffer(&metrics.buffer, metrics.offset, &self.bufs[self.next], 0, metrics_bytes);
        enc.copy_buffer_to_buffer(
            &counters.buffer,
            counters.offset,
            &self.bufs[self.next],
            metrics_bytes,
            READBACK_BYTES - metrics_bytes,
        );
    }

    /// After the submit: start mapping the slot just copied into.
    fn start_map(&mut self, epoch: usize, batch: usize, step: u64) {
        let slot = self.next;
        let state = self.states[slot].clone();
        state.store(PENDING, Ordering::Release);
        self.bufs[slot].slice(..).map_async(wgpu::MapMode::Read, move |r| {
            state.store(if r.is_ok() { READY } else { FAILED }, Ordering::Release);
        });
        self.queue.push_back((slot, epoch, batch, step));
        self.next = (self.next + 1) % self.bufs.len();
    }

    /// Pops every finished readback, in order: (epoch, batch, step, metrics).
    fn drain(&mut self, ctx: &GpuContext) -> Result<Vec<StepReading>> {
        let _ = ctx.device.poll(wgpu::PollType::Poll);
        let mut out = Vec::new();
        while let Some(&(slot, epoch, batch, step)) = self.queue.front() {
            match self.states[slot].load(Ordering::Acquire) {
                READY => {
                    let view = self.bufs[slot]
                        .slice(..)
                        .get_mapped_range()
                        .map_err(|e| GanError::Device { during: "reading losses".into(), message: e.to_string() })?;
                    let words: Vec<u32> = bytemuck::cast_slice(&view[..]).to_vec();
                    drop(view);
                    self.bufs[slot].unmap();
                    self.states[slot].store(IDLE, Ordering::Release);
                    self.queue.pop_front();
                    let metrics: Vec<f32> = bytemuck::cast_slice(&words[..METRICS_LEN]).to_vec();
                    out.push(StepReading {
                        epoch,
                        batch,
                        step,
                        metrics: metrics_from(&metrics),
                        first_nonfinite: crate::kernels::adam::first_nonfinite_step(&words[METRICS_LEN..]),
                    });
                }
                FAILED => {
                    ctx.check_health("reading losses")?;
                    return Err(GanError::Device {
                        during: "reading losses".into(),
                        message: "mapping the staging buffer failed".into(),
                    });
                }
                _ => break,
            }
        }
        Ok(out)
    }
}

/// Submits training steps the way the trainer does: one submission a step,
/// at most two steps queued (memory stays flat, timings stay honest), and the
/// metrics of tagged steps copied into a ring of staging buffers and read a
/// step or more later, so the host never stalls the GPU to read a loss.
pub struct StepRunner {
    readback: Readback,
    in_flight: VecDeque<wgpu::SubmissionIndex>,
}

/// What a read-back step says.
#[derive(Clone, Copy, Debug)]
pub struct StepReading {
    /// 0-based epoch, 0-based batch within it, 1-based global step.
    pub epoch: usize,
    pub batch: usize,
    pub step: u64,
    pub metrics: StepMetrics,
    /// The divergence flag as it stood after this step: the first global
    /// step (1-based) at which the model went non-finite this epoch.
    pub first_nonfinite: Option<u64>,
}

impl StepRunner {
    pub fn new(ctx: &GpuContext) -> Self {
        StepRunner { readback: Readback::new(ctx, 4), in_flight: VecDeque::new() }
    }

    /// Submits one step; with `tag` = (epoch, batch, step) its metrics are
    /// copied out. Returns the readings that have arrived since the last call.
    pub fn step(&mut self, ctx: &GpuContext, gan: &Gan, tag: Option<(usize, usize, u64)>) -> Result<Vec<StepReading>> {
        let mut rows = Vec::new();
        if tag.is_some() && !self.readback.slot_free() {
            // The ring is full: wait for the oldest readback.
            ctx.wait("waiting for a loss readback")?;
            rows.extend(self.readback.drain(ctx)?);
        }
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("train step") });
        gan.record_step(&mut enc);
        if tag.is_some() {
            self.readback.record_copy(&mut enc, &gan.metrics, &gan.counters);
        }
        self.in_flight.push_back(ctx.queue.submit([enc.finish()]));
        if let Some((epoch, batch, step)) = tag {
            self.readback.start_map(epoch, batch, step);
        }
        if self.in_flight.len() > 2 {
            let idx = self.in_flight.pop_front().expect("in flight");
            ctx.device
                .poll(wgpu::PollType::Wait { submission_index: Some(idx), timeout: None })
                .map_err(|e| GanError::Device { during: "training step".into(), message: e.to_string() })?;
        }
        ctx.check_health("training step")?;
        rows.extend(self.readback.drain(ctx)?);
        Ok(rows)
    }

    /// Waits for every submitted step and returns the remaining readings.
    pub fn finish(&mut self, ctx: &GpuContext) -> Result<Vec<StepReading>> {
        ctx.wait("finishing the steps")?;
        self.in_flight.clear();
        self.readback.drain(ctx)
    }
}

/// Creates the output folders and checks that they can be written, so an
/// unwritable --out fails before any training, not after an epoch.
pub fn prepare_out_dir(out: &Path) -> Result<()> {
    for sub in ["", "images", "checkpoints"] {
        let d = out.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| GanError::io(&d, e))?;
    }
    let probe = out.join(".write-test");
    checkpoint::atomic_write(&probe, b"ok")?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Compiles the training step's pipelines before its first step, on both
/// CPU cores. Returns when every pipeline is compiled (or Mesa's shader cache
/// holds it); never fails: a problem is logged and the first step then
/// compiles what is left, as it would without this.
///
/// lavapipe compiles a pipeline with LLVM at its first dispatch, on the
/// device's one queue thread, which makes a first step on an empty shader
/// cache take about 3 s on one core. Here the main device and a second device
/// on the same adapter (a helper thread) split that work: each builds a
/// throwaway copy of the step (same batch size, so the same shapes and kernel
/// variants, on one batch of made-up pixels) and runs one workgroup of each
/// kernel, both taking pipelines from one list, biggest first, each only those
/// the other has not claimed. (Letting the helper run the step backwards while
/// the main device ran it forwards left them compiling the same big kernel
/// twice where they met, and the first step at 2.2-2.7 s.) The
/// main device's copy shares its pipeline objects with the real step through
/// the context's pipeline cache; what the helper compiled reaches the main
/// device through Mesa's shader cache. Neither copy touches the real step's
/// buffers. Only on CPU adapters (GPU drivers compile at pipeline creation)
/// and only with Mesa's cache on; GAN_WGPU_WARMUP=0 turns it off.
pub fn warm_up_pipelines(ctx: &GpuContext, cfg: GanConfig, dim: usize) {
    let cache_off = |k: &str| matches!(std::env::var(k).as_deref(), Ok("1") | Ok("true"));
    if !ctx.is_cpu_adapter()
        || std::env::var("GAN_WGPU_WARMUP").as_deref() == Ok("0")
        || cache_off("MESA_SHADER_CACHE_DISABLE")
        || cache_off("MESA_DISK_CACHE_DISABLE")
    {
        return;
    }
    let t = Instant::now();
    // The matmul choice first, so that the helper's device inherits it.
    ctx.matmul_choice();
    ctx.reduce_choice();
    let shared = WarmupShared::default();
    let (main, helper) = std::thread::scope(|s| {
        // The helper opens its device itself, so the main side starts at once.
        let helper = s.spawn(|| {
            // Marks the helper done however it ends, a panic included, so
            // that the main side never waits for it in vain.
            let _done = HelperDone(&shared);
            ctx.twin().and_then(|twin| compile_step_pipelines(&twin, cfg, dim, &shared, false))
        });
        let main = compile_step_pipelines(ctx, cfg, dim, &shared, true);
        let helper = helper.join().unwrap_or_else(|_| {
            Err(GanError::Device { during: "pipeline warm-up".into(), message: "the helper thread panicked".into() })
        });
        (main, helper)
    });
    match (main, helper) {
        (Ok(m), Ok(h)) => log::info!(
            "pipeline warm-up: {} pipelines ready in {:.2} s ({m} compiled on the main device, {h} on a second one)",
            m + h,
            t.elapsed().as_secs_f64()
        ),
        (Ok(m), Err(e)) => log::info!(
            "pipeline warm-up: pipelines ready in {:.2} s, {m} compiled on the main device (the second one failed: {e})",
            t.elapsed().as_secs_f64()
        ),
        (Err(e), _) => log::warn!("pipeline warm-up failed (training is not affected): {e}"),
    }
}

/// What the two sides of `warm_up_pipelines` share: pipelines are named by
/// the index of their first use in the step's dispatch list.
#[derive(Default)]
struct WarmupShared {
    state: std::sync::Mutex<WarmupState>,
    changed: std::sync::Condvar,
}

#[derive(Default)]
struct WarmupState {
    /// Taken by one side for compiling.
    claimed: std::collections::HashSet<usize>,
    /// Compiled by either side (so in Mesa's shader cache).
    compiled: std::collections::HashSet<usize>,
    helper_done: bool,
}

impl WarmupShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, WarmupState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct HelperDone<'a>(&'a WarmupShared);

impl Drop for HelperDone<'_> {
    fn drop(&mut self) {
        self.0.lock().helper_done = true;
        self.0.changed.notify_all();
    }
}

/// One side of `warm_up_pipelines`: builds a throwaway step on `ctx` and runs
/// one workgroup of each pipeline's first use that the other side has not
/// claimed. The main side (`main`) then also runs the helper's pipelines as
/// each becomes ready, loading them from Mesa's cache into the pipeline
/// objects the real step shares, while the helper may still be compiling.
/// Returns how many pipelines this side compiled.
fn compile_step_pipelines(
    ctx: &GpuContext,
    cfg: GanConfig,
    dim: usize,
    shared: &WarmupShared,
    main: bool,
) -> Result<usize> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let data = ImageSet {
        count: cfg.batch,
        height: 1,
        width: dim,
        pixels: (0..cfg.batch * dim).map(|i| i as u8).collect(),
        labels: None,
        source: "warm-up".into(),
    };
    let g = model::generator_spec(cfg.latent, dim).init_params(&mut r);
    let d = model::discriminator_spec(dim).init_params(&mut r);
    let gan = Gan::new(ctx, cfg, &data, &g, &d)?;
    let step = gan.dispatches();
    // One workgroup compiles the pipeline as well as the whole grid.
    let run_one = |i: usize| crate::kernels::run(ctx, &[&Dispatch { groups: [1, 1, 1], ..step[i].clone() }]);
    // The first use of each pipeline, the same list on both sides (both build
    // the step from the same config). The big matmul kernels (0.4-0.8 s of
    // LLVM each on lavapipe, against 30-200 ms for the rest) go first, so
    // that the two sides end close together.
    let mut firsts: Vec<usize> =
        (0..step.len()).filter(|&i| !step[..i].iter().any(|e| e.pipeline == step[i].pipeline)).collect();
    let heavy = |d: &Dispatch| d.label.starts_with("matmul") && !d.label.contains(" naive ");
    firsts.sort_by_key(|&i| if heavy(&step[i]) { 0 } else { 1 });
    let mut compiled = 0;
    let mut left = Vec::new();
    for i in firsts {
        if !shared.lock().claimed.insert(i) {
            left.push(i);
            continue;
        }
        let t = Instant::now();
        run_one(i)?;
        log::debug!(
            "warm-up: {} compiled on the {} device in {:.3} s",
            step[i].label,
            if main { "main" } else { "second" },
            t.elapsed().as_secs_f64()
        );
        shared.lock().compiled.insert(i);
        shared.changed.notify_all();
        compiled += 1;
    }
    // The main side loads the helper's pipelines as they become ready (or
    // compiles them itself once the helper has stopped, whatever happened).
    while main && !left.is_empty() {
        let next = {
            let mut st = shared.lock();
            loop {
                if let Some(k) = left.iter().position(|i| st.helper_done || st.compiled.contains(i)) {
                    break left.swap_remove(k);
                }
                st = shared.changed.wait(st).unwrap_or_else(|p| p.into_inner());
            }
        };
        run_one(next)?;
    }
    Ok(compiled)
}

/// What runs after each epoch's outputs are written: (context, the GAN,
/// the 0-based epoch just finished, steps done). `train --eval-every` scores
/// the generator here.
pub type EpochHook<'a> = dyn FnMut(&GpuContext, &Gan, usize, u64) -> Result<()> + 'a;

/// Runs (or resumes) training. Returns when all epochs are done, or early
/// with `interrupted` set when `interrupt` was raised (state saved).
pub fn train(ctx: &GpuContext, cfg: &TrainConfig, data: &ImageSet, interrupt: &AtomicBool) -> Result<RunSummary> {
    train_with_hook(ctx, cfg, data, interrupt, &mut |_, _, _, _| Ok(()))
}

/// `train`, calling `after_epoch` once each epoch's files are written.
pub fn train_with_hook(
    ctx: &GpuContext,
    cfg: &TrainConfig,
    data: &ImageSet,
    interrupt: &AtomicBool,
    after_epoch: &mut EpochHook,
) -> Result<RunSummary> {
    let g = cfg.gan;
    let data = match cfg.limit {
        Some(n) if n < data.count => {
            ImageSet { count: n, pixels: data.pixels[..n * data.dim()].to_vec(), labels: None, ..data.clone() }
        }
        _ => data.clone(),
    };
    if data.count < g.batch {
        return Err(GanError::data(
            &data.source,
            format!("{} images, fewer than one batch of {}", data.count, g.batch),
        ));
    }
    prepare_out_dir(&cfg.out)?;

    let dim = data.dim();
    let g_spec = model::generator_spec(g.latent, dim);
    let d_spec = model::discriminator_spec(dim);
    let (state, progress) = match &cfg.resume {
        Some(dir) => {
            let path = find_latest_state(dir)?;
            let s = load_state(&path, cfg, dim, data.count)?;
            if !cfg.quiet {
                println!(
                    "resuming from {} (epoch {}, step {} of the epoch, {} steps done)",
                    path.display(),
                    s.progress.epoch,
                    s.progress.batch_in_epoch,
                    s.progress.steps_done
                );
            }
            let p = s.progress;
            (Some(s), p)
        }
        None => (None, Progress { epoch: 0, batch_in_epoch: 0, steps_done: 0 }),
    };
    let mut init_rng = rand_chacha::ChaCha8Rng::seed_from_u64(g.seed);
    let (g_params, d_params) = match &state {
        Some(s) => (s.g_params.clone(), s.d_params.clone()),
        None => (g_spec.init_params(&mut init_rng), d_spec.init_params(&mut init_rng)),
    };
    let t_warm = Instant::now();
    warm_up_pipelines(ctx, g, dim);
    let warm_s = t_warm.elapsed().as_secs_f64();
    // Only a first launch (empty shader cache) waits this long; say why.
    if !cfg.quiet && warm_s > 1.0 {
        println!("compiled the GPU kernels in {warm_s:.1} s (first launch; the driver caches them for the next)");
    }
    let t0 = Instant::now();
    let gan = Gan::new(ctx, g, &data, &g_params, &d_params)?;
    if let Some(s) = &state {
        gan.g.m.write_f32(ctx, &s.g_m)?;
        gan.g.v.write_f32(ctx, &s.g_v)?;
        gan.d.m.write_f32(ctx, &s.d_m)?;
        gan.d.v.write_f32(ctx, &s.d_v)?;
        gan.g.write_bn(ctx, &s.g_bn)?;
    }
    let sampler = Sampler::new(ctx, &gan.g, GRID_SAMPLES)?;
    let fixed = fixed_latent(g.latent);
    checkpoint::atomic_write(
        &cfg.out.join("fixed_latent.npy"),
        &checkpoint::npy_bytes(&[GRID_SAMPLES, g.latent], &fixed),
    )?;
    ctx.check_health("building the training graph")?;
    if !cfg.quiet {
        println!("adapter: {}", ctx.describe());
        println!(
            "data: {} images {}x{} from {}; {} steps an epoch at batch {}; matmul variant {}; reductions {}",
            data.count,
            data.height,
            data.width,
            data.source,
            gan.steps_per_epoch(),
            g.batch,
            ctx.matmul_choice().describe(),
            ctx.reduce_choice().describe()
        );
        let mem = gan.memory();
        let total: u64 = mem.iter().map(|m| m.1).sum();
        let parts: Vec<String> = mem.iter().map(|(n, b)| format!("{n} {:.2}", *b as f64 / 1048576.0)).collect();
        println!("GPU memory (MiB): {}; total {:.2}", parts.join(", "), total as f64 / 1048576.0);
        println!("{} dispatches a step, graph built in {:.2} s", gan.dispatch_count(), t0.elapsed().as_secs_f64());
    }

    let csv_path = cfg.out.join("losses.csv");
    // A run resumed into another folder keeps its history: the loss rows and
    // the epoch grids come from the folder it was resumed from.
    let mut losses = match &cfg.resume {
        Some(from) => {
            let from_dir = run_dir_of(from);
            if !same_dir(&from_dir, &cfg.out) {
                copy_epoch_grids(&from_dir, &cfg.out, progress.epoch)?;
            }
            read_losses_csv(&from_dir.join("losses.csv"), progress.steps_done)?
        }
        None => Vec::new(),
    };
    let mut runner = StepRunner::new(ctx);
    let mut p = progress;
    let steps_per_epoch = gan.steps_per_epoch();
    let mut steps_this_run = 0u64;
    let mut last_log: (Instant, u64);
    // Where a 1-based global step falls: (0-based epoch, 1-based step in it).
    let position = |step: u64| -> (u64, u64) {
        let spe = steps_per_epoch as u64;
        ((step - 1) / spe, (step - 1) % spe + 1)
    };
    let diverged = |step: u64, epoch_in_progress: usize| -> GanError {
        let (epoch, in_epoch) = position(step);
        GanError::Diverged(format!(
            "the model went non-finite (inf or NaN) at epoch {epoch}, step {in_epoch} of the epoch (global step {step}); {}",
            if epoch_in_progress == 0 {
                "no checkpoint had been written yet".to_string()
            } else {
                format!(
                    "nothing was written after it: the last good checkpoints are epoch {}'s, kept as they were (a lower --lr may help)",
                    epoch_in_progress - 1
                )
            }
        ))
    };
    // Before any checkpoint or state is written: the model must be finite.
    let check_finite = |p: &Progress| -> Result<()> {
        match gan.first_nonfinite_step(ctx)? {
            Some(step) => Err(diverged(step, p.epoch)),
            None => Ok(()),
        }
    };

    let log_line = |epoch: usize, batch: usize, m: &StepMetrics, secs: f64| {
        format!(
            "Epoch:[{:>3}/{:>3}], step:[{:>4}/{:>4}], loss_d:{:.6} , loss_g:{:.6} , time:{:.6}s, lr:{:.6}",
            epoch,
            cfg.epochs,
            batch + 1,
            steps_per_epoch,
            m.loss_d,
            m.loss_g,
            secs,
            g.adam.lr
        )
    };

    while p.epoch < cfg.epochs {
        let epoch_start = Instant::now();
        // A step's printed time is the mean since the last log within this
        // epoch: the previous epoch's images and checkpoints are not a step.
        last_log = (epoch_start, p.steps_done);
        gan.start_epoch(ctx, p.epoch, p.batch_in_epoch, p.steps_done)?;
        let bar = (!cfg.quiet && std::io::stderr().is_terminal()).then(|| {
            let b = indicatif::ProgressBar::new(steps_per_epoch as u64);
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "epoch {msg} [{bar:30}] {pos}/{len} steps, {per_sec}, eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b.set_message(format!("{}/{}", p.epoch, cfg.epochs));
            b.set_position(p.batch_in_epoch as u64);
            b
        });
        let handle = |rows: Vec<StepReading>, losses: &mut Vec<LossRow>, last_log: &mut (Instant, u64)| -> Result<()> {
            for r in rows {
                if let Some(step) = r.first_nonfinite {
                    return Err(diverged(step, r.epoch));
                }
                let m = r.metrics;
                // The D-output means propagate a NaN that the clamped logs of
                // the loss could hide, so all four are checked.
                if ![m.loss_d, m.loss_g, m.d_real, m.d_fake].iter().all(|v| v.is_finite()) {
                    return Err(diverged(r.step, r.epoch));
                }
                let secs = last_log.0.elapsed().as_secs_f64() / (r.step - last_log.1).max(1) as f64;
                *last_log = (Instant::now(), r.step);
                losses.push(LossRow {
                    epoch: r.epoch,
                    step: r.step,
                    loss_d: m.loss_d,
                    loss_g: m.loss_g,
                    d_real: m.d_real,
                    d_fake: m.d_fake,
                    seconds: secs,
                });
                if !cfg.quiet {
                    let line = log_line(r.epoch, r.batch, &m, secs);
                    match &bar {
                        Some(b) => b.println(line),
                        None => println!("{line}"),
                    }
                }
            }
            Ok(())
        };
        while p.batch_in_epoch < steps_per_epoch {
            let log_now = (p.batch_in_epoch as u64 + 1).is_multiple_of(cfg.log_every);
            let tag = log_now.then_some((p.epoch, p.batch_in_epoch, p.steps_done + 1));
            let rows = runner.step(ctx, &gan, tag)?;
            p.steps_done += 1;
            p.batch_in_epoch += 1;
            steps_this_run += 1;
            handle(rows, &mut losses, &mut last_log)?;
            if let Some(b) = &bar {
                b.set_position(p.batch_in_epoch as u64);
            }
            if cfg.pause_after_steps == Some(steps_this_run) {
                let rows = runner.finish(ctx)?;
                handle(rows, &mut losses, &mut last_log)?;
                wait_for_interrupt(interrupt, cfg.quiet, steps_this_run);
            }
            let stop = interrupt.load(Ordering::Relaxed) || cfg.stop_after_steps.is_some_and(|n| steps_this_run >= n);
            if stop && p.batch_in_epoch < steps_per_epoch {
                let rows = runner.finish(ctx)?;
                handle(rows, &mut losses, &mut last_log)?;
                check_finite(&p)?;
                checkpoint::atomic_write(&csv_path, losses_csv(&losses).as_bytes())?;
                let path = save_state(ctx, &gan, cfg, &p)?;
                if let Some(b) = &bar {
                    b.abandon();
                }
                if !cfg.quiet {
                    println!(
                        "stopped at epoch {}, step {} of the epoch; state saved to {}",
                        p.epoch,
                        p.batch_in_epoch,
                        path.display()
                    );
                }
                return Ok(RunSummary { progress: p, losses, interrupted: true });
            }
        }
        let rows = runner.finish(ctx)?;
        handle(rows, &mut losses, &mut last_log)?;
        check_finite(&p)?;
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        let epoch_secs = epoch_start.elapsed().as_secs_f64();
        let finished = p.epoch;
        p.epoch += 1;
        p.batch_in_epoch = 0;
        write_epoch_outputs(ctx, cfg, &gan, &sampler, &fixed, &losses, finished, p.steps_done)?;
        save_state(ctx, &gan, cfg, &p)?;
        if !cfg.quiet {
            println!("time of epoch {finished} is {epoch_secs:.2}s");
        }
        after_epoch(ctx, &gan, finished, p.steps_done)?;
        if interrupt.load(Ordering::Relaxed) || cfg.stop_after_steps.is_some_and(|n| steps_this_run >= n) {
            return Ok(RunSummary { progress: p, losses, interrupted: p.epoch < cfg.epochs });
        }
    }
    Ok(RunSummary { progress: p, losses, interrupted: false })
}

/// The test hook behind `--pause-after-steps`: says so on stdout, then
/// waits (at most two minutes) for an interrupt, so that a test can send a
/// signal at a known step instead of racing the trainer.
fn wait_for_interrupt(interrupt: &AtomicBool, quiet: bool, steps: u64) {
    if !quiet {
        println!("paused after {steps} steps, waiting for a signal");
    }
    let start = Instant::now();
    while !interrupt.load(Ordering::Relaxed) && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

fn same_dir(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// Copies the grids of epochs before `epochs` (images/test_{e}.png) from the
/// folder a run resumes from into its new output folder, for the GIF.
fn copy_epoch_grids(from: &Path, to: &Path, epochs: usize) -> Result<()> {
    for e in 0..epochs {
        let src = from.join("images").join(format!("test_{e}.png"));
        let dst = to.join("images").join(format!("test_{e}.png"));
        if src.is_file() && !dst.exists() {
            let bytes = std::fs::read(&src).map_err(|err| GanError::io(&src, err))?;
            checkpoint::atomic_write(&dst, &bytes)?;
        }
    }
    Ok(())
}

/// After epoch `epoch` (0-based, as the log counts it, and as the
/// tutorial's test_0.png and Generator0 are named): grid, checkpoints,
/// losses.csv/png, GIF.
#[allow(clippy::too_many_arguments)]
fn write_epoch_outputs(
    ctx: &GpuContext,
    cfg: &TrainConfig,
    gan: &Gan,
    sampler: &Sampler,
    fixed: &[f32],
    losses: &[LossRow],
    epoch: usize,
    steps_done: u64,
) -> Result<()> {
    let out = &cfg.out;
    let (h, w) = (gan.height, gan.width);
    let samples = sampler.run(ctx, fixed)?;
    images::save_grid(
        &out.join("images").join(format!("test_{epoch}.png")),
        &images_from_outputs(&samples, gan.dim),
        h,
        w,
    )?;
    let meta = |net: &NetSpec| -> Vec<(String, String)> {
        [
            ("epoch", epoch.to_string()),
            ("steps_done", steps_done.to_string()),
            ("image_height", h.to_string()),
            ("image_width", w.to_string()),
            ("latent_size", cfg.gan.latent.to_string()),
            ("layers", net.layers.len().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    };
    let g_bn = gan.g.read_bn(ctx, steps_done as i64)?;
    checkpoint::save_network(
        &out.join("checkpoints").join(format!("generator_{epoch}.safetensors")),
        &gan.g.spec,
        &gan.g.params.read_f32(ctx)?,
        &g_bn,
        meta(&gan.g.spec),
    )?;
    checkpoint::save_network(
        &out.join("checkpoints").join(format!("discriminator_{epoch}.safetensors")),
        &gan.d.spec,
        &gan.d.params.read_f32(ctx)?,
        &vec![None; gan.d.spec.layers.len()],
        meta(&gan.d.spec),
    )?;
    checkpoint::atomic_write(&out.join("losses.csv"), losses_csv(losses).as_bytes())?;
    images::save_loss_plot(&out.join("losses.png"), losses)?;
    // progress.gif: epoch 0, every 5th epoch (4, 9, ...), and the latest.
    let frames: Vec<PathBuf> = (0..=epoch)
        .filter(|e| *e == 0 || (e + 1) % 5 == 0 || *e == epoch)
        .map(|e| out.join("images").join(format!("test_{e}.png")))
        .filter(|p| p.is_file())
        .collect();
    let refs: Vec<&Path> = frames.iter().map(PathBuf::as_path).collect();
    images::save_gif(&out.join("progress.gif"), &refs)
}
