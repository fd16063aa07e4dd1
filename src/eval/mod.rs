//! Scoring generators: the classifier whose features FID is measured in,
//! the scores themselves (FID, IS, classes covered, conditional accuracy)
//! and the evaluation of a generator or of sample files.
//!
//! - `classifier`: an MLP trained (and cached) per data set;
//! - `quality`: the statistics on features (Gaussians, Frechet distance);
//! - `evaluate`: generators loaded from checkpoints, sampled and scored;
//! - `compare`: run folders read side by side, their table, curves and grids.
//!
//! May import: `train` (the sampler and the stepping session), `io`,
//! `models`, `nn`, `engine`, `error`, `defaults`. Only the hosts (the CLI
//! and the page) sit above it.

pub mod classifier;
pub mod compare;
pub mod evaluate;
pub mod quality;
