//! The quality numbers on known answers (CPU only, no GPU needed): the
//! Fréchet distance, the Inception-style score, class coverage, warnings.

mod common;
use gan_wgpu::eval::evaluate::{self, QualityRow};
use gan_wgpu::eval::quality;
use rand::Rng;

/// n rows of dim features, feature j ~ N(mean[j], sd[j]^2) (Box-Muller).
fn normal_features(n: usize, mean: &[f64], sd: &[f64], seed: u64) -> Vec<f32> {
    let mut r = common::rng(seed);
    let mut out = Vec::with_capacity(n * mean.len());
    for _ in 0..n {
        for (m, s) in mean.iter().zip(sd) {
            let (u1, u2): (f64, f64) = (r.random_range(1e-12..1.0), r.random());
            out.push((m + s * (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32);
        }
    }
    out
}

#[test]
fn frechet_distance_known_answers() {
    let dim = 6;
    let a = normal_features(4000, &[0.0; 6], &[1.0, 2.0, 0.5, 1.0, 3.0, 1.0], 1);
    let ga = quality::gaussian(&a, dim);
    // A set against itself: 0 (up to rounding).
    assert!(quality::frechet_distance(&ga, &ga).abs() < 1e-9, "{}", quality::frechet_distance(&ga, &ga));
    // Same covariance, mean moved by d: exactly |d|^2.
    let moved: Vec<f32> = a.iter().enumerate().map(|(i, &v)| v + if i % dim == 2 { 3.0 } else { 0.0 }).collect();
    let gm = quality::gaussian(&moved, dim);
    assert!((quality::frechet_distance(&ga, &gm) - 9.0).abs() < 1e-6, "{}", quality::frechet_distance(&ga, &gm));
    // Diagonal covariances: sum (sd_a - sd_b)^2 + |mu_a - mu_b|^2, here
    // from the fitted Gaussians' own diagonals (off-diagonals near 0).
    let b = normal_features(40_000, &[1.0; 6], &[2.0, 1.0, 0.5, 1.0, 1.0, 1.0], 2);
    let c = normal_features(40_000, &[0.0; 6], &[1.0, 1.0, 0.5, 2.0, 1.0, 1.0], 3);
    let (gb, gc) = (quality::gaussian(&b, dim), quality::gaussian(&c, dim));
    let want: f64 = (0..dim)
        .map(|j| (gb.cov[(j, j)].sqrt() - gc.cov[(j, j)].sqrt()).powi(2) + (gb.mean[j] - gc.mean[j]).powi(2))
        .sum();
    let got = quality::frechet_distance(&gb, &gc);
    assert!((got - want).abs() < 0.02 * want, "got {got}, want {want}");
    // Symmetric.
    assert!((got - quality::frechet_distance(&gc, &gb)).abs() < 1e-9 * got.max(1.0));
}

#[test]
fn inception_score_and_coverage_known_answers() {
    let classes = 10;
    // Confident and even over the classes: IS = 10, every class covered.
    let mut logits = Vec::new();
    for i in 0..1000 {
        logits.extend((0..classes).map(|c| if c == i % classes { 50.0f32 } else { 0.0 }));
    }
    let probs = quality::softmax_rows(&logits, classes);
    assert!((quality::inception_score(&probs, classes) - 10.0).abs() < 1e-6);
    let hist = quality::class_histogram(&logits, classes);
    assert_eq!(hist, vec![100; 10]);
    assert_eq!(quality::classes_covered(&hist), 10);
    // One class everywhere: IS = 1, one class covered.
    let one: Vec<f32> = (0..1000).flat_map(|_| (0..classes).map(|c| if c == 3 { 50.0f32 } else { 0.0 })).collect();
    assert!((quality::inception_score(&quality::softmax_rows(&one, classes), classes) - 1.0).abs() < 1e-9);
    assert_eq!(quality::classes_covered(&quality::class_histogram(&one, classes)), 1);
    // Uninformative (uniform) predictions: IS = 1.
    let flat = vec![0.0f32; 1000 * classes];
    assert!((quality::inception_score(&quality::softmax_rows(&flat, classes), classes) - 1.0).abs() < 1e-9);
    // A class needs 5% of the samples to count.
    assert_eq!(quality::classes_covered(&[96, 4, 0, 0]), 1);
    assert_eq!(quality::classes_covered(&[95, 5, 0, 0]), 2);
}

#[test]
fn quality_warnings_name_the_epoch() {
    let row = |epoch, fid, classes_covered| QualityRow {
        conditional: None,
        epoch,
        step: 100 * (epoch as u64 + 1),
        fid,
        inception_score: 5.0,
        classes_covered,
        seconds: 1.0,
    };
    assert!(evaluate::warnings(&[row(4, 50.0, 10)], 10).is_empty());
    let w = evaluate::warnings(&[row(4, 50.0, 7)], 10);
    assert_eq!(w.len(), 1);
    assert!(w[0].starts_with("epoch 4: only 7 of 10 classes covered"), "{w:?}");
    // Three rises in a row (four evaluations), not two.
    let two = [row(0, 50.0, 10), row(1, 40.0, 10), row(2, 45.0, 10), row(3, 47.0, 10)];
    assert!(evaluate::warnings(&two, 10).is_empty());
    let three = [row(0, 40.0, 10), row(1, 45.0, 10), row(2, 47.0, 10), row(3, 60.0, 10)];
    let w = evaluate::warnings(&three, 10);
    assert_eq!(w.len(), 1);
    assert!(w[0].contains("epoch 3: FID rose for 3 evaluations in a row (40.0 at epoch 0 -> 60.0)"), "{w:?}");
    // quality.csv round trip, rows past a resumed step dropped.
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("quality.csv");
    std::fs::write(&p, evaluate::quality_csv(&three)).unwrap();
    let back = evaluate::read_quality_csv(&p, 300).unwrap();
    assert_eq!(back.len(), 3);
    assert_eq!(back[1].classes_covered, 10);
    assert!((back[2].fid - 47.0).abs() < 1e-9);
}

/// Conditional accuracy is the share of samples whose arg-max class is the
/// class asked for; a class's FID is against that class's reference only;
/// quality.csv carries both columns through a round trip.
#[test]
fn conditional_score_counts_agreement_and_scores_each_class_against_its_own() {
    let (classes, dim) = (3usize, 2usize);
    let mut r = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(5);
    // Class c's features scatter around (10c, 0).
    let feature = |c: usize, r: &mut rand_chacha::ChaCha8Rng| -> [f32; 2] {
        [10.0 * c as f32 + rand::Rng::random_range(r, -1.0..1.0), rand::Rng::random_range(r, -1.0..1.0)]
    };
    let reference: Vec<quality::Gaussian> = (0..classes)
        .map(|c| quality::gaussian(&(0..400).flat_map(|_| feature(c, &mut r)).collect::<Vec<f32>>(), dim))
        .collect();
    // 300 samples asked for i mod 3; each drawn as its class, except that
    // every sample asked for class 2 looks like class 0.
    let asked: Vec<u32> = (0..300).map(|i| (i % 3) as u32).collect();
    let drawn: Vec<usize> = asked.iter().map(|&a| if a == 2 { 0 } else { a as usize }).collect();
    let features: Vec<f32> = drawn.iter().flat_map(|&c| feature(c, &mut r)).collect();
    let logits: Vec<f32> =
        drawn.iter().flat_map(|&c| (0..classes).map(move |k| if k == c { 5.0 } else { 0.0 })).collect();
    let s = quality::conditional_score(&features, dim, &logits, classes, &asked, &reference);
    assert!((s.accuracy - 2.0 / 3.0).abs() < 1e-12, "{}", s.accuracy);
    assert!(s.fid_per_class[0] < 0.5 && s.fid_per_class[1] < 0.5, "{:?}", s.fid_per_class);
    assert!(s.fid_per_class[2] > 50.0, "class 2's samples sit at class 0's features: {:?}", s.fid_per_class);
    assert!((s.mean_fid() - s.fid_per_class.iter().sum::<f64>() / 3.0).abs() < 1e-12);

    let row = QualityRow {
        epoch: 4,
        step: 500,
        fid: 12.5,
        inception_score: 8.0,
        classes_covered: 10,
        seconds: 3.0,
        conditional: Some((0.9512, 20.25)),
    };
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("quality.csv");
    let text = evaluate::quality_csv(&[row]);
    assert!(
        text.starts_with(
            "epoch,step,fid,inception_score,classes_covered,seconds,conditional_accuracy,mean_class_fid\n"
        ),
        "{text}"
    );
    std::fs::write(&p, text).unwrap();
    assert_eq!(evaluate::read_quality_csv(&p, 500).unwrap(), vec![row]);
}
