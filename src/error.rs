//! Errors that name what went wrong: the file, the tensor, the limit.

use std::path::PathBuf;

pub type Result<T, E = GanError> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum GanError {
    #[error(
        "no GPU adapter found (backends tried: {backends}). Install a GPU driver with Vulkan support, \
         or Mesa's CPU driver lavapipe: `apt-get install mesa-vulkan-drivers` (on Debian bookworm, \
         `apt-get install -t bookworm-backports mesa-vulkan-drivers` gives the faster Mesa 25)"
    )]
    NoAdapter { backends: String },

    #[error("--device {wanted}: {why}. Run `gan-wgpu devices` to list the adapters")]
    DeviceChoice { wanted: String, why: String },

    #[error("adapter '{adapter}' cannot serve this workload: limit {limit} is {has}, {needed} is needed{hint}")]
    Limit { adapter: String, limit: &'static str, needed: u64, has: u64, hint: String },

    #[error("requesting a device from adapter '{adapter}' failed: {source}")]
    RequestDevice {
        adapter: String,
        #[source]
        source: wgpu::RequestDeviceError,
    },

    #[error("GPU error during {during}: {message}")]
    Device { during: String, message: String },

    #[error("tensor '{tensor}': {why}")]
    Shape { tensor: String, why: String },

    #[error("{path}: {why}")]
    Data { path: PathBuf, why: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("checkpoint {path}: {why}")]
    Checkpoint { path: PathBuf, why: String },

    #[error("{flag}: {why}")]
    Flag { flag: &'static str, why: String },

    #[error("{var}={value:?} is not a valid value; valid values: {valid}")]
    Env { var: &'static str, value: String, valid: String },

    #[error("training diverged: {0}")]
    Diverged(String),

    #[error("interrupted")]
    Interrupted,
}

impl GanError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        GanError::Io { path: path.into(), source }
    }
    pub fn data(path: impl Into<PathBuf>, why: impl Into<String>) -> Self {
        GanError::Data { path: path.into(), why: why.into() }
    }
    pub fn shape(tensor: impl Into<String>, why: impl Into<String>) -> Self {
        GanError::Shape { tensor: tensor.into(), why: why.into() }
    }
}

/// The process's exit codes, one per way a run ends (docs/runs.md).
pub mod exit_code {
    /// The command did what it was asked (a run: every epoch trained).
    pub const DONE: u8 = 0;
    /// Anything else went wrong: the device, a file, a limit.
    pub const FAILURE: u8 = 1;
    /// A flag, an environment variable, the data, a checkpoint or a path
    /// was refused or not found (clap's usage errors use 2 as well).
    pub const BAD_INPUT: u8 = 2;
    /// The model went non-finite; the last epoch's files are kept.
    pub const DIVERGED: u8 = 3;
    /// Ctrl-C or SIGTERM: a resumable state was saved (128 + SIGINT).
    pub const INTERRUPTED: u8 = 130;
}

impl GanError {
    /// The process exit code this error ends a command with.
    pub fn exit_code(&self) -> u8 {
        match self {
            GanError::Flag { .. }
            | GanError::Env { .. }
            | GanError::Data { .. }
            | GanError::Checkpoint { .. }
            | GanError::DeviceChoice { .. } => exit_code::BAD_INPUT,
            // A file or folder named on the command line that is not there.
            GanError::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => exit_code::BAD_INPUT,
            GanError::Diverged(_) => exit_code::DIVERGED,
            GanError::Interrupted => exit_code::INTERRUPTED,
            _ => exit_code::FAILURE,
        }
    }

    /// A word for how the run ended (summary.json's `exit_reason`).
    pub fn exit_reason(&self) -> &'static str {
        match self.exit_code() {
            exit_code::BAD_INPUT => "bad_input",
            exit_code::DIVERGED => "diverged",
            exit_code::INTERRUPTED => "interrupted",
            _ => "failed",
        }
    }
}
