//! Adam over a whole network's flat buffers (shaders/adam.wgsl): launcher and CPU reference.

use super::{grid_1d, kernel, uniform, Dispatch, Slot};
use crate::engine::context::GpuContext;
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};

pub const SOURCE: &str = include_str!("../../../shaders/adam.wgsl");

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
}

impl Default for AdamConfig {
    /// The tutorial's settings.
    fn default() -> Self {
        use crate::defaults::{BETA1, BETA2, EPS, LR};
        AdamConfig { lr: LR, beta1: BETA1, beta2: BETA2, eps: EPS }
    }
}

#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct Params {
    n: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    every: u32,
    _pad: [u32; 2],
}

/// One Adam update over flat param/grad/m/v buffers of equal length. The step
/// number comes from counters[0] (steps done) on the GPU; a non-finite new
/// parameter raises the flag in counters[2] (see `first_nonfinite_step`).
#[derive(Clone, Debug)]
pub struct Adam {
    pub dispatch: Dispatch,
    params: wgpu::Buffer,
    n: usize,
    config: AdamConfig,
    /// The network updates every `every`-th step and counts its own t.
    every: u32,
}

impl Adam {
    pub fn new(
        ctx: &GpuContext,
        config: AdamConfig,
        param: &GpuTensor,
        grad: &GpuTensor,
        m: &GpuTensor,
        v: &GpuTensor,
        counters: &GpuTensor,
    ) -> Result<Self> {
        let n = param.numel();
        for t in [grad, m, v] {
            if t.numel() != n {
                return Err(GanError::shape(
                    &t.label,
                    format!("adam: {} elements, parameters '{}' have {n}", t.numel(), param.label),
                ));
            }
        }
        if !n.is_multiple_of(4) {
            return Err(GanError::shape(
                &param.label,
                format!("adam: {n} parameters in '{}', the vec4 kernel needs a multiple of 4", param.label),
            ));
        }
        let kern = kernel(
            ctx,
            "adam.wgsl",
            SOURCE,
            "adam_update",
            &[Slot::Uniform, Slot::ReadWrite, Slot::Read, Slot::ReadWrite, Slot::ReadWrite, Slot::ReadWrite],
            &[],
        );
        let params = uniform(ctx, &param.label, &Self::pack(n, config, 1));
        let dispatch = Dispatch::new(
            ctx,
            &kern,
            &format!("adam {}", param.label),
            vec![
                params.as_entire_binding(),
                param.binding(),
                grad.binding(),
                m.binding(),
                v.binding(),
                counters.binding(),
            ],
            grid_1d(n / 4, 256),
        );
        Ok(Adam { dispatch, params, n, config, every: 1 })
    }

    fn pack(n: usize, c: AdamConfig, every: u32) -> Params {
        Params { n: n as u32, lr: c.lr, beta1: c.beta1, beta2: c.beta2, eps: c.eps, every, _pad: [0; 2] }
    }

    /// Changes lr/betas/eps for the next recorded updates; nothing is rebuilt.
    pub fn set_config(&mut self, ctx: &GpuContext, config: AdamConfig) {
        self.config = config;
        ctx.queue.write_buffer(&self.params, 0, bytemuck::bytes_of(&Self::pack(self.n, config, self.every)));
    }

    /// For a network updated every `every`-th step (the generator with
    /// `--n-critic`): t counts its own updates, (steps done + 1) / every.
    pub fn set_every(&mut self, ctx: &GpuContext, every: u32) {
        self.every = every.max(1);
        ctx.queue.write_buffer(&self.params, 0, bytemuck::bytes_of(&Self::pack(self.n, self.config, self.every)));
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        self.dispatch.record(pass);
    }
}

/// The counters' divergence flag (counters[2], set by Adam and BCE): the
/// first 1-based global step at which a parameter or a loss was not finite.
pub fn first_nonfinite_step(counters: &[u32]) -> Option<u64> {
    match counters.get(2).copied().unwrap_or(0) {
        0 => None,
        flag => Some(u64::from(u32::MAX - flag)),
    }
}

/// CPU reference of one update at step `t` (1-based), in the order PyTorch computes it.
pub fn cpu_adam_update(config: AdamConfig, t: u32, param: &mut [f32], grad: &[f32], m: &mut [f32], v: &mut [f32]) {
    let bias1 = 1.0 - (config.beta1 as f64).powi(t as i32);
    let bias2 = 1.0 - (config.beta2 as f64).powi(t as i32);
    for i in 0..param.len() {
        let g = grad[i];
        m[i] = config.beta1 * m[i] + (1.0 - config.beta1) * g;
        v[i] = config.beta2 * v[i] + (1.0 - config.beta2) * g * g;
        let denom = (v[i] as f64).sqrt() / bias2.sqrt() + config.eps as f64;
        param[i] = (param[i] as f64 - (config.lr as f64 / bias1) * m[i] as f64 / denom) as f32;
    }
}
