//! Matmul launcher and CPU reference for shaders/matmul.wgsl.

use super::bias_act::Act;
use super::{groups_for, kernel, uniform, Dispatch, Slot};
use crate::engine::context::GpuContext;
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};

pub const FILE: &str = include_str!("../../../shaders/matmul.wgsl");
/// The parameters and bindings both matmul modules share.
pub const COMMON_FILE: &str = include_str!("../../../shaders/matmul_common.wgsl");
/// The subgroup kernel (needs the SUBGROUP feature): a module of its own.
pub const SG_FILE: &str = include_str!("../../../shaders/matmul_sg.wgsl");
/// What the launchers compile for naive, tiled and reg4x4: activation.wgsl,
/// matmul_common.wgsl, then matmul.wgsl. Needs no optional feature.
pub const SOURCE: &str = concat!(
    include_str!("../../../shaders/activation.wgsl"),
    include_str!("../../../shaders/matmul_common.wgsl"),
    include_str!("../../../shaders/matmul.wgsl")
);
/// What the launcher compiles for sg32x32: activation.wgsl,
/// matmul_common.wgsl, then matmul_sg.wgsl. Needs SUBGROUP.
pub const SG_SOURCE: &str = concat!(
    include_str!("../../../shaders/activation.wgsl"),
    include_str!("../../../shaders/matmul_common.wgsl"),
    include_str!("../../../shaders/matmul_sg.wgsl")
);
/// The subgroup sizes matmul_sg supports: its workgroup of 8 must be one
/// subgroup with lane ids 0..7, so subgroups of at least 8; 128 is the
/// largest WGSL allows.
pub const SG_SUBGROUP_SIZES: std::ops::RangeInclusive<u32> = 8..=128;

/// Which operands are transposed (see the header of matmul.wgsl).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Form {
    /// C[M,N] = A[M,K] * B[K,N]
    NN,
    /// C[M,N] = A[M,K] * B[N,K]^T
    NT,
    /// C[M,N] = A[K,M]^T * B[K,N]
    TN,
}

impl Form {
    pub const ALL: [Form; 3] = [Form::NN, Form::NT, Form::TN];
    pub(super) fn code(self) -> u32 {
        match self {
            Form::NN => 0,
            Form::NT => 1,
            Form::TN => 2,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Form::NN => "A*B",
            Form::NT => "A*B^T",
            Form::TN => "A^T*B",
        }
    }
    /// Shapes of A and B for an (m, n, k) product in this form.
    pub fn operand_shapes(self, m: usize, n: usize, k: usize) -> ([usize; 2], [usize; 2]) {
        match self {
            Form::NN => ([m, k], [k, n]),
            Form::NT => ([m, k], [n, k]),
            Form::TN => ([k, m], [k, n]),
        }
    }
}

pub use super::choice::Variant;

impl Variant {
    fn entry(self) -> &'static str {
        match self {
            Variant::Naive => "matmul_naive",
            Variant::Tiled => "matmul_tiled",
            Variant::Reg => "matmul_reg",
            Variant::Subgroup => "matmul_sg",
        }
    }

    /// The variant the trainer uses on this adapter: on CPU adapters
    /// (lavapipe) from the measurements in README.md (`gan-wgpu bench`: the
    /// subgroup-cooperative kernel is 4-5x faster than the barrier-free
    /// register-blocked one, which is 2-4x faster than the tiled one), on
    /// other adapters measured once and cached (`crate::engine::autotune`).
    /// GAN_WGPU_MATMUL=naive|tiled|reg4x4|sg32x32 overrides.
    pub fn for_adapter(ctx: &GpuContext) -> Variant {
        ctx.matmul_choice().variant
    }

    /// matmul_sg needs the SUBGROUP feature and every subgroup size the
    /// adapter may use within `SG_SUBGROUP_SIZES`.
    pub fn subgroups_usable(ctx: &GpuContext) -> bool {
        ctx.features.contains(wgpu::Features::SUBGROUP)
            && SG_SUBGROUP_SIZES.contains(&ctx.info.subgroup_min_size)
            && SG_SUBGROUP_SIZES.contains(&ctx.info.subgroup_max_size)
    }
}

/// Largest product (m*n*k multiply-adds) that an unaligned subgroup-variant
/// request sends to the naive kernel rather than to reg4x4.
pub const SMALL_PRODUCT: usize = 1 << 17;

/// matmul_common.wgsl's uniform (conv_gemm.rs fills it too).
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
pub(super) struct Params {
    pub m: u32,
    pub n: u32,
    pub k: u32,
    pub act: u32,
    pub has_bias: u32,
    /// Form::code again: matmul_sg reads the form from here, not from the
    /// FORM override, so that one pipeline serves all three forms.
    pub form: u32,
    pub _pad: [u32; 2],
}

/// What the forward form applies before storing: C = act(C + bias).
#[derive(Clone, Copy)]
pub struct Epilogue<'a> {
    /// [n], added to every row.
    pub bias: Option<&'a GpuTensor>,
    pub act: Act,
}

impl Epilogue<'_> {
    /// The product as it is.
    pub const NONE: Epilogue<'static> = Epilogue { bias: None, act: Act::Identity };
}

/// One matmul with fixed operands, built once and recorded every step.
#[derive(Debug)]
pub struct Matmul {
    pub dispatch: Dispatch,
    pub form: Form,
    pub variant: Variant,
    pub m: usize,
    pub n: usize,
    pub k: usize,
}

impl Matmul {
    /// c = op(a) * op(b); the shapes of a, b and c must agree for `form`.
    pub fn new(
        ctx: &GpuContext,
        form: Form,
        variant: Variant,
        a: &GpuTensor,
        b: &GpuTensor,
        c: &GpuTensor,
    ) -> Result<Self> {
        Self::with_epilogue(ctx, form, variant, a, b, c, Epilogue::NONE)
    }

    /// c = act(op(a) * op(b) + bias): a dense layer's forward in one
    /// dispatch. Only the forward form (NT) takes an epilogue.
    pub fn with_epilogue(
        ctx: &GpuContext,
        form: Form,
        variant: Variant,
        a: &GpuTensor,
        b: &GpuTensor,
        c: &GpuTensor,
        epilogue: Epilogue,
    ) -> Result<Self> {
        let (m, n, k) = Self::checked_shape(form, variant, (a, b, c), &epilogue)?;
        let aligned = match form {
            Form::NT => k % 4 == 0,
            Form::NN => n % 4 == 0,
            Form::TN => m % 4 == 0 && n % 4 == 0,
        };
        let variant = Self::variant_for(ctx, variant, aligned, (m, n, k));
        let kern = Self::pipeline(ctx, form, variant, aligned);
        let params = uniform(
            ctx,
            &c.label,
            &Params {
                m: m as u32,
                n: n as u32,
                k: k as u32,
                act: epilogue.act.code(),
                has_bias: epilogue.bias.is_some() as u32,
                form: form.code(),
                _pad: [0; 2],
            },
        );
        // Without a bias the slot still needs a buffer: a is read-only here.
        let bias = epilogue.bias.unwrap_or(a);
        let groups = match variant {
            Variant::Naive => [groups_for(n, 8), groups_for(m, 8), 1],
            Variant::Tiled => [groups_for(n, 64), groups_for(m, 64), 1],
            Variant::Reg | Variant::Subgroup => [groups_for(n, 32), groups_for(m, 32), 1],
        };
        let label = Self::label(form, variant, (m, n, k), &epilogue, c);
        let dispatch = Dispatch::new(
            ctx,
            &kern,
            &label,
            if variant == Variant::Subgroup {
                vec![params.as_entire_binding(), c.binding(), a.binding(), b.binding(), bias.binding()]
            } else {
                vec![
                    params.as_entire_binding(),
                    a.binding(),
                    b.binding(),
                    c.binding(),
                    a.binding(),
                    b.binding(),
                    bias.binding(),
                ]
            },
            groups,
        );
        Ok(Matmul { dispatch, form, variant, m, n, k })
    }

    /// (m, n, k) of c = op(a) * op(b), after checking that the operands'
    /// shapes agree with `form` and that only A*B^T takes an epilogue.
    fn checked_shape(
        form: Form,
        variant: Variant,
        (a, b, c): (&GpuTensor, &GpuTensor, &GpuTensor),
        epilogue: &Epilogue,
    ) -> Result<(usize, usize, usize)> {
        let [ar, ac] = a.dims2()?;
        let [br, bc] = b.dims2()?;
        let [m, n] = c.dims2()?;
        let k = match form {
            Form::NN | Form::NT => ac,
            Form::TN => ar,
        };
        let (want_a, want_b) = form.operand_shapes(m, n, k);
        if [ar, ac] != want_a || [br, bc] != want_b {
            return Err(GanError::shape(
                &c.label,
                format!(
                    "{} = {} {}: A '{}' is {:?} and B '{}' is {:?}, expected {:?} and {:?} for C {:?}",
                    c.label,
                    form.name(),
                    variant.name(),
                    a.label,
                    a.shape,
                    b.label,
                    b.shape,
                    want_a,
                    want_b,
                    c.shape
                ),
            ));
        }
        let fused = epilogue.bias.is_some() || epilogue.act != Act::Identity;
        if fused && form != Form::NT {
            return Err(GanError::shape(
                &c.label,
                format!("{} takes no bias or activation (only A*B^T does)", form.name()),
            ));
        }
        if let Some(bias) = epilogue.bias {
            if bias.numel() != n {
                return Err(GanError::shape(
                    &bias.label,
                    format!("bias has {} elements, {} has {n} columns", bias.numel(), c.label),
                ));
            }
        }
        Ok((m, n, k))
    }

    /// The variant a product of this shape runs: matmul_sg needs usable
    /// subgroups and vec4-aligned shapes.
    fn variant_for(ctx: &GpuContext, variant: Variant, aligned: bool, (m, n, k): (usize, usize, usize)) -> Variant {
        // matmul_sg also steps k by 4 in every form. Unaligned products go to
        // reg4x4, or to naive when tiny: in the model those are only the
        // 1-wide output layer's backward (256x256x1, 1x256x256), where naive
        // costs ~0.2 ms more a step but compiles in ~40 ms instead of
        // 0.2-0.4 s, which is what a first launch on lavapipe waits for.
        match variant {
            Variant::Subgroup if !Variant::subgroups_usable(ctx) => Variant::Reg,
            Variant::Subgroup if !(aligned && k % 4 == 0) => {
                if m * n * k <= SMALL_PRODUCT {
                    Variant::Naive
                } else {
                    Variant::Reg
                }
            }
            v => v,
        }
    }

    /// The pipeline of `variant` for `form` (specialised as the comments say).
    fn pipeline(ctx: &GpuContext, form: Form, variant: Variant, aligned: bool) -> super::Kernel {
        let constants = [("FORM", form.code() as f64), ("ALIGNED", if aligned { 1.0 } else { 0.0 })];
        // Only the register-blocked kernel reads ALIGNED; keep one pipeline
        // per form for the others, and one for all forms of matmul_sg,
        // which reads the form from params (its body is the costliest
        // compile of the step).
        let constants: &[(&str, f64)] = match variant {
            Variant::Reg => &constants,
            Variant::Subgroup => &[],
            _ => &constants[..1],
        };
        // matmul_sg reads only the vec4 views.
        let slots = if variant == Variant::Subgroup {
            [Slot::Uniform, Slot::Unused, Slot::Unused, Slot::ReadWrite, Slot::Read, Slot::Read, Slot::Read]
        } else {
            [Slot::Uniform, Slot::Read, Slot::Read, Slot::ReadWrite, Slot::Read, Slot::Read, Slot::Read]
        };
        if variant == Variant::Subgroup {
            kernel(ctx, "matmul_sg.wgsl", SG_SOURCE, variant.entry(), &slots, constants)
        } else {
            kernel(ctx, "matmul.wgsl", SOURCE, variant.entry(), &slots, constants)
        }
    }

    /// "matmul A*B^T sg32x32 128x512x784 +bias+relu -> out".
    fn label(
        form: Form,
        variant: Variant,
        (m, n, k): (usize, usize, usize),
        epilogue: &Epilogue,
        c: &GpuTensor,
    ) -> String {
        let fused_name = match (epilogue.bias.is_some(), epilogue.act) {
            (false, Act::Identity) => String::new(),
            (true, Act::Identity) => " +bias".to_string(),
            (false, act) => format!(" +{}", act.name()),
            (true, act) => format!(" +bias+{}", act.name()),
        };
        format!("matmul {} {} {}x{}x{}{fused_name} -> {}", form.name(), variant.name(), m, n, k, c.label)
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.dispatch.record(pass);
    }
}

/// CPU reference: plain loops, f64 accumulation.
pub fn cpu_matmul(form: Form, a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
    let mut c = vec![0f32; m * n];
    for row in 0..m {
        for col in 0..n {
            let mut acc = 0f64;
            for kk in 0..k {
                let av = match form {
                    Form::TN => a[kk * m + row],
                    _ => a[row * k + kk],
                };
                let bv = match form {
                    Form::NT => b[col * k + kk],
                    _ => b[kk * n + col],
                };
                acc += av as f64 * bv as f64;
            }
            c[row * n + col] = acc as f32;
        }
    }
    c
}
