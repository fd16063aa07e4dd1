//! Files: what comes in and what goes out.
//!
//! - `data`: image sets (IDX files, the embedded MNIST), their splits and
//!   their identity by content;
//! - `folder`: image folders (PNG, JPEG, WebP, BMP, GIF; sub-folders as
//!   classes) decoded, resized and cached; `folder::load` picks the reader;
//! - `checkpoint`: safetensors files (networks in PyTorch's names, training
//!   states), `.npy` latent codes;
//! - `images`: PNG grids, loss and quality plots, the progress GIF;
//! - `tfevents`: TensorBoard's event records;
//! - `run_log`: a run's metrics.jsonl, event file and summary.json,
//!   written by a thread of their own.
//!
//! May import: `nn` (a checkpoint holds a network spec), `engine`, `fs`,
//! `error`, `defaults`. Nothing that trains or scores.

pub mod checkpoint;
pub mod data;
pub mod folder;
pub mod images;
pub mod run_log;
pub mod tfevents;
