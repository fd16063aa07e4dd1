//! Submitting steps and reading their losses back without stalling the GPU:
//! a ring of staging buffers mapped a step or more after the copy.

use super::*;

/// Staging buffers for the metrics, mapped asynchronously a step or more
/// after the copy so the host never stalls the GPU.
pub(super) struct Readback {
    bufs: Vec<wgpu::Buffer>,
    states: Vec<Arc<AtomicU8>>,
    queue: VecDeque<(usize, usize, usize, u64)>, // (slot, epoch, batch, step)
    next: usize,
}

const PENDING: u8 = 0;
const READY: u8 = 1;
const FAILED: u8 = 2;
const IDLE: u8 = 3;

impl Readback {
    fn new(ctx: &GpuContext, slots: usize) -> Self {
        let bufs = (0..slots)
            .map(|i| {
                ctx.device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(&format!("metrics staging {i}")),
                    size: READBACK_BYTES,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                    mapped_at_creation: false,
                })
            })
            .collect();
        Readback {
            bufs,
            states: (0..slots).map(|_| Arc::new(AtomicU8::new(IDLE))).collect(),
            queue: VecDeque::new(),
            next: 0,
        }
    }

    fn slot_free(&self) -> bool {
        self.states[self.next].load(Ordering::Acquire) == IDLE
    }

    /// Records the copy of the metrics, then the counters (with the
    /// divergence flag), into the next slot.
    fn record_copy(&self, enc: &mut wgpu::CommandEncoder, metrics: &GpuTensor, counters: &GpuTensor) {
        record_reading_copy(enc, metrics, counters, &self.bufs[self.next], 0);
    }

    /// After the submit: start mapping the slot just copied into.
    fn start_map(&mut self, epoch: usize, batch: usize, step: u64) {
        let slot = self.next;
        let state = self.states[slot].clone();
        state.store(PENDING, Ordering::Release);
        self.bufs[slot].slice(..).map_async(wgpu::MapMode::Read, move |r| {
            state.store(if r.is_ok() { READY } else { FAILED }, Ordering::Release);
        });
        self.queue.push_back((slot, epoch, batch, step));
        self.next = (self.next + 1) % self.bufs.len();
    }

    /// Pops every finished readback, in order: (epoch, batch, step, metrics).
    fn drain(&mut self, ctx: &GpuContext) -> Result<Vec<StepReading>> {
        let _ = ctx.device.poll(wgpu::PollType::Poll);
        let mut out = Vec::new();
        while let Some(&(slot, epoch, batch, step)) = self.queue.front() {
            match self.states[slot].load(Ordering::Acquire) {
                READY => {
                    let view = self.bufs[slot]
                        .slice(..)
                        .get_mapped_range()
                        .map_err(|e| GanError::Device { during: "reading losses".into(), message: e.to_string() })?;
                    let words: Vec<u32> = bytemuck::cast_slice(&view[..]).to_vec();
                    drop(view);
                    self.bufs[slot].unmap();
                    self.states[slot].store(IDLE, Ordering::Release);
                    self.queue.pop_front();
                    out.push(StepReading::from_words(&words, epoch, batch, step));
                }
                FAILED => {
                    ctx.check_health("reading losses")?;
                    return Err(GanError::Device {
                        during: "reading losses".into(),
                        message: "mapping the staging buffer failed".into(),
                    });
                }
                _ => break,
            }
        }
        Ok(out)
    }
}

/// Submits training steps the way the trainer does: one submission a step,
/// at most two steps queued (memory stays flat, timings stay honest), and the
/// metrics of tagged steps copied into a ring of staging buffers and read a
/// step or more later, so the host never stalls the GPU to read a loss.
pub struct StepRunner {
    readback: Readback,
    in_flight: VecDeque<wgpu::SubmissionIndex>,
}

/// What a read-back step says.
#[derive(Clone, Copy, Debug)]
pub struct StepReading {
    /// 0-based epoch, 0-based batch within it, 1-based global step.
    pub epoch: usize,
    pub batch: usize,
    pub step: u64,
    pub metrics: StepMetrics,
    /// The divergence flag as it stood after this step: the first global
    /// step (1-based) at which the model went non-finite this epoch.
    pub first_nonfinite: Option<u64>,
}

/// Records the copy of one step's metrics, then its counters (with the
/// divergence flag), into `dst` at byte `at`: one readback slot of
/// READBACK_BYTES.
pub(super) fn record_reading_copy(
    enc: &mut wgpu::CommandEncoder,
    metrics: &GpuTensor,
    counters: &GpuTensor,
    dst: &wgpu::Buffer,
    at: u64,
) {
    let metrics_bytes = (METRICS_LEN * 4) as u64;
    enc.copy_buffer_to_buffer(&metrics.buffer, metrics.offset, dst, at, metrics_bytes);
    enc.copy_buffer_to_buffer(
        &counters.buffer,
        counters.offset,
        dst,
        at + metrics_bytes,
        READBACK_BYTES - metrics_bytes,
    );
}

impl StepReading {
    /// The reading in one readback slot's words (metrics, then counters).
    pub(super) fn from_words(words: &[u32], epoch: usize, batch: usize, step: u64) -> Self {
        let metrics: Vec<f32> = words[..METRICS_LEN].iter().map(|&w| f32::from_bits(w)).collect();
        StepReading {
            epoch,
            batch,
            step,
            metrics: metrics_from(&metrics),
            first_nonfinite: crate::kernels::adam::first_nonfinite_step(&words[METRICS_LEN..]),
        }
    }
}

impl StepRunner {
    pub fn new(ctx: &GpuContext) -> Self {
        StepRunner { readback: Readback::new(ctx, 4), in_flight: VecDeque::new() }
    }

    /// Submits one step; with `tag` = (epoch, batch, step) its metrics are
    /// copied out. Returns the readings that have arrived since the last call.
    pub fn step(&mut self, ctx: &GpuContext, gan: &Gan, tag: Option<(usize, usize, u64)>) -> Result<Vec<StepReading>> {
        let mut rows = Vec::new();
        if tag.is_some() && !self.readback.slot_free() {
            // The ring is full: wait for the oldest readback.
            ctx.wait("waiting for a loss readback")?;
            rows.extend(self.readback.drain(ctx)?);
        }
        let mut enc = ctx.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("train step") });
        gan.record_step(&mut enc);
        if tag.is_some() {
            self.readback.record_copy(&mut enc, &gan.metrics, &gan.counters);
        }
        self.in_flight.push_back(ctx.queue.submit([enc.finish()]));
        if let Some((epoch, batch, step)) = tag {
            self.readback.start_map(epoch, batch, step);
        }
        if self.in_flight.len() > 2 {
            let idx = self.in_flight.pop_front().expect("in flight");
            ctx.device
                .poll(wgpu::PollType::Wait { submission_index: Some(idx), timeout: None })
                .map_err(|e| GanError::Device { during: "training step".into(), message: e.to_string() })?;
        }
        ctx.check_health("training step")?;
        rows.extend(self.readback.drain(ctx)?);
        Ok(rows)
    }

    /// Waits for every submitted step and returns the remaining readings.
    pub fn finish(&mut self, ctx: &GpuContext) -> Result<Vec<StepReading>> {
        ctx.wait("finishing the steps")?;
        self.in_flight.clear();
        self.readback.drain(ctx)
    }
}
