//! gan-wgpu: GANs trained on the GPU through WebGPU compute shaders. See
//! README.md, and docs/architecture.md for the map of this crate.
//!
//! Layers, bottom to top; each imports only from the layers below it:
//! - `error`, `defaults`, `fs`: errors, every default value, atomic writes;
//! - `engine`: the device, tensors, kernels and their choice per adapter;
//! - `nn`: networks as data and on the GPU, and the CPU reference step;
//! - `models`: gan, cgan, dcgan and the evaluation classifier's network;
//! - `io`: data sets, checkpoints, images;
//! - `train`: the GAN step, the stepping session, a run and its files;
//! - `eval`: the classifier, FID and the other scores.
//!
//! The hosts sit on top: the CLI (`src/cli`) and the web page (`web/`).

pub mod defaults;
pub mod engine;
pub mod error;
pub mod eval;
pub mod fs;
pub mod io;
pub mod models;
pub mod nn;
pub mod train;

pub use engine::context::{DeviceChoice, DeviceOptions, GpuContext, LimitsMode, Requirements};
pub use engine::settings::Settings;
pub use engine::tensor::GpuTensor;
pub use error::{GanError, Result};
