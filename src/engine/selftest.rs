//! Every kernel family against its CPU reference once, on the device at
//! hand, without blocking: what a browser page runs so that its own WGSL
//! compiler (Tint in Chromium) and driver see every shader. Small shapes
//! that divide no tile, outputs pre-filled with NaN; the tolerances are the
//! GPU tests' (tests/kernels_gpu.rs states why each is what it is).

use crate::engine::autotune;
use crate::engine::context::GpuContext;
use crate::engine::kernels::bias_act::Act;
use crate::engine::kernels::matmul::{self, Form, Variant};
use crate::engine::kernels::reduce::Reduce;
use crate::engine::kernels::{
    adam, bias_act, check_close, conv, conv_gemm, dropout, ema, embedding, gather, rng, run, softmax_ce,
};
use crate::engine::tensor::GpuTensor;
use crate::error::Result;
use rand::{Rng, SeedableRng};

/// One check: the shader file it exercises, what ran, and its outcome
/// (Err holds the first disagreement).
pub struct CheckResult {
    pub shader: &'static str,
    pub what: String,
    pub outcome: std::result::Result<(), String>,
}

use crate::engine::kernels::checks::{mismatch, nan_tensor, random};

/// naive against the plain-loop product on each form.
async fn matmul_naive(ctx: &GpuContext) -> Result<()> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(21);
    for form in Form::ALL {
        let (m, n, k) = (37, 45, 23);
        let (sa, sb) = form.operand_shapes(m, n, k);
        let (a, b) = (random(&mut r, m * k, -1.0, 1.0), random(&mut r, n * k, -1.0, 1.0));
        let ga = GpuTensor::from_f32(ctx, &sa, "a", &a)?;
        let gb = GpuTensor::from_f32(ctx, &sb, "b", &b)?;
        let gc = nan_tensor(ctx, &[m, n], "c").await?;
        let mm = matmul::Matmul::new(ctx, form, Variant::Naive, &ga, &gb, &gc)?;
        run(ctx, &[&mm.dispatch])?;
        let cpu = matmul::cpu_matmul(form, &a, &b, m, n, k);
        check_close(&mm.dispatch.label, &gc.read_f32_async(ctx).await?, &cpu, 2e-6 * k as f32 + 1e-6, 1e-4)
            .map_err(mismatch("matmul naive"))?;
    }
    Ok(())
}

async fn bias_act_forward(ctx: &GpuContext) -> Result<()> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(22);
    let (rows, cols) = (19, 13);
    for act in bias_act::Act::ALL {
        let (x, bias) = (random(&mut r, rows * cols, -3.0, 3.0), random(&mut r, cols, -0.5, 0.5));
        let gx = GpuTensor::from_f32(ctx, &[rows, cols], "x", &x)?;
        let gb = GpuTensor::from_f32(ctx, &[cols], "bias", &bias)?;
        run(ctx, &[&bias_act::forward(ctx, act, &gx, Some(&gb))?])?;
        let cpu = bias_act::cpu_forward(act, &x, Some(&bias), rows, cols);
        check_close(&format!("bias+{} forward", act.name()), &gx.read_f32_async(ctx).await?, &cpu, 1e-5, 1e-5)
            .map_err(mismatch("bias_act"))?;
    }
    Ok(())
}

async fn adam_update(ctx: &GpuContext) -> Result<()> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(23);
    let n = 1028;
    let config = adam::AdamConfig::default();
    let mut p = random(&mut r, n, -1.0, 1.0);
    let (mut m, mut v) = (vec![0f32; n], vec![0f32; n]);
    let gp = GpuTensor::from_f32(ctx, &[n], "param", &p)?;
    let gg = GpuTensor::zeros(ctx, &[n], "grad");
    let (gm, gv) = (GpuTensor::zeros(ctx, &[n], "m"), GpuTensor::zeros(ctx, &[n], "v"));
    let counters = GpuTensor::zeros(ctx, &[4], "counters");
    let update = adam::Adam::new(ctx, config, &gp, &gg, &gm, &gv, &counters)?;
    for step in 0..2u32 {
        let g = random(&mut r, n, -0.1, 0.1);
        gg.write_f32(ctx, &g)?;
        counters.write_u32(ctx, &[step, 0, 0, 0])?;
        run(ctx, &[&update.dispatch])?;
        adam::cpu_adam_update(config, step + 1, &mut p, &g, &mut m, &mut v);
    }
    let err = mismatch("adam");
    check_close("adam param", &gp.read_f32_async(ctx).await?, &p, 1e-6, 1e-5).map_err(&err)?;
    check_close("adam m", &gm.read_f32_async(ctx).await?, &m, 1e-7, 1e-5).map_err(&err)?;
    check_close("adam v", &gv.read_f32_async(ctx).await?, &v, 1e-9, 1e-5).map_err(&err)
}

/// The generator's average: a copy over NaN at the first step, then two
/// moves at decay 0.9.
async fn ema_update(ctx: &GpuContext) -> Result<()> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(29);
    let n = 1029;
    let decay = 0.9;
    let avg = nan_tensor(ctx, &[n], "average").await?;
    let value = GpuTensor::zeros(ctx, &[n], "value");
    let counters = GpuTensor::zeros(ctx, &[4], "counters");
    let update = ema::update(ctx, (&avg, &value), decay, &counters, 1)?;
    let mut cpu = vec![f32::NAN; n];
    for step in 0..3u32 {
        let v = random(&mut r, n, -1.0, 1.0);
        value.write_f32(ctx, &v)?;
        counters.write_u32(ctx, &[step, 0, 0, 0])?;
        run(ctx, &[&update])?;
        ema::cpu_update(&mut cpu, &v, decay, step);
    }
    check_close("ema", &avg.read_f32_async(ctx).await?, &cpu, 1e-6, 1e-5).map_err(mismatch("ema"))
}

/// Box-Muller within WGSL's bounds for cos, sin and log (see the rng test).
async fn rng_normal(ctx: &GpuContext) -> Result<()> {
    let n = 1001;
    let counters = GpuTensor::from_u32(ctx, &[4], "counters", &[7, 0, 0, 0])?;
    let s = rng::RngStream { seed: 0x1234_5678_9abc_def0, stream: 3, draw_base: 11 };
    let out = nan_tensor(ctx, &[n], "z").await?;
    run(ctx, &[&rng::normal(ctx, &out, s, &counters)?])?;
    let gpu = out.read_f32_async(ctx).await?;
    let cpu = rng::cpu_normal(n, s, 7);
    for (i, (&g, &c)) in gpu.iter().zip(&cpu).enumerate() {
        let pair = i - i % 2;
        let r = if pair + 1 < n { (cpu[pair] as f64).hypot(cpu[pair + 1] as f64) } else { 5.77 };
        let tol = r * 2f64.powi(-11)
            + (2f64.powi(-21) / r).min(2f64.powi(-10))
            + r * 2f64.powi(-20)
            + 2f64.powi(-24) * (c as f64).abs();
        let err = ((g - c) as f64).abs();
        if err.is_nan() || err > tol {
            return Err(mismatch("rng")(format!("index {i}: gpu {g} cpu {c}, tolerance {tol:e}")));
        }
    }
    Ok(())
}

async fn gather_batch(ctx: &GpuContext) -> Result<()> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(24);
    let (n_images, dim, rows) = (13usize, 7usize, 3usize);
    let pixels: Vec<u8> = (0..n_images * dim).map(|_| r.random::<u8>()).collect();
    let mut perm: Vec<u32> = (0..n_images as u32).collect();
    rand::seq::SliceRandom::shuffle(&mut perm[..], &mut r);
    let gpix = GpuTensor::from_u32(ctx, &[pixels.len().div_ceil(4)], "pixels", &gather::pack_pixels(&pixels))?;
    let gperm = GpuTensor::from_u32(ctx, &[n_images], "perm", &perm)?;
    let counters = GpuTensor::from_u32(ctx, &[4], "counters", &[40, 2, 0, 0])?;
    let out = nan_tensor(ctx, &[rows, dim], "batch").await?;
    let g = gather::gather_batch(ctx, &gpix, &gperm, &out, 0, rows, &counters)?;
    let advance = gather::advance_counters(ctx, &counters)?;
    run(ctx, &[&g, &advance])?;
    let want = gather::cpu_gather(&pixels, dim, &perm, 2, rows);
    check_close("gather batch 2", &out.read_f32_async(ctx).await?, &want, 0.0, 3e-7).map_err(mismatch("gather"))?;
    let c = counters.read_u32_async(ctx).await?;
    if c[..2] != [41, 3] {
        return Err(mismatch("gather")(format!("counters advanced to {:?}, expected [41, 3]", &c[..2])));
    }
    // The same batch from the set held as two shards (images 0..6, 6..13),
    // as a data set larger than one storage binding is.
    let counters = GpuTensor::from_u32(ctx, &[4], "counters", &[40, 2, 0, 0])?;
    let sharded = nan_tensor(ctx, &[rows, dim], "batch from shards").await?;
    let mut dispatches = Vec::new();
    let mut parts = Vec::new();
    for (first, count) in [(0usize, 6usize), (6, 7)] {
        let bytes = &pixels[first * dim..(first + count) * dim];
        parts.push((
            GpuTensor::from_u32(ctx, &[bytes.len().div_ceil(4)], "shard", &gather::pack_pixels(bytes))?,
            first,
            count,
        ));
    }
    for (t, first, count) in &parts {
        let shard = gather::DataShard { pixels: t, first: *first, count: *count };
        dispatches.push(gather::gather_batch_shard(ctx, shard, &gperm, &sharded, (0, rows), &counters)?);
    }
    run(ctx, &dispatches.iter().collect::<Vec<_>>())?;
    check_close("gather batch 2 from shards", &sharded.read_f32_async(ctx).await?, &want, 0.0, 3e-7)
        .map_err(mismatch("gather"))?;
    Ok(())
}

/// Fake labels exactly, and a batch's real labels through the index list.
async fn labels(ctx: &GpuContext) -> Result<()> {
    let err = mismatch("labels");
    let counters = GpuTensor::from_u32(ctx, &[4], "counters", &[5, 2, 0, 0])?;
    let s = rng::RngStream { seed: 77, stream: 2, draw_base: 0 };
    let fake = GpuTensor::from_u32(ctx, &[131], "fake labels", &[u32::MAX; 131])?;
    run(ctx, &[&rng::labels(ctx, &fake, 10, s, &counters)?])?;
    if fake.read_u32_async(ctx).await? != rng::cpu_labels(131, 10, s, 5) {
        return Err(err("rng_labels differ from the CPU reference".into()));
    }
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(26);
    let (n_images, rows) = (13usize, 3usize);
    let all: Vec<u8> = (0..n_images).map(|_| r.random_range(0..10u8)).collect();
    let mut perm: Vec<u32> = (0..n_images as u32).collect();
    rand::seq::SliceRandom::shuffle(&mut perm[..], &mut r);
    let gall = GpuTensor::from_u32(ctx, &[n_images.div_ceil(4)], "labels", &gather::pack_pixels(&all))?;
    let gperm = GpuTensor::from_u32(ctx, &[n_images], "perm", &perm)?;
    let out = GpuTensor::from_u32(ctx, &[rows], "batch labels", &[u32::MAX; 3])?;
    run(ctx, &[&gather::gather_labels(ctx, &gall, &gperm, &out, 0, rows, &counters)?])?;
    if out.read_u32_async(ctx).await? != gather::cpu_gather_labels(&all, &perm, 2, rows) {
        return Err(err("gather_labels differ from the CPU reference".into()));
    }
    Ok(())
}

/// Dropout (p = 0.3) on 1029 values: the CPU reference's bit for bit, and
/// the same mask again on a second dispatch (the backward's).
async fn dropout_mask(ctx: &GpuContext) -> Result<()> {
    let err = mismatch("dropout");
    let counters = GpuTensor::from_u32(ctx, &[4], "counters", &[5, 2, 0, 0])?;
    let draw = dropout::DropoutDraw { seed: 77, stream: dropout::D_STEP_STREAM };
    let x: Vec<f32> = (0..1029).map(|i| (i as f32 * 0.37).sin()).collect();
    let t = GpuTensor::from_f32(ctx, &[x.len()], "dropout x", &x)?;
    let apply = dropout::apply(ctx, &t, 0.3, draw, &counters)?;
    let mask = dropout::cpu_mask(x.len(), 0.3, draw, 5);
    let mut want = x.clone();
    for pass in ["forward", "backward"] {
        run(ctx, &[&apply])?;
        dropout::cpu_apply(&mut want, &mask);
        let got = t.read_f32_async(ctx).await?;
        if got.iter().zip(&want).any(|(a, b)| a.to_bits() != b.to_bits()) {
            return Err(err(format!("the {pass} dispatch differs from the CPU reference")));
        }
    }
    Ok(())
}

/// Convolutions: im2col and col2im exactly, and a Conv2d (k4 s2 p1, odd
/// sizes) through im2col and the adapter's matmul against the direct
/// definition.
async fn convolution(ctx: &GpuContext) -> Result<()> {
    let err = mismatch("conv");
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(27);
    let g = conv::ConvGeometry::conv(3, 7, 5, 3, 4, 2, 1);
    let (m, k, out) = (g.positions(), g.patch(), 5);
    let (x, w) = (random(&mut r, g.image_len(), -1.0, 1.0), random(&mut r, out * k, -1.0, 1.0));
    let gx = GpuTensor::from_f32(ctx, &[g.n * g.h * g.w, g.c], "x", &x)?;
    let gw = GpuTensor::from_f32(ctx, &[out, k], "weight", &conv::to_patch_order(&w, out, g.c, g.k))?;
    let cols = nan_tensor(ctx, &[m, k], "cols").await?;
    let y = nan_tensor(ctx, &[m, out], "y").await?;
    let back = nan_tensor(ctx, &[g.n * g.h * g.w, g.c], "col2im").await?;
    let mm = matmul::Matmul::new(ctx, Form::NT, Variant::for_adapter(ctx), &cols, &gw, &y)?;
    run(ctx, &[&conv::im2col(ctx, &gx, &cols, &g)?, &mm.dispatch, &conv::col2im(ctx, &cols, &back, &g)?])?;
    let want_cols = conv::cpu_im2col(&x, &g);
    check_close("im2col", &cols.read_f32_async(ctx).await?, &want_cols, 0.0, 0.0).map_err(&err)?;
    check_close("col2im", &back.read_f32_async(ctx).await?, &conv::cpu_col2im(&want_cols, &g), 0.0, 0.0)
        .map_err(&err)?;
    let want: Vec<f32> = conv::cpu_conv2d(&x, &w, out, &g).into_iter().map(|v| v as f32).collect();
    check_close("conv2d forward", &y.read_f32_async(ctx).await?, &want, 2e-6 * k as f32 + 1e-6, 1e-4).map_err(&err)
}

/// The implicit-GEMM Conv2d forward (k4 s2 p1, odd sizes, 37 output
/// channels) with its epilogue against the direct definition.
async fn implicit_convolution(ctx: &GpuContext, g: conv::ConvGeometry) -> Result<()> {
    let err = mismatch("implicit conv");
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(28);
    let (m, k, out) = (g.positions(), g.patch(), 37);
    let (x, w) = (random(&mut r, g.image_len(), -1.0, 1.0), random(&mut r, out * k, -1.0, 1.0));
    let b = random(&mut r, out, -1.0, 1.0);
    let gx = GpuTensor::from_f32(ctx, &[g.n * g.h * g.w, g.c], "x", &x)?;
    let gw = GpuTensor::from_f32(ctx, &[out, k], "weight", &conv::to_patch_order(&w, out, g.c, g.k))?;
    let gb = GpuTensor::from_f32(ctx, &[out], "bias", &b)?;
    let y = nan_tensor(ctx, &[m, out], "y").await?;
    let epilogue = matmul::Epilogue { bias: Some(&gb), act: Act::LeakyRelu };
    run(ctx, &[&conv_gemm::conv2d_forward(ctx, &gx, &gw, &y, &g, epilogue)?])?;
    let z: Vec<f32> = conv::cpu_conv2d(&x, &w, out, &g).into_iter().map(|v| v as f32).collect();
    let want = bias_act::cpu_forward(Act::LeakyRelu, &z, Some(&b), m, out);
    check_close("implicit conv2d", &y.read_f32_async(ctx).await?, &want, 2e-6 * k as f32 + 1e-6, 1e-4).map_err(&err)
}

/// The label embedding: join, split, table gradient, pad and crop, exactly
/// (they copy, or sum in the CPU's order).
async fn label_embedding(ctx: &GpuContext) -> Result<()> {
    let err = mismatch("embedding");
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(27);
    let (rows, x_cols, classes, emb) = (19usize, 13usize, 10usize, 10usize);
    let (cols, width) = (x_cols + emb, embedding::padded_width(x_cols + emb));
    let x = random(&mut r, rows * x_cols, -1.0, 1.0);
    let table = random(&mut r, classes * emb, -1.0, 1.0);
    let labels: Vec<u32> = (0..rows).map(|_| r.random_range(0..classes as u32)).collect();
    let gx = GpuTensor::from_f32(ctx, &[rows, x_cols], "x", &x)?;
    let gt = GpuTensor::from_f32(ctx, &[classes, emb], "table", &table)?;
    let gl = GpuTensor::from_u32(ctx, &[rows], "labels", &labels)?;
    let joined = nan_tensor(ctx, &[rows, width], "joined").await?;
    run(ctx, &[&embedding::join(ctx, &gx, &gt, &gl, &joined)?])?;
    let want = embedding::cpu_pad_columns(&embedding::cpu_join(&x, x_cols, &table, emb, &labels), cols, width);
    check_close("embedding join", &joined.read_f32_async(ctx).await?, &want, 0.0, 0.0).map_err(&err)?;
    let dj = random(&mut r, rows * cols, -1.0, 1.0);
    let gdj = GpuTensor::from_f32(ctx, &[rows, width], "d_joined", &embedding::cpu_pad_columns(&dj, cols, width))?;
    let dx = nan_tensor(ctx, &[rows, x_cols], "d_x").await?;
    let dt = nan_tensor(ctx, &[classes, emb], "d_table").await?;
    run(ctx, &[&embedding::split(ctx, &gdj, &dx, &gt)?, &embedding::table_grad(ctx, &gdj, &gl, &dt, x_cols)?])?;
    let (want_dx, want_dt) = embedding::cpu_backward(&dj, x_cols, emb, classes, &labels);
    check_close("embedding split", &dx.read_f32_async(ctx).await?, &want_dx, 0.0, 0.0).map_err(&err)?;
    check_close("embedding table gradient", &dt.read_f32_async(ctx).await?, &want_dt, 0.0, 0.0).map_err(&err)?;
    let w = random(&mut r, 7 * cols, -1.0, 1.0);
    let gw = GpuTensor::from_f32(ctx, &[7, cols], "w", &w)?;
    let padded = nan_tensor(ctx, &[7, width], "w padded").await?;
    let cropped = nan_tensor(ctx, &[7, cols], "w cropped").await?;
    run(ctx, &[&embedding::pad_weight(ctx, &gw, &padded)?, &embedding::crop_grad(ctx, &padded, &cropped)?])?;
    check_close("embedding pad and crop", &cropped.read_f32_async(ctx).await?, &w, 0.0, 0.0).map_err(&err)
}

async fn softmax_cross_entropy(ctx: &GpuContext) -> Result<()> {
    let mut r = rand_chacha::ChaCha8Rng::seed_from_u64(25);
    let (rows, classes) = (65usize, 13usize);
    let z = random(&mut r, rows * classes, -4.0, 4.0);
    let labels: Vec<u8> = (0..rows).map(|_| r.random_range(0..classes as u8)).collect();
    let perm: Vec<u32> = (0..rows as u32).collect();
    let gz = GpuTensor::from_f32(ctx, &[rows, classes], "z", &z)?;
    let gdz = nan_tensor(ctx, &[rows, classes], "dz").await?;
    let glabels = GpuTensor::from_u32(ctx, &[rows.div_ceil(4)], "labels", &gather::pack_pixels(&labels))?;
    let gperm = GpuTensor::from_u32(ctx, &[rows], "perm", &perm)?;
    let counters = GpuTensor::zeros(ctx, &[4], "counters");
    let metrics = nan_tensor(ctx, &[4], "metrics").await?;
    run(ctx, &[&softmax_ce::softmax_ce(ctx, &gz, &gdz, &glabels, &gperm, &counters, &metrics)?])?;
    let (loss, dz, _) = softmax_ce::cpu_softmax_ce(&z, &labels, rows, classes);
    let err = mismatch("softmax_ce");
    check_close("softmax_ce loss", &metrics.read_f32_async(ctx).await?[..1], &[loss], 1e-5, 1e-5).map_err(&err)?;
    check_close("softmax_ce dz", &gdz.read_f32_async(ctx).await?, &dz, 1e-5 / rows as f32, 1e-4).map_err(&err)
}

/// The benchmark's ceilings: both FMA loops against their CPU references
/// (within `FmaLoop::tolerance`) and the streaming copy exactly.
async fn ceilings(ctx: &GpuContext) -> Result<()> {
    use crate::engine::kernels::ceiling;
    let err = mismatch("ceiling");
    let (n, iters) = (1001, 37);
    for kind in ceiling::FmaLoop::ALL {
        let out = nan_tensor(ctx, &[n], "fma out").await?;
        run(ctx, &[&ceiling::fma_loop(ctx, kind, &out, iters)?])?;
        check_close(
            &format!("fma loop {kind:?}"),
            &out.read_f32_async(ctx).await?,
            &ceiling::cpu_fma_loop(kind, n, iters),
            kind.tolerance(iters),
            1e-6,
        )
        .map_err(&err)?;
    }
    let data: Vec<f32> = (0..4 * 1003).map(|i| i as f32 * 0.5 - 7.0).collect();
    let src = GpuTensor::from_f32(ctx, &[data.len()], "copy src", &data)?;
    let dst = nan_tensor(ctx, &[data.len()], "copy dst").await?;
    run(ctx, &[&ceiling::stream_copy(ctx, &src, &dst)?])?;
    check_close("stream copy", &dst.read_f32_async(ctx).await?, &data, 0.0, 0.0).map_err(&err)
}

/// Runs every check and returns each outcome; stops at nothing (a failing
/// kernel is reported and the next one runs). The subgroup matmul runs only
/// where the device offers subgroups of a size it takes.
pub async fn run_all(ctx: &GpuContext) -> Vec<CheckResult> {
    let mut out = Vec::new();
    let mut push = |shader: &'static str, what: String, r: Result<()>| {
        out.push(CheckResult { shader, what, outcome: r.map_err(|e| e.to_string()) });
    };
    push("matmul.wgsl", "naive against the CPU product, 3 forms".into(), matmul_naive(ctx).await);
    for v in [Variant::Tiled, Variant::Reg] {
        let r = autotune::verify_async(ctx, v, &autotune::VERIFY_SHAPES).await;
        push("matmul.wgsl", format!("{} against naive, 6 products with the bias+tanh epilogue", v.name()), r);
    }
    if Variant::subgroups_usable(ctx) {
        let r = autotune::verify_async(ctx, Variant::Subgroup, &autotune::VERIFY_SHAPES).await;
        push("matmul_sg.wgsl", "sg32x32 against naive, 6 products".into(), r);
    }
    push("bias_act.wgsl", "forward, every activation, with bias".into(), bias_act_forward(ctx).await);
    for reduce in Reduce::ALL {
        let r = autotune::verify_reduce_async(ctx, reduce).await;
        let shader = if reduce == Reduce::Tree { "tree_reduce.wgsl" } else { "batchnorm.wgsl" };
        push(shader, format!("batch norm, bias gradient and BCE, {} reductions", reduce.name()), r);
    }
    push("adam.wgsl", "two updates of 1028 parameters".into(), adam_update(ctx).await);
    push("ema.wgsl", "three steps of a 1029-value average".into(), ema_update(ctx).await);
    // The families that keep their check beside their launcher.
    for shader in crate::engine::kernels::SHADERS {
        if let Some((what, check)) = shader.check {
            push(shader.name, what.to_string(), check(ctx).await);
        }
    }
    push("rng.wgsl", "1001 normals within WGSL's bounds".into(), rng_normal(ctx).await);
    push("gather.wgsl", "a batch through the index list, counters".into(), gather_batch(ctx).await);
    push("rng.wgsl", "131 fake labels, and a batch's real labels gathered (gather.wgsl)".into(), labels(ctx).await);
    push("embedding.wgsl", "join, split, table gradient, pad and crop".into(), label_embedding(ctx).await);
    push("dropout.wgsl", "1029 values at p = 0.3, forward and backward".into(), dropout_mask(ctx).await);
    push("conv.wgsl", "im2col, col2im, Conv2d through the matmul".into(), convolution(ctx).await);
    let geometry = conv::ConvGeometry::conv(3, 7, 5, 8, 4, 2, 1);
    if conv_gemm::applies(ctx, &geometry) {
        let what = "the implicit-GEMM Conv2d with bias+LeakyReLU".into();
        push("conv_gemm_sg.wgsl", what, implicit_convolution(ctx, geometry).await);
    }
    push("softmax_ce.wgsl", "65x13 loss and gradient".into(), softmax_cross_entropy(ctx).await);
    push("ceiling.wgsl", "the FMA loop and the streaming copy".into(), ceilings(ctx).await);
    out
}
