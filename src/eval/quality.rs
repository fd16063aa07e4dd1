//! Sample-quality numbers from a classifier's outputs, on the CPU in f64:
//! the Fréchet distance between Gaussians fitted to penultimate-layer
//! features (FID, with this data set's classifier in place of Inception),
//! the Inception-style score exp(E_x KL(p(y|x) || p(y))), and how the
//! arg-max labels spread over the classes.

use nalgebra::{DMatrix, DVector, SymmetricEigen};

/// A Gaussian fitted to feature vectors: mean and covariance (unbiased).
#[derive(Clone, Debug)]
pub struct Gaussian {
    pub n: usize,
    pub mean: DVector<f64>,
    pub cov: DMatrix<f64>,
}

/// Fits a Gaussian to `features`, `n` rows of `dim` values.
pub fn gaussian(features: &[f32], dim: usize) -> Gaussian {
    let n = features.len() / dim.max(1);
    let mut mean = DVector::<f64>::zeros(dim);
    for row in features.chunks_exact(dim) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += v as f64;
        }
    }
    mean /= n.max(1) as f64;
    let mut centred = DMatrix::<f64>::zeros(n, dim);
    for (r, row) in features.chunks_exact(dim).enumerate() {
        for (c, &v) in row.iter().enumerate() {
            centred[(r, c)] = v as f64 - mean[c];
        }
    }
    let cov = centred.transpose() * &centred / (n.max(2) - 1) as f64;
    Gaussian { n, mean, cov }
}

/// The symmetric positive semi-definite square root of `m` (symmetric),
/// from its eigen-decomposition; eigenvalues below zero (rounding) count as 0.
fn sqrt_psd(m: &DMatrix<f64>) -> DMatrix<f64> {
    let eig = SymmetricEigen::new(m.clone());
    let roots = eig.eigenvalues.map(|l| l.max(0.0).sqrt());
    &eig.eigenvectors * DMatrix::from_diagonal(&roots) * eig.eigenvectors.transpose()
}

/// Fréchet distance between two Gaussians:
///   |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^(1/2)),
/// with tr((S_a S_b)^(1/2)) = sum of sqrt(eigenvalues of S_a^(1/2) S_b S_a^(1/2)),
/// a symmetric matrix (so no complex square roots).
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> f64 {
    let diff = &a.mean - &b.mean;
    let root_a = sqrt_psd(&a.cov);
    let middle = &root_a * &b.cov * &root_a;
    let middle = (&middle + middle.transpose()) * 0.5;
    let cross: f64 = SymmetricEigen::new(middle).eigenvalues.iter().map(|l| l.max(0.0).sqrt()).sum();
    (diff.dot(&diff) + a.cov.trace() + b.cov.trace() - 2.0 * cross).max(0.0)
}

/// Softmax of each row of `logits` (`classes` wide), in f64.
pub fn softmax_rows(logits: &[f32], classes: usize) -> Vec<f64> {
    let mut out = Vec::with_capacity(logits.len());
    for row in logits.chunks_exact(classes) {
        let m = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let e: Vec<f64> = row.iter().map(|&v| (v as f64 - m).exp()).collect();
        let s: f64 = e.iter().sum();
        out.extend(e.iter().map(|v| v / s));
    }
    out
}

/// exp(mean over x of KL(p(y|x) || p(y))), p(y) the mean of p(y|x): 1 for
/// one class everywhere, up to the number of classes for confident, even
/// coverage.
pub fn inception_score(probs: &[f64], classes: usize) -> f64 {
    let n = probs.len() / classes;
    let mut marginal = vec![0f64; classes];
    for row in probs.chunks_exact(classes) {
        for (m, &p) in marginal.iter_mut().zip(row) {
            *m += p / n as f64;
        }
    }
    let mut kl = 0f64;
    for row in probs.chunks_exact(classes) {
        for (&p, &m) in row.iter().zip(&marginal) {
            if p > 0.0 && m > 0.0 {
                kl += p * (p / m).ln();
            }
        }
    }
    (kl / n.max(1) as f64).exp()
}

/// How many rows have each class as their (first) arg-max.
pub fn class_histogram(logits: &[f32], classes: usize) -> Vec<usize> {
    let mut hist = vec![0; classes];
    for arg in arg_max(logits, classes) {
        hist[arg] += 1;
    }
    hist
}

/// The share of the arg-max labels a class needs to count as covered.
pub const COVERED_SHARE: f64 = 0.05;

/// Classes that get at least `COVERED_SHARE` of the arg-max labels.
pub fn classes_covered(hist: &[usize]) -> usize {
    let n: usize = hist.iter().sum();
    hist.iter().filter(|&&h| h as f64 >= COVERED_SHARE * n as f64 && h > 0).count()
}

/// The numbers `gan-wgpu eval` reports for one set of images.
#[derive(Clone, Debug, PartialEq)]
pub struct Score {
    pub n: usize,
    pub fid: f64,
    pub inception_score: f64,
    pub classes_covered: usize,
    pub class_histogram: Vec<usize>,
    /// A conditional generator's: how well it draws the class asked for.
    pub conditional: Option<ConditionalScore>,
}

/// How well a conditional generator draws the class it is asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct ConditionalScore {
    /// Share of the samples whose arg-max class is the class asked for.
    pub accuracy: f64,
    /// Per class: the FID of the samples asked for that class against the
    /// reference images of that class.
    pub fid_per_class: Vec<f64>,
}

impl ConditionalScore {
    /// The mean of the class FIDs; NaN when there are none (no per-class
    /// reference).
    pub fn mean_fid(&self) -> f64 {
        if self.fid_per_class.is_empty() {
            return f64::NAN;
        }
        self.fid_per_class.iter().sum::<f64>() / self.fid_per_class.len() as f64
    }
}

/// The arg-max class of each row of `logits` (the first on ties).
pub fn arg_max(logits: &[f32], classes: usize) -> Vec<usize> {
    logits
        .chunks_exact(classes)
        .map(|row| (1..classes).fold(0, |best, c| if row[c] > row[best] { c } else { best }))
        .collect()
}

/// Scores samples drawn for the classes `asked` (one per row of
/// `features` and `logits`): agreement of the arg-max class with the class
/// asked for, and per class the FID against `reference_by_class[c]`.
pub fn conditional_score(
    features: &[f32],
    feature_dim: usize,
    logits: &[f32],
    classes: usize,
    asked: &[u32],
    reference_by_class: &[Gaussian],
) -> ConditionalScore {
    let predicted = arg_max(logits, classes);
    let hits = predicted.iter().zip(asked).filter(|(p, a)| **p == **a as usize).count();
    let fid_per_class = reference_by_class
        .iter()
        .enumerate()
        .map(|(c, reference)| {
            let rows: Vec<f32> = features
                .chunks_exact(feature_dim)
                .zip(asked)
                .filter(|(_, a)| **a as usize == c)
                .flat_map(|(f, _)| f.iter().copied())
                .collect();
            if rows.len() < 2 * feature_dim {
                return f64::NAN;
            }
            frechet_distance(&gaussian(&rows, feature_dim), reference)
        })
        .collect();
    ConditionalScore { accuracy: hits as f64 / asked.len().max(1) as f64, fid_per_class }
}

/// Scores a set from its classifier features and logits against the
/// reference set's Gaussian.
pub fn score(features: &[f32], feature_dim: usize, logits: &[f32], classes: usize, reference: &Gaussian) -> Score {
    let g = gaussian(features, feature_dim);
    let hist = class_histogram(logits, classes);
    Score {
        n: g.n,
        fid: frechet_distance(&g, reference),
        inception_score: inception_score(&softmax_rows(logits, classes), classes),
        classes_covered: classes_covered(&hist),
        class_histogram: hist,
        conditional: None,
    }
}
