//! The engine: the device and everything that runs on it, independent of
//! any network.
//!
//! - `context`: the adapter, device, queue, limits and the pipeline cache
//!   (one context built once);
//! - `tensor`: GPU buffers with shapes and names, flat parameter layouts;
//! - `kernels`: each WGSL family's launcher and plain-loop CPU reference;
//! - `autotune`: which kernel variants this adapter uses (measured or from
//!   the table, then verified) and the cache of that choice;
//! - `settings`: the environment the binary read, handed down as values;
//! - `timing`: GPU timestamps and wall-clock timing of dispatches;
//! - `selftest`: every kernel against its CPU reference, on this adapter.
//!
//! May import: `error`, `defaults`, `fs`. Nothing above it (no network,
//! model, file format or trainer).

pub mod autotune;
pub mod context;
pub mod kernels;
pub mod selftest;
pub mod settings;
pub mod tensor;
pub mod timing;
