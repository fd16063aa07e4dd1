//! Networks: their description as data and their execution.
//!
//! - `spec`: layers, embeddings, initialisation, the flat parameter layout
//!   (PyTorch's state_dict order) and batch-norm statistics;
//! - `spec_json`: the spec's JSON form, stored in every checkpoint;
//! - `gpu_net`: a network on the GPU: parameters, gradients, Adam moments,
//!   and its forward and backward recorded as dispatches;
//! - `activations`: the per-layer activation buffers a forward writes;
//! - `conv_layer`: a convolutional layer's forward and backward (implicit
//!   GEMM or im2col around the matmul);
//! - `loss`: the GAN objective (BCE, hinge, WGAN-GP): its kernels, D's output
//!   activation, and the same on the CPU;
//! - `penalty`: WGAN-GP's gradient penalty through a dense critic and its
//!   double backward, on the GPU and in plain loops;
//! - `cpu_reference`: the whole training step in plain loops, the
//!   reference the GPU step is tested against.
//!
//! May import: `engine`, `error`, `defaults`. Not `models`: a network knows
//! nothing of which GAN it belongs to.

pub mod activations;
pub mod conv_layer;
pub mod cpu_reference;
pub mod gpu_net;
pub mod loss;
pub mod penalty;
pub mod spec;
pub mod spec_json;
