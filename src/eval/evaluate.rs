//! Sample quality with the engine's own classifier: an `Evaluator` holds the
//! classifier in evaluation mode and the Gaussian of the reference set's
//! features, and scores image sets or generators (`quality::Score`). Also
//! the generator loaded from a checkpoint, and the quality log that
//! `train --eval-every` keeps (quality.csv, quality.png, warnings).

use crate::engine::context::GpuContext;
use crate::engine::kernels::adam::AdamConfig;
use crate::engine::kernels::rng;
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};
use crate::eval::classifier::{Classifier, FeatureExtractor, FEATURE_DIM};
use crate::eval::quality::{self, Gaussian, Score};
use crate::io::checkpoint;
use crate::io::data::{DataIdentity, ImageSet};
use crate::nn::gpu_net::GpuNet;
use crate::nn::spec::ImageShape;
use crate::train::{images_from_outputs, Sampler};
use std::path::Path;

/// Images a classifier batch holds.
pub const BATCH: usize = 500;

/// The reference Gaussian's tensors in a classifier file for scoring
/// (`scoring_file_bytes`): mean [FEATURE_DIM], covariance [FEATURE_DIM,
/// FEATURE_DIM], f32; and the metadata keys of its image count and source.
pub const REFERENCE_MEAN: &str = "reference.mean";
pub const REFERENCE_COV: &str = "reference.cov";
pub const REFERENCE_COUNT_KEY: &str = "reference_images";
pub const REFERENCE_DESC_KEY: &str = "reference";

/// The file a page scores with (`gan-wgpu eval --export-classifier`): `c`
/// in half precision (about 1 MB for MNIST's), and the Gaussian of the
/// half-precision classifier's features of `reference` (f32, 256 KB), so
/// that the page needs neither the reference images nor the f32 weights.
pub fn scoring_file_bytes(ctx: &GpuContext, c: &Classifier, reference: &ImageSet) -> Result<Vec<u8>> {
    let half_bytes = crate::eval::classifier::f16_bytes(c, Vec::new(), Vec::new())?;
    let half = crate::eval::classifier::from_file(&checkpoint::Loaded::from_bytes(
        half_bytes,
        Path::new("<f16 classifier>"),
    )?)?;
    let ev = Evaluator::new(ctx, half, reference)?;
    let g = &ev.reference;
    let mean: Vec<f32> = g.mean.iter().map(|&v| v as f32).collect();
    let cov: Vec<f32> = (0..FEATURE_DIM).flat_map(|r| (0..FEATURE_DIM).map(move |c| g.cov[(r, c)] as f32)).collect();
    crate::eval::classifier::f16_bytes(
        c,
        vec![
            (REFERENCE_MEAN.into(), checkpoint::OwnedTensor::f32(vec![FEATURE_DIM], &mean)),
            (REFERENCE_COV.into(), checkpoint::OwnedTensor::f32(vec![FEATURE_DIM, FEATURE_DIM], &cov)),
        ],
        vec![(REFERENCE_COUNT_KEY.into(), g.n.to_string()), (REFERENCE_DESC_KEY.into(), ev.reference_desc.clone())],
    )
}

/// A generator read from a checkpoint, on the GPU in evaluation mode.
pub struct LoadedGenerator {
    pub net: GpuNet,
    pub latent: usize,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    /// The data it was trained on, where the checkpoint records it.
    pub data: Option<DataIdentity>,
}

impl LoadedGenerator {
    pub fn shape(&self) -> ImageShape {
        ImageShape { height: self.height, width: self.width, channels: self.channels }
    }
}

/// Loads a generator checkpoint: its architecture from its metadata
/// (`architecture`; files written before that key existed: the tutorial's
/// generator, sized from its first and last weights), its image height and
/// width from its metadata (see `checkpoint::image_shape`).
pub fn load_generator(ctx: &GpuContext, path: &Path) -> Result<LoadedGenerator> {
    generator_from(ctx, &checkpoint::Loaded::open(path)?)
}

/// `load_generator` on a file already read (a browser upload).
pub fn generator_from(ctx: &GpuContext, file: &checkpoint::Loaded) -> Result<LoadedGenerator> {
    let path = file.path.as_path();
    let bad = |why: String| GanError::Checkpoint { path: path.into(), why };
    let meta = file.metadata()?;
    if crate::train::is_training_state(&meta) {
        return Err(bad(
            "this is a training state (for train --resume); a generator checkpoint (checkpoints/generator_{epoch}.safetensors) is expected"
                .into(),
        ));
    }
    if meta.get("network").is_some_and(|n| n != "generator") {
        return Err(bad(format!("this is a {} checkpoint, a generator checkpoint is expected", meta["network"])));
    }
    let spec = match crate::nn::spec_json::from_metadata(&meta, path)? {
        Some(spec) if spec.name != "generator" => {
            return Err(bad(format!("this is a {} checkpoint, a generator checkpoint is expected", spec.name)))
        }
        Some(spec) => {
            // Every parameter is a float32 in the file: a spec asking for
            // more than the file holds is corrupt, whatever it says.
            let params = spec.layout().len;
            if params.saturating_mul(4) > file.len_bytes() {
                return Err(bad(format!(
                    "metadata '{}' describes {params} parameters, more than the file's {} bytes hold",
                    crate::nn::spec_json::METADATA_KEY,
                    file.len_bytes()
                )));
            }
            spec
        }
        None => {
            let latent = match file.shape_of("model.0.weight").as_deref() {
                Some([_, l]) => *l,
                _ => {
                    return Err(bad("tensor 'model.0.weight' is missing or not 2-D: not a generator checkpoint".into()))
                }
            };
            let dim = match file.shape_of("model.11.weight").as_deref() {
                Some([d, _]) => *d,
                _ => {
                    return Err(
                        bad("tensor 'model.11.weight' is missing or not 2-D: not a generator checkpoint".into()),
                    )
                }
            };
            crate::models::GanArchitecture::tutorial(latent, dim).generator
        }
    };
    let latent = spec.input_dim();
    let dim = spec.output_dim();
    let ck = checkpoint::network_from(file, &spec)?;
    let shape = checkpoint::image_shape(path, &meta, dim)?;
    let counters = GpuTensor::zeros(ctx, &[4], "counters");
    let net = GpuNet::new(ctx, spec, &ck.params, &counters, AdamConfig::default())?;
    net.write_bn(ctx, &ck.bn)?;
    let data = DataIdentity::from_meta(&meta);
    let ImageShape { height, width, channels } = shape;
    Ok(LoadedGenerator { net, latent, height, width, channels, data })
}

/// Refuses latent codes (`rows` x `cols`, from the file `path`) holding a
/// NaN or an infinity: the error names the first such row and column (0-based).
pub fn check_latents(path: &Path, cols: usize, z: &[f32]) -> Result<()> {
    match z.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(GanError::data(
            path,
            format!(
                "latent code row {}, column {} is {}: latent codes must be finite",
                i / cols.max(1),
                i % cols.max(1),
                z[i]
            ),
        )),
        None => Ok(()),
    }
}

/// The line `eval` warns with when the data it scores against (`scored`:
/// the whole set's content hash and source) is not the data the generator
/// was trained on; None when it is, or when the checkpoint records none.
pub fn other_data_warning(trained: Option<&DataIdentity>, (hash, source): (u64, &str)) -> Option<String> {
    let t = trained?;
    (t.hash != hash).then(|| {
        format!(
            "scoring against data that is not the data the generator was trained on: it was trained on {} (content hash {}), this is {source} (content hash {hash:016x})",
            t.source,
            t.hash_hex(),
        )
    })
}

/// The classes `eval` asks a conditional generator for: sample i is class
/// i mod `classes` (as many of each, within one).
pub fn sample_labels(count: usize, classes: usize) -> Vec<u32> {
    (0..count).map(|i| (i % classes) as u32).collect()
}

/// The latent codes `sample --seed` draws: N(0, 1) from stream 2.
pub fn sample_latents(count: usize, latent: usize, seed: u64) -> Vec<f32> {
    rng::cpu_normal(count * latent, rng::RngStream { seed, stream: 2, draw_base: 0 }, 0)
}

/// `count` samples of `g` (batch norm in eval mode) as u8 pixels, pixel =
/// round((g + 1) * 127.5), from the latent codes of `sample_latents` (and
/// a conditional generator's classes of `sample_labels`).
pub fn sample_pixels(ctx: &GpuContext, g: &GpuNet, count: usize, seed: u64) -> Result<Vec<u8>> {
    pollster::block_on(sample_pixels_async(ctx, g, count, seed))
}

/// `sample_pixels` without blocking (a page awaits it).
pub async fn sample_pixels_async(ctx: &GpuContext, g: &GpuNet, count: usize, seed: u64) -> Result<Vec<u8>> {
    let labels = g.spec.embedding.as_ref().map(|e| sample_labels(count, e.classes));
    sample_pixels_labeled_async(ctx, g, count, seed, labels.as_deref()).await
}

/// `sample_pixels_async` with the classes a conditional generator draws
/// (`count` of them; None for an unconditional one).
pub async fn sample_pixels_labeled_async(
    ctx: &GpuContext,
    g: &GpuNet,
    count: usize,
    seed: u64,
    labels: Option<&[u32]>,
) -> Result<Vec<u8>> {
    let z = sample_latents(count, g.spec.input_dim(), seed);
    pixels_from_latents_async(ctx, g, &z, labels).await
}

/// u8 pixels (as `sample_pixels`) of `g` for the given latent codes, `z`
/// [count, latent] (and `labels`, count of them, for a conditional
/// generator), run BATCH at a time so that any count fits the device's
/// buffer limits.
pub async fn pixels_from_latents_async(
    ctx: &GpuContext,
    g: &GpuNet,
    z: &[f32],
    labels: Option<&[u32]>,
) -> Result<Vec<u8>> {
    let latent = g.spec.input_dim();
    if latent == 0 || !z.len().is_multiple_of(latent) {
        return Err(GanError::shape("sample latents", format!("{} values are not rows of {latent}", z.len())));
    }
    let count = z.len() / latent;
    if labels.is_some_and(|l| l.len() != count) {
        return Err(GanError::shape(
            "sample labels",
            format!("{} labels for {count} samples", labels.map_or(0, <[u32]>::len)),
        ));
    }
    let dim = g.spec.output_dim();
    let batch = BATCH.min(count.max(1));
    let sampler = Sampler::new(ctx, g, batch)?;
    let mut pixels = Vec::with_capacity(count * dim);
    for start in (0..count).step_by(batch) {
        let n = batch.min(count - start);
        let mut codes = z[start * latent..(start + n) * latent].to_vec();
        codes.resize(batch * latent, 0.0);
        let batch_labels = labels.as_ref().map(|l| {
            let mut b = l[start..start + n].to_vec();
            b.resize(batch, 0);
            b
        });
        let out = sampler.run_labeled_async(ctx, &codes, batch_labels.as_deref()).await?;
        for img in images_from_outputs(&out[..n * dim], dim) {
            pixels.extend_from_slice(&img);
        }
    }
    Ok(pixels)
}

/// A classifier ready to score, with the reference set's feature Gaussian.
pub struct Evaluator {
    pub classifier: Classifier,
    pub reference: Gaussian,
    /// "10000 images from <embedded>/t10k-images-idx3-ubyte.gz".
    pub reference_desc: String,
    /// The Gaussian of each class's reference images (a labelled reference
    /// with at least 2 images of every class), for a conditional generator.
    pub reference_by_class: Option<Vec<Gaussian>>,
    extractor: FeatureExtractor,
}

impl Evaluator {
    pub fn new(ctx: &GpuContext, classifier: Classifier, reference: &ImageSet) -> Result<Self> {
        if reference.shape() != classifier.shape() {
            return Err(GanError::data(
                &reference.source,
                format!(
                    "images of {}, the classifier takes {}",
                    reference.shape().describe(),
                    classifier.shape().describe()
                ),
            ));
        }
        let extractor = FeatureExtractor::new(ctx, &classifier, BATCH)?;
        let (features, _) = extractor.run(ctx, &reference.pixels, reference.count)?;
        let reference_by_class = reference.labels.as_ref().and_then(|labels| {
            (0..classifier.classes)
                .map(|c| {
                    let rows: Vec<f32> = features
                        .chunks_exact(FEATURE_DIM)
                        .zip(labels)
                        .filter(|(_, l)| **l as usize == c)
                        .flat_map(|(f, _)| f.iter().copied())
                        .collect();
                    (rows.len() >= 2 * FEATURE_DIM).then(|| quality::gaussian(&rows, FEATURE_DIM))
                })
                .collect::<Option<Vec<_>>>()
        });
        Ok(Evaluator {
            reference_by_class,
            reference: quality::gaussian(&features, FEATURE_DIM),
            reference_desc: format!("{} images from {}", reference.count, reference.source),
            classifier,
            extractor,
        })
    }

    /// The evaluator a page scores with: the classifier and reference
    /// Gaussian of a file made by `scoring_file_bytes` (`gan-wgpu eval
    /// --export-classifier`). It has no per-class reference, so a
    /// conditional generator's score has its accuracy and no class FIDs.
    pub fn from_file(ctx: &GpuContext, file: &checkpoint::Loaded) -> Result<Self> {
        let classifier = crate::eval::classifier::from_file(file)?;
        let meta = file.metadata()?;
        let missing = |why: GanError| {
            GanError::Checkpoint {
            path: file.path.clone(),
            why: format!("{why}: no reference statistics in this classifier file (write it with `gan-wgpu eval --export-classifier FILE`)"),
        }
        };
        let mean = file.f32(REFERENCE_MEAN, &[FEATURE_DIM]).map_err(missing)?;
        let cov = file.f32(REFERENCE_COV, &[FEATURE_DIM, FEATURE_DIM]).map_err(missing)?;
        let n = meta.get(REFERENCE_COUNT_KEY).and_then(|v| v.parse().ok()).unwrap_or(0);
        let reference = Gaussian {
            n,
            mean: nalgebra::DVector::from_iterator(FEATURE_DIM, mean.iter().map(|&v| v as f64)),
            cov: nalgebra::DMatrix::from_row_iterator(FEATURE_DIM, FEATURE_DIM, cov.iter().map(|&v| v as f64)),
        };
        let reference_desc = meta.get(REFERENCE_DESC_KEY).cloned().unwrap_or_else(|| format!("{n} images"));
        let extractor = FeatureExtractor::new(ctx, &classifier, BATCH)?;
        Ok(Evaluator { classifier, reference, reference_desc, reference_by_class: None, extractor })
    }

    /// Scores `count` u8 images against the reference.
    pub fn score_pixels(&self, ctx: &GpuContext, pixels: &[u8], count: usize) -> Result<Score> {
        let (features, logits) = self.features(ctx, pixels, count)?;
        Ok(quality::score(&features, FEATURE_DIM, &logits, self.classifier.classes, &self.reference))
    }

    /// Features and logits of `count` u8 images.
    pub fn features(&self, ctx: &GpuContext, pixels: &[u8], count: usize) -> Result<(Vec<f32>, Vec<f32>)> {
        self.extractor.run(ctx, pixels, count)
    }

    /// Scores `count` samples of `g` drawn with `seed`; a conditional
    /// generator is asked for the classes of `sample_labels`, and its score
    /// adds the conditional accuracy and each class's FID (against a
    /// labelled reference).
    pub fn score_generator(&self, ctx: &GpuContext, g: &GpuNet, count: usize, seed: u64) -> Result<Score> {
        pollster::block_on(self.score_generator_async(ctx, g, count, seed))
    }

    /// `score_generator` without blocking (a page awaits it). Without a
    /// per-class reference a conditional score has no class FIDs.
    pub async fn score_generator_async(&self, ctx: &GpuContext, g: &GpuNet, count: usize, seed: u64) -> Result<Score> {
        let pixels = sample_pixels_async(ctx, g, count, seed).await?;
        let (features, logits) = self.extractor.run_async(ctx, &pixels, count).await?;
        let classes = self.classifier.classes;
        let mut score = quality::score(&features, FEATURE_DIM, &logits, classes, &self.reference);
        if let Some(e) = &g.spec.embedding {
            if e.classes == classes {
                let asked = sample_labels(count, classes);
                let by_class = self.reference_by_class.as_deref().unwrap_or(&[]);
                score.conditional =
                    Some(quality::conditional_score(&features, FEATURE_DIM, &logits, classes, &asked, by_class));
            }
        }
        Ok(score)
    }
}

/// One row of quality.csv.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QualityRow {
    pub epoch: usize,
    pub step: u64,
    pub fid: f64,
    pub inception_score: f64,
    pub classes_covered: usize,
    pub seconds: f64,
    /// A conditional generator: (conditional accuracy, mean of the
    /// per-class FIDs).
    pub conditional: Option<(f64, f64)>,
}

pub const QUALITY_HEADER: &str = "epoch,step,fid,inception_score,classes_covered,seconds";
/// The columns a conditional generator's rows add.
pub const CONDITIONAL_COLUMNS: &str = "conditional_accuracy,mean_class_fid";

pub fn quality_csv(rows: &[QualityRow]) -> String {
    let conditional = rows.iter().any(|r| r.conditional.is_some());
    let mut s =
        if conditional { format!("{QUALITY_HEADER},{CONDITIONAL_COLUMNS}\n") } else { format!("{QUALITY_HEADER}\n") };
    for r in rows {
        s.push_str(&format!(
            "{},{},{:.4},{:.4},{},{:.3}",
            r.epoch, r.step, r.fid, r.inception_score, r.classes_covered, r.seconds
        ));
        if conditional {
            match r.conditional {
                Some((acc, fid)) => s.push_str(&format!(",{acc:.4},{fid:.4}")),
                None => s.push_str(",,"),
            }
        }
        s.push('\n');
    }
    s
}

/// The rows of a quality.csv up to `up_to_step` (a missing file has none).
pub fn read_quality_csv(path: &Path, up_to_step: u64) -> Result<Vec<QualityRow>> {
    let Some(text) = checkpoint::read_text_if_exists(path)? else {
        return Ok(Vec::new());
    };
    Ok(text
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            Some(QualityRow {
                epoch: f.first()?.parse().ok()?,
                step: f.get(1)?.parse().ok()?,
                fid: f.get(2)?.parse().ok()?,
                inception_score: f.get(3)?.parse().ok()?,
                classes_covered: f.get(4)?.parse().ok()?,
                seconds: f.get(5)?.parse().ok()?,
                conditional: f.get(6).and_then(|a| a.parse().ok()).zip(f.get(7).and_then(|m| m.parse().ok())),
            })
        })
        .filter(|r| r.step <= up_to_step)
        .collect())
}

/// What the newest row says that a user should look at: too few classes
/// (fewer than 8 in 10), or a FID that rose three evaluations in a row.
pub fn warnings(rows: &[QualityRow], classes: usize) -> Vec<String> {
    let mut out = Vec::new();
    let Some(last) = rows.last() else { return out };
    if (last.classes_covered as f64) < 0.8 * classes as f64 {
        out.push(format!(
            "epoch {}: only {} of {classes} classes covered (each needs {:.0}% of the samples): mode collapse?",
            last.epoch,
            last.classes_covered,
            quality::COVERED_SHARE * 100.0
        ));
    }
    if rows.len() >= 4 {
        let tail = &rows[rows.len() - 4..];
        if tail.windows(2).all(|w| w[1].fid > w[0].fid) {
            out.push(format!(
                "epoch {}: FID rose for 3 evaluations in a row ({:.1} at epoch {} -> {:.1}): divergence or mode collapse?",
                last.epoch, tail[0].fid, tail[0].epoch, last.fid
            ));
        }
    }
    out
}
