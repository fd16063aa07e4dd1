//! The GPU context, built once and shared: instance, chosen adapter, device,
//! queue, a cache of compiled shader modules and pipelines, and error capture
//! (validation errors, out of memory and device loss are collected instead of
//! panicking, so the caller can report them and keep its checkpoints intact).

use crate::engine::kernels::choice::{Choice, ReduceChoice};
use crate::error::{GanError, Result};
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

/// Which adapter `--device` asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeviceChoice {
    /// Discrete GPU, else integrated, else a CPU adapter (lavapipe), else anything.
    Auto,
    Discrete,
    Integrated,
    Cpu,
    /// Index into the list printed by `gan-wgpu devices`.
    Index(usize),
}

impl std::str::FromStr for DeviceChoice {
    type Err = GanError;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "auto" | "" => Ok(DeviceChoice::Auto),
            "discrete" | "gpu" => Ok(DeviceChoice::Discrete),
            "integrated" => Ok(DeviceChoice::Integrated),
            "cpu" => Ok(DeviceChoice::Cpu),
            other => other.parse::<usize>().map(DeviceChoice::Index).map_err(|_| GanError::DeviceChoice {
                wanted: s.to_string(),
                why: "expected auto, discrete, integrated, cpu or an adapter index".into(),
            }),
        }
    }
}

/// Which limits and features the device is opened with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitsMode {
    /// What the workload needs, up to what the adapter has, and the optional
    /// features that help (subgroups, timestamps) where the adapter has them.
    Adapter,
    /// Exactly WebGPU's default limits and no optional features: what a
    /// browser gives a page that asks for nothing. `GAN_WGPU_LIMITS=webgpu`.
    WebGpu,
}

/// How the device is opened, as the host says (see `settings::Settings`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceOptions {
    pub limits: LimitsMode,
    /// Shaders without wgpu's runtime bounds checks (every kernel masks or
    /// clamps its own indices, tested against the CPU references on odd
    /// shapes; on lavapipe it gains little).
    pub unchecked_shaders: bool,
}

impl Default for DeviceOptions {
    fn default() -> Self {
        DeviceOptions { limits: LimitsMode::Adapter, unchecked_shaders: false }
    }
}

/// Resource needs of a workload, checked against the adapter's limits before
/// the device is requested so that the error can name the limit.
#[derive(Clone, Debug)]
pub struct Requirements {
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_compute_workgroup_storage_size: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_storage_buffers_per_shader_stage: u32,
}

impl Default for Requirements {
    /// What the kernels themselves need (tiled matmul: 8 KiB of workgroup
    /// memory, 256 invocations; 7 storage bindings in the largest layout).
    fn default() -> Self {
        Requirements {
            max_storage_buffer_binding_size: 128 << 20,
            max_buffer_size: 256 << 20,
            max_compute_workgroup_storage_size: 8192,
            max_compute_invocations_per_workgroup: 256,
            max_storage_buffers_per_shader_stage: 8,
        }
    }
}

fn instance() -> wgpu::Instance {
    wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env())
}

fn backends_from_env() -> wgpu::Backends {
    wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all())
}

/// All adapters, in the order `gan-wgpu devices` prints them. Vulkan first:
/// lavapipe is offered through GL too, and the GL path is slower for compute.
pub fn enumerate_adapters() -> (wgpu::Instance, Vec<wgpu::Adapter>) {
    pollster::block_on(enumerate_adapters_async())
}

/// `enumerate_adapters` without blocking. A browser lists no adapters: there
/// the one `request_adapter` gives (high performance) is the list.
pub async fn enumerate_adapters_async() -> (wgpu::Instance, Vec<wgpu::Adapter>) {
    let instance = instance();
    let mut adapters = instance.enumerate_adapters(backends_from_env()).await;
    if adapters.is_empty() {
        let options = wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        };
        adapters.extend(instance.request_adapter(&options).await.ok());
    }
    adapters.sort_by_key(|a| backend_rank(a.get_info().backend));
    (instance, adapters)
}

fn backend_rank(b: wgpu::Backend) -> u8 {
    match b {
        wgpu::Backend::Vulkan | wgpu::Backend::Metal | wgpu::Backend::Dx12 => 0,
        _ => 1,
    }
}

fn type_rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// Picks one adapter from `adapters` for `choice`; returns its index.
pub fn choose_adapter(infos: &[wgpu::AdapterInfo], choice: &DeviceChoice) -> Result<usize> {
    let wanted = |t: wgpu::DeviceType, name: &str| -> Result<usize> {
        infos.iter().position(|i| i.device_type == t).ok_or_else(|| GanError::DeviceChoice {
            wanted: name.into(),
            why: format!("no {name} adapter among the {} found", infos.len()),
        })
    };
    match choice {
        DeviceChoice::Auto => (0..infos.len())
            .min_by_key(|&i| (type_rank(infos[i].device_type), backend_rank(infos[i].backend), i))
            .ok_or_else(|| GanError::NoAdapter { backends: format!("{:?}", backends_from_env()) }),
        DeviceChoice::Discrete => wanted(wgpu::DeviceType::DiscreteGpu, "discrete"),
        DeviceChoice::Integrated => wanted(wgpu::DeviceType::IntegratedGpu, "integrated"),
        DeviceChoice::Cpu => wanted(wgpu::DeviceType::Cpu, "cpu"),
        DeviceChoice::Index(n) => {
            if *n < infos.len() {
                Ok(*n)
            } else {
                Err(GanError::DeviceChoice {
                    wanted: n.to_string(),
                    why: format!(
                        "there is no adapter {n}; {} adapter(s) found, numbered 0 to {}",
                        infos.len(),
                        infos.len().saturating_sub(1)
                    ),
                })
            }
        }
    }
}

/// Checks the adapter's limits against what the workload needs and names the
/// first limit that falls short.
pub fn check_limits(adapter_name: &str, has: &wgpu::Limits, need: &Requirements) -> Result<()> {
    let checks: [(&'static str, u64, u64); 5] = [
        ("max_storage_buffer_binding_size", need.max_storage_buffer_binding_size, has.max_storage_buffer_binding_size),
        ("max_buffer_size", need.max_buffer_size, has.max_buffer_size),
        (
            "max_compute_workgroup_storage_size",
            need.max_compute_workgroup_storage_size as u64,
            has.max_compute_workgroup_storage_size as u64,
        ),
        (
            "max_compute_invocations_per_workgroup",
            need.max_compute_invocations_per_workgroup as u64,
            has.max_compute_invocations_per_workgroup as u64,
        ),
        (
            "max_storage_buffers_per_shader_stage",
            need.max_storage_buffers_per_shader_stage as u64,
            has.max_storage_buffers_per_shader_stage as u64,
        ),
    ];
    for (limit, needed, has) in checks {
        if has < needed {
            let hint = if limit.contains("buffer") {
                " (a smaller data set or batch size needs less)".to_string()
            } else {
                String::new()
            };
            return Err(GanError::Limit { adapter: adapter_name.to_string(), limit, needed, has, hint });
        }
    }
    Ok(())
}

/// Errors the device reported outside any error scope, and whether it was lost.
#[derive(Default)]
pub struct DeviceHealth {
    pub errors: Vec<String>,
    pub lost: Option<String>,
}

pub struct GpuContext {
    pub instance: wgpu::Instance,
    pub adapter: wgpu::Adapter,
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub limits: wgpu::Limits,
    pub features: wgpu::Features,
    pub mode: LimitsMode,
    unchecked_shaders: bool,
    pub health: Arc<Mutex<DeviceHealth>>,
    modules: Mutex<HashMap<&'static str, wgpu::ShaderModule>>,
    pipelines: Mutex<HashMap<String, Kernel>>,
    matmul_choice: std::sync::OnceLock<Choice>,
    reduce_choice: std::sync::OnceLock<ReduceChoice>,
    /// What the kernels use until a choice is set.
    reference: (Choice, ReduceChoice),
}

impl GpuContext {
    /// Builds the context on the adapter `choice` names, with the limits
    /// `need` asks for, blocking (`new_async` on pollster; native hosts).
    pub fn new(choice: &DeviceChoice, need: &Requirements, options: DeviceOptions) -> Result<Self> {
        pollster::block_on(Self::new_async(choice, need, options))
    }

    /// `new` without blocking: what a browser page awaits.
    pub async fn new_async(choice: &DeviceChoice, need: &Requirements, options: DeviceOptions) -> Result<Self> {
        let (instance, mut adapters) = enumerate_adapters_async().await;
        if adapters.is_empty() {
            return Err(GanError::NoAdapter { backends: format!("{:?}", backends_from_env()) });
        }
        let infos: Vec<_> = adapters.iter().map(|a| a.get_info()).collect();
        let index = choose_adapter(&infos, choice)?;
        let adapter = adapters.swap_remove(index);
        let info = infos[index].clone();
        Self::open(instance, adapter, info, need, options).await
    }

    /// Opens a device on `adapter` with the limits `need` asks for.
    async fn open(
        instance: wgpu::Instance,
        adapter: wgpu::Adapter,
        info: wgpu::AdapterInfo,
        need: &Requirements,
        options: DeviceOptions,
    ) -> Result<Self> {
        let mode = options.limits;
        let has = match mode {
            LimitsMode::Adapter => adapter.limits(),
            LimitsMode::WebGpu => wgpu::Limits::default(),
        };
        let name = match mode {
            LimitsMode::Adapter => info.name.clone(),
            LimitsMode::WebGpu => format!("{} with WebGPU's default limits (GAN_WGPU_LIMITS=webgpu)", info.name),
        };
        check_limits(&name, &has, need)?;

        let mut required_limits = wgpu::Limits::default();
        required_limits.max_storage_buffer_binding_size = need
            .max_storage_buffer_binding_size
            .max(required_limits.max_storage_buffer_binding_size)
            .min(has.max_storage_buffer_binding_size);
        required_limits.max_buffer_size =
            need.max_buffer_size.max(required_limits.max_buffer_size).min(has.max_buffer_size);
        required_limits.max_storage_buffers_per_shader_stage = need
            .max_storage_buffers_per_shader_stage
            .max(required_limits.max_storage_buffers_per_shader_stage)
            .min(has.max_storage_buffers_per_shader_stage);
        let features = match mode {
            LimitsMode::Adapter => {
                adapter.features()
                    & (wgpu::Features::TIMESTAMP_QUERY
                        | wgpu::Features::TIMESTAMP_QUERY_INSIDE_ENCODERS
                        | wgpu::Features::SUBGROUP)
            }
            LimitsMode::WebGpu => wgpu::Features::empty(),
        };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("gan-wgpu"),
                required_features: features,
                required_limits: required_limits.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|source| GanError::RequestDevice { adapter: info.name.clone(), source })?;

        let health = Arc::new(Mutex::new(DeviceHealth::default()));
        {
            let h = health.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                log::error!("GPU error: {e}");
                if let Ok(mut h) = h.lock() {
                    h.errors.push(e.to_string());
                }
            }));
            let h = health.clone();
            device.set_device_lost_callback(move |reason, msg| {
                if let Ok(mut h) = h.lock() {
                    h.lost = Some(format!("{reason:?}: {msg}"));
                }
            });
        }
        Ok(GpuContext {
            instance,
            adapter,
            device,
            queue,
            info,
            limits: required_limits,
            features,
            mode,
            unchecked_shaders: options.unchecked_shaders,
            health,
            modules: Mutex::new(HashMap::new()),
            pipelines: Mutex::new(HashMap::new()),
            matmul_choice: std::sync::OnceLock::new(),
            reduce_choice: std::sync::OnceLock::new(),
            reference: (Choice::reference(), ReduceChoice::reference()),
        })
    }

    /// A second device on this context's adapter, for background work such
    /// as compiling pipelines ahead of the first step.
    pub fn twin(&self) -> Result<GpuContext> {
        let twin = pollster::block_on(Self::open(
            self.instance.clone(),
            self.adapter.clone(),
            self.info.clone(),
            &Requirements::default(),
            DeviceOptions { limits: self.mode, unchecked_shaders: self.unchecked_shaders },
        ))?;
        // Same adapter, same matmul variant: never measured twice.
        if let Some(choice) = self.matmul_choice.get() {
            let _ = twin.matmul_choice.set(choice.clone());
        }
        if let Some(choice) = self.reduce_choice.get() {
            let _ = twin.reduce_choice.set(choice.clone());
        }
        Ok(twin)
    }

    /// The matmul variant in use and how it was chosen: the one set by
    /// `set_kernel_choices` (natively `autotune::choose_kernels`, in a page
    /// `autotune::choose_without_blocking`), else the reference (`naive`).
    pub fn matmul_choice(&self) -> &Choice {
        self.matmul_choice.get().unwrap_or(&self.reference.0)
    }

    /// The shape of the batch reductions in use, as `matmul_choice`; the
    /// reference is `column`.
    pub fn reduce_choice(&self) -> &ReduceChoice {
        self.reduce_choice.get().unwrap_or(&self.reference.1)
    }

    /// Whether the kernel choices were set (the reference is in use until then).
    pub fn kernels_chosen(&self) -> bool {
        self.matmul_choice.get().is_some() && self.reduce_choice.get().is_some()
    }

    /// Sets both kernel choices; kernels built afterwards use them. Made once:
    /// false (and nothing changed) if either was already set.
    pub fn set_kernel_choices(&self, matmul: Choice, reduce: ReduceChoice) -> bool {
        if self.matmul_choice.get().is_some() || self.reduce_choice.get().is_some() {
            return false;
        }
        let a = self.matmul_choice.set(matmul).is_ok();
        let b = self.reduce_choice.set(reduce).is_ok();
        a && b
    }

    /// True for CPU adapters such as lavapipe, where barrier-free kernels win.
    pub fn is_cpu_adapter(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// Returns an error naming `during` if the device reported an error or was lost.
    pub fn check_health(&self, during: &str) -> Result<()> {
        let mut h = self
            .health
            .lock()
            .map_err(|_| GanError::Device { during: during.into(), message: "error state poisoned".into() })?;
        if let Some(lost) = &h.lost {
            return Err(GanError::Device { during: during.into(), message: format!("device lost ({lost})") });
        }
        if !h.errors.is_empty() {
            let message = h.errors.join("; ");
            h.errors.clear();
            return Err(GanError::Device { during: during.into(), message });
        }
        Ok(())
    }

    /// Blocks until all submitted work is done.
    pub fn wait(&self, during: &str) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| GanError::Device { during: during.into(), message: e.to_string() })?;
        self.check_health(during)
    }

    pub(crate) fn shader_module(&self, name: &'static str, source: &'static str) -> wgpu::ShaderModule {
        let mut modules = self.modules.lock().unwrap_or_else(|p| p.into_inner());
        modules
            .entry(name)
            .or_insert_with(|| {
                let desc =
                    wgpu::ShaderModuleDescriptor { label: Some(name), source: wgpu::ShaderSource::Wgsl(source.into()) };
                if self.unchecked_shaders {
                    // SAFETY: every kernel masks or clamps its own indices
                    // (tested against the CPU references on odd shapes).
                    unsafe { self.device.create_shader_module_trusted(desc, wgpu::ShaderRuntimeChecks::unchecked()) }
                } else {
                    self.device.create_shader_module(desc)
                }
            })
            .clone()
    }

    pub(crate) fn cached_kernel(&self, key: String, build: impl FnOnce() -> Kernel) -> Kernel {
        let mut pipelines = self.pipelines.lock().unwrap_or_else(|p| p.into_inner());
        pipelines.entry(key).or_insert_with(build).clone()
    }

    /// Live GPU buffers and their bytes, as wgpu counts them (wgpu's
    /// `counters` feature): (buffers, buffer bytes, memory allocations).
    pub fn gpu_memory(&self) -> (isize, isize, isize) {
        let c = self.device.get_internal_counters();
        (c.hal.buffers.read(), c.hal.buffer_memory.read(), c.hal.memory_allocations.read())
    }

    /// One line naming the adapter, for logs and benchmark headers.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?}, driver {} {}){}",
            self.info.name,
            self.info.device_type,
            self.info.backend,
            self.info.driver,
            self.info.driver_info,
            match self.mode {
                LimitsMode::Adapter => "",
                LimitsMode::WebGpu => " with WebGPU's default limits and no optional features",
            }
        )
    }
}

/// The text of `gan-wgpu devices`.
pub fn describe_adapters() -> Result<String> {
    let (_instance, adapters) = enumerate_adapters();
    if adapters.is_empty() {
        return Err(GanError::NoAdapter { backends: format!("{:?}", backends_from_env()) });
    }
    let infos: Vec<_> = adapters.iter().map(|a| a.get_info()).collect();
    let auto = choose_adapter(&infos, &DeviceChoice::Auto).ok();
    let mut out = String::new();
    for (i, (a, info)) in adapters.iter().zip(&infos).enumerate() {
        let l = a.limits();
        let f = a.features();
        let mark = if Some(i) == auto { "  <- auto" } else { "" };
        let _ = writeln!(out, "[{i}] {}{mark}", info.name);
        let _ = writeln!(
            out,
            "    type {:?}, backend {:?}, driver {} ({})",
            info.device_type, info.backend, info.driver, info.driver_info
        );
        let _ = writeln!(
            out,
            "    max storage buffer binding {} MiB, max buffer {} MiB, workgroup storage {} KiB, max invocations {}",
            l.max_storage_buffer_binding_size >> 20,
            l.max_buffer_size >> 20,
            l.max_compute_workgroup_storage_size >> 10,
            l.max_compute_invocations_per_workgroup
        );
        let yes = |b: bool| if b { "yes" } else { "no" };
        let _ = writeln!(
            out,
            "    subgroup size {}..{}, SHADER_F16 {}, TIMESTAMP_QUERY {}, SUBGROUP {}",
            info.subgroup_min_size,
            info.subgroup_max_size,
            yes(f.contains(wgpu::Features::SHADER_F16)),
            yes(f.contains(wgpu::Features::TIMESTAMP_QUERY)),
            yes(f.contains(wgpu::Features::SUBGROUP)),
        );
    }
    Ok(out)
}

/// A compiled pipeline and its bind-group layout.
#[derive(Clone, Debug)]
pub struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
    /// Binding numbers in the layout, in order; a Dispatch gives one resource each.
    pub bindings: Vec<u32>,
}
