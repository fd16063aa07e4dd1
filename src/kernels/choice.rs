//! Which kernel variants a context uses, and how they were chosen: the
//! values `autotune` makes (natively: measured or from the table, then
//! verified; in a page: timed with the page's clock) and the context holds.
//! Until a choice is set the context uses the reference kernels.

use super::matmul::Variant;
use super::reduce::Reduce;

/// The variant in use and how it was chosen (printed by `train` and `bench`).
#[derive(Clone, Debug)]
pub struct Choice {
    pub variant: Variant,
    pub how: String,
    /// The measurements, when this launch made them.
    pub trials: Option<Vec<Trial>>,
}

impl Choice {
    /// "sg32x32 (the measured table for CPU adapters)" and the like.
    pub fn describe(&self) -> String {
        format!("{} ({})", self.variant.name(), self.how)
    }

    /// The reference matmul (`naive`): what a context uses before a choice is made.
    pub fn reference() -> Self {
        Choice { variant: Variant::Naive, how: "the reference: no choice made on this context".into(), trials: None }
    }
}

/// One variant measured on all the shapes.
#[derive(Clone, Debug)]
pub struct Trial {
    pub variant: Variant,
    /// Sum over the shapes of the median time per launch.
    pub total_us: f64,
    /// Whether every output agreed with the naive kernel's.
    pub matches_reference: bool,
}

/// The shape of the batch reductions in use and how it was chosen.
#[derive(Clone, Debug)]
pub struct ReduceChoice {
    pub variant: Reduce,
    pub how: String,
}

impl ReduceChoice {
    pub fn describe(&self) -> String {
        format!("{} ({})", self.variant.name(), self.how)
    }

    /// The reference reductions (`column`): what a context uses before a choice is made.
    pub fn reference() -> Self {
        ReduceChoice { variant: Reduce::Column, how: "the reference: no choice made on this context".into() }
    }
}
