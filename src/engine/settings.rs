//! How the host wants the library to run: the adapter, the device's limits,
//! forced kernel variants, the autotune's cache, the pipeline warm-up, and
//! the host CPU that CPU adapters run on. The
//! library reads no environment itself: the CLI (and the tests) read these
//! once, before any adapter work, with `Settings::from_env`; a page uses the
//! defaults. A value that names nothing valid is an error listing the valid
//! ones (a typo must not silently fall back to the default).

use crate::engine::context::{DeviceChoice, DeviceOptions, LimitsMode};
use crate::engine::kernels::matmul::Variant;
use crate::engine::kernels::reduce::Reduce;
use crate::error::{GanError, Result};
use std::path::PathBuf;

#[derive(Clone, Debug)]
pub struct Settings {
    /// `GAN_WGPU_DEVICE`: the adapter when `--device` is not given (parsed
    /// when used, so that commands without a device do not trip on it).
    pub device: Option<String>,
    /// `GAN_WGPU_LIMITS=webgpu` and `GAN_WGPU_UNCHECKED=1`.
    pub device_options: DeviceOptions,
    /// `GAN_WGPU_MATMUL`: this variant instead of the autotune's choice.
    pub matmul: Option<Variant>,
    /// `GAN_WGPU_AUTOTUNE`: `0` uses the table (no timing); `1` or unset
    /// measures the matmul variants on every adapter.
    pub autotune: Option<bool>,
    /// `GAN_WGPU_REDUCE`: this reduction shape instead of the choice.
    pub reduce: Option<Reduce>,
    /// Where the autotune, verification and classifier caches live:
    /// `$GAN_WGPU_CACHE_DIR`, else `$XDG_CACHE_HOME/gan-wgpu`, else
    /// `~/.cache/gan-wgpu`; None without any of them.
    pub cache_dir: Option<PathBuf>,
    /// Whether `train` warms the pipelines up on CPU adapters: off with
    /// `GAN_WGPU_WARMUP=0`, and when Mesa's shader cache is disabled
    /// (`MESA_SHADER_CACHE_DISABLE`, `MESA_DISK_CACHE_DISABLE`), where the
    /// helper device's compiles could not reach the main one.
    pub warmup: bool,
    /// The host CPU (`host_cpu_model`): CPU adapters run on it, so their
    /// measured kernel choice is cached per CPU model too, and `bench`
    /// prints it beside every figure from a CPU adapter.
    pub host_cpu: Option<String>,
}

/// The host CPU as `/proc/cpuinfo` names it, with its family and model
/// numbers and the logical CPUs: "Intel(R) Xeon(R) Processor (family 6
/// model 207), 2 logical CPUs". None where there is no /proc/cpuinfo.
pub fn host_cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    let field = |key: &str| {
        text.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
    };
    let name = field("model name").or_else(|| field("Model")).or_else(|| field("cpu model"))?;
    let count = text.lines().filter(|l| l.split(':').next().is_some_and(|k| k.trim() == "processor")).count();
    let ids = match (field("cpu family"), field("model")) {
        (Some(f), Some(m)) => format!(" (family {f} model {m})"),
        _ => String::new(),
    };
    Some(format!("{name}{ids}, {count} logical CPUs"))
}

impl Default for Settings {
    /// Nothing forced: the automatic adapter, its limits, the autotune's
    /// choices, no cache, the warm-up on.
    fn default() -> Self {
        Settings {
            device: None,
            device_options: DeviceOptions::default(),
            matmul: None,
            autotune: None,
            reduce: None,
            cache_dir: None,
            warmup: true,
            host_cpu: None,
        }
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn invalid(var: &'static str, value: &str, valid: String) -> GanError {
    GanError::Env { var, value: value.to_string(), valid }
}

impl Settings {
    /// The settings from the `GAN_WGPU_*` variables (see each field).
    pub fn from_env() -> Result<Self> {
        let limits = match var("GAN_WGPU_LIMITS").as_deref() {
            None | Some("adapter") => LimitsMode::Adapter,
            Some("webgpu") => LimitsMode::WebGpu,
            Some(other) => {
                return Err(invalid(
                    "GAN_WGPU_LIMITS",
                    other,
                    "adapter (the default), webgpu (WebGPU's default limits, no optional features)".into(),
                ))
            }
        };
        let matmul = match var("GAN_WGPU_MATMUL") {
            None => None,
            Some(v) => Some(
                Variant::parse(&v)
                    .ok_or_else(|| invalid("GAN_WGPU_MATMUL", &v, Variant::ALL.map(Variant::name).join(", ")))?,
            ),
        };
        let autotune = match var("GAN_WGPU_AUTOTUNE").as_deref() {
            None => None,
            Some("0") => Some(false),
            Some("1") => Some(true),
            Some(other) => return Err(invalid("GAN_WGPU_AUTOTUNE", other, "0 (use the table), 1 (measure)".into())),
        };
        let reduce = match var("GAN_WGPU_REDUCE") {
            None => None,
            Some(v) => Some(
                Reduce::parse(&v)
                    .ok_or_else(|| invalid("GAN_WGPU_REDUCE", &v, Reduce::ALL.map(Reduce::name).join(", ")))?,
            ),
        };
        let cache_dir = var("GAN_WGPU_CACHE_DIR")
            .map(PathBuf::from)
            .or_else(|| var("XDG_CACHE_HOME").map(|d| PathBuf::from(d).join("gan-wgpu")))
            .or_else(|| var("HOME").map(|d| PathBuf::from(d).join(".cache").join("gan-wgpu")));
        let cache_off = |k: &str| matches!(var(k).as_deref(), Some("1") | Some("true"));
        let warmup = var("GAN_WGPU_WARMUP").as_deref() != Some("0")
            && !cache_off("MESA_SHADER_CACHE_DISABLE")
            && !cache_off("MESA_DISK_CACHE_DISABLE");
        Ok(Settings {
            device: var("GAN_WGPU_DEVICE"),
            device_options: DeviceOptions {
                limits,
                unchecked_shaders: var("GAN_WGPU_UNCHECKED").as_deref() == Some("1"),
            },
            matmul,
            autotune,
            reduce,
            cache_dir,
            warmup,
            host_cpu: host_cpu_model(),
        })
    }

    /// The adapter: `--device` when given, else `GAN_WGPU_DEVICE`, else auto.
    pub fn device_choice(&self, flag: Option<&str>) -> Result<DeviceChoice> {
        match flag.or(self.device.as_deref()) {
            Some(f) => f.parse(),
            None => Ok(DeviceChoice::Auto),
        }
    }
}
