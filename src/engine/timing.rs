//! Timing GPU work: GPU timestamps around compute passes where the adapter
//! has TIMESTAMP_QUERY, else the wall clock around a synchronised submit;
//! and, for hosts that cannot block (a browser page), a host clock around a
//! submit and an awaited readback. Used by the autotune, the benchmark and
//! the step profile.

use crate::engine::context::GpuContext;
use crate::engine::kernels::Dispatch;
use crate::engine::tensor::GpuTensor;
use crate::error::{GanError, Result};
use std::time::Instant;

/// The median of `v` (the upper one for an even count); NaN for no values
/// (never a panic).
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// GPU timestamps at the start and end of compute passes: `count` queries,
/// resolved and read back after a submit. None without TIMESTAMP_QUERY.
pub struct PassTimer {
    pub query_set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    ticks: GpuTensor,
    count: u32,
    period_ns: f64,
}

impl PassTimer {
    pub fn new(ctx: &GpuContext, count: u32) -> Option<Self> {
        if !ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
            return None;
        }
        let query_set = ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
            label: Some("pass timestamps"),
            ty: wgpu::QueryType::Timestamp,
            count,
        });
        let resolve = ctx.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("timestamps"),
            size: count as u64 * 8,
            usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
            mapped_at_creation: false,
        });
        let ticks = GpuTensor::zeros(ctx, &[count as usize * 2], "timestamps (u32 pairs)");
        Some(PassTimer { query_set, resolve, ticks, count, period_ns: ctx.queue.get_timestamp_period() as f64 })
    }

    /// Timestamp writes for a pass: query `2i` at its start, `2i + 1` at its end.
    pub fn writes(&self, i: u32) -> wgpu::ComputePassTimestampWrites<'_> {
        wgpu::ComputePassTimestampWrites {
            query_set: &self.query_set,
            beginning_of_pass_write_index: Some(2 * i),
            end_of_pass_write_index: Some(2 * i + 1),
        }
    }

    /// Records the copy of all queries to where `read_us` finds them.
    pub fn resolve(&self, enc: &mut wgpu::CommandEncoder) {
        enc.resolve_query_set(&self.query_set, 0..self.count, &self.resolve, 0);
        enc.copy_buffer_to_buffer(&self.resolve, 0, &self.ticks.buffer, 0, self.count as u64 * 8);
    }

    /// Microseconds between the start and end of pass i, for every pass
    /// (after the submit that resolved them).
    pub fn read_us(&self, ctx: &GpuContext) -> Result<Vec<f64>> {
        let raw = self.ticks.read_u32(ctx)?;
        let t = |i: usize| raw[2 * i] as u64 | (raw[2 * i + 1] as u64) << 32;
        Ok((0..self.count as usize / 2)
            .map(|p| t(2 * p + 1).saturating_sub(t(2 * p)) as f64 * self.period_ns / 1e3)
            .collect())
    }
}

/// How `time_dispatch` times kernels on this adapter (printed with the table).
pub fn kernel_timing(ctx: &GpuContext) -> &'static str {
    if ctx.features.contains(wgpu::Features::TIMESTAMP_QUERY) {
        "GPU timestamps around one compute pass of repeated launches"
    } else {
        "wall clock around a synchronised submit of repeated launches"
    }
}

/// Median and (max - min) of the per-launch time in microseconds.
pub fn time_dispatch(ctx: &GpuContext, d: &Dispatch, reps: usize, trials: usize) -> Result<(f64, f64)> {
    time_dispatch_interleaved(ctx, d, reps, trials, &mut || {})
}

/// `time_dispatch`, running `between` after each trial: the CPU baseline is
/// timed in the same minutes as the GPU, so that this machine's swings in
/// speed (up to 2x within minutes) do not land on one side of the ratio.
pub fn time_dispatch_interleaved(
    ctx: &GpuContext,
    d: &Dispatch,
    reps: usize,
    trials: usize,
    between: &mut dyn FnMut(),
) -> Result<(f64, f64)> {
    if reps == 0 || trials == 0 {
        return Err(GanError::Flag {
            flag: "bench",
            why: format!("timing '{}' needs at least 1 launch a trial and 1 trial, got {reps} and {trials}", d.label),
        });
    }
    let timer = PassTimer::new(ctx, 2);
    let run = |n: usize| -> Result<f64> {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some(&d.label),
                timestamp_writes: timer.as_ref().map(|t| t.writes(0)),
            });
            for _ in 0..n {
                d.record(&mut pass);
            }
        }
        if let Some(t) = &timer {
            t.resolve(&mut enc);
        }
        let t = Instant::now();
        ctx.queue.submit([enc.finish()]);
        ctx.wait(&d.label)?;
        let wall_us = t.elapsed().as_secs_f64() * 1e6;
        // The GPU's own clock where it has one; a zero reading (a driver
        // that does not count) falls back to the wall clock.
        let gpu_us = match &timer {
            Some(t) => t.read_us(ctx)?[0],
            None => 0.0,
        };
        Ok(if gpu_us > 0.0 { gpu_us } else { wall_us } / n as f64)
    };
    run(1)?;
    let mut times = Vec::with_capacity(trials);
    for _ in 0..trials {
        times.push(run(reps)?);
        between();
    }
    times.sort_by(|a, b| a.total_cmp(b));
    Ok((times[times.len() / 2], times[times.len() - 1] - times[0]))
}

/// Milliseconds from a fixed origin, read by the host: a page's
/// `performance.now()` (the library reads no clock where it cannot).
pub type HostClock<'a> = &'a dyn Fn() -> f64;

/// Median microseconds of one launch of `dispatches` (recorded in order,
/// `reps` times in one pass), timed by `clock` around the submit and an
/// awaited 4-byte readback that follows it; one untimed run first (it
/// compiles the pipelines). For hosts that cannot block.
pub async fn time_on_host(
    ctx: &GpuContext,
    dispatches: &[&Dispatch],
    reps: usize,
    trials: usize,
    clock: HostClock<'_>,
) -> Result<f64> {
    if reps == 0 || trials == 0 {
        return Err(GanError::Flag {
            flag: "timing",
            why: format!("needs at least 1 launch a trial and 1 trial, got {reps} and {trials}"),
        });
    }
    let marker = GpuTensor::zeros(ctx, &[1], "timing marker");
    let mut times = Vec::with_capacity(trials);
    for trial in 0..=trials {
        let n = if trial == 0 { 1 } else { reps };
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass =
                enc.begin_compute_pass(&wgpu::ComputePassDescriptor { label: Some("timed"), timestamp_writes: None });
            for _ in 0..n {
                for d in dispatches {
                    d.record(&mut pass);
                }
            }
        }
        let t0 = clock();
        ctx.queue.submit([enc.finish()]);
        marker.read_u32_async(ctx).await?;
        if trial > 0 {
            times.push((clock() - t0) * 1e3 / n as f64);
        }
    }
    Ok(median(times))
}
