//! Files: what comes in and what goes out.
//!
//! - `data`: image sets (IDX files, the embedded MNIST), their splits and
//!   their identity by content;
//! - `checkpoint`: safetensors files (networks in PyTorch's names, training
//!   states), `.npy` latent codes;
//! - `images`: PNG grids, loss and quality plots, the progress GIF.
//!
//! May import: `nn` (a checkpoint holds a network spec), `engine`, `fs`,
//! `error`, `defaults`. Nothing that trains or scores.

pub mod checkpoint;
pub mod data;
pub mod images;
