//! The classifier behind `gan-wgpu eval`: an MLP (crate::models::classifier_spec,
//! 784-512-256-10 with batch norm and ReLU) trained with the engine's own
//! kernels on a labelled training set (matmul, batch norm, bias, softmax
//! cross-entropy, Adam, all on the GPU), cached per data set, and run in
//! evaluation mode to give each image its 256 penultimate features and its
//! class logits.

use crate::engine::context::GpuContext;
use crate::engine::kernels::adam::AdamConfig;
use crate::engine::kernels::matmul::Variant;
use crate::engine::kernels::{self, gather, softmax_ce, Dispatch};
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};
use crate::io::checkpoint;
use crate::io::data::ImageSet;
use crate::nn::gpu_net::{self, Activations, GpuNet};
use crate::nn::spec::NetSpec;
use crate::nn::spec::{BnStats, ImageShape};
use rand::SeedableRng;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Width of the features (the second hidden layer).
pub const FEATURE_DIM: usize = 256;
/// Layer whose output is the features.
const FEATURE_LAYER: usize = 1;
/// What a cached classifier's key covers besides the data and the config;
/// a change to the recipe means training again.
const RECIPE: &str = "gan-wgpu classifier 1: 512-256 BN ReLU, softmax CE, Adam";

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ClassifierConfig {
    pub epochs: usize,
    pub batch: usize,
    pub lr: f32,
    /// The learning rate is multiplied by this after each epoch.
    pub lr_decay: f32,
    pub seed: u64,
    /// Train on the first N images only (tests).
    pub limit: Option<usize>,
}

impl Default for ClassifierConfig {
    fn default() -> Self {
        ClassifierConfig { epochs: 5, batch: 128, lr: 1e-3, lr_decay: 0.5, seed: 0, limit: None }
    }
}

/// A trained classifier and what is known about it.
#[derive(Clone, Debug)]
pub struct Classifier {
    pub spec: NetSpec,
    pub params: Vec<f32>,
    pub bn: Vec<Option<BnStats>>,
    pub classes: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    /// On the test split (or the training split where there is none).
    pub test_accuracy: f64,
    pub train_seconds: f64,
    /// Where it came from, for messages ("trained now", "cached in ...").
    pub origin: String,
}

impl Classifier {
    pub fn shape(&self) -> ImageShape {
        ImageShape { height: self.height, width: self.width, channels: self.channels }
    }
}

/// Where a training run stands, for progress reports.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    pub epoch: usize,
    pub epochs: usize,
    pub step: usize,
    pub steps: usize,
    pub loss: f32,
    pub accuracy: f32,
}

/// The number of classes of a labelled set (largest label + 1).
pub fn classes_of(set: &ImageSet) -> Result<usize> {
    let labels = set.labels.as_ref().ok_or_else(|| {
        GanError::data(
            &set.source,
            "has no labels (train-labels-idx1-ubyte beside IDX images, sub-folders as classes in an image folder): \
             FID and classes covered are measured in a classifier trained on the data's classes, so unlabelled data cannot be scored",
        )
    })?;
    let classes = (labels.iter().copied().max().map_or(0, |m| m as usize + 1)).max(set.class_names.len());
    if classes < 2 {
        return Err(GanError::data(&set.source, format!("labels name {classes} class(es), at least 2 are needed")));
    }
    Ok(classes)
}

/// The cache key of a classifier trained on `set` with `cfg` and measured
/// on `test`: the accuracy it carries is the one measured on `test`, so
/// another test set (a held-out part instead of a test split) is another entry.
pub fn cache_key(set: &ImageSet, test: &ImageSet, cfg: &ClassifierConfig) -> u64 {
    let key = format!("{RECIPE} {cfg:?} train {:016x} test {:016x}", set.content_hash(), test.content_hash());
    crate::engine::autotune::stable_hash(key.as_bytes())
}

/// The classifier's training on the GPU: its network, its data and the
/// dispatches of one step (gather, forward, softmax cross-entropy, backward,
/// Adam, counters), stepped by the one loop (`train::Stepper`).
struct Trainer {
    net: GpuNet,
    cfg: ClassifierConfig,
    adam: AdamConfig,
    count: usize,
    perm: GpuTensor,
    counters: GpuTensor,
    /// [loss, right answers in the batch, unused x2].
    metrics: GpuTensor,
    step: Vec<Dispatch>,
    /// Kept alive for the step's bind groups.
    _buffers: Vec<GpuTensor>,
    _shards: crate::train::DataShards,
    _acts: [Activations; 2],
}

impl Trainer {
    /// Uploads the first `count` images of `train` and builds the step.
    fn new(ctx: &GpuContext, train: &ImageSet, count: usize, classes: usize, cfg: &ClassifierConfig) -> Result<Self> {
        let (dim, b) = (train.dim(), cfg.batch);
        let spec = crate::models::classifier_spec(dim, classes);
        let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
        let counters = GpuTensor::zeros(ctx, &[4], "classifier counters");
        let adam = AdamConfig { lr: cfg.lr, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
        let net = GpuNet::new(ctx, spec.clone(), &spec.init_params(&mut r), &counters, adam)?;
        // Held as the trainer holds its data: in as many buffers as its size needs.
        let shards = crate::train::DataShards::upload(ctx, &train.pixels[..count * dim], dim, None)?;
        let labels = train.labels.as_ref().expect("classes_of checked the labels");
        let labels = GpuTensor::from_u32(
            ctx,
            &[count.div_ceil(4)],
            "classifier labels",
            &gather::pack_pixels(&labels[..count]),
        )?;
        let perm = GpuTensor::zeros(ctx, &[count], "classifier permutation");
        let x = GpuTensor::zeros(ctx, &[b, dim], "classifier batch");
        let acts = Activations::alloc(ctx, &spec, b, "classifier", None)?;
        let grads = Activations::alloc(ctx, &spec, b, "classifier_grad", None)?;
        let dlogits = GpuTensor::zeros(ctx, &[b, classes], "classifier dlogits");
        let metrics = GpuTensor::zeros(ctx, &[4], "classifier metrics");
        let variant = Variant::for_adapter(ctx);
        let logits = &acts.layers.last().expect("output layer").out;
        let mut step = Vec::new();
        for shard in shards.shards() {
            step.push(gather::gather_batch_shard(ctx, shard, &perm, &x, (0, b), &counters)?);
        }
        step.extend(gpu_net::forward(ctx, &net, &x, &acts, true, variant)?);
        step.push(softmax_ce::softmax_ce(ctx, logits, &dlogits, &labels, &perm, &counters, &metrics)?);
        step.extend(gpu_net::Backward::new(&net, (&x, &acts), (&dlogits, &grads), variant).dispatches(ctx)?);
        step.push(net.adam.dispatch.clone());
        step.push(gather::advance_counters(ctx, &counters)?);
        let _buffers = vec![labels, x, dlogits];
        Ok(Trainer {
            net,
            cfg: *cfg,
            adam,
            count,
            perm,
            counters,
            metrics,
            step,
            _buffers,
            _shards: shards,
            _acts: [acts, grads],
        })
    }
}

impl crate::train::Stepped for Trainer {
    fn steps_per_epoch(&self) -> usize {
        self.count / self.cfg.batch
    }

    /// The epoch's own permutation and its decayed learning rate.
    fn start_epoch(&mut self, ctx: &GpuContext, epoch: usize, batch_in_epoch: usize, steps_done: u64) -> Result<()> {
        let order = crate::train::Gan::permutation(self.cfg.seed ^ 0xc1a5, epoch, self.count);
        self.perm.write_u32(ctx, &order)?;
        self.counters.write_u32(ctx, &[steps_done as u32, batch_in_epoch as u32, 0, 0])?;
        let lr = self.cfg.lr * self.cfg.lr_decay.powi(epoch as i32);
        self.net.adam.set_config(ctx, AdamConfig { lr, ..self.adam });
        Ok(())
    }

    fn record_step_at(&self, enc: &mut wgpu::CommandEncoder, _step: u64) {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("classifier step"),
            timestamp_writes: None,
        });
        kernels::record_all(&mut pass, &self.step);
    }

    fn readback(&self) -> (&GpuTensor, &GpuTensor) {
        (&self.metrics, &self.counters)
    }
}

/// Steps between progress reports (and readbacks) of the classifier's training.
const REPORT_EVERY: usize = 50;

/// Trains a classifier on `train` and measures it on `test`, reporting
/// progress every `REPORT_EVERY` steps and at each epoch's end.
pub fn train(
    ctx: &GpuContext,
    train: &ImageSet,
    test: &ImageSet,
    cfg: &ClassifierConfig,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Classifier> {
    let start = Instant::now();
    let classes = classes_of(train)?;
    let count = cfg.limit.map_or(train.count, |l| l.min(train.count));
    if count < cfg.batch || cfg.batch < 2 {
        return Err(GanError::data(&train.source, format!("{count} images for batches of {}", cfg.batch)));
    }
    let mut trainer = Trainer::new(ctx, train, count, classes, cfg)?;
    let steps = crate::train::Stepped::steps_per_epoch(&trainer);
    let mut at = crate::train::Progress { epoch: 0, batch_in_epoch: 0, steps_done: 0 };
    let stepper = crate::train::Stepper::new(ctx, &mut trainer, at, "classifier metrics staging")?;
    while at.steps_done < (cfg.epochs * steps) as u64 {
        let readings = pollster::block_on(stepper.run_steps(ctx, &mut trainer, &mut at, REPORT_EVERY))?;
        let last = readings.last().expect("a run_steps call before the end steps");
        let (loss, right) = (last.metrics[0], last.metrics[1]);
        if last.first_nonfinite.is_some() || !loss.is_finite() {
            let at = format!("epoch {}, step {}", last.epoch, last.batch + 1);
            return Err(GanError::Diverged(format!("the classifier's loss is {loss} at {at}")));
        }
        let (epoch, step) = (last.epoch, last.batch + 1);
        progress(&Progress { epoch, epochs: cfg.epochs, step, steps, loss, accuracy: right / cfg.batch as f32 });
    }
    ctx.check_health("training the classifier")?;
    let params = trainer.net.params.read_f32(ctx)?;
    let bn = trainer.net.read_bn(ctx, at.steps_done as i64)?;
    let mut classifier = Classifier {
        spec: trainer.net.spec.clone(),
        params,
        bn,
        classes,
        height: train.height,
        width: train.width,
        channels: train.channels,
        test_accuracy: 0.0,
        train_seconds: 0.0,
        origin: "trained now".into(),
    };
    classifier.test_accuracy = accuracy(ctx, &classifier, test)?;
    classifier.train_seconds = start.elapsed().as_secs_f64();
    Ok(classifier)
}

/// The share of `set`'s images whose arg-max class is their label.
pub fn accuracy(ctx: &GpuContext, classifier: &Classifier, set: &ImageSet) -> Result<f64> {
    let labels = set
        .labels
        .as_ref()
        .ok_or_else(|| GanError::data(&set.source, "has no labels: the accuracy cannot be measured"))?;
    let fx = FeatureExtractor::new(ctx, classifier, 500)?;
    let (_, logits) = fx.run(ctx, &set.pixels, set.count)?;
    let hist_hits = logits
        .chunks_exact(classifier.classes)
        .zip(labels)
        .filter(|(row, &y)| {
            let arg = (1..row.len()).fold(0, |best, c| if row[c] > row[best] { c } else { best });
            arg == y as usize
        })
        .count();
    Ok(hist_hits as f64 / set.count.max(1) as f64)
}

/// Saves a classifier as a PyTorch-loadable safetensors file, with its
/// accuracy and training time in the metadata.
pub fn save(path: &Path, c: &Classifier) -> Result<()> {
    checkpoint::save_network(path, &c.spec, &c.params, &c.bn, save_meta(c))
}

/// `save` with every float tensor in half precision (about 1 MB for
/// MNIST's: the size a web page ships); `load` reads it back widened.
pub fn save_f16(path: &Path, c: &Classifier) -> Result<()> {
    let bytes = f16_bytes(c, Vec::new(), Vec::new())
        .map_err(|e| GanError::Checkpoint { path: path.into(), why: e.to_string() })?;
    checkpoint::atomic_write(path, &bytes)
}

/// The bytes of `save_f16`'s file, with `extra` tensors and metadata.
pub fn f16_bytes(
    c: &Classifier,
    extra: Vec<(String, checkpoint::OwnedTensor)>,
    extra_meta: Vec<(String, String)>,
) -> Result<Vec<u8>> {
    let mut meta = save_meta(c);
    meta.extend(extra_meta);
    checkpoint::network_bytes_with(safetensors::Dtype::F16, &c.spec, &c.params, &c.bn, meta, extra)
}

fn save_meta(c: &Classifier) -> Vec<(String, String)> {
    vec![
        ("test_accuracy".to_string(), format!("{}", c.test_accuracy)),
        ("train_seconds".to_string(), format!("{:.3}", c.train_seconds)),
        ("classes".to_string(), c.classes.to_string()),
        ("image_height".to_string(), c.height.to_string()),
        ("image_width".to_string(), c.width.to_string()),
        ("image_channels".to_string(), c.channels.to_string()),
    ]
}

/// Loads a classifier written by `save` (its sizes come from the file).
pub fn load(path: &Path) -> Result<Classifier> {
    from_file(&checkpoint::Loaded::open(path)?)
}

/// `load` on a file already read (a page fetches it).
pub fn from_file(file: &checkpoint::Loaded) -> Result<Classifier> {
    let path = file.path.as_path();
    let bad = |why: String| GanError::Checkpoint { path: path.into(), why };
    let (Some([_, dim]), Some([classes, _])) = (
        file.shape_of("model.0.weight").as_deref().and_then(|s| <[usize; 2]>::try_from(s).ok()),
        file.shape_of("model.6.weight").as_deref().and_then(|s| <[usize; 2]>::try_from(s).ok()),
    ) else {
        return Err(bad("not a classifier checkpoint (model.0.weight and model.6.weight, 2-D, are needed)".into()));
    };
    let meta = file.metadata()?;
    let spec = crate::models::classifier_spec(dim, classes);
    let ck = checkpoint::network_from(file, &spec)?;
    let num = |k: &str| meta.get(k).and_then(|v| v.parse::<f64>().ok());
    let ImageShape { height, width, channels } = checkpoint::image_shape(path, &meta, dim)?;
    Ok(Classifier {
        spec,
        params: ck.params,
        bn: ck.bn,
        classes,
        height,
        width,
        channels,
        test_accuracy: num("test_accuracy").unwrap_or(f64::NAN),
        train_seconds: num("train_seconds").unwrap_or(f64::NAN),
        origin: format!("loaded from {}", path.display()),
    })
}

/// The classifier for `train`: from `cache_dir` when one trained on the same
/// data with the same recipe is there, else trained now and cached (a cache
/// that cannot be written is logged, not fatal).
pub fn load_or_train(
    ctx: &GpuContext,
    train_set: &ImageSet,
    test: &ImageSet,
    cfg: &ClassifierConfig,
    cache_dir: Option<&Path>,
    progress: &mut dyn FnMut(&Progress),
) -> Result<Classifier> {
    let path: Option<PathBuf> =
        cache_dir.map(|d| d.join(format!("classifier-{:016x}.safetensors", cache_key(train_set, test, cfg))));
    if let Some(p) = path.as_deref().filter(|p| p.is_file()) {
        match load(p) {
            Ok(c) if c.classes == classes_of(train_set)? && c.shape() == train_set.shape() => {
                return Ok(Classifier { origin: format!("cached in {}", p.display()), ..c })
            }
            Ok(_) => log::warn!("{}: a classifier of other sizes; training again", p.display()),
            Err(e) => log::warn!("cached classifier unreadable, training again: {e}"),
        }
    }
    let mut c = train(ctx, train_set, test, cfg, progress)?;
    if let Some(p) = &path {
        let written = p
            .parent()
            .map_or(Ok(()), |d| std::fs::create_dir_all(d).map_err(|e| GanError::io(d, e)))
            .and_then(|_| save(p, &c));
        match written {
            Ok(()) => c.origin = format!("trained now, cached in {}", p.display()),
            Err(e) => log::warn!("the classifier is not cached: {e}"),
        }
    }
    Ok(c)
}

/// The classifier in evaluation mode over batches of images: features
/// [n, FEATURE_DIM] and logits [n, classes].
pub struct FeatureExtractor {
    pub classes: usize,
    dim: usize,
    batch: usize,
    input: GpuTensor,
    acts: Activations,
    dispatches: Vec<Dispatch>,
    _net: GpuNet,
}

impl FeatureExtractor {
    pub fn new(ctx: &GpuContext, c: &Classifier, batch: usize) -> Result<Self> {
        let dim = c.spec.input_dim();
        let counters = GpuTensor::zeros(ctx, &[4], "classifier counters");
        let net = GpuNet::new(ctx, c.spec.clone(), &c.params, &counters, AdamConfig::default())?;
        net.write_bn(ctx, &c.bn)?;
        let input = GpuTensor::zeros(ctx, &[batch, dim], "classifier input");
        let acts = Activations::alloc(ctx, &c.spec, batch, "classifier eval", None)?;
        let dispatches = gpu_net::forward(ctx, &net, &input, &acts, false, Variant::for_adapter(ctx))?;
        Ok(FeatureExtractor { classes: c.classes, dim, batch, input, acts, dispatches, _net: net })
    }

    /// Features and logits of `count` u8 images (pixel scaled to [-1, 1]
    /// as in training), in batches; a last partial batch is padded.
    pub fn run(&self, ctx: &GpuContext, pixels: &[u8], count: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        pollster::block_on(self.run_async(ctx, pixels, count))
    }

    /// `run` without blocking (a page awaits it).
    pub async fn run_async(&self, ctx: &GpuContext, pixels: &[u8], count: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        if pixels.len() < count * self.dim {
            return Err(GanError::shape(
                "images",
                format!("{} bytes for {count} images of {} pixels", pixels.len(), self.dim),
            ));
        }
        let mut features = Vec::with_capacity(count * FEATURE_DIM);
        let mut logits = Vec::with_capacity(count * self.classes);
        let refs: Vec<&Dispatch> = self.dispatches.iter().collect();
        for start in (0..count).step_by(self.batch) {
            let n = self.batch.min(count - start);
            let mut x: Vec<f32> =
                pixels[start * self.dim..(start + n) * self.dim].iter().map(|&p| (p as f32 - 127.5) / 127.5).collect();
            x.resize(self.batch * self.dim, 0.0);
            self.input.write_f32(ctx, &x)?;
            kernels::run(ctx, &refs)?;
            let f = self.acts.layers[FEATURE_LAYER].out.read_f32_async(ctx).await?;
            features.extend_from_slice(&f[..n * FEATURE_DIM]);
            let l = self.acts.layers.last().expect("logits").out.read_f32_async(ctx).await?;
            logits.extend_from_slice(&l[..n * self.classes]);
        }
        Ok((features, logits))
    }
}
