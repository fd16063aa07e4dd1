//! `gan-wgpu eval` and its classifier on the GPU: the classifier trained by
//! the engine's own kernels reaches its accuracy, its GPU features equal the
//! CPU reference's, and the scores tell real, noise and collapsed sets
//! apart, repeatably; the CLI end to end, and `train --eval-every`.

mod common;
use common::ctx;
use gan_wgpu::eval::classifier::{self, Classifier, ClassifierConfig, FeatureExtractor, FEATURE_DIM};
use gan_wgpu::eval::evaluate::{self, Evaluator};
use gan_wgpu::io::checkpoint::Loaded;
use gan_wgpu::io::data;
use gan_wgpu::models::WhichModel;
use gan_wgpu::nn::cpu_reference::CpuNet;
use gan_wgpu::nn::gpu_net::GpuNet;
use gan_wgpu::train::{self, GanConfig, Session};
use gan_wgpu::GpuTensor;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// The classifier of the bundled MNIST with the default recipe, trained once
/// for this test binary, and saved where the CLI's cache looks for it.
fn mnist_classifier() -> Option<&'static (Classifier, PathBuf)> {
    static MADE: OnceLock<(Classifier, PathBuf)> = OnceLock::new();
    let ctx = ctx()?;
    Some(MADE.get_or_init(|| {
        let train = data::embedded_mnist().unwrap();
        let test = data::embedded_mnist_test().unwrap();
        let cfg = ClassifierConfig::default();
        let c = classifier::train(ctx, &train, &test, &cfg, &mut |_| {}).unwrap();
        // Cargo's scratch folder for integration tests, under target/.
        let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("eval-gpu-cache");
        let path = cache.join(format!("classifier-{:016x}.safetensors", classifier::cache_key(&train, &test, &cfg)));
        std::fs::create_dir_all(&cache).unwrap();
        classifier::save(&path, &c).unwrap();
        eprintln!("classifier: test accuracy {:.4}, {:.1} s", c.test_accuracy, c.train_seconds);
        (c, path)
    }))
}

/// The classifier in half precision (the size a page ships): its MNIST
/// test accuracy within 0.2 points of the f32 one's.
#[test]
fn the_f16_classifier_keeps_its_accuracy() {
    let Some((c, path)) = mnist_classifier() else { return };
    let ctx = ctx().unwrap();
    let half = path.with_extension("f16.safetensors");
    classifier::save_f16(&half, c).unwrap();
    let size = std::fs::metadata(&half).unwrap().len();
    let full = std::fs::metadata(path).unwrap().len();
    assert!(size < full / 2 + 4096 && size < 1_200_000, "{size} bytes against {full}");
    let back = classifier::load(&half).unwrap();
    let test = data::embedded_mnist_test().unwrap();
    let (a32, a16) = (classifier::accuracy(ctx, c, &test).unwrap(), classifier::accuracy(ctx, &back, &test).unwrap());
    eprintln!("f32 accuracy {a32:.4}, f16 {a16:.4}, {size} bytes");
    assert!((a32 - a16).abs() <= 0.002, "f32 {a32}, f16 {a16}");
}

#[test]
fn the_engine_trained_classifier_reaches_98_percent_on_mnist() {
    let Some((c, path)) = mnist_classifier() else { return };
    assert!(c.test_accuracy >= 0.98, "test accuracy {}", c.test_accuracy);
    // The saved file loads back with the same numbers.
    let back = classifier::load(path).unwrap();
    assert_eq!(back.params, c.params);
    assert_eq!(back.classes, 10);
    assert!((back.test_accuracy - c.test_accuracy).abs() < 1e-12);
}

/// The GPU's features and logits (batch norm in eval mode) against the CPU
/// reference network: products over 784 and 512 terms in f32 against f64
/// sums, so 1e-4 of each tensor's scale.
#[test]
fn gpu_features_match_the_cpu_reference() {
    let Some((c, _)) = mnist_classifier() else { return };
    let ctx = ctx().unwrap();
    let test = data::embedded_mnist_test().unwrap();
    let n = 37;
    let fx = FeatureExtractor::new(ctx, c, 16).unwrap();
    let (features, logits) = fx.run(ctx, &test.pixels, n).unwrap();
    let mut cpu = CpuNet::new(c.spec.clone(), c.params.clone());
    cpu.bn = c.bn.clone();
    let x: Vec<f32> = test.pixels[..n * 784].iter().map(|&p| (p as f32 - 127.5) / 127.5).collect();
    let caches = cpu.forward(&x, n, false);
    let scale = |v: &[f32]| v.iter().fold(1e-6f32, |m, x| m.max(x.abs()));
    let (want_f, want_l) = (&caches[1].out, &caches[2].out);
    common::assert_close("features", &features, want_f, 1e-4 * scale(want_f), 1e-4);
    common::assert_close("logits", &logits, want_l, 1e-4 * scale(want_l), 1e-4);
    assert_eq!(features.len(), n * FEATURE_DIM);
}

#[test]
fn scores_tell_real_noise_and_collapsed_sets_apart_repeatably() {
    let Some((c, _)) = mnist_classifier() else { return };
    let ctx = ctx().unwrap();
    let train = data::embedded_mnist().unwrap();
    let test = data::embedded_mnist_test().unwrap();
    let ev = Evaluator::new(ctx, c.clone(), &test).unwrap();
    let n = 5000;
    // The test set against itself: FID 0.
    let own = ev.score_pixels(ctx, &test.pixels, test.count).unwrap();
    assert!(own.fid < 1e-6, "self FID {}", own.fid);
    let floor = ev.score_pixels(ctx, &train.pixels[..n * 784], n).unwrap();
    let mut r = common::rng(5);
    let noise: Vec<u8> = (0..n * 784).map(|_| rand::Rng::random::<u8>(&mut r)).collect();
    let noise = ev.score_pixels(ctx, &noise, n).unwrap();
    assert!(noise.fid > 100.0 * floor.fid, "floor {} vs noise {}", floor.fid, noise.fid);
    assert_eq!(floor.classes_covered, 10);
    assert!(floor.inception_score > 9.0, "{}", floor.inception_score);
    let labels = train.labels.as_ref().unwrap();
    let sevens: Vec<u8> =
        (0..train.count).filter(|&i| labels[i] == 7).take(2000).flat_map(|i| train.image(i).to_vec()).collect();
    let collapsed = ev.score_pixels(ctx, &sevens, sevens.len() / 784).unwrap();
    assert_eq!(collapsed.classes_covered, 1, "{collapsed:?}");
    assert!(collapsed.fid > 10.0 * floor.fid && collapsed.inception_score < 1.5, "{collapsed:?}");
    // The same generator scored twice: the same numbers.
    let spec = gan_wgpu::models::GanArchitecture::tutorial(100, 784).generator;
    let counters = GpuTensor::zeros(ctx, &[4], "counters");
    let g =
        GpuNet::new(ctx, spec.clone(), &spec.init_params(&mut common::rng(8)), &counters, Default::default()).unwrap();
    let a = ev.score_generator(ctx, &g, 1200, 3).unwrap();
    let b = ev.score_generator(ctx, &g, 1200, 3).unwrap();
    assert_eq!(a, b);
    assert_eq!(a.n, 1200);
    assert_eq!(a.conditional, None, "an unconditional generator has no conditional score");
    // A conditional generator: asked for each class in turn, scored per class.
    let spec = gan_wgpu::models::GanArchitecture::conditional(100, 784, 10).generator;
    let g =
        GpuNet::new(ctx, spec.clone(), &spec.init_params(&mut common::rng(9)), &counters, Default::default()).unwrap();
    let s = ev.score_generator(ctx, &g, 3000, 3).unwrap();
    let c = s.conditional.expect("a conditional score");
    assert!((0.0..=1.0).contains(&c.accuracy), "{c:?}");
    assert_eq!(c.fid_per_class.len(), 10);
    assert!(c.fid_per_class.iter().all(|f| f.is_finite() && *f > 0.0), "{c:?}");
}

fn gan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gan-wgpu"))
}

/// `eval --baselines --json`, `eval --checkpoint` and `eval --samples` of the
/// same samples (the same numbers), and `train --eval-every 1`, all on the
/// classifier cached by this binary (no training in the CLI).
#[test]
fn eval_and_train_eval_every_end_to_end() {
    let Some((_, path)) = mnist_classifier() else { return };
    let cache = path.parent().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = gan()
        .args(["train", "--epochs", "2", "--limit", "256", "--batch-size", "32", "--eval-every", "1", "--out"])
        .arg(&run)
        .env("GAN_WGPU_CACHE_DIR", cache)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("cached in"), "the cached classifier is used: {stdout}");
    assert!(stdout.contains("quality after epoch 0: FID") && stdout.contains("quality after epoch 1: FID"), "{stdout}");
    // Two epochs on 256 images: far from 8 classes, and the run says so.
    assert!(stderr.contains("warning: epoch 0: only"), "{stderr}");
    let rows = evaluate::read_quality_csv(&run.join("quality.csv"), u64::MAX).unwrap();
    assert_eq!(rows.iter().map(|r| (r.epoch, r.step)).collect::<Vec<_>>(), [(0, 8), (1, 16)]);
    let png = image::open(run.join("quality.png")).unwrap();
    assert_eq!((png.width(), png.height()), (1000, 600));
    // The averaged generator is scored beside the trained one, into its own
    // files; its scores are its own (the first step copies G, the rest move
    // it slower than G).
    assert!(stdout.contains("quality after epoch 1 (averaged generator): FID"), "{stdout}");
    let averaged = evaluate::read_quality_csv(&run.join("quality_ema.csv"), u64::MAX).unwrap();
    assert_eq!(averaged.iter().map(|r| (r.epoch, r.step)).collect::<Vec<_>>(), [(0, 8), (1, 16)]);
    assert_ne!(averaged[1].fid, rows[1].fid, "the average scored as the trained generator");
    assert!(run.join("quality_ema.png").is_file());
    // summary.json and metrics.jsonl carry the same scores: final and best
    // of each generator, a quality line per score.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("summary.json")).unwrap()).unwrap();
    let best = rows.iter().map(|r| r.fid).fold(f64::INFINITY, f64::min);
    let close = |v: &serde_json::Value, want: f64| (v.as_f64().unwrap() - want).abs() <= 1e-3 * want.max(1.0);
    assert!(close(&summary["fid"]["final"], rows[1].fid) && close(&summary["fid"]["best"], best), "{summary}");
    assert_eq!(summary["fid"]["final_step"], 16);
    assert!(close(&summary["fid_averaged"]["final"], averaged[1].fid), "{summary}");
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    assert_eq!(metrics.lines().filter(|l| l.contains("\"kind\":\"quality\"")).count(), 4, "{metrics}");

    let ck = run.join("checkpoints/generator_1.safetensors");
    let json = dir.path().join("eval.json");
    let out = gan()
        .args(["eval", "--count", "2000", "--seed", "4", "--baselines", "--checkpoint"])
        .arg(&ck)
        .arg("--json")
        .arg(&json)
        .env("GAN_WGPU_CACHE_DIR", cache)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    for needle in [
        "classifier: 784-512-256-10 MLP",
        "reference: the test split",
        "not Inception's",
        "real train images (the floor)",
        "uniform noise",
        "collapsed",
    ] {
        assert!(stdout.contains(needle), "missing '{needle}' in:\n{stdout}");
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    for key in ["fid", "inception_score", "classes_covered", "class_histogram", "n"] {
        assert!(!v[key].is_null(), "no {key} in {v}");
    }
    assert_eq!(v["n"], 2000);
    assert_eq!(v["baselines"].as_array().unwrap().len(), 3);
    let hist_sum: u64 = v["class_histogram"].as_array().unwrap().iter().map(|h| h.as_u64().unwrap()).sum();
    assert_eq!(hist_sum, 2000);
    // The same samples through `sample --idx` and `eval --samples`.
    let idx = dir.path().join("s.idx");
    let o = gan()
        .args(["sample", "--count", "2000", "--seed", "4", "--checkpoint"])
        .arg(&ck)
        .arg("--idx")
        .arg(&idx)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let json2 = dir.path().join("eval2.json");
    let o = gan()
        .arg("eval")
        .arg("--samples")
        .arg(&idx)
        .arg("--json")
        .arg(&json2)
        .env("GAN_WGPU_CACHE_DIR", cache)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v2: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json2).unwrap()).unwrap();
    for key in ["fid", "inception_score", "classes_covered", "class_histogram", "n"] {
        assert_eq!(v[key], v2[key], "{key}: --checkpoint and --samples of the same samples differ");
    }
    // Nothing to score: one clear line.
    let o = gan().arg("eval").output().unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--samples") && stderr.trim().lines().count() == 1, "{stderr}");
}

/// The page's scorer (the f16 classifier file with its reference Gaussian,
/// `eval --export-classifier`) against `eval`'s (the f32 classifier, the
/// test images): for the same generator and latent codes, FID within 2%,
/// the same classes covered, conditional accuracy within 2 points.
#[test]
fn the_pages_classifier_file_scores_as_eval_does() {
    let Some((c, _)) = mnist_classifier() else { return };
    let ctx = ctx().unwrap();
    let test = data::embedded_mnist_test().unwrap();
    let bytes = evaluate::scoring_file_bytes(ctx, c, &test).unwrap();
    assert!(bytes.len() < 1_400_000, "{} bytes", bytes.len());
    let file = Loaded::from_bytes(bytes, Path::new("scoring.safetensors")).unwrap();
    let page = Evaluator::from_file(ctx, &file).unwrap();
    assert_eq!(page.reference.n, 10_000);
    assert!(page.reference_desc.contains("t10k-images"), "{}", page.reference_desc);
    let eval = Evaluator::new(ctx, c.clone(), &test).unwrap();
    // A cgan after 256 steps of batch 64 (it draws mostly one digit yet).
    let train_set = data::embedded_mnist().unwrap();
    let data = train::first_images(&train_set, Some(8192), 64).unwrap();
    let cfg = GanConfig { batch: 64, seed: 1, model: WhichModel::Cgan, ..GanConfig::default() };
    let mut session = Session::new(ctx, cfg, &data).unwrap();
    for _ in 0..2 {
        pollster::block_on(session.run_steps(ctx, 128)).unwrap();
    }
    let (a, b) = (
        eval.score_generator(ctx, &session.gan.g, 1000, 0).unwrap(),
        page.score_generator(ctx, &session.gan.g, 1000, 0).unwrap(),
    );
    eprintln!("eval: {a:?}\npage: {b:?}");
    assert!((a.fid - b.fid).abs() <= 0.02 * a.fid, "FID: eval {}, page {}", a.fid, b.fid);
    assert_eq!(a.classes_covered, b.classes_covered);
    let (ca, cb) = (a.conditional.unwrap(), b.conditional.unwrap());
    assert!(
        (ca.accuracy - cb.accuracy).abs() <= 0.02,
        "conditional accuracy: eval {}, page {}",
        ca.accuracy,
        cb.accuracy
    );
    assert_eq!(ca.fid_per_class.len(), 10);
    assert!(cb.fid_per_class.is_empty() && cb.mean_fid().is_nan(), "the page's file has no per-class reference");
    // Real training images (every class, FID near the floor).
    let n = 1000;
    let (a, b) = (
        eval.score_pixels(ctx, &train_set.pixels[..n * 784], n).unwrap(),
        page.score_pixels(ctx, &train_set.pixels[..n * 784], n).unwrap(),
    );
    eprintln!("real, eval: {a:?}\nreal, page: {b:?}");
    assert!((a.fid - b.fid).abs() <= 0.02 * a.fid, "real images' FID: eval {}, page {}", a.fid, b.fid);
    assert_eq!((a.classes_covered, b.classes_covered), (10, 10));
}

/// A classifier file without the reference statistics: one error naming
/// the file and the command that writes a complete one.
#[test]
fn a_classifier_file_without_its_reference_is_refused() {
    let Some((c, path)) = mnist_classifier() else { return };
    let ctx = ctx().unwrap();
    let half = path.with_extension("bare-f16.safetensors");
    classifier::save_f16(&half, c).unwrap();
    let e = Evaluator::from_file(ctx, &Loaded::open(&half).unwrap()).err().expect("refused").to_string();
    assert!(
        e.contains("bare-f16.safetensors") && e.contains("reference.mean") && e.contains("--export-classifier"),
        "{e}"
    );
}
