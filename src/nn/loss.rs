//! The GAN's objective, in one place (BCE, hinge, WGAN-GP): which kernels compute each side's
//! loss and its gradient with respect to D's output, what D's output layer
//! is (a probability for BCE, a raw score for hinge), and the same in plain
//! loops for the CPU reference step. The step (`train::gan`) and the CPU
//! reference (`nn::cpu_reference`) call only this.
//!
//! Metrics, for either loss (`METRICS`): the D step writes slots 0..3 =
//! (loss_d, mean D(x), mean D(G(z))), the G step slots 3..6 = (loss_g, mean
//! D(G(z)) after the D step, 0). For BCE the means are probabilities, for
//! hinge and WGAN-GP raw scores. WGAN-GP's penalty writes slots 6..8
//! (`nn::penalty::METRICS_AT`) and adds itself to loss_d.
//!
//! May import: `engine` (the loss kernels), `error`.

use crate::engine::context::GpuContext;
use crate::engine::kernels::bias_act::Act;
use crate::engine::kernels::hinge::{self, HingeSide};
use crate::engine::kernels::{bce, Dispatch};
use crate::engine::tensor::GpuTensor;
use crate::error::Result;

/// The losses `train --loss` offers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Hash)]
pub enum Loss {
    /// PyTorch's BCELoss on D's sigmoid output: the tutorial's. D minimises
    /// BCE(D(x), 1) + BCE(D(G(z)), 0); G minimises BCE(D(G(z)), 1).
    #[default]
    Bce,
    /// Hinge (Lim & Ye 2017; Miyato et al. 2018) on D's raw score: D
    /// minimises E[relu(1 - D(x))] + E[relu(1 + D(G(z)))]; G minimises -E[D(G(z))].
    Hinge,
    /// WGAN-GP (Gulrajani et al. 2017) on the critic's raw score: D minimises
    /// E[D(G(z))] - E[D(x)] + lambda E[(||grad_x D(x_hat)|| - 1)^2] (the
    /// penalty is `nn::penalty`'s); G minimises -E[D(G(z))].
    WganGp,
}

/// Where each side's loss writes in the metrics buffer.
pub const D_METRICS: usize = 0;
pub const G_METRICS: usize = 3;

/// What one side's loss gives on the CPU: (loss, d loss / d D-output, mean
/// output over the real rows, mean output over the fake rows).
pub type CpuLoss = (f32, Vec<f32>, f32, f32);

impl Loss {
    pub const ALL: [Loss; 3] = [Loss::Bce, Loss::Hinge, Loss::WganGp];

    pub fn name(self) -> &'static str {
        match self {
            Loss::Bce => "bce",
            Loss::Hinge => "hinge",
            Loss::WganGp => "wgan-gp",
        }
    }

    /// D's output activation under this loss.
    pub fn d_output(self) -> Act {
        match self {
            Loss::Bce => Act::Sigmoid,
            Loss::Hinge | Loss::WganGp => Act::Identity,
        }
    }

    /// Whether D's step adds the gradient penalty (`nn::penalty`).
    pub fn has_gradient_penalty(self) -> bool {
        self == Loss::WganGp
    }

    /// D steps per G step when `--n-critic` is not given.
    pub fn default_n_critic(self) -> usize {
        match self {
            Loss::WganGp => crate::defaults::N_CRITIC_WGAN_GP,
            Loss::Bce | Loss::Hinge => crate::defaults::N_CRITIC,
        }
    }

    /// The hinge kernel's side for D's step (BCE has its own kernel).
    fn d_side(self) -> HingeSide {
        match self {
            Loss::WganGp => HingeSide::Critic,
            Loss::Bce | Loss::Hinge => HingeSide::Discriminator,
        }
    }

    /// The D step's loss on `out` [2B] = D([G(z); x]) (fakes first, `fakes`
    /// rows), its gradient into `grad`, metrics at `D_METRICS`.
    pub fn d_step(
        self,
        ctx: &GpuContext,
        (out, grad): (&GpuTensor, &GpuTensor),
        fakes: usize,
        metrics: &GpuTensor,
        counters: &GpuTensor,
    ) -> Result<Vec<Dispatch>> {
        match self {
            Loss::Bce => bce::forward_backward(ctx, (out, grad), fakes, (metrics, D_METRICS), counters),
            Loss::Hinge | Loss::WganGp => Ok(vec![hinge::forward_backward(
                ctx,
                (out, grad),
                self.d_side(),
                fakes,
                (metrics, D_METRICS),
                counters,
            )?]),
        }
    }

    /// The G step's loss on `out` [B] = D(G(z)), its gradient into `grad`,
    /// metrics at `G_METRICS`.
    pub fn g_step(
        self,
        ctx: &GpuContext,
        (out, grad): (&GpuTensor, &GpuTensor),
        metrics: &GpuTensor,
        counters: &GpuTensor,
    ) -> Result<Vec<Dispatch>> {
        match self {
            Loss::Bce => bce::forward_backward(ctx, (out, grad), 0, (metrics, G_METRICS), counters),
            Loss::Hinge | Loss::WganGp => Ok(vec![hinge::forward_backward(
                ctx,
                (out, grad),
                HingeSide::Generator,
                0,
                (metrics, G_METRICS),
                counters,
            )?]),
        }
    }

    /// `d_step` on the CPU.
    pub fn cpu_d_step(self, out: &[f32], fakes: usize) -> CpuLoss {
        match self {
            Loss::Bce => bce::cpu_forward_backward(out, fakes),
            Loss::Hinge | Loss::WganGp => hinge::cpu_forward_backward(out, self.d_side(), fakes),
        }
    }

    /// `g_step` on the CPU.
    pub fn cpu_g_step(self, out: &[f32]) -> CpuLoss {
        match self {
            Loss::Bce => bce::cpu_forward_backward(out, 0),
            Loss::Hinge | Loss::WganGp => hinge::cpu_forward_backward(out, HingeSide::Generator, 0),
        }
    }
}

impl std::fmt::Display for Loss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Loss {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        Loss::ALL
            .into_iter()
            .find(|l| l.name() == s)
            .ok_or_else(|| format!("no loss \"{s}\": the losses are {}", Loss::ALL.map(Loss::name).join(", ")))
    }
}
