//! `gan-wgpu eval` and `train --eval-every`: the classifier, its progress,
//! and the scores of samples, generators and baselines.

use super::{
    checkpoint, classifier, data, defaults, evaluate, images, positive, train, EvalArgs, GanError, GpuContext, PathBuf,
    Requirements, Settings,
};
use gan_wgpu::io::run_log::{QualityPoint, Track};
use std::io::IsTerminal;

/// Prints the classifier's training progress on stderr: a bar on a
/// terminal, a line per epoch otherwise.
fn classifier_progress() -> impl FnMut(&classifier::Progress) {
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::new(0);
        b.set_style(
            indicatif::ProgressStyle::with_template("classifier {msg} [{bar:30}] {pos}/{len} steps, eta {eta}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    move |p: &classifier::Progress| {
        let msg =
            format!("epoch {}/{}: loss {:.4}, batch accuracy {:.1}%", p.epoch, p.epochs, p.loss, 100.0 * p.accuracy);
        match &bar {
            Some(b) => {
                b.set_length((p.steps * p.epochs) as u64);
                b.set_position((p.epoch * p.steps + p.step) as u64);
                b.set_message(msg);
                if p.epoch + 1 == p.epochs && p.step == p.steps {
                    b.finish_and_clear();
                }
            }
            None if p.step == p.steps => eprintln!("classifier {msg}"),
            None => {}
        }
    }
}

/// The classifier for a data set: `--classifier FILE`, else the cached or
/// newly trained one, with progress shown.
fn classifier_for(
    ctx: &GpuContext,
    file: Option<&std::path::Path>,
    train_set: &data::ImageSet,
    test: &data::ImageSet,
    cache_dir: Option<&std::path::Path>,
) -> gan_wgpu::Result<classifier::Classifier> {
    match file {
        Some(p) => classifier::load(p),
        None => {
            eprintln!(
                "classifier: looking in the cache, else training one on {} ({} images)",
                train_set.source, train_set.count
            );
            classifier::load_or_train(
                ctx,
                train_set,
                test,
                &classifier::ClassifierConfig::default(),
                cache_dir,
                &mut classifier_progress(),
            )
        }
    }
}

/// The classifier's line; `accuracy_name` says what its accuracy was
/// measured on (`EvalSplits::accuracy_name`).
fn describe_classifier(c: &classifier::Classifier, accuracy_name: &str) -> String {
    format!(
        "{}-512-256-{} MLP, {accuracy_name} {:.2}%, {} (training took {:.1} s)",
        c.spec.input_dim(),
        c.classes,
        100.0 * c.test_accuracy,
        c.origin,
        c.train_seconds
    )
}

/// Samples scored by `train --eval-every` (and their latent-code seed).
const QUALITY_SAMPLES: usize = defaults::EVAL_COUNT;
const QUALITY_SEED: u64 = defaults::SEED;

/// `train --eval-every N`: after every N-th epoch, scores 10,000 samples of
/// the generator, appends to quality.csv, draws quality.png, prints a line
/// (and the same for the averaged generator: quality_ema.csv, .png),
/// and warns on too few classes or a rising FID. The classifier and the
/// reference statistics are made at the first evaluation.
pub(super) struct QualityHook {
    every: usize,
    data: Option<PathBuf>,
    out: PathBuf,
    resume: Option<PathBuf>,
    train_set: data::ImageSet,
    /// Where the trained classifier is cached (`Settings::cache_dir`).
    cache_dir: Option<PathBuf>,
    evaluator: Option<evaluate::Evaluator>,
    /// The rows of quality.csv (the trained generator) and quality_ema.csv
    /// (its average), read at the first evaluation.
    rows: [Option<Vec<evaluate::QualityRow>>; 2],
    disabled: bool,
}

impl QualityHook {
    pub(super) fn new(
        every: usize,
        data: Option<PathBuf>,
        out: PathBuf,
        resume: Option<PathBuf>,
        train_set: data::ImageSet,
        cache_dir: Option<PathBuf>,
    ) -> Self {
        QualityHook {
            every,
            data,
            out,
            resume,
            train_set,
            cache_dir,
            evaluator: None,
            rows: [None, None],
            disabled: false,
        }
    }

    pub(super) fn after_epoch(
        &mut self,
        ctx: &GpuContext,
        gan: &train::Gan,
        epoch: usize,
        steps: u64,
    ) -> gan_wgpu::Result<Vec<QualityPoint>> {
        if self.every == 0 || self.disabled || !(epoch + 1).is_multiple_of(self.every) {
            return Ok(Vec::new());
        }
        if self.evaluator.is_none() {
            let made = (|| -> gan_wgpu::Result<evaluate::Evaluator> {
                classifier::classes_of(&self.train_set)?;
                let splits = data::eval_splits(self.data.as_deref(), &self.train_set)?;
                let c = classifier_for(ctx, None, &splits.train, &splits.reference, self.cache_dir.as_deref())?;
                say!("quality: classifier {}", describe_classifier(&c, splits.accuracy_name()));
                say!("quality: reference {}", splits.describe());
                evaluate::Evaluator::new(ctx, c, &splits.reference)
            })();
            match made {
                Ok(ev) => self.evaluator = Some(ev),
                Err(e) => {
                    eprintln!("warning: --eval-every is off for this run: {e}");
                    self.disabled = true;
                    return Ok(Vec::new());
                }
            }
        }
        let ev = self.evaluator.as_ref().expect("made above");
        let tracks = [("quality", "", Some(&gan.g)), ("quality_ema", " (averaged generator)", gan.g_ema.as_ref())];
        let mut points = Vec::new();
        for (i, (stem, which, net)) in tracks.into_iter().enumerate() {
            let Some(net) = net else { continue };
            if self.rows[i].is_none() {
                // A resumed run keeps the rows of the steps before it.
                let from = self.resume.as_deref().map(train::run_dir_of).unwrap_or_else(|| self.out.clone());
                let mut rows = evaluate::read_quality_csv(&from.join(format!("{stem}.csv")), steps)?;
                rows.retain(|r| r.step < steps);
                self.rows[i] = Some(rows);
            }
            let rows = self.rows[i].as_mut().expect("read above");
            score_into(ctx, ev, net, rows, (epoch, steps), (&self.out, stem, which))?;
            let r = rows.last().expect("scored above");
            points.push(QualityPoint {
                epoch,
                step: steps,
                track: if i == 0 { Track::Trained } else { Track::Averaged },
                fid: r.fid,
                inception_score: r.inception_score,
                classes_covered: r.classes_covered,
                conditional_accuracy: r.conditional.map(|c| c.0),
                seconds: r.seconds,
            });
        }
        Ok(points)
    }
}

/// Scores `net` (the trained generator or its average), appends the row to
/// `rows`, writes `{stem}.csv` and `{stem}.png` in `out`, prints the line
/// and any warning.
fn score_into(
    ctx: &GpuContext,
    ev: &evaluate::Evaluator,
    net: &gan_wgpu::nn::gpu_net::GpuNet,
    rows: &mut Vec<evaluate::QualityRow>,
    (epoch, steps): (usize, u64),
    (out, stem, which): (&std::path::Path, &str, &str),
) -> gan_wgpu::Result<()> {
    let t = std::time::Instant::now();
    let s = ev.score_generator(ctx, net, QUALITY_SAMPLES, QUALITY_SEED)?;
    let seconds = t.elapsed().as_secs_f64();
    rows.push(evaluate::QualityRow {
        epoch,
        step: steps,
        fid: s.fid,
        inception_score: s.inception_score,
        classes_covered: s.classes_covered,
        seconds,
        conditional: s.conditional.as_ref().map(|c| (c.accuracy, c.mean_fid())),
    });
    checkpoint::atomic_write(&out.join(format!("{stem}.csv")), evaluate::quality_csv(rows).as_bytes())?;
    let points: Vec<(u64, f64, usize)> = rows.iter().map(|r| (r.step, r.fid, r.classes_covered)).collect();
    images::save_quality_plot(&out.join(format!("{stem}.png")), &points, ev.classifier.classes)?;
    let conditional = s.conditional.as_ref().map_or(String::new(), |c| {
        format!(", conditional accuracy {:.2}%, mean class FID {:.2}", 100.0 * c.accuracy, c.mean_fid())
    });
    say!(
        "quality after epoch {epoch}{which}: FID {:.2}, IS {:.2}, {}/{} classes covered{conditional} ({} samples, {:.1} s)",
        s.fid, s.inception_score, s.classes_covered, ev.classifier.classes, s.n, seconds
    );
    for w in evaluate::warnings(rows, ev.classifier.classes) {
        eprintln!("warning: {w}{which}");
    }
    Ok(())
}

pub(super) fn eval(a: EvalArgs, settings: &Settings) -> gan_wgpu::Result<()> {
    positive("--count", a.count as f64)?;
    if a.samples.is_none() && a.checkpoint.is_none() && !a.baselines && a.export_classifier.is_none() {
        return Err(GanError::Flag {
            flag: "--samples",
            why: "give --samples FILE.idx, --checkpoint G.safetensors, --baselines and/or --export-classifier FILE"
                .into(),
        });
    }
    let full_train = data_like_generator(&a)?.load(settings)?;
    classifier::classes_of(&full_train)?;
    // The whole set's identity, to compare with the generator's record.
    let scored = (full_train.content_hash(), full_train.source.clone());
    let splits = data::eval_splits(a.data.data.as_deref(), &full_train)?;
    drop(full_train);
    let (train_set, reference) = (&splits.train, &splits.reference);
    let samples = a.samples.as_ref().map(|p| data::read_images(p, None)).transpose()?;
    if let Some(s) = &samples {
        if s.dim() != reference.dim() {
            return Err(GanError::data(
                &s.source,
                format!("samples are {}, the reference images {}", s.shape().describe(), reference.shape().describe()),
            ));
        }
    }
    let ctx = gan_wgpu::engine::autotune::open(
        &settings.device_choice(a.device.as_deref())?,
        &Requirements::default(),
        settings,
    )?;
    let c = classifier_for(&ctx, a.classifier.as_deref(), train_set, reference, settings.cache_dir.as_deref())?;
    println!("classifier: {}", describe_classifier(&c, splits.accuracy_name()));
    if let Some(p) = &a.export_classifier {
        export_classifier(&ctx, p, &c, &splits)?;
    }
    let ev = evaluate::Evaluator::new(&ctx, c, reference)?;
    println!("reference: {}", splits.describe());
    if !train_set.class_names.is_empty() {
        println!(
            "the classifier is this data set's own ({} classes: {}): its scores compare generators of this data only",
            train_set.class_names.len(),
            train_set.class_names.join(", ")
        );
    }
    println!(
        "FID here is the Frechet distance in this classifier's {}-d penultimate features (not Inception's: not comparable with published FIDs)",
        classifier::FEATURE_DIM
    );
    let mut rows: Vec<(String, gan_wgpu::eval::quality::Score)> = Vec::new();
    if let Some(s) = &samples {
        rows.push((format!("samples {}", s.source), ev.score_pixels(&ctx, &s.pixels, s.count)?));
    }
    if let Some(p) = &a.checkpoint {
        rows.push(score_checkpoint(&ctx, (&ev, reference), p, &a, (scored.0, &scored.1))?);
    }
    let baselines = if a.baselines { baseline_scores(&ctx, &ev, train_set, &a)? } else { Vec::new() };
    print_scores(&ev, &rows, &baselines);
    if let Some(path) = &a.json {
        write_eval_json(path, &ev, &splits, &rows, &baselines)?;
    }
    Ok(())
}

/// `--data` with `--image-size` and `--channels`, where not given, from
/// the data the generator of `--checkpoint` records (an image folder is
/// read as it was for training).
fn data_like_generator(a: &EvalArgs) -> gan_wgpu::Result<super::data_args::DataArgs> {
    let mut d = a.data.clone();
    let recorded = match &a.checkpoint {
        Some(p) if d.data.as_deref().is_some_and(gan_wgpu::io::folder::is_image_folder) => {
            data::DataIdentity::from_meta(&checkpoint::metadata_of(p)?)
        }
        _ => None,
    };
    if let Some(r) = recorded {
        d.image_size = d.image_size.or(Some(r.height));
        d.channels = d.channels.or(Some(r.channels));
    }
    Ok(d)
}

/// A scored set: its line's name and its scores.
type Scored = (String, gan_wgpu::eval::quality::Score);

/// `eval --export-classifier`: the classifier in f16 with the reference
/// Gaussian, as the page reads it, and its accuracy read back.
fn export_classifier(
    ctx: &GpuContext,
    p: &std::path::Path,
    c: &classifier::Classifier,
    splits: &data::EvalSplits,
) -> gan_wgpu::Result<()> {
    let reference = &splits.reference;
    checkpoint::atomic_write(p, &evaluate::scoring_file_bytes(ctx, c, reference)?)?;
    let half = classifier::load(p)?;
    println!(
        "classifier in half precision, with the reference Gaussian of its features of {} -> {} ({} bytes; {} {:.2}%, f32 {:.2}%)",
        splits.describe(),
        p.display(),
        std::fs::metadata(p).map_or(0, |m| m.len()),
        splits.accuracy_name(),
        100.0 * classifier::accuracy(ctx, &half, reference)?,
        100.0 * c.test_accuracy
    );
    Ok(())
}

/// `eval --checkpoint`: the generator's samples scored, after the data it
/// learnt, and a warning when that is not the scored data (`scored`: the
/// whole set's content hash and source).
fn score_checkpoint(
    ctx: &GpuContext,
    (ev, reference): (&evaluate::Evaluator, &data::ImageSet),
    p: &std::path::Path,
    a: &EvalArgs,
    scored: (u64, &str),
) -> gan_wgpu::Result<Scored> {
    let g = evaluate::load_generator(ctx, p)?;
    println!("{}", super::sample::trained_on(g.data.as_ref()));
    if let Some(w) = evaluate::other_data_warning(g.data.as_ref(), scored) {
        eprintln!("warning: {w}");
    }
    if g.shape() != reference.shape() {
        return Err(GanError::Checkpoint {
            path: p.to_path_buf(),
            why: format!(
                "the generator makes {} images, the reference set has {}",
                g.shape().describe(),
                reference.shape().describe()
            ),
        });
    }
    let score = ev.score_generator(ctx, &g.net, a.count, a.seed)?;
    Ok((format!("generator {} ({} samples, seed {})", p.display(), a.count, a.seed), score))
}

/// `eval --baselines`: real training images (the floor), uniform noise, and
/// one class of real images (a collapsed generator).
fn baseline_scores(
    ctx: &GpuContext,
    ev: &evaluate::Evaluator,
    train_set: &data::ImageSet,
    a: &EvalArgs,
) -> gan_wgpu::Result<Vec<Scored>> {
    let mut baselines = Vec::new();
    let n = a.count.min(train_set.count);
    let dim = train_set.dim();
    baselines
        .push(("real train images (the floor)".to_string(), ev.score_pixels(ctx, &train_set.pixels[..n * dim], n)?));
    let mut r = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(a.seed);
    let noise: Vec<u8> = (0..n * dim).map(|_| rand::Rng::random::<u8>(&mut r)).collect();
    baselines.push(("uniform noise".to_string(), ev.score_pixels(ctx, &noise, n)?));
    let labels = train_set.labels.as_ref().expect("classes_of checked the labels");
    let one: Vec<u8> =
        (0..train_set.count).filter(|&i| labels[i] == 1).take(n).flat_map(|i| train_set.image(i).to_vec()).collect();
    let k = one.len() / dim;
    baselines.push(("collapsed: real images of class 1 only".to_string(), ev.score_pixels(ctx, &one, k)?));
    Ok(baselines)
}

/// The table of scores, then each conditional generator's per-class line.
fn print_scores(ev: &evaluate::Evaluator, rows: &[Scored], baselines: &[Scored]) {
    if !rows.is_empty() || !baselines.is_empty() {
        println!("{:<58} {:>6} {:>9} {:>6} {:>8}  class histogram", "set", "n", "FID", "IS", "classes");
    }
    for (name, s) in rows.iter().chain(baselines) {
        println!(
            "{:<58} {:>6} {:>9.2} {:>6.2} {:>5}/{:<2}  {:?}",
            name, s.n, s.fid, s.inception_score, s.classes_covered, ev.classifier.classes, s.class_histogram
        );
    }
    for (name, s) in rows {
        if let Some(c) = &s.conditional {
            println!(
                "{name}: conditional accuracy {:.2}% (the classifier agrees with the class asked for), FID per class {}, mean {:.2}",
                100.0 * c.accuracy,
                c.fid_per_class.iter().enumerate().map(|(k, f)| format!("{k}:{f:.1}")).collect::<Vec<_>>().join(" "),
                c.mean_fid()
            );
        }
    }
}

/// `eval --json FILE`: the first row's scores, the others, the baselines,
/// the classifier and the reference.
fn write_eval_json(
    path: &std::path::Path,
    ev: &evaluate::Evaluator,
    splits: &data::EvalSplits,
    rows: &[Scored],
    baselines: &[Scored],
) -> gan_wgpu::Result<()> {
    let score_json = |s: &gan_wgpu::eval::quality::Score| {
        let mut v = serde_json::json!({
            "n": s.n,
            "fid": s.fid,
            "inception_score": s.inception_score,
            "classes_covered": s.classes_covered,
            "class_histogram": s.class_histogram,
        });
        if let Some(c) = &s.conditional {
            v["conditional_accuracy"] = c.accuracy.into();
            v["fid_per_class"] = c.fid_per_class.clone().into();
            v["mean_class_fid"] = c.mean_fid().into();
        }
        v
    };
    let mut v = match rows.first() {
        Some((name, s)) => {
            let mut v = score_json(s);
            v["set"] = name.clone().into();
            v
        }
        None => serde_json::json!({}),
    };
    v["classifier"] = serde_json::json!({
        "test_accuracy": ev.classifier.test_accuracy,
        "accuracy_measured_on": splits.describe(),
        "train_seconds": ev.classifier.train_seconds,
        "origin": ev.classifier.origin,
        "feature_dim": classifier::FEATURE_DIM,
    });
    v["reference"] = ev.reference_desc.clone().into();
    if rows.len() > 1 {
        v["others"] = rows[1..]
            .iter()
            .map(|(n, s)| {
                let mut j = score_json(s);
                j["set"] = n.clone().into();
                j
            })
            .collect();
    }
    if !baselines.is_empty() {
        v["baselines"] = baselines
            .iter()
            .map(|(n, s)| {
                let mut j = score_json(s);
                j["set"] = n.clone().into();
                j
            })
            .collect();
    }
    let text = serde_json::to_string_pretty(&v).map_err(|e| GanError::data(path, e.to_string()))?;
    checkpoint::atomic_write(path, text.as_bytes())?;
    Ok(())
}
