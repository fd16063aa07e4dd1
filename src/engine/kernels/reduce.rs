//! The shape of the reductions over the batch (batch-norm statistics and
//! backward, the bias gradient, BCE): which entry points of batchnorm.wgsl,
//! bias_act.wgsl and bce.wgsl the launchers use.
//!
//! - `Column`: one invocation per column owns its sums; no barriers. On
//!   lavapipe, where every barrier is a coroutine switch, this wins.
//! - `Tree`: 8 columns x 32 row lanes a workgroup, sums by a halving tree in
//!   workgroup memory (shaders/tree_reduce.wgsl); BCE in two passes. A
//!   128-row step launches cols / 8 workgroups per reduction instead of
//!   cols / 64, which a GPU needs to fill its cores.
//!
//! The choice per adapter is made by `autotune::choose_reduce` (measured on
//! GPUs, the table on CPU adapters, verified where chosen).

use crate::engine::context::GpuContext;

/// The tree-reduction prelude, prepended to batchnorm.wgsl and bias_act.wgsl.
pub const PRELUDE: &str = include_str!("../../../shaders/tree_reduce.wgsl");
/// Columns per workgroup of the tree entry points.
pub const TREE_COLS: usize = 8;
/// Rows per workgroup of bce_partial.
pub const BCE_ROWS_PER_GROUP: usize = 8;

pub use super::choice::Reduce;

impl Reduce {
    /// The shape the launchers use on this context's adapter.
    pub fn for_adapter(ctx: &GpuContext) -> Reduce {
        ctx.reduce_choice().variant
    }
}
