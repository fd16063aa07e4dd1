//! `gan-wgpu bench`: every kernel family and variant at the model's real
//! shapes, timed on the GPU, with a CPU sgemm column for the matmuls.
//!
//! Timing: each measurement records `reps` launches of one dispatch in a
//! single compute pass, submits, waits, and divides the pass's time, from GPU
//! timestamps at its start and end where the adapter has TIMESTAMP_QUERY,
//! else from the wall clock around the submit (which adds one submit round
//! trip, 20-80 us on lavapipe, spread over `reps` launches); the figure is
//! the median over `trials` such submits after one warm-up, and the table's
//! header says which clock it used.
//!
//! CPU column: matrixmultiply's threaded sgemm on the same product, one run
//! after each GPU trial of the shape (all variants), and the median of those
//! runs; GPU and CPU are so measured in the same minutes and with the same
//! statistic.

use gan_wgpu::engine::context::GpuContext;
use gan_wgpu::engine::kernels::reduce::Reduce;
use gan_wgpu::engine::kernels::{adam, batchnorm, bce, bias_act, ceiling, gather, hinge, matmul, rng, Dispatch};
use gan_wgpu::engine::tensor::GpuTensor;
use gan_wgpu::engine::timing::{median, time_dispatch, time_dispatch_interleaved, PassTimer};
use gan_wgpu::error::{GanError, Result};
use rand::SeedableRng;
use std::fmt::Write as _;
use std::time::Instant;

pub struct BenchOptions {
    pub quick: bool,
    pub batch: usize,
}

#[derive(Clone, Debug)]
pub struct Row {
    pub family: String,
    pub case: String,
    pub variant: String,
    pub median_us: f64,
    pub spread_us: f64,
    /// GFLOP/s for compute-bound kernels, GB/s for memory-bound ones.
    pub rate: f64,
    pub unit: &'static str,
    pub cpu_gflops: Option<f64>,
    pub chosen: bool,
}

/// matrixmultiply's threaded sgemm on one (m, n, k) product, the CPU baseline.
pub struct CpuSgemm {
    form: matmul::Form,
    m: usize,
    n: usize,
    k: usize,
    a: Vec<f32>,
    b: Vec<f32>,
    c: Vec<f32>,
    /// Seconds, one per `run_once`.
    pub times: Vec<f64>,
}

impl CpuSgemm {
    pub fn new(form: matmul::Form, m: usize, n: usize, k: usize) -> Self {
        let mut s =
            CpuSgemm { form, m, n, k, a: vec![0.5; m * k], b: vec![0.25; n * k], c: vec![0.0; m * n], times: vec![] };
        // Warm-up: thread start and first touch of the buffers.
        s.run_once();
        s.times.clear();
        s
    }

    pub fn run_once(&mut self) {
        let (m, n, k) = (self.m, self.n, self.k);
        // Row/column strides express the transposes without copying.
        let (rsa, csa) = match self.form {
            matmul::Form::TN => (1isize, m as isize),
            _ => (k as isize, 1isize),
        };
        let (rsb, csb) = match self.form {
            matmul::Form::NT => (1isize, k as isize),
            _ => (n as isize, 1isize),
        };
        let t = Instant::now();
        // SAFETY: a, b and c hold m*k, k*n and m*n elements, and the strides
        // above address exactly those for the form.
        unsafe {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                self.a.as_ptr(),
                rsa,
                csa,
                self.b.as_ptr(),
                rsb,
                csb,
                0.0,
                self.c.as_mut_ptr(),
                n as isize,
                1,
            );
        }
        self.times.push(t.elapsed().as_secs_f64());
    }

    /// GFLOP/s at the median of the runs so far.
    pub fn median_gflops(&self) -> f64 {
        2.0 * (self.m * self.n * self.k) as f64 / median(self.times.clone()) / 1e9
    }
}

/// Every kernel at the model's shapes, each variant and reduction shape
/// where there are several; '*' (`Row::chosen`) marks what this adapter uses.
pub fn run_kernel_bench(ctx: &GpuContext, opts: &BenchOptions) -> Result<Vec<Row>> {
    let (reps, trials) = if opts.quick { (3, 3) } else { (10, 7) };
    let mut bench = KernelBench { ctx, reps, trials, b: opts.batch, rows: Vec::new() };
    bench.matmuls(opts.quick)?;
    bench.ceilings()?;
    bench.epilogues_and_bias_act()?;
    bench.batchnorms()?;
    let counters = GpuTensor::zeros(ctx, &[4], "counters");
    bench.losses(&counters)?;
    bench.adams(&counters)?;
    bench.data_kernels(&counters)?;
    Ok(bench.rows)
}

/// The kernel benchmark's settings and the rows it has measured.
struct KernelBench<'a> {
    ctx: &'a GpuContext,
    reps: usize,
    trials: usize,
    /// The batch the shapes are taken at.
    b: usize,
    rows: Vec<Row>,
}

impl KernelBench<'_> {
    /// A memory-bound launch (the sum over its dispatches: BCE's tree shape
    /// has two), rated in GB/s over `bytes`.
    fn timed_row(
        &self,
        family: &str,
        case: String,
        variant: &str,
        chosen: bool,
        ds: &[Dispatch],
        bytes: f64,
    ) -> Result<Row> {
        let (mut med, mut spread) = (0.0, 0.0);
        for d in ds {
            let (m, s) = time_dispatch(self.ctx, d, self.reps, self.trials)?;
            med += m;
            spread += s;
        }
        Ok(Row {
            family: family.into(),
            case,
            variant: variant.into(),
            median_us: med,
            spread_us: spread,
            rate: bytes / med / 1e3,
            unit: "GB/s",
            cpu_gflops: None,
            chosen,
        })
    }

    fn mem_row(&self, family: &str, case: String, d: &Dispatch, bytes: f64) -> Result<Row> {
        self.timed_row(family, case, "-", true, std::slice::from_ref(d), bytes)
    }

    /// Every matmul variant at the step's product shapes, each beside a CPU
    /// sgemm of the same product (one CPU run after each GPU trial).
    fn matmuls(&mut self, quick: bool) -> Result<()> {
        let (ctx, b) = (self.ctx, self.b);
        let chosen = matmul::Variant::for_adapter(ctx);
        let opts_quick = quick;
        for (m, n, k, form, what) in gan_wgpu::models::matmul_shapes(b) {
            let (sa, sb) = form.operand_shapes(m, n, k);
            let a = GpuTensor::zeros(ctx, &sa, "a");
            let bt = GpuTensor::zeros(ctx, &sb, "b");
            let c = GpuTensor::zeros(ctx, &[m, n], "c");
            // One CPU run after each GPU trial of every variant of this shape.
            let mut cpu = CpuSgemm::new(form, m, n, k);
            let first_row = self.rows.len();
            let flops = 2.0 * (m * n * k) as f64;
            for variant in matmul::Variant::ALL {
                // The naive kernel is the reference; skip it in quick runs.
                if opts_quick && variant == matmul::Variant::Naive {
                    continue;
                }
                let mm = matmul::Matmul::new(ctx, form, variant, &a, &bt, &c)?;
                let (med, spread) =
                    time_dispatch_interleaved(ctx, &mm.dispatch, self.reps, self.trials, &mut || cpu.run_once())?;
                self.rows.push(Row {
                    family: "matmul".into(),
                    case: format!("{m}x{n}x{k} {} ({what})", form.name()),
                    // A variant that does not take this shape falls back (sg32x32 -> reg4x4).
                    variant: if mm.variant == variant {
                        variant.name().into()
                    } else {
                        format!("{}>{}", variant.name(), mm.variant.name())
                    },
                    median_us: med,
                    spread_us: spread,
                    rate: flops / med / 1e3,
                    unit: "GFLOP/s",
                    cpu_gflops: None,
                    chosen: variant == chosen,
                });
            }
            let cpu_gflops = cpu.median_gflops();
            for row in &mut self.rows[first_row..] {
                row.cpu_gflops = Some(cpu_gflops);
            }
        }
        Ok(())
    }

    /// The adapter's ceilings: a load-free FMA loop (GFLOP/s; its cpu column
    /// is the CPU sgemm's best at the model's shapes) and a streaming copy
    /// (GB/s, read plus write).
    fn ceilings(&mut self) -> Result<()> {
        let ctx = self.ctx;
        let (n, iters) = (64 * 1024, 256u32);
        let out = GpuTensor::zeros(ctx, &[n], "fma out");
        let best_cpu = self.rows.iter().filter_map(|r: &Row| r.cpu_gflops).fold(f64::NAN, f64::max);
        for (kind, case) in [
            (ceiling::FmaLoop::PerFma, format!("FMA loop, one update per FMA ({n} x {iters} x 8 vec4)")),
            (
                ceiling::FmaLoop::Chunked,
                format!("FMA loop, one update per {} FMAs, in registers: the real ceiling", ceiling::FMA_CHAIN),
            ),
        ] {
            let d = ceiling::fma_loop(ctx, kind, &out, iters)?;
            let (med, spread) = time_dispatch(ctx, &d, self.reps, self.trials)?;
            self.rows.push(Row {
                family: "ceiling".into(),
                case,
                variant: "-".into(),
                median_us: med,
                spread_us: spread,
                rate: kind.flops(n, iters) / med / 1e3,
                unit: "GFLOP/s",
                cpu_gflops: best_cpu.is_finite().then_some(best_cpu),
                chosen: false,
            });
        }
        let floats = 4 << 20;
        let (src, dst) = (GpuTensor::zeros(ctx, &[floats], "copy src"), GpuTensor::zeros(ctx, &[floats], "copy dst"));
        let d = ceiling::stream_copy(ctx, &src, &dst)?;
        self.rows.push(self.mem_row(
            "ceiling",
            "streaming copy, 16 MiB (vec4)".into(),
            &d,
            2.0 * 4.0 * floats as f64,
        )?);
        Ok(())
    }

    /// The fused matmul epilogue against bias_act's own forward, and
    /// bias_act's backward in both reduction shapes.
    fn epilogues_and_bias_act(&mut self) -> Result<()> {
        let (ctx, b) = (self.ctx, self.b);
        let chosen = matmul::Variant::for_adapter(ctx);
        let reduce_in_use = ctx.reduce_choice().variant;
        for (act, cols, k) in
            [(bias_act::Act::Relu, 128, 100), (bias_act::Act::LeakyRelu, 512, 784), (bias_act::Act::Tanh, 784, 1024)]
        {
            let x = GpuTensor::zeros(ctx, &[b, cols], "x");
            let bias = GpuTensor::zeros(ctx, &[cols], "bias");
            // The trainer's forward: bias and activation in the matmul epilogue,
            // against the A*B^T row above plus the bias_act forward row below.
            let (input, w) = (GpuTensor::zeros(ctx, &[b, k], "input"), GpuTensor::zeros(ctx, &[cols, k], "w"));
            let epilogue = matmul::Epilogue { bias: Some(&bias), act };
            let fused = matmul::Matmul::with_epilogue(ctx, matmul::Form::NT, chosen, &input, &w, &x, epilogue)?;
            let (med, spread) = time_dispatch(ctx, &fused.dispatch, self.reps, self.trials)?;
            self.rows.push(Row {
                family: "matmul".into(),
                case: format!("{b}x{cols}x{k} A*B^T +bias+{} (fused fwd)", act.name()),
                variant: fused.variant.name().into(),
                median_us: med,
                spread_us: spread,
                rate: 2.0 * (b * cols * k) as f64 / med / 1e3,
                unit: "GFLOP/s",
                cpu_gflops: None,
                chosen: true,
            });
            let f = bias_act::forward(ctx, act, &x, Some(&bias))?;
            self.rows.push(self.mem_row(
                "bias_act",
                format!("forward {} {b}x{cols}", act.name()),
                &f,
                8.0 * (b * cols) as f64,
            )?);
            let dy = GpuTensor::zeros(ctx, &[b, cols], "dy");
            let db = GpuTensor::zeros(ctx, &[cols], "db");
            for reduce in Reduce::ALL {
                let bw = bias_act::backward_with(ctx, act, &x, &dy, Some(&db), reduce)?;
                let case = format!("backward {} {b}x{cols}", act.name());
                self.rows.push(self.timed_row(
                    "bias_act",
                    case,
                    reduce.name(),
                    reduce == reduce_in_use,
                    &[bw],
                    12.0 * (b * cols) as f64,
                )?);
            }
        }
        Ok(())
    }

    /// Batch norm's training forward and backward in both reduction shapes.
    fn batchnorms(&mut self) -> Result<()> {
        let (ctx, b) = (self.ctx, self.b);
        let reduce_in_use = ctx.reduce_choice().variant;
        for cols in [256, 512, 1024] {
            let t = |n: &str, s: &[usize]| GpuTensor::zeros(ctx, s, n);
            let (x, y, dy) = (t("x", &[b, cols]), t("y", &[b, cols]), t("dy", &[b, cols]));
            let (g, be, rm, rv, inv) =
                (t("g", &[cols]), t("b", &[cols]), t("rm", &[cols]), t("rv", &[cols]), t("inv", &[cols]));
            let (dg, dbe, dbi) = (t("dg", &[cols]), t("db", &[cols]), t("dbias", &[cols]));
            let bn = batchnorm::BnTensors { gamma: &g, beta: &be, running_mean: &rm, running_var: &rv };
            let grads = batchnorm::BnGrads { dgamma: &dg, dbeta: &dbe, dbias: &dbi };
            for reduce in Reduce::ALL {
                let used = reduce == reduce_in_use;
                let f = batchnorm::forward_train_with(
                    ctx,
                    &batchnorm::BnForward { x: &x, y: &y, bn: &bn, invstd: &inv },
                    bias_act::Act::Relu,
                    reduce,
                )?;
                let case = format!("train forward {b}x{cols}");
                self.rows.push(self.timed_row(
                    "batchnorm",
                    case,
                    reduce.name(),
                    used,
                    &[f],
                    16.0 * (b * cols) as f64,
                )?);
                let bw = batchnorm::backward_with(
                    ctx,
                    &batchnorm::BnBackward { dy: &dy, y: &y, xhat: &x, gamma: &g, invstd: &inv, grads: &grads },
                    bias_act::Act::Relu,
                    false,
                    reduce,
                )?;
                let case = format!("backward {b}x{cols}");
                self.rows.push(self.timed_row(
                    "batchnorm",
                    case,
                    reduce.name(),
                    used,
                    &[bw],
                    28.0 * (b * cols) as f64,
                )?);
            }
        }
        Ok(())
    }

    /// The losses on a D batch: BCE in both reduction shapes, and hinge.
    fn losses(&mut self, counters: &GpuTensor) -> Result<()> {
        let (ctx, b) = (self.ctx, self.b);
        let reduce_in_use = ctx.reduce_choice().variant;
        let p = GpuTensor::zeros(ctx, &[2 * b, 1], "p");
        let dp = GpuTensor::zeros(ctx, &[2 * b, 1], "dp");
        let m = GpuTensor::zeros(ctx, &[8], "metrics");
        for reduce in Reduce::ALL {
            let d = bce::forward_backward_with(ctx, (&p, &dp), b, (&m, 0), counters, reduce)?;
            let case = format!("{} rows", 2 * b);
            self.rows.push(self.timed_row(
                "bce",
                case,
                reduce.name(),
                reduce == reduce_in_use,
                &d,
                8.0 * (2 * b) as f64,
            )?);
        }
        let d = hinge::forward_backward(ctx, (&p, &dp), hinge::HingeSide::Discriminator, b, (&m, 0), counters)?;
        self.rows.push(self.mem_row("hinge", format!("{} rows", 2 * b), &d, 8.0 * (2 * b) as f64)?);
        Ok(())
    }

    /// Adam over each network's parameters.
    fn adams(&mut self, counters: &GpuTensor) -> Result<()> {
        let ctx = self.ctx;
        for (name, n) in [("generator", 1_510_000usize), ("discriminator", 533_508)] {
            let t = |s: &str| GpuTensor::zeros(ctx, &[n], s);
            let (p, g, m, v) = (t("p"), t("g"), t("m"), t("v"));
            let a = adam::Adam::new(ctx, adam::AdamConfig::default(), &p, &g, &m, &v, counters)?;
            self.rows.push(self.mem_row("adam", format!("{name} {n} params"), &a.dispatch, 28.0 * n as f64)?);
        }
        Ok(())
    }

    /// The step's data kernels: the latent codes, and the batch gathered from u8.
    fn data_kernels(&mut self, counters: &GpuTensor) -> Result<()> {
        let (ctx, b) = (self.ctx, self.b);
        {
            let z = GpuTensor::zeros(ctx, &[b, 100], "z");
            let d = rng::normal(ctx, &z, rng::RngStream { seed: 1, stream: 0, draw_base: 0 }, counters)?;
            self.rows.push(self.mem_row("rng", format!("normal {b}x100"), &d, 4.0 * (b * 100) as f64)?);
        }
        {
            let n_images = 60_000;
            let pixels = GpuTensor::zeros(ctx, &[n_images * 784 / 4], "pixels");
            let perm = GpuTensor::zeros(ctx, &[n_images], "perm");
            let out = GpuTensor::zeros(ctx, &[2 * b, 784], "out");
            let d = gather::gather_batch(ctx, &pixels, &perm, &out, b, b, counters)?;
            self.rows.push(self.mem_row("gather", format!("{b}x784 from u8"), &d, 5.0 * (b * 784) as f64)?);
        }
        Ok(())
    }
}

pub fn format_rows(rows: &[Row]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<10} {:<40} {:<8} {:>10} {:>9} {:>10} {:>9} {:>7}",
        "family", "case", "variant", "median us", "spread", "rate", "cpu", "gpu/cpu"
    );
    for r in rows {
        let (cpu, ratio) = match r.cpu_gflops {
            Some(c) => (format!("{c:.1}"), format!("{:.1}%", 100.0 * r.rate / c)),
            None => ("-".into(), "-".into()),
        };
        let mark = if r.chosen && r.family == "matmul" { "*" } else { " " };
        let _ = writeln!(
            s,
            "{:<10} {:<40} {:<7}{mark} {:>10.1} {:>9.1} {:>6.2} {:<4} {:>8} {:>7}",
            r.family,
            r.case,
            r.variant,
            r.median_us,
            r.spread_us,
            r.rate,
            if r.unit == "GB/s" { "GB/s" } else { "GF/s" },
            cpu,
            ratio
        );
    }
    s
}

/// The figures as JSON: the adapter, the training step (when measured) and
/// every kernel row.
pub fn to_json(
    step: Option<&StepBench>,
    rows: &[Row],
    convolutions: serde_json::Value,
    adapter: &str,
    cpu: Option<&str>,
    matmul: &gan_wgpu::engine::autotune::Choice,
    kernel_timing: &str,
) -> String {
    use serde_json::json;
    let step = step.map(|st| {
        json!({
            "batch": st.batch,
            "steps": st.steps,
            "dispatches": st.dispatches,
            "steps_per_s": st.steps_per_s,
            "first_step_s": st.first_step_s,
            "matmul_sum_us": st.matmul_sum_us,
            "step_over_matmul": st.step_over_matmul(),
            "timed_step_wall_us": st.timed_step_us.map(|t| t.0),
            "timed_step_kernels_us": st.timed_step_us.map(|t| t.1),
            "host_encode_us": st.host_encode_us,
            "host_encode_best_us": st.host_encode_best_us,
            "readback_latency_us": st.readback_latency_us,
            "gpu_buffers_after_warmup": [st.memory_after_warmup.0, st.memory_after_warmup.1],
            "gpu_buffers_after_run": [st.memory_after_run.0, st.memory_after_run.1],
            "phases": st.phases.iter().map(|(name, us)| json!({ "phase": name, "gpu_us": us })).collect::<Vec<_>>(),
        })
    });
    let kernels: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            json!({
                "family": r.family,
                "case": r.case,
                "variant": r.variant,
                "median_us": r.median_us,
                "spread_us": r.spread_us,
                "rate": r.rate,
                "unit": r.unit,
                "cpu_gflops": r.cpu_gflops,
                "chosen": r.chosen,
            })
        })
        .collect();
    let report = json!({
        "adapter": adapter,
        "cpu": cpu,
        "matmul_choice": { "variant": matmul.variant.name(), "how": matmul.how },
        "step": step,
        "kernel_timing": kernel_timing,
        "kernels": kernels,
        "convolutions": convolutions,
    });
    format!("{report}\n")
}

/// Figures of the whole training step.
pub struct StepBench {
    pub batch: usize,
    pub steps: usize,
    pub steps_per_s: f64,
    /// Launch (context creation) to the end of the first step, seconds.
    pub first_step_s: f64,
    /// (phase, median GPU microseconds) from timestamp queries, if the adapter has them.
    pub phases: Vec<(String, f64)>,
    pub host_encode_us: f64,
    /// The fastest of those trials (the machine's noise pushes the median up).
    pub host_encode_best_us: f64,
    pub readback_latency_us: f64,
    /// Sum of the step's matmul times, microseconds: from GPU timestamps
    /// around each dispatch of whole steps where the adapter has them (median
    /// of 5 steps), else each matmul timed alone.
    pub matmul_sum_us: f64,
    /// With timestamps: (wall time of those same step submissions, sum of
    /// all their dispatches' GPU times), microseconds, medians of 5.
    pub timed_step_us: Option<(f64, f64)>,
    /// (buffers, buffer bytes) after the warm-up and after the timed run.
    pub memory_after_warmup: (isize, isize),
    pub memory_after_run: (isize, isize),
    pub dispatches: usize,
    /// The run log's cost of one logged step, microseconds: (queueing on
    /// the trainer's thread, writing on its own thread).
    pub run_log_us: (f64, f64),
}

impl StepBench {
    /// The step's time over its matmuls' (issue 4's target: at most 1.5): the
    /// same submissions' wall time where timestamps exist, else the timed
    /// run's mean step.
    pub fn step_over_matmul(&self) -> f64 {
        let step_us = self.timed_step_us.map_or(1e6 / self.steps_per_s, |(wall_us, _)| wall_us);
        step_us / self.matmul_sum_us
    }
}

/// The step's products: matmuls and the convolutions' implicit GEMMs.
fn is_gemm(label: &str) -> bool {
    label.starts_with("matmul") || label.starts_with("implicit conv")
}

/// Times the full training step on random data shaped like MNIST. `launch`
/// is when the program started (for the time to the first step).
pub fn run_step_bench(
    ctx: &GpuContext,
    (model, loss): (gan_wgpu::models::WhichModel, gan_wgpu::nn::loss::Loss),
    batch: usize,
    steps: usize,
    launch: Instant,
    warmup: bool,
) -> Result<StepBench> {
    if steps == 0 {
        return Err(GanError::Flag { flag: "bench", why: "timing the step needs at least 1 step, got 0".into() });
    }
    use gan_wgpu::train::{GanConfig, Session};
    let data = random_mnist_shaped(batch);
    let cfg = GanConfig { batch, seed: 1, model, loss, n_critic: loss.default_n_critic(), ..GanConfig::default() };
    if warmup {
        gan_wgpu::train::warm_up_pipelines(ctx, cfg, gan_wgpu::nn::spec::ImageShape::grey(28, 28));
    }
    let mut session = Session::new(ctx, cfg, &data)?;
    pollster::block_on(session.run_steps(ctx, 1))?;
    let first_step_s = launch.elapsed().as_secs_f64();
    // Warm-up, then the timed run with the trainer's loop: chunks of 10
    // steps (`train`'s default --log-every), each one submission, every
    // step's losses read back.
    let mut run = |count: usize| -> Result<f64> {
        let t = Instant::now();
        pollster::block_on(session.run_for(ctx, count, 10))?;
        Ok(t.elapsed().as_secs_f64())
    };
    run(5)?;
    let memory_after_warmup = {
        let (b, bytes, _) = ctx.gpu_memory();
        (b, bytes)
    };
    let secs = run(steps)?;
    let gan = &session.gan;
    let memory_after_run = {
        let (b, bytes, _) = ctx.gpu_memory();
        (b, bytes)
    };
    ctx.check_health("bench")?;

    let phases = phase_times(ctx, gan)?;
    let (host_encode_us, host_encode_best_us) = host_encode_us(ctx, gan);
    let readback_latency_us = readback_latency_us(ctx, gan)?;
    let (matmul_sum_us, timed_step_us) = matmul_share(ctx, gan)?;
    Ok(StepBench {
        batch,
        steps,
        steps_per_s: steps as f64 / secs,
        first_step_s,
        phases,
        host_encode_us,
        host_encode_best_us,
        readback_latency_us,
        matmul_sum_us,
        timed_step_us,
        memory_after_warmup,
        memory_after_run,
        dispatches: gan.dispatch_count(),
        run_log_us: super::bench_log::run_log_cost_us()?,
    })
}

/// Random u8 images shaped like MNIST, labelled 0..9: at least 8 batches.
fn random_mnist_shaped(batch: usize) -> gan_wgpu::io::data::ImageSet {
    let n = (batch * 8).max(1024);
    let mut r = rand::rngs::StdRng::seed_from_u64(1);
    gan_wgpu::io::data::ImageSet {
        count: n,
        height: 28,
        width: 28,
        pixels: (0..n * 784).map(|_| rand::Rng::random::<u8>(&mut r)).collect(),
        labels: Some((0..n).map(|i| (i % gan_wgpu::defaults::CLASSES) as u8).collect()),
        channels: 1,
        class_names: Vec::new(),
        source: "random".into(),
    }
}

/// Per-phase GPU time from timestamps (median of 5 steps); none without them.
fn phase_times(ctx: &GpuContext, gan: &gan_wgpu::train::Gan) -> Result<Vec<(String, f64)>> {
    let mut phases = Vec::new();
    if let Some(timer) = PassTimer::new(ctx, (gan.phases.len() * 2) as u32) {
        let mut samples: Vec<Vec<f64>> = vec![Vec::new(); gan.phases.len()];
        for _ in 0..5 {
            let mut enc = ctx.device.create_command_encoder(&Default::default());
            gan.record_step_timed(&mut enc, &timer);
            timer.resolve(&mut enc);
            ctx.queue.submit([enc.finish()]);
            for (s, us) in samples.iter_mut().zip(timer.read_us(ctx)?) {
                s.push(us);
            }
        }
        for ((name, _), s) in gan.phases.iter().zip(samples) {
            phases.push((name.to_string(), median(s)));
        }
    }

    Ok(phases)
}

/// Host time to encode one step (no submit), in microseconds: (median,
/// best) over 9 trials of 40 encodes, like the kernel figures (a mean let
/// one preempted trial on a shared machine move it by 50%).
fn host_encode_us(ctx: &GpuContext, gan: &gan_wgpu::train::Gan) -> (f64, f64) {
    let trials: Vec<f64> = (0..9)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..40 {
                let mut enc = ctx.device.create_command_encoder(&Default::default());
                gan.record_step(&mut enc);
                std::hint::black_box(enc.finish());
            }
            t.elapsed().as_secs_f64() * 1e6 / 40.0
        })
        .collect();
    let best = trials.iter().copied().fold(f64::INFINITY, f64::min);
    (median(trials), best)
}

/// Latency of one loss readback on an idle device: copy, map, wait (median of 20).
fn readback_latency_us(ctx: &GpuContext, gan: &gan_wgpu::train::Gan) -> Result<f64> {
    let mut lat = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        std::hint::black_box(gan.metrics.read_f32(ctx)?);
        lat.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(median(lat))
}

/// The step's matmuls against the whole step, measured in the same
/// submissions (each dispatch in a timed pass of its own), so that this
/// machine's swings in speed cannot fall between the two figures; without
/// timestamps, each matmul timed alone. Returns (matmul sum, (wall, sum of
/// all dispatches)) in microseconds.
fn matmul_share(ctx: &GpuContext, gan: &gan_wgpu::train::Gan) -> Result<(f64, Option<(f64, f64)>)> {
    let n_dispatch = gan.dispatches().len();
    Ok(match PassTimer::new(ctx, 2 * n_dispatch as u32) {
        Some(timer) => {
            let ranges: Vec<(&str, std::ops::Range<usize>)> =
                gan.dispatches().iter().enumerate().map(|(i, d)| (d.label.as_str(), i..i + 1)).collect();
            let (mut walls, mut matmuls, mut all) = (vec![], vec![], vec![]);
            for _ in 0..5 {
                let mut enc = ctx.device.create_command_encoder(&Default::default());
                gan.record_ranges_timed(&mut enc, &ranges, &timer);
                timer.resolve(&mut enc);
                let t = Instant::now();
                ctx.queue.submit([enc.finish()]);
                ctx.wait("timed step")?;
                walls.push(t.elapsed().as_secs_f64() * 1e6);
                let us = timer.read_us(ctx)?;
                let is_matmul = |i: &usize| is_gemm(&gan.dispatches()[*i].label);
                matmuls.push((0..n_dispatch).filter(is_matmul).map(|i| us[i]).sum::<f64>());
                all.push(us.iter().sum::<f64>());
            }
            (median(matmuls), Some((median(walls), median(all))))
        }
        None => {
            let mut sum = 0.0;
            for d in gan.dispatches().iter().filter(|d| is_gemm(&d.label)) {
                sum += time_dispatch(ctx, d, 2, 3)?.0;
            }
            (sum, None)
        }
    })
}

pub fn format_step(s: &StepBench) -> String {
    let mut out = String::new();
    let step_ms = 1e3 / s.steps_per_s;
    let _ = writeln!(out, "training step, batch {} ({} dispatches, one submission):", s.batch, s.dispatches);
    let _ = writeln!(
        out,
        "  {:.2} steps/s, {:.0} images/s ({:.1} ms a step, {} steps, losses read every 10 steps)",
        s.steps_per_s,
        s.steps_per_s * s.batch as f64,
        step_ms,
        s.steps
    );
    let _ = writeln!(out, "  first step done {:.2} s after launch (context, data upload, pipelines)", s.first_step_s);
    match s.timed_step_us {
        Some((wall_us, kernels_us)) => {
            let _ = writeln!(
                out,
                "  5 steps timed dispatch by dispatch (GPU timestamps): matmuls (implicit-GEMM convolutions included) {:.1} ms, all {} kernels {:.1} ms, \
                 the step {:.1} ms wall: step / matmul sum = {:.2}",
                s.matmul_sum_us / 1e3,
                s.dispatches,
                kernels_us / 1e3,
                wall_us / 1e3,
                s.step_over_matmul()
            );
        }
        None => {
            let _ = writeln!(
                out,
                "  matmuls timed alone sum to {:.1} ms: step / matmul sum = {:.2}",
                s.matmul_sum_us / 1e3,
                s.step_over_matmul()
            );
        }
    }
    let _ = writeln!(
        out,
        "  host time to encode one step: {:.1} us (median of 9 trials of 40; fastest trial {:.1} us)",
        s.host_encode_us, s.host_encode_best_us
    );
    let _ = writeln!(out, "  loss readback latency (copy + map + wait, idle device): {:.1} us", s.readback_latency_us);
    let (queue_us, write_us) = s.run_log_us;
    let _ = writeln!(
        out,
        "  run log (metrics.jsonl + TensorBoard) a logged step: {queue_us:.2} us to queue on the trainer's thread ({:.4}% of a step \
         at --log-every 1), {write_us:.2} us to write on its own thread ({:.3}%)",
        100.0 * queue_us / (step_ms * 1e3),
        100.0 * write_us / (step_ms * 1e3)
    );
    let _ = writeln!(
        out,
        "  GPU buffers after warm-up: {} ({:.2} MiB); after {} more steps: {} ({:.2} MiB)",
        s.memory_after_warmup.0,
        s.memory_after_warmup.1 as f64 / 1048576.0,
        s.steps,
        s.memory_after_run.0,
        s.memory_after_run.1 as f64 / 1048576.0
    );
    if !s.phases.is_empty() {
        let total: f64 = s.phases.iter().map(|p| p.1).sum();
        let _ = writeln!(out, "  phases (GPU timestamps, median of 5, one pass each):");
        for (name, us) in &s.phases {
            let _ = writeln!(out, "    {:<20} {:>10.1} us {:>5.1}%", name, us, 100.0 * us / total);
        }
    }
    out
}
