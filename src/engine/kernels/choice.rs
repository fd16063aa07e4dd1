//! Which kernel variants a context uses, and how they were chosen: the
//! values `autotune` makes (natively: measured or from the table, then
//! verified; in a page: timed with the page's clock) and the context holds.
//! Until a choice is set the context uses the reference kernels.
//!
//! The variants themselves are named here too (`Variant`, `Reduce`), so
//! that the context can hold a choice without importing any kernel: the
//! launchers in `matmul` and `reduce` add what needs a context.

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

/// The matmul kernel variant (`matmul.wgsl`, `matmul_sg.wgsl`).
/// Kernel variant; `Naive` stays as the GPU reference.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Variant {
    Naive,
    Tiled,
    Reg,
    /// Subgroup-cooperative 32x32 tiles (matmul_sg); needs subgroups of at
    /// least 8 and vec4-aligned shapes, else the launcher uses `Reg`.
    Subgroup,
}

impl Variant {
    pub const ALL: [Variant; 4] = [Variant::Naive, Variant::Tiled, Variant::Reg, Variant::Subgroup];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Naive => "naive",
            Variant::Tiled => "tiled",
            Variant::Reg => "reg4x4",
            Variant::Subgroup => "sg32x32",
        }
    }

    pub fn parse(s: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.name() == s || (s == "reg" && *v == Variant::Reg))
    }
}

/// The shape of the batch reductions (`reduce` says what each does).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reduce {
    Column,
    Tree,
}

impl Reduce {
    pub const ALL: [Reduce; 2] = [Reduce::Column, Reduce::Tree];

    pub fn name(self) -> &'static str {
        match self {
            Reduce::Column => "column",
            Reduce::Tree => "tree",
        }
    }

    pub fn parse(s: &str) -> Option<Reduce> {
        Reduce::ALL.into_iter().find(|r| r.name() == s)
    }
}
