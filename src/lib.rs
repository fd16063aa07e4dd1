//! gan-wgpu: a fully-connected GAN trained on the GPU through WebGPU compute
//! shaders. See README.md.

pub mod activations;
pub mod architecture;
pub mod autotune;
pub mod checkpoint;
pub mod classifier;
pub mod context;
pub mod conv_layer;
pub mod cpu_reference;
pub mod data;
pub mod defaults;
pub mod error;
pub mod evaluate;
pub mod images;
pub mod kernels;
pub mod model;
pub mod network;
pub mod quality;
pub mod selftest;
pub mod settings;
pub mod tensor;
pub mod timing;
pub mod train;

pub use context::{DeviceChoice, DeviceOptions, GpuContext, LimitsMode, Requirements};
pub use error::{GanError, Result};
pub use settings::Settings;
pub use tensor::GpuTensor;
