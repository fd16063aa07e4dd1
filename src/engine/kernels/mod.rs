//! Kernel launchers. Each family pairs one WGSL file in `shaders/` with one
//! module here holding its launcher(s) and a plain-loop CPU reference.
//!
//! A launcher builds (or takes from the context's cache) its pipeline with an
//! explicit bind-group layout, creates its uniform buffer and bind group once,
//! and afterwards only records `Dispatch`es into a caller's compute pass.

pub mod adam;
pub mod batchnorm;
pub mod bce;
pub mod bias_act;
pub mod ceiling;
pub mod checks;
pub mod choice;
pub mod conv;
pub mod conv_gemm;
pub mod dropout;
pub mod ema;
pub mod embedding;
pub mod gather;
pub mod gradient_penalty;
pub mod hinge;
pub mod matmul;
pub mod reduce;
pub mod rng;
pub mod softmax_ce;

use crate::engine::context::GpuContext;
use crate::engine::tensor::GpuTensor;
use crate::error::Result;
use wgpu::util::DeviceExt;

/// The activations prepended to the shaders that apply one (WGSL has no include).
pub const ACTIVATION_WGSL: &str = include_str!("../../../shaders/activation.wgsl");
/// Philox4x32-10, prepended to rng.wgsl and dropout.wgsl.
pub const PHILOX_WGSL: &str = include_str!("../../../shaders/philox.wgsl");

/// One shader file in `shaders/`.
pub struct ShaderFile {
    pub name: &'static str,
    /// The file's text.
    pub file: &'static str,
    /// What a launcher compiles: the file with its preludes.
    pub source: &'static str,
    /// The optional device features the compiled module needs; a module is
    /// created only on a device that has them.
    pub features: wgpu::Features,
    /// The family's self-check, where it lives beside its launcher (the
    /// others are in `engine::selftest`).
    pub check: Option<checks::SelfCheck>,
}

const fn shader(name: &'static str, file: &'static str, source: &'static str) -> ShaderFile {
    ShaderFile { name, file, source, features: wgpu::Features::empty(), check: None }
}

/// A shader whose family keeps its self-check beside its launcher.
const fn checked(name: &'static str, source: &'static str, check: checks::SelfCheck) -> ShaderFile {
    ShaderFile { name, file: source, source, features: wgpu::Features::empty(), check: Some(check) }
}

/// Every shader file, for validation with the capabilities of the devices
/// that create it.
pub const SHADERS: &[ShaderFile] = &[
    shader("activation.wgsl", ACTIVATION_WGSL, ACTIVATION_WGSL),
    shader("matmul_common.wgsl", matmul::COMMON_FILE, matmul::COMMON_FILE),
    shader("matmul.wgsl", matmul::FILE, matmul::SOURCE),
    ShaderFile {
        name: "matmul_sg.wgsl",
        file: matmul::SG_FILE,
        source: matmul::SG_SOURCE,
        features: wgpu::Features::SUBGROUP,
        check: None,
    },
    ShaderFile {
        name: "conv_gemm_sg.wgsl",
        file: conv_gemm::FILE,
        source: conv_gemm::SOURCE,
        features: wgpu::Features::SUBGROUP,
        check: None,
    },
    shader("tree_reduce.wgsl", reduce::PRELUDE, reduce::PRELUDE),
    shader("bias_act.wgsl", bias_act::FILE, bias_act::SOURCE),
    shader("batchnorm.wgsl", batchnorm::FILE, batchnorm::SOURCE),
    shader("bce.wgsl", bce::SOURCE, bce::SOURCE),
    checked("hinge.wgsl", hinge::SOURCE, hinge::SELF_CHECK),
    ShaderFile {
        name: "gradient_penalty.wgsl",
        file: gradient_penalty::FILE,
        source: gradient_penalty::SOURCE,
        features: wgpu::Features::empty(),
        check: Some(gradient_penalty::SELF_CHECK),
    },
    shader("conv.wgsl", conv::SOURCE, conv::SOURCE),
    shader("adam.wgsl", adam::SOURCE, adam::SOURCE),
    shader("ema.wgsl", ema::SOURCE, ema::SOURCE),
    shader("philox.wgsl", PHILOX_WGSL, PHILOX_WGSL),
    shader("rng.wgsl", rng::FILE, rng::SOURCE),
    shader("dropout.wgsl", dropout::FILE, dropout::SOURCE),
    shader("gather.wgsl", gather::SOURCE, gather::SOURCE),
    shader("embedding.wgsl", embedding::SOURCE, embedding::SOURCE),
    shader("softmax_ce.wgsl", softmax_ce::SOURCE, softmax_ce::SOURCE),
    shader("ceiling.wgsl", ceiling::SOURCE, ceiling::SOURCE),
];

/// What a binding slot holds.
#[derive(Clone, Copy, Debug)]
pub enum Slot {
    Uniform,
    Read,
    ReadWrite,
    /// A binding of the family's table this entry point does not use: left
    /// out of the layout and the bind group.
    Unused,
}

pub use crate::engine::context::Kernel;

/// Gets the pipeline for `entry` of `source` specialised with `constants`,
/// building it on first use. Slot i is `@binding(i)` of `@group(0)`.
pub(crate) fn kernel(
    ctx: &GpuContext,
    family: &'static str,
    source: &'static str,
    entry: &'static str,
    slots: &[Slot],
    constants: &[(&str, f64)],
) -> Kernel {
    let key = format!("{family}:{entry}:{constants:?}");
    ctx.cached_kernel(key, || {
        let bindings: Vec<u32> =
            (0..slots.len() as u32).filter(|&i| !matches!(slots[i as usize], Slot::Unused)).collect();
        let entries: Vec<wgpu::BindGroupLayoutEntry> = slots
            .iter()
            .enumerate()
            .filter(|(_, slot)| !matches!(slot, Slot::Unused))
            .map(|(i, slot)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match slot {
                        Slot::Uniform => wgpu::BufferBindingType::Uniform,
                        Slot::Read => wgpu::BufferBindingType::Storage { read_only: true },
                        Slot::ReadWrite | Slot::Unused => wgpu::BufferBindingType::Storage { read_only: false },
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let layout = ctx
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(entry), entries: &entries });
        let pipeline_layout = ctx.device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(entry),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let module = ctx.shader_module(family, source);
        let pipeline = ctx.device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(entry),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        Kernel { pipeline, layout, bindings }
    })
}

/// A uniform buffer holding `value`, created once per launcher.
pub(crate) fn uniform<T: bytemuck::Pod>(ctx: &GpuContext, label: &str, value: &T) -> wgpu::Buffer {
    ctx.device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: bytemuck::bytes_of(value),
        usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
    })
}

/// One recorded kernel launch: pipeline, bind group and grid, all built once.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub label: String,
    pub pipeline: wgpu::ComputePipeline,
    pub bind_group: wgpu::BindGroup,
    pub groups: [u32; 3],
}

impl Dispatch {
    pub(crate) fn new(
        ctx: &GpuContext,
        kernel: &Kernel,
        label: &str,
        resources: Vec<wgpu::BindingResource<'_>>,
        groups: [u32; 3],
    ) -> Self {
        debug_assert_eq!(resources.len(), kernel.bindings.len(), "{label}: one resource per used slot");
        let entries: Vec<wgpu::BindGroupEntry> = kernel
            .bindings
            .iter()
            .zip(resources)
            .map(|(&binding, resource)| wgpu::BindGroupEntry { binding, resource })
            .collect();
        let bind_group = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &kernel.layout,
            entries: &entries,
        });
        Dispatch { label: label.to_string(), pipeline: kernel.pipeline.clone(), bind_group, groups }
    }

    pub fn record(&self, pass: &mut wgpu::ComputePass<'_>) {
        if self.groups.contains(&0) {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        pass.dispatch_workgroups(self.groups[0], self.groups[1], self.groups[2]);
    }
}

/// Records `dispatches` in order into `pass`, setting a pipeline only when
/// it changes from the previous dispatch's (the step has runs of the same
/// kernel; this trims host encode time).
pub fn record_all(pass: &mut wgpu::ComputePass<'_>, dispatches: &[Dispatch]) {
    let mut current: Option<&wgpu::ComputePipeline> = None;
    for d in dispatches {
        if d.groups.contains(&0) {
            continue;
        }
        if current != Some(&d.pipeline) {
            pass.set_pipeline(&d.pipeline);
            current = Some(&d.pipeline);
        }
        pass.set_bind_group(0, &d.bind_group, &[]);
        pass.dispatch_workgroups(d.groups[0], d.groups[1], d.groups[2]);
    }
}

/// Records `dispatches` in one compute pass, submits and waits. For tests,
/// benchmarks and one-off work; training records into its own encoder.
pub fn run(ctx: &GpuContext, dispatches: &[&Dispatch]) -> Result<()> {
    let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("run") });
    {
        let mut pass =
            enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("run"), timestamp_writes: None });
        for d in dispatches {
            d.record(&mut pass);
        }
    }
    ctx.queue.submit([enc.finish()]);
    let names: Vec<&str> = dispatches.iter().map(|d| d.label.as_str()).collect();
    ctx.wait(&names.join(", "))
}

/// Workgroups needed to cover `n` items with `size` per group.
pub fn groups_for(n: usize, size: usize) -> u32 {
    n.div_ceil(size) as u32
}

/// Grid for `n` items at `size` per group, folded into y past 65535 groups
/// (shaders rebuild the index as gid.x + gid.y * 65535 * size).
pub fn grid_1d(n: usize, size: usize) -> [u32; 3] {
    let groups = n.div_ceil(size).max(1) as u32;
    if groups <= 65535 {
        [groups, 1, 1]
    } else {
        [65535, groups.div_ceil(65535), 1]
    }
}

/// A small tensor bound to slots an entry point does not read (a buffer may
/// not be bound read-only and writable in one dispatch, so the real tensor
/// cannot stand in).
pub(crate) fn unused_slot(ctx: &GpuContext) -> GpuTensor {
    GpuTensor::zeros(ctx, &[4], "unused slot")
}

/// Compares `gpu` with `cpu` element-wise with |gpu - cpu| <= atol + rtol*|cpu|.
/// On failure the message names the first bad index and the largest error.
pub fn check_close(what: &str, gpu: &[f32], cpu: &[f32], atol: f32, rtol: f32) -> std::result::Result<(), String> {
    if gpu.len() != cpu.len() {
        return Err(format!("{what}: length {} on the GPU, {} on the CPU", gpu.len(), cpu.len()));
    }
    let mut first_bad = None;
    let mut worst = (0usize, 0f32);
    for (i, (&g, &c)) in gpu.iter().zip(cpu).enumerate() {
        let err = (g - c).abs();
        let ok = err <= atol + rtol * c.abs();
        if !ok || g.is_nan() != c.is_nan() {
            first_bad.get_or_insert(i);
        }
        if err > worst.1 || (err.is_nan() && !worst.1.is_nan()) {
            worst = (i, err);
        }
    }
    match first_bad {
        None => Ok(()),
        Some(i) => Err(format!(
            "{what}: first bad index {i} (gpu {} vs cpu {}), largest error {} at index {} (gpu {} vs cpu {}); atol {atol}, rtol {rtol}, {} elements",
            gpu[i], cpu[i], worst.1, worst.0, gpu[worst.0], cpu[worst.0], gpu.len()
        )),
    }
}
