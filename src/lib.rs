//! gan-wgpu: a fully-connected GAN trained on the GPU through WebGPU compute
//! shaders. See README.md.

pub mod bench;
pub mod context;
pub mod error;
pub mod kernels;
pub mod tensor;

pub use context::{DeviceChoice, GpuContext, Requirements};
pub use error::{GanError, Result};
pub use tensor::GpuTensor;
