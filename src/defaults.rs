//! Every default value of a run, in one place: the CLI's flags (clap's
//! `default_value_t`), the library's configs and the browser page (which
//! reads them as JSON through `models::defaults_json`) all take them from here.

/// Passes over the data (the tutorial's 200).
pub const EPOCHS: usize = 200;
/// Real images per step (the generator makes as many).
pub const BATCH: usize = 128;
/// Length of the generator's latent code z.
pub const LATENT: usize = 100;
/// Adam's learning rate, both networks.
pub const LR: f32 = 2e-4;
/// Adam's first-moment decay.
pub const BETA1: f32 = 0.5;
/// Adam's second-moment decay.
pub const BETA2: f32 = 0.999;
/// Adam's epsilon.
pub const EPS: f32 = 1e-8;
/// Decay of the generator's exponential moving average (`--ema-decay`;
/// 0: no average). 0.999 spans about 1,000 steps, two MNIST epochs at
/// batch 128.
pub const EMA_DECAY: f32 = 0.999;
/// Discriminator steps per generator step (`--n-critic`; the tutorial's 1).
pub const N_CRITIC: usize = 1;
/// Critic steps per generator step under `--loss wgan-gp` (the paper's 5).
pub const N_CRITIC_WGAN_GP: usize = 5;
/// The gradient penalty's weight lambda (`--gp-weight`; the paper's 10).
pub const GP_WEIGHT: f32 = 10.0;
/// Seed of the initial weights, the shuffles and the latent codes (also
/// `sample`'s and `eval`'s latent-code seed).
pub const SEED: u64 = 0;
/// Log and record the losses every this many steps.
pub const LOG_EVERY: u64 = 10;
/// Score the generator every this many epochs during `train`.
pub const EVAL_EVERY: usize = 5;
/// Samples `eval` scores (and `train --eval-every` draws).
pub const EVAL_COUNT: usize = 10_000;
/// Where a new run writes when no output folder is given (a resumed run
/// writes into the folder it resumes).
pub const OUT_DIR: &str = "result";
/// DCGAN's base channel count W (`--width`): G 2W, W, 1; D W, 2W, 1.
pub const DCGAN_WIDTH: usize = 64;
/// Label classes a conditional model draws and embeds (MNIST's digits,
/// Fashion-MNIST's garments).
pub const CLASSES: usize = 10;
/// Samples the page scores for its live quality curve (1,000 samples: a
/// FID within a few percent of itself from draw to draw).
pub const LIVE_QUALITY_COUNT: usize = 1000;
/// The page scores its generator every this many steps.
pub const LIVE_QUALITY_EVERY: u64 = 250;
/// The classifier file the page fetches for its live quality (written by
/// `gan-wgpu eval --export-classifier`, shipped beside the page).
pub const LIVE_QUALITY_CLASSIFIER: &str = "mnist-classifier.f16.safetensors";
/// Images in an epoch grid, in `sample`'s default grid and in the page's grids.
pub const GRID_SAMPLES: usize = 25;
