//! Every kernel and variant against its CPU reference, on lavapipe in CI.
//! Outputs are pre-filled with NaN so an element a kernel skips shows up.
//! Tolerances: |gpu - cpu| <= atol + rtol |cpu|, stated per kernel.

mod common;
use common::{assert_close, ctx, rng, uniform_vec};
use gan_wgpu::engine::kernels::hinge::HingeSide;
use gan_wgpu::engine::kernels::reduce::Reduce;
use gan_wgpu::engine::kernels::{
    self, adam, batchnorm, bce, bias_act, ceiling, dropout, ema, embedding, gather, hinge, matmul, rng as krng,
    softmax_ce,
};
use gan_wgpu::GpuTensor;
use rand::Rng;

/// Odd shapes that divide no tile (m, n, k).
const ODD_SHAPES: &[(usize, usize, usize)] =
    &[(1, 1, 1), (1, 3, 784), (3, 1, 65), (63, 65, 127), (65, 63, 3), (127, 1024, 63), (784, 1, 65)];

fn matmul_case(form: matmul::Form, m: usize, n: usize, k: usize, seed: u64) {
    let Some(ctx) = ctx() else { return };
    let mut r = rng(seed);
    let (sa, sb) = form.operand_shapes(m, n, k);
    let a = uniform_vec(&mut r, m * k, -1.0, 1.0);
    let b = uniform_vec(&mut r, n * k, -1.0, 1.0);
    let cpu = matmul::cpu_matmul(form, &a, &b, m, n, k);
    let ga = GpuTensor::from_f32(ctx, &sa, "a", &a).unwrap();
    let gb = GpuTensor::from_f32(ctx, &sb, "b", &b).unwrap();
    // f32 sums of k products of numbers in [-1, 1].
    let atol = 2e-6 * k as f32 + 1e-6;
    for variant in matmul::Variant::ALL {
        let gc = GpuTensor::zeros(ctx, &[m, n], "c");
        gc.fill_nan(ctx).unwrap();
        let mm = matmul::Matmul::new(ctx, form, variant, &ga, &gb, &gc).unwrap();
        kernels::run(ctx, &[&mm.dispatch]).unwrap();
        let gpu = gc.read_f32(ctx).unwrap();
        assert_close(&format!("matmul {} {} {m}x{n}x{k}", form.name(), variant.name()), &gpu, &cpu, atol, 1e-4);
    }
}

#[test]
fn matmul_all_variants_odd_shapes() {
    for (i, &(m, n, k)) in ODD_SHAPES.iter().enumerate() {
        for form in matmul::Form::ALL {
            matmul_case(form, m, n, k, i as u64);
        }
    }
}

#[test]
fn matmul_all_variants_model_shapes() {
    // Every product of a training step at batch 128: Y = X W^T, dX = dY W, dW = dY^T X.
    for (i, (m, n, k, form, _)) in gan_wgpu::models::matmul_shapes(128).into_iter().enumerate() {
        matmul_case(form, m, n, k, 100 + i as u64);
    }
}

/// The forward's fused epilogue, act(X W^T + bias), against the CPU matmul
/// followed by the CPU bias+activation, for every variant and activation, on
/// shapes that divide no tile (k % 4 == 0 ones too, so matmul_sg runs).
#[test]
fn matmul_epilogue_bias_and_activation_every_variant() {
    let Some(ctx) = ctx() else { return };
    let shapes = [(1, 1, 1), (63, 65, 127), (65, 63, 132), (128, 1, 256), (33, 784, 100)];
    for (i, &(m, n, k)) in shapes.iter().enumerate() {
        let mut r = rng(300 + i as u64);
        let x = uniform_vec(&mut r, m * k, -1.0, 1.0);
        let w = uniform_vec(&mut r, n * k, -1.0, 1.0);
        let bias = uniform_vec(&mut r, n, -1.0, 1.0);
        let product = matmul::cpu_matmul(matmul::Form::NT, &x, &w, m, n, k);
        let gx = GpuTensor::from_f32(ctx, &[m, k], "x", &x).unwrap();
        let gw = GpuTensor::from_f32(ctx, &[n, k], "w", &w).unwrap();
        let gbias = GpuTensor::from_f32(ctx, &[n], "bias", &bias).unwrap();
        let atol = 2e-6 * k as f32 + 1e-6;
        for act in bias_act::Act::ALL {
            for with_bias in [true, false] {
                let cpu = bias_act::cpu_forward(act, &product, with_bias.then_some(&bias[..]), m, n);
                for variant in matmul::Variant::ALL {
                    let gy = GpuTensor::zeros(ctx, &[m, n], "y");
                    gy.fill_nan(ctx).unwrap();
                    let epilogue = matmul::Epilogue { bias: with_bias.then_some(&gbias), act };
                    let mm =
                        matmul::Matmul::with_epilogue(ctx, matmul::Form::NT, variant, &gx, &gw, &gy, epilogue).unwrap();
                    kernels::run(ctx, &[&mm.dispatch]).unwrap();
                    let what = format!("{} bias {with_bias} {} {m}x{n}x{k}", act.name(), mm.dispatch.label);
                    assert_close(&what, &gy.read_f32(ctx).unwrap(), &cpu, atol, 1e-4);
                }
            }
        }
    }
    // The backward forms take no epilogue, and a bias must fit the columns.
    let (a, b, c) =
        (GpuTensor::zeros(ctx, &[4, 8], "a"), GpuTensor::zeros(ctx, &[8, 4], "b"), GpuTensor::zeros(ctx, &[4, 4], "c"));
    let relu = matmul::Epilogue { bias: None, act: bias_act::Act::Relu };
    let err = matmul::Matmul::with_epilogue(ctx, matmul::Form::NN, matmul::Variant::Reg, &a, &b, &c, relu)
        .unwrap_err()
        .to_string();
    assert!(err.contains("A*B takes no bias"), "{err}");
    let short = GpuTensor::zeros(ctx, &[3], "short bias");
    let w = GpuTensor::zeros(ctx, &[4, 8], "w");
    let with_short = matmul::Epilogue { bias: Some(&short), act: bias_act::Act::Identity };
    let err = matmul::Matmul::with_epilogue(ctx, matmul::Form::NT, matmul::Variant::Reg, &a, &w, &c, with_short)
        .unwrap_err()
        .to_string();
    assert!(err.contains("'short bias'") && err.contains("3 elements"), "{err}");
}

/// Shapes matmul_sg takes (k % 4 == 0; NN: n % 4 == 0; TN: m and n % 4 == 0)
/// that divide neither dimension of its 32x32 tile.
const SG_EDGE_SHAPES: &[(matmul::Form, usize, usize, usize)] = &[
    (matmul::Form::NT, 1, 1, 4),
    (matmul::Form::NT, 63, 65, 132),
    (matmul::Form::NT, 17, 33, 784),
    (matmul::Form::NN, 1, 4, 4),
    (matmul::Form::NN, 65, 36, 20),
    (matmul::Form::NN, 15, 1028, 68),
    (matmul::Form::TN, 4, 4, 4),
    (matmul::Form::TN, 68, 36, 20),
    (matmul::Form::TN, 1020, 100, 12),
];

#[test]
fn matmul_subgroup_kernel_on_tile_edges_and_fallback() {
    let Some(ctx) = ctx() else { return };
    let usable = matmul::Variant::subgroups_usable(ctx);
    let info = &ctx.info;
    let sizes = matmul::SG_SUBGROUP_SIZES;
    let expected = ctx.features.contains(wgpu::Features::SUBGROUP)
        && sizes.contains(&info.subgroup_min_size)
        && sizes.contains(&info.subgroup_max_size);
    assert_eq!(
        usable,
        expected,
        "subgroups {}..{}: {}",
        info.subgroup_min_size,
        info.subgroup_max_size,
        ctx.describe()
    );
    // lavapipe on Vulkan at its default width has subgroups of 8 (when the
    // device was opened with SUBGROUP): there the
    // subgroup kernel itself must run (in CI it does).
    if info.name.starts_with("llvmpipe")
        && info.backend == wgpu::Backend::Vulkan
        && info.subgroup_min_size == 8
        && ctx.features.contains(wgpu::Features::SUBGROUP)
    {
        assert!(usable, "{}", ctx.describe());
    }
    for (i, &(form, m, n, k)) in SG_EDGE_SHAPES.iter().enumerate() {
        let (sa, sb) = form.operand_shapes(m, n, k);
        let a = GpuTensor::zeros(ctx, &sa, "a");
        let b = GpuTensor::zeros(ctx, &sb, "b");
        let c = GpuTensor::zeros(ctx, &[m, n], "c");
        let mm = matmul::Matmul::new(ctx, form, matmul::Variant::Subgroup, &a, &b, &c).unwrap();
        let want = if usable { matmul::Variant::Subgroup } else { matmul::Variant::Reg };
        assert_eq!(mm.variant, want, "{} {m}x{n}x{k}", form.name());
        matmul_case(form, m, n, k, 200 + i as u64);
    }
    // One pipeline serves all three forms (the form is a uniform), so a first
    // launch compiles the costly subgroup body once, not three times.
    if usable {
        let pipelines: Vec<wgpu::ComputePipeline> = matmul::Form::ALL
            .iter()
            .map(|&form| {
                let (sa, sb) = form.operand_shapes(32, 32, 32);
                let (a, b, c) = (
                    GpuTensor::zeros(ctx, &sa, "a"),
                    GpuTensor::zeros(ctx, &sb, "b"),
                    GpuTensor::zeros(ctx, &[32, 32], "c"),
                );
                matmul::Matmul::new(ctx, form, matmul::Variant::Subgroup, &a, &b, &c).unwrap().dispatch.pipeline
            })
            .collect();
        assert!(pipelines.windows(2).all(|w| w[0] == w[1]), "matmul_sg should be one pipeline for all forms");
    }
    // Unaligned shapes fall back: tiny products (the model's 1-wide output
    // layer backward) to the naive kernel, larger ones to reg4x4.
    let unaligned = [
        (matmul::Form::NT, 8, 8, 3, matmul::Variant::Naive),
        (matmul::Form::NN, 8, 7, 8, matmul::Variant::Naive),
        (matmul::Form::TN, 6, 8, 8, matmul::Variant::Naive),
        (matmul::Form::NN, 256, 256, 1, matmul::Variant::Naive),
        (matmul::Form::TN, 1, 256, 256, matmul::Variant::Naive),
        (matmul::Form::NN, 128, 1024, 729, matmul::Variant::Reg),
        (matmul::Form::TN, 130, 512, 256, matmul::Variant::Reg),
    ];
    for (form, m, n, k, fallback) in unaligned {
        let (sa, sb) = form.operand_shapes(m, n, k);
        let (a, b, c) =
            (GpuTensor::zeros(ctx, &sa, "a"), GpuTensor::zeros(ctx, &sb, "b"), GpuTensor::zeros(ctx, &[m, n], "c"));
        let mm = matmul::Matmul::new(ctx, form, matmul::Variant::Subgroup, &a, &b, &c).unwrap();
        let want = if usable { fallback } else { matmul::Variant::Reg };
        assert_eq!(mm.variant, want, "{} {m}x{n}x{k}", form.name());
    }
}

#[test]
fn matmul_rejects_mismatched_shapes() {
    let Some(ctx) = ctx() else { return };
    let a = GpuTensor::zeros(ctx, &[4, 5], "x");
    let b = GpuTensor::zeros(ctx, &[6, 7], "w");
    let c = GpuTensor::zeros(ctx, &[4, 6], "y");
    let err = matmul::Matmul::new(ctx, matmul::Form::NT, matmul::Variant::Reg, &a, &b, &c).unwrap_err().to_string();
    assert!(err.contains("'x'") && err.contains("'w'") && err.contains("[6, 5]"), "{err}");
}

const ELEMENTWISE_SHAPES: &[(usize, usize)] = &[(1, 1), (3, 5), (63, 65), (65, 127), (128, 784), (127, 1024), (256, 1)];

#[test]
fn bias_act_forward_and_backward_all_activations() {
    let Some(ctx) = ctx() else { return };
    for (i, &(rows, cols)) in ELEMENTWISE_SHAPES.iter().enumerate() {
        for act in bias_act::Act::ALL {
            for (with_bias, reduce) in
                [(true, Reduce::Column), (false, Reduce::Column), (true, Reduce::Tree), (false, Reduce::Tree)]
            {
                let mut r = rng(1000 + i as u64);
                let x = uniform_vec(&mut r, rows * cols, -3.0, 3.0);
                let bias = uniform_vec(&mut r, cols, -1.0, 1.0);
                let dy = uniform_vec(&mut r, rows * cols, -1.0, 1.0);
                let what = format!("bias_act {} bias={with_bias} {} {rows}x{cols}", act.name(), reduce.name());

                let gx = GpuTensor::from_f32(ctx, &[rows, cols], "x", &x).unwrap();
                let gb = GpuTensor::from_f32(ctx, &[cols], "bias", &bias).unwrap();
                let fwd = bias_act::forward(ctx, act, &gx, with_bias.then_some(&gb)).unwrap();
                kernels::run(ctx, &[&fwd]).unwrap();
                let y_cpu = bias_act::cpu_forward(act, &x, with_bias.then_some(&bias[..]), rows, cols);
                let y_gpu = gx.read_f32(ctx).unwrap();
                assert_close(&format!("{what} forward"), &y_gpu, &y_cpu, 1e-6, 1e-5);

                // Backward from the CPU output, so both sides see the same y.
                let gy = GpuTensor::from_f32(ctx, &[rows, cols], "y", &y_cpu).unwrap();
                let gdy = GpuTensor::from_f32(ctx, &[rows, cols], "dy", &dy).unwrap();
                let gdb = GpuTensor::zeros(ctx, &[cols], "dbias");
                gdb.fill_nan(ctx).unwrap();
                let bwd = bias_act::backward_with(ctx, act, &gy, &gdy, with_bias.then_some(&gdb), reduce).unwrap();
                kernels::run(ctx, &[&bwd]).unwrap();
                let (dz_cpu, db_cpu) = bias_act::cpu_backward(act, &y_cpu, &dy, rows, cols);
                assert_close(&format!("{what} dz"), &gdy.read_f32(ctx).unwrap(), &dz_cpu, 1e-6, 1e-5);
                if with_bias {
                    assert_close(
                        &format!("{what} dbias"),
                        &gdb.read_f32(ctx).unwrap(),
                        &db_cpu,
                        1e-5 * rows as f32,
                        1e-4,
                    );
                }
            }
        }
    }
}

/// [rows, features]; (6272, 128): BatchNorm2d over a batch of 128 7x7 NHWC images.
const BN_SHAPES: &[(usize, usize)] =
    &[(2, 1), (3, 5), (63, 65), (65, 127), (128, 256), (128, 1024), (127, 784), (6272, 128)];

#[test]
fn batchnorm_train_eval_and_backward() {
    let Some(ctx) = ctx() else { return };
    for (i, &(rows, cols)) in BN_SHAPES.iter().enumerate() {
        let acts = [bias_act::Act::Relu, bias_act::Act::Identity, bias_act::Act::LeakyRelu];
        for (relu, reduce) in acts.into_iter().flat_map(|a| Reduce::ALL.map(|r| (a, r))) {
            let mut r = rng(2000 + i as u64);
            let x = uniform_vec(&mut r, rows * cols, -2.0, 3.0);
            let gamma = uniform_vec(&mut r, cols, 0.5, 1.5);
            let beta = uniform_vec(&mut r, cols, -0.5, 0.5);
            let mut rm = uniform_vec(&mut r, cols, -0.1, 0.1);
            let mut rv = uniform_vec(&mut r, cols, 0.9, 1.1);
            let dy = uniform_vec(&mut r, rows * cols, -1.0, 1.0);
            let what = format!("batchnorm {} {} {rows}x{cols}", relu.name(), reduce.name());

            let t = |name: &str, shape: &[usize], data: &[f32]| GpuTensor::from_f32(ctx, shape, name, data).unwrap();
            let gx = t("x", &[rows, cols], &x);
            let gy = GpuTensor::zeros(ctx, &[rows, cols], "y");
            gy.fill_nan(ctx).unwrap();
            let (gg, gbeta, grm, grv) =
                (t("gamma", &[cols], &gamma), t("beta", &[cols], &beta), t("rm", &[cols], &rm), t("rv", &[cols], &rv));
            let ginv = GpuTensor::zeros(ctx, &[cols], "invstd");
            ginv.fill_nan(ctx).unwrap();
            let bn = batchnorm::BnTensors { gamma: &gg, beta: &gbeta, running_mean: &grm, running_var: &grv };
            let fwd = batchnorm::forward_train_with(
                ctx,
                &batchnorm::BnForward { x: &gx, y: &gy, bn: &bn, invstd: &ginv },
                relu,
                reduce,
            )
            .unwrap();
            kernels::run(ctx, &[&fwd]).unwrap();
            let cpu = batchnorm::cpu_forward_train(
                &x,
                batchnorm::CpuBn { rows, cols, gamma: &gamma, beta: &beta, act: relu },
                (&mut rm, &mut rv),
            );
            assert_close(&format!("{what} xhat"), &gx.read_f32(ctx).unwrap(), &cpu.xhat, 2e-5, 1e-4);
            assert_close(&format!("{what} y"), &gy.read_f32(ctx).unwrap(), &cpu.y, 2e-5, 1e-4);
            assert_close(&format!("{what} invstd"), &ginv.read_f32(ctx).unwrap(), &cpu.invstd, 1e-6, 1e-4);
            assert_close(&format!("{what} running_mean"), &grm.read_f32(ctx).unwrap(), &rm, 1e-6, 1e-5);
            assert_close(&format!("{what} running_var"), &grv.read_f32(ctx).unwrap(), &rv, 1e-6, 1e-5);

            // Eval forward from the updated running statistics.
            let gx2 = t("x_eval", &[rows, cols], &x);
            let gy2 = GpuTensor::zeros(ctx, &[rows, cols], "y_eval");
            gy2.fill_nan(ctx).unwrap();
            let ev = batchnorm::forward_eval(ctx, &gx2, &gy2, &bn, relu).unwrap();
            kernels::run(ctx, &[&ev]).unwrap();
            let y_eval = batchnorm::cpu_forward_eval(
                &x,
                batchnorm::CpuBn { rows, cols, gamma: &gamma, beta: &beta, act: relu },
                (&rm, &rv),
            );
            assert_close(&format!("{what} eval y"), &gy2.read_f32(ctx).unwrap(), &y_eval, 1e-5, 1e-4);

            // Backward from the CPU forward's saved tensors.
            let (gxh, gyc, gis) =
                (t("xhat", &[rows, cols], &cpu.xhat), t("y", &[rows, cols], &cpu.y), t("invstd", &[cols], &cpu.invstd));
            let gdy = t("dy", &[rows, cols], &dy);
            let nan = |name: &str| {
                let g = GpuTensor::zeros(ctx, &[cols], name);
                g.fill_nan(ctx).unwrap();
                g
            };
            let (gdg, gdb, gdbias) = (nan("dgamma"), nan("dbeta"), nan("dbias"));
            let grads = batchnorm::BnGrads { dgamma: &gdg, dbeta: &gdb, dbias: &gdbias };
            let bwd = batchnorm::backward_with(
                ctx,
                &batchnorm::BnBackward { dy: &gdy, y: &gyc, xhat: &gxh, gamma: &gg, invstd: &gis, grads: &grads },
                relu,
                false,
                reduce,
            )
            .unwrap();
            kernels::run(ctx, &[&bwd]).unwrap();
            let (dx, dgamma, dbeta, dbias) = batchnorm::cpu_backward(
                &dy,
                (&cpu.y, &cpu.xhat),
                &cpu.invstd,
                batchnorm::CpuBn { rows, cols, gamma: &gamma, beta: &beta, act: relu },
            );
            let sum_tol = 2e-6 * rows as f32;
            assert_close(&format!("{what} dx"), &gdy.read_f32(ctx).unwrap(), &dx, 2e-5, 1e-3);
            assert_close(&format!("{what} dgamma"), &gdg.read_f32(ctx).unwrap(), &dgamma, sum_tol, 1e-4);
            assert_close(&format!("{what} dbeta"), &gdb.read_f32(ctx).unwrap(), &dbeta, sum_tol, 1e-4);
            // dbias sums dx, which sums to ~0 per feature: absolute tolerance
            // only, growing with the f32 sum's length.
            let dbias_tol = 1e-4 + 2e-8 * rows as f32;
            assert_close(&format!("{what} dbias"), &gdbias.read_f32(ctx).unwrap(), &dbias, dbias_tol, 0.0);

            // A second row group's backward adds its sums to the first's.
            let gdy2 = t("dy again", &[rows, cols], &dy);
            let bwd2 = batchnorm::backward_with(
                ctx,
                &batchnorm::BnBackward { dy: &gdy2, y: &gyc, xhat: &gxh, gamma: &gg, invstd: &gis, grads: &grads },
                relu,
                true,
                reduce,
            )
            .unwrap();
            kernels::run(ctx, &[&bwd2]).unwrap();
            let twice = |v: &[f32]| v.iter().map(|x| 2.0 * x).collect::<Vec<f32>>();
            assert_close(&format!("{what} dx (accumulating)"), &gdy2.read_f32(ctx).unwrap(), &dx, 2e-5, 1e-3);
            assert_close(
                &format!("{what} dgamma x2"),
                &gdg.read_f32(ctx).unwrap(),
                &twice(&dgamma),
                2.0 * sum_tol,
                1e-4,
            );
            assert_close(&format!("{what} dbeta x2"), &gdb.read_f32(ctx).unwrap(), &twice(&dbeta), 2.0 * sum_tol, 1e-4);
            assert_close(
                &format!("{what} dbias x2"),
                &gdbias.read_f32(ctx).unwrap(),
                &twice(&dbias),
                2.0 * dbias_tol,
                0.0,
            );
        }
    }
}

fn bce_case(prob: &[f32], n_zero: usize, what: &str) {
    for reduce in Reduce::ALL {
        bce_case_with(prob, n_zero, &format!("{what} {}", reduce.name()), reduce);
    }
}

fn bce_case_with(prob: &[f32], n_zero: usize, what: &str, reduce: Reduce) {
    let Some(ctx) = ctx() else { return };
    let n = prob.len();
    let gp = GpuTensor::from_f32(ctx, &[n, 1], "prob", prob).unwrap();
    let gd = GpuTensor::zeros(ctx, &[n, 1], "dprob");
    gd.fill_nan(ctx).unwrap();
    let gm = GpuTensor::zeros(ctx, &[8], "metrics");
    gm.fill_nan(ctx).unwrap();
    let counters = GpuTensor::from_u32(ctx, &[4], "counters", &[6, 0, 0, 0]).unwrap();
    let d = bce::forward_backward_with(ctx, (&gp, &gd), n_zero, (&gm, 4), &counters, reduce).unwrap();
    kernels::run(ctx, &d.iter().collect::<Vec<_>>()).unwrap();
    // The divergence flag is raised exactly when the input is not finite.
    let flag = adam::first_nonfinite_step(&counters.read_u32(ctx).unwrap());
    assert_eq!(flag, (!prob.iter().all(|p| p.is_finite())).then_some(7), "{what}: divergence flag");
    if flag.is_some() {
        return;
    }
    let (loss, dprob, p_one, p_zero) = bce::cpu_forward_backward(prob, n_zero);
    let m = gm.read_f32(ctx).unwrap();
    assert_close(&format!("{what} loss"), &m[4..5], &[loss], 1e-5, 1e-5);
    assert_close(&format!("{what} mean p target 1"), &m[5..6], &[p_one], 1e-6, 1e-5);
    assert_close(&format!("{what} mean p target 0"), &m[6..7], &[p_zero], 1e-6, 1e-5);
    assert!(m[..4].iter().all(|v| v.is_nan()), "{what}: wrote outside its metrics slots: {m:?}");
    assert_close(&format!("{what} dprob"), &gd.read_f32(ctx).unwrap(), &dprob, 1e-6, 1e-5);
}

#[test]
fn bce_matches_reference_on_all_sizes() {
    for (i, &n) in [1usize, 3, 63, 65, 127, 256, 784].iter().enumerate() {
        let mut r = rng(3000 + i as u64);
        let prob = uniform_vec(&mut r, n, 0.001, 0.999);
        bce_case(&prob, n / 2, &format!("bce n={n} half zero"));
        bce_case(&prob, 0, &format!("bce n={n} all one"));
        bce_case(&prob, n, &format!("bce n={n} all zero"));
    }
}

#[test]
fn bce_saturated_outputs_equal_pytorch() {
    // p = 1 with target 0 and p = 0 with target 1: each log term is clamped
    // at -100, and dL/dp = (p - t) / max(p (1 - p), 1e-12) = +-1e12, as
    // torch.nn.BCELoss gives; through the sigmoid (times p (1 - p) = 0) the
    // logit gradient is exactly zero.
    bce_case(&[1.0, 0.0, 0.0, 1.0], 2, "bce saturated");
    let (loss, dprob, _, _) = bce::cpu_forward_backward(&[1.0, 0.0], 1);
    assert_eq!(loss, 200.0, "two clamped terms, each mean of one row");
    assert_eq!(dprob, vec![1e12, -1e12]);
    let (dlogit, _) = bias_act::cpu_backward(bias_act::Act::Sigmoid, &[1.0, 0.0], &dprob, 2, 1);
    assert_eq!(dlogit, vec![0.0, 0.0]);
    let Some(ctx) = ctx() else { return };
    let gy = GpuTensor::from_f32(ctx, &[2, 1], "p", &[1.0, 0.0]).unwrap();
    let gdy = GpuTensor::from_f32(ctx, &[2, 1], "dprob", &dprob).unwrap();
    let d = bias_act::backward(ctx, bias_act::Act::Sigmoid, &gy, &gdy, None).unwrap();
    kernels::run(ctx, &[&d]).unwrap();
    assert_eq!(gdy.read_f32(ctx).unwrap(), vec![0.0, 0.0]);
    // p = 0.5: ln 2 per segment.
    let (loss, _, _, _) = bce::cpu_forward_backward(&[0.5, 0.5], 1);
    assert!((loss - 2.0 * std::f32::consts::LN_2).abs() < 1e-6);
}

/// The hinge kernel against its CPU reference: metrics in their slots only,
/// the gradient over a NaN-filled buffer, the divergence flag on a NaN score.
fn hinge_case(score: &[f32], side: HingeSide, n_zero: usize, what: &str) {
    let Some(ctx) = ctx() else { return };
    let n = score.len();
    let gs = GpuTensor::from_f32(ctx, &[n, 1], "score", score).unwrap();
    let gd = GpuTensor::zeros(ctx, &[n, 1], "dscore");
    gd.fill_nan(ctx).unwrap();
    let gm = GpuTensor::zeros(ctx, &[8], "metrics");
    gm.fill_nan(ctx).unwrap();
    let counters = GpuTensor::from_u32(ctx, &[4], "counters", &[6, 0, 0, 0]).unwrap();
    let d = hinge::forward_backward(ctx, (&gs, &gd), side, n_zero, (&gm, 4), &counters).unwrap();
    kernels::run(ctx, &[&d]).unwrap();
    let flag = adam::first_nonfinite_step(&counters.read_u32(ctx).unwrap());
    assert_eq!(flag, (!score.iter().all(|p| p.is_finite())).then_some(7), "{what}: divergence flag");
    if flag.is_some() {
        return;
    }
    let (loss, dscore, s_one, s_zero) = hinge::cpu_forward_backward(score, side, n_zero);
    let m = gm.read_f32(ctx).unwrap();
    // Sums of up to 784 terms of size ~3 in f32, in another order than the CPU's f64.
    assert_close(&format!("{what} loss"), &m[4..5], &[loss], 1e-5, 1e-5);
    assert_close(&format!("{what} mean s over rows n_zero.."), &m[5..6], &[s_one], 1e-5, 1e-5);
    assert_close(&format!("{what} mean s over rows ..n_zero"), &m[6..7], &[s_zero], 1e-5, 1e-5);
    assert!(m[..4].iter().all(|v| v.is_nan()) && m[7].is_nan(), "{what}: wrote outside its metrics slots: {m:?}");
    // Each gradient entry is 0 or +-1/rows: one rounding.
    assert_close(&format!("{what} dscore"), &gd.read_f32(ctx).unwrap(), &dscore, 0.0, 1e-6);
}

#[test]
fn hinge_matches_reference_on_all_sizes() {
    for (i, &n) in [1usize, 3, 63, 65, 127, 257, 784].iter().enumerate() {
        let mut r = rng(3100 + i as u64);
        // Scores on both sides of both kinks (+-1), and on them.
        let mut score = uniform_vec(&mut r, n, -3.0, 3.0);
        for (j, s) in score.iter_mut().enumerate().filter(|(j, _)| j % 7 == 0) {
            *s = if j % 2 == 0 { 1.0 } else { -1.0 };
        }
        hinge_case(&score, HingeSide::Discriminator, n / 2, &format!("hinge D n={n} half fake"));
        hinge_case(&score, HingeSide::Discriminator, 0, &format!("hinge D n={n} all real"));
        hinge_case(&score, HingeSide::Discriminator, n, &format!("hinge D n={n} all fake"));
        hinge_case(&score, HingeSide::Generator, 0, &format!("hinge G n={n}"));
        hinge_case(&score, HingeSide::Critic, n / 2, &format!("critic n={n} half fake"));
    }
    hinge_case(&[0.5, f32::NAN, -0.5], HingeSide::Discriminator, 1, "hinge NaN score");
    // At the kinks the gradient is 0 (relu'(0) = 0, as PyTorch), the loss 0.
    let (loss, dscore, _, _) = hinge::cpu_forward_backward(&[-1.0, 1.0], HingeSide::Discriminator, 1);
    assert_eq!((loss, dscore), (0.0, vec![0.0, 0.0]));
    // Scores 0: the loss is 2 (1 from each segment), the G loss 0.
    let (loss, dscore, _, _) = hinge::cpu_forward_backward(&[0.0; 4], HingeSide::Discriminator, 2);
    assert_eq!((loss, dscore), (2.0, vec![0.5, 0.5, -0.5, -0.5]));
    let (loss, dscore, _, _) = hinge::cpu_forward_backward(&[0.0; 4], HingeSide::Generator, 0);
    assert_eq!((loss, dscore), (0.0, vec![-0.25; 4]));
    // Shapes that do not fit are refused, naming the tensor.
    let Some(ctx) = ctx() else { return };
    let (s, short, m, c) = (
        GpuTensor::zeros(ctx, &[4, 1], "s"),
        GpuTensor::zeros(ctx, &[3, 1], "short"),
        GpuTensor::zeros(ctx, &[8], "m"),
        GpuTensor::zeros(ctx, &[4], "c"),
    );
    let err = hinge::forward_backward(ctx, (&s, &short), HingeSide::Discriminator, 2, (&m, 0), &c).unwrap_err();
    assert!(err.to_string().contains("short"), "{err}");
    let err = hinge::forward_backward(ctx, (&s, &s), HingeSide::Generator, 2, (&m, 0), &c).unwrap_err();
    assert!(err.to_string().contains("Generator"), "{err}");
}

#[test]
fn adam_matches_reference_over_three_steps() {
    let Some(ctx) = ctx() else { return };
    // Multiples of 4 (the vec4 kernel) that divide no 1024-element group.
    for (i, &n) in [4usize, 64, 68, 784, 1028, 100_000].iter().enumerate() {
        let mut r = rng(4000 + i as u64);
        let mut p = uniform_vec(&mut r, n, -1.0, 1.0);
        let mut m = vec![0f32; n];
        let mut v = vec![0f32; n];
        let config = adam::AdamConfig::default();
        let gp = GpuTensor::from_f32(ctx, &[n], "param", &p).unwrap();
        let gg = GpuTensor::zeros(ctx, &[n], "grad");
        let (gm, gv) = (GpuTensor::zeros(ctx, &[n], "m"), GpuTensor::zeros(ctx, &[n], "v"));
        let counters = GpuTensor::zeros(ctx, &[4], "counters");
        let mut upd = adam::Adam::new(ctx, config, &gp, &gg, &gm, &gv, &counters).unwrap();
        for step in 0..3u32 {
            let g = uniform_vec(&mut r, n, -0.1, 0.1);
            gg.write_f32(ctx, &g).unwrap();
            counters.write_u32(ctx, &[step, 0, 0, 0]).unwrap();
            kernels::run(ctx, &[&upd.dispatch]).unwrap();
            adam::cpu_adam_update(config, step + 1, &mut p, &g, &mut m, &mut v);
            let what = format!("adam n={n} step {}", step + 1);
            assert_close(&format!("{what} param"), &gp.read_f32(ctx).unwrap(), &p, 1e-6, 1e-5);
            assert_close(&format!("{what} m"), &gm.read_f32(ctx).unwrap(), &m, 1e-7, 1e-5);
            assert_close(&format!("{what} v"), &gv.read_f32(ctx).unwrap(), &v, 1e-9, 1e-5);
        }
        // A new learning rate takes effect without rebuilding anything.
        let config2 = adam::AdamConfig { lr: 1e-2, ..config };
        upd.set_config(ctx, config2);
        let g = uniform_vec(&mut r, n, -0.1, 0.1);
        gg.write_f32(ctx, &g).unwrap();
        counters.write_u32(ctx, &[3, 0, 0, 0]).unwrap();
        kernels::run(ctx, &[&upd.dispatch]).unwrap();
        adam::cpu_adam_update(config2, 4, &mut p, &g, &mut m, &mut v);
        assert_close(&format!("adam n={n} lr change"), &gp.read_f32(ctx).unwrap(), &p, 1e-6, 1e-5);
    }
}

/// The generator's moving average: the first step copies (over NaN), later
/// steps move by w = max(1 - decay, 9 / (10 + t)) (the cap reached at t =
/// 20,000); a decay of 0 copies; a decay outside [0, 1) is refused.
#[test]
fn ema_matches_reference_over_four_steps() {
    let Some(ctx) = ctx() else { return };
    // Multiples of 4 take the vec4 entry point, the rest the scalar one.
    for (i, &n) in [1usize, 4, 7, 129, 1028, 1029, 100_003, 100_004].iter().enumerate() {
        for decay in [0.0f32, 0.9, 0.999] {
            let mut r = rng(4100 + i as u64);
            let avg = GpuTensor::zeros(ctx, &[n], "average");
            avg.fill_nan(ctx).unwrap();
            let value = GpuTensor::zeros(ctx, &[n], "value");
            let counters = GpuTensor::zeros(ctx, &[4], "counters");
            let upd = ema::update(ctx, (&avg, &value), decay, &counters, 1).unwrap();
            let mut cpu = vec![f32::NAN; n];
            for steps_done in [0u32, 1, 2, 20_000] {
                let v = uniform_vec(&mut r, n, -1.0, 1.0);
                value.write_f32(ctx, &v).unwrap();
                counters.write_u32(ctx, &[steps_done, 0, 0, 0]).unwrap();
                kernels::run(ctx, &[&upd]).unwrap();
                ema::cpu_update(&mut cpu, &v, decay, steps_done);
                let gpu = avg.read_f32(ctx).unwrap();
                let what = format!("ema n={n} decay {decay} after {steps_done} steps");
                if steps_done == 0 || decay == 0.0 {
                    assert_eq!(gpu, v, "{what}: a copy of the value");
                }
                // |a| <= 1 and |v - a| <= 2: w's division (2.5 ulp) and the
                // update's two roundings stay below 1e-6.
                assert_close(&what, &gpu, &cpu, 1e-6, 1e-5);
            }
            assert_eq!(ema::weight(decay, 20_000), if decay == 0.0 { 1.0 } else { 1.0 - decay }, "the cap");
        }
    }
    let (a, v, c) =
        (GpuTensor::zeros(ctx, &[4], "a"), GpuTensor::zeros(ctx, &[4], "v"), GpuTensor::zeros(ctx, &[4], "counters"));
    for bad in [1.0f32, -0.1, f32::NAN] {
        let err = ema::update(ctx, (&a, &v), bad, &c, 1).unwrap_err().to_string();
        assert!(err.contains("decay") && err.contains("[0, 1)"), "{err}");
    }
    let short = GpuTensor::zeros(ctx, &[3], "short");
    let err = ema::update(ctx, (&a, &short), 0.9, &c, 1).unwrap_err().to_string();
    assert!(err.contains("short") && err.contains('3'), "{err}");
}

/// A non-finite parameter after the update raises the divergence flag with
/// the step it happened at; later steps do not move it; finite ones never set it.
#[test]
fn adam_raises_the_divergence_flag_at_the_first_non_finite_step() {
    let Some(ctx) = ctx() else { return };
    let n = 68;
    let t = |s: &str| GpuTensor::zeros(ctx, &[n], s);
    let (p, g, m, v) = (t("param"), t("grad"), t("m"), t("v"));
    let counters = GpuTensor::zeros(ctx, &[4], "counters");
    let upd = adam::Adam::new(ctx, adam::AdamConfig::default(), &p, &g, &m, &v, &counters).unwrap();
    let flag = || adam::first_nonfinite_step(&counters.read_u32(ctx).unwrap());
    g.write_f32(ctx, &vec![0.01; n]).unwrap();
    for step in 0..2u32 {
        counters.write_u32(ctx, &[step, 0, 0, 0]).unwrap();
        kernels::run(ctx, &[&upd.dispatch]).unwrap();
        assert_eq!(flag(), None, "finite step {step}");
    }
    for (bad, what) in [(f32::NAN, "NaN"), (f32::INFINITY, "inf")] {
        let mut grad = vec![0.01; n];
        grad[n - 3] = bad;
        g.write_f32(ctx, &grad).unwrap();
        // Steps done 41 and 57: the flag names step 42, the first.
        for steps_done in [41u32, 57] {
            let c = counters.read_u32(ctx).unwrap();
            counters.write_u32(ctx, &[steps_done, 0, c[2], 0]).unwrap();
            kernels::run(ctx, &[&upd.dispatch]).unwrap();
            assert_eq!(flag(), Some(42), "{what} gradient at steps done {steps_done}");
        }
        counters.write_u32(ctx, &[0; 4]).unwrap();
        p.write_f32(ctx, &vec![0.0; n]).unwrap();
        m.write_f32(ctx, &vec![0.0; n]).unwrap();
        v.write_f32(ctx, &vec![0.0; n]).unwrap();
    }
}

/// Zero trials or launches is an error naming what was asked, never a panic.
#[test]
fn bench_timing_with_zero_trials_is_an_error() {
    let Some(ctx) = ctx() else { return };
    let t = |s: &str| GpuTensor::zeros(ctx, &[8], s);
    let counters = GpuTensor::zeros(ctx, &[4], "counters");
    let upd = adam::Adam::new(ctx, adam::AdamConfig::default(), &t("p"), &t("g"), &t("m"), &t("v"), &counters).unwrap();
    for (reps, trials) in [(0, 3), (3, 0)] {
        let err = gan_wgpu::engine::timing::time_dispatch(ctx, &upd.dispatch, reps, trials).unwrap_err().to_string();
        assert!(err.contains(&format!("got {reps} and {trials}")), "{err}");
    }
}

/// Without an adapter a GPU test fails, unless skipping is asked for with
/// GAN_WGPU_SKIP_GPU_TESTS=1, when it says what it skipped. Runs one GPU
/// test of this binary in a child process with no adapter to be found.
#[test]
fn gpu_tests_fail_without_an_adapter_unless_skipping_is_asked() {
    // A backend this OS has no driver for: no adapter at all.
    let absent = if cfg!(target_os = "linux") || cfg!(windows) { "metal" } else { "dx12" };
    let run = |skip: bool| {
        let mut c = std::process::Command::new(std::env::current_exe().unwrap());
        c.args(["--exact", "adam_rejects_lengths_not_a_multiple_of_4", "--test-threads", "1", "--nocapture"])
            .env("WGPU_BACKEND", absent)
            .env_remove(common::SKIP_VAR);
        if skip {
            c.env(common::SKIP_VAR, "1");
        }
        c.output().unwrap()
    };
    let strict = run(false);
    let text = String::from_utf8_lossy(&strict.stdout).into_owned() + &String::from_utf8_lossy(&strict.stderr);
    assert!(!strict.status.success(), "a GPU test passed without an adapter:\n{text}");
    assert!(text.contains("no usable GPU adapter for adam_rejects_lengths_not_a_multiple_of_4"), "{text}");
    let skipped = run(true);
    let text = String::from_utf8_lossy(&skipped.stdout).into_owned() + &String::from_utf8_lossy(&skipped.stderr);
    assert!(skipped.status.success(), "{text}");
    assert!(text.contains("SKIPPED GPU test adam_rejects_lengths_not_a_multiple_of_4"), "{text}");
    assert!(text.contains("1 passed"), "the child ran no test: {text}");
}

#[test]
fn adam_rejects_lengths_not_a_multiple_of_4() {
    let Some(ctx) = ctx() else { return };
    let t = |s: &str| GpuTensor::zeros(ctx, &[63], s);
    let (p, g, m, v) = (t("G params"), t("g"), t("m"), t("v"));
    let counters = GpuTensor::zeros(ctx, &[4], "counters");
    let err = adam::Adam::new(ctx, adam::AdamConfig::default(), &p, &g, &m, &v, &counters).unwrap_err().to_string();
    assert!(err.contains("'G params'") && err.contains("63") && err.contains("multiple of 4"), "{err}");
}

#[test]
fn philox_known_answers() {
    // Known-answer vectors of Random123's philox4x32_10.
    assert_eq!(krng::philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
    assert_eq!(krng::philox4x32_10([u32::MAX; 4], [u32::MAX; 2]), [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]);
    assert_eq!(
        krng::philox4x32_10([0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344], [0xa4093822, 0x299f31d0]),
        [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
    );
}

#[test]
fn rng_normal_matches_reference_and_statistics() {
    let Some(ctx) = ctx() else { return };
    let counters = GpuTensor::from_u32(ctx, &[4], "counters", &[7, 0, 0, 0]).unwrap();
    for &n in &[1usize, 3, 63, 65, 12_800, 300_001] {
        let s = krng::RngStream { seed: 0x1234_5678_9abc_def0, stream: 3, draw_base: 11 };
        let out = GpuTensor::zeros(ctx, &[n], "z");
        out.fill_nan(ctx).unwrap();
        let d = krng::normal(ctx, &out, s, &counters).unwrap();
        kernels::run(ctx, &[&d]).unwrap();
        let gpu = out.read_f32(ctx).unwrap();
        let cpu = krng::cpu_normal(n, s, 7);
        // The integer bits are exact (Philox known answers above); the
        // floats carry what WGSL allows its builtins, per Box-Muller pair
        // (z0, z1) = r (cos t, sin t) with r^2 = z0^2 + z1^2 = -2 ln u1:
        //   cos, sin on [-pi, pi]: absolute 2^-11, so r 2^-11 on z;
        //   log: absolute 2^-21 on [0.5, 2], else 3 ULP: r^2 moves by 2^-20
        //   (or 6 ULP of r^2), so r by min(2^-21 / r, 2^-10);
        //   sqrt (1 / inverseSqrt) and the products: a few ULP, r 2^-20;
        //   the f64 reference rounded to f32: half an ULP, 2^-24 |z|.
        for (i, (&g, &c)) in gpu.iter().zip(&cpu).enumerate() {
            let pair = i - i % 2;
            let r = if pair + 1 < n {
                (cpu[pair] as f64).hypot(cpu[pair + 1] as f64)
            } else {
                // The pair's second number was not stored: r unknown, at most
                // sqrt(-2 ln 2^-24) = 5.77.
                5.77
            };
            let tol = r * 2f64.powi(-11)
                + (2f64.powi(-21) / r).min(2f64.powi(-10))
                + r * 2f64.powi(-20)
                + 2f64.powi(-24) * (c as f64).abs();
            assert!(((g - c) as f64).abs() <= tol, "rng n={n} index {i}: gpu {g} cpu {c}, tolerance {tol:e} (r {r})");
            assert!(g.is_finite(), "rng n={n} index {i}: {g}");
        }
        if n > 100_000 {
            let mean = gpu.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
            let var = gpu.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
            assert!(mean.abs() < 0.01, "mean {mean}");
            assert!((var - 1.0).abs() < 0.01, "variance {var}");
        }
    }
    // Another step counter gives other numbers.
    let a = krng::cpu_normal(64, krng::RngStream { seed: 1, stream: 0, draw_base: 0 }, 0);
    let b = krng::cpu_normal(64, krng::RngStream { seed: 1, stream: 0, draw_base: 0 }, 1);
    assert!(a.iter().zip(&b).all(|(x, y)| x != y));
}

#[test]
fn gather_builds_scaled_batches_and_counters_advance() {
    let Some(ctx) = ctx() else { return };
    for &(n_images, dim, rows) in &[(13usize, 7usize, 3usize), (300, 784, 128), (5, 1, 5)] {
        let mut r = rng(5000 + dim as u64);
        let pixels: Vec<u8> = (0..n_images * dim).map(|_| rand::Rng::random::<u8>(&mut r)).collect();
        let mut perm: Vec<u32> = (0..n_images as u32).collect();
        rand::seq::SliceRandom::shuffle(&mut perm[..], &mut r);
        let gpix =
            GpuTensor::from_u32(ctx, &[pixels.len().div_ceil(4)], "pixels", &gather::pack_pixels(&pixels)).unwrap();
        let gperm = GpuTensor::from_u32(ctx, &[n_images], "perm", &perm).unwrap();
        let batches = n_images / rows;
        let counters = GpuTensor::from_u32(ctx, &[4], "counters", &[40, 0, 0, 0]).unwrap();
        // Output with one spare row before the batch, as the trainer's [fake; real] buffer.
        let out = GpuTensor::zeros(ctx, &[rows + 1, dim], "batch");
        let g = gather::gather_batch(ctx, &gpix, &gperm, &out, 1, rows, &counters).unwrap();
        let adv = gather::advance_counters(ctx, &counters).unwrap();
        for batch in 0..batches {
            out.fill_nan(ctx).unwrap();
            kernels::run(ctx, &[&g, &adv]).unwrap();
            let got = out.read_f32(ctx).unwrap();
            assert!(got[..dim].iter().all(|v| v.is_nan()), "gather wrote the spare row");
            let want = gather::cpu_gather(&pixels, dim, &perm, batch, rows);
            // (pixel - 127.5) / 127.5: the subtraction is exact, and WGSL
            // allows a division 2.5 ULP, so relative 2.5 * 2^-23 < 3e-7.
            assert_close(&format!("gather {n_images}x{dim} batch {batch}"), &got[dim..], &want, 0.0, 3e-7);
        }
        let c = counters.read_u32(ctx).unwrap();
        assert_eq!(&c[..2], &[40 + batches as u32, batches as u32]);
    }
}

/// A data set held in shards of whole images (3 of 5 images, the last of
/// 3, dim 13 so no shard starts on a word boundary of the whole): one
/// dispatch per shard fills exactly the rows whose images it holds (each
/// within WGSL's division bound of the CPU reference), and together they
/// equal the whole set's gather on this device bit for bit (the same
/// bytes through the same arithmetic).
#[test]
fn gather_from_shards_equals_the_whole_set() {
    let Some(ctx) = ctx() else { return };
    let (n_images, dim, rows) = (13usize, 13usize, 6usize);
    let mut r = rng(5100);
    let pixels: Vec<u8> = (0..n_images * dim).map(|_| rand::Rng::random::<u8>(&mut r)).collect();
    let mut perm: Vec<u32> = (0..n_images as u32).collect();
    rand::seq::SliceRandom::shuffle(&mut perm[..], &mut r);
    let gperm = GpuTensor::from_u32(ctx, &[n_images], "perm", &perm).unwrap();
    let counters = GpuTensor::from_u32(ctx, &[4], "counters", &[0, 1, 0, 0]).unwrap();
    let shards: Vec<(GpuTensor, usize, usize)> = [(0usize, 5usize), (5, 5), (10, 3)]
        .iter()
        .map(|&(first, count)| {
            let bytes = &pixels[first * dim..(first + count) * dim];
            (
                GpuTensor::from_u32(ctx, &[bytes.len().div_ceil(4)], "shard", &gather::pack_pixels(bytes)).unwrap(),
                first,
                count,
            )
        })
        .collect();
    let out = GpuTensor::zeros(ctx, &[rows, dim], "batch");
    out.fill_nan(ctx).unwrap();
    let want = gather::cpu_gather(&pixels, dim, &perm, 1, rows);
    for (i, (t, first, count)) in shards.iter().enumerate() {
        let shard = gather::DataShard { pixels: t, first: *first, count: *count };
        kernels::run(ctx, &[&gather::gather_batch_shard(ctx, shard, &gperm, &out, (0, rows), &counters).unwrap()])
            .unwrap();
        let got = out.read_f32(ctx).unwrap();
        for row in 0..rows {
            let img = perm[rows + row] as usize;
            let done = shards[..=i].iter().any(|(_, f, c)| (*f..f + c).contains(&img));
            let have = &got[row * dim..(row + 1) * dim];
            match done {
                // As the one-buffer test: WGSL allows the division 2.5 ULP.
                true => assert_close(
                    &format!("row {row} (image {img}) after shard {i}"),
                    have,
                    &want[row * dim..(row + 1) * dim],
                    0.0,
                    3e-7,
                ),
                false => assert!(have.iter().all(|v| v.is_nan()), "row {row} (image {img}) written by shard {i}"),
            }
        }
    }
    let whole = GpuTensor::from_u32(ctx, &[pixels.len().div_ceil(4)], "pixels", &gather::pack_pixels(&pixels)).unwrap();
    let all = GpuTensor::zeros(ctx, &[rows, dim], "batch");
    kernels::run(ctx, &[&gather::gather_batch(ctx, &whole, &gperm, &all, 0, rows, &counters).unwrap()]).unwrap();
    assert_eq!(all.read_f32(ctx).unwrap(), out.read_f32(ctx).unwrap());
}

/// Softmax cross-entropy against its CPU reference on shapes that divide
/// no workgroup, labels looked up through the epoch's index list at a
/// batch other than 0, gradient pre-filled with NaN. Tolerances: exp and log
/// are not correctly rounded on GPUs (WGSL: exp 3 + 2|x| ULP, log 2^-21
/// absolute near 1), so 1e-5 on the loss and the gradient's entries.
#[test]
fn softmax_ce_matches_reference() {
    let Some(ctx) = ctx() else { return };
    for (i, &(rows, classes)) in [(1usize, 2usize), (3, 10), (63, 10), (65, 13), (128, 10), (200, 3)].iter().enumerate()
    {
        let mut r = rng(7000 + i as u64);
        let z = uniform_vec(&mut r, rows * classes, -4.0, 4.0);
        let n_labels = 3 * rows + 5;
        let all_labels: Vec<u8> = (0..n_labels).map(|_| r.random_range(0..classes as u8)).collect();
        let mut perm: Vec<u32> = (0..n_labels as u32).collect();
        rand::seq::SliceRandom::shuffle(&mut perm[..], &mut r);
        let batch = 2;
        let labels: Vec<u8> = (0..rows).map(|k| all_labels[perm[batch * rows + k] as usize]).collect();
        let gz = GpuTensor::from_f32(ctx, &[rows, classes], "z", &z).unwrap();
        let gdz = GpuTensor::zeros(ctx, &[rows, classes], "dz");
        gdz.fill_nan(ctx).unwrap();
        let glabels =
            GpuTensor::from_u32(ctx, &[n_labels.div_ceil(4)], "labels", &gather::pack_pixels(&all_labels)).unwrap();
        let gperm = GpuTensor::from_u32(ctx, &[n_labels], "perm", &perm).unwrap();
        let counters = GpuTensor::from_u32(ctx, &[4], "counters", &[9, batch as u32, 0, 0]).unwrap();
        let metrics = GpuTensor::zeros(ctx, &[4], "metrics");
        metrics.fill_nan(ctx).unwrap();
        let d = softmax_ce::softmax_ce(ctx, &gz, &gdz, &glabels, &gperm, &counters, &metrics).unwrap();
        kernels::run(ctx, &[&d]).unwrap();
        let (loss, dz, correct) = softmax_ce::cpu_softmax_ce(&z, &labels, rows, classes);
        let what = format!("softmax_ce {rows}x{classes}");
        let m = metrics.read_f32(ctx).unwrap();
        assert_close(&format!("{what} loss"), &m[..1], &[loss], 1e-5, 1e-5);
        assert_eq!(m[1], correct as f32, "{what}: correct rows");
        assert!(m[2].is_nan() && m[3].is_nan(), "{what}: wrote past its metrics: {m:?}");
        assert_close(&format!("{what} dz"), &gdz.read_f32(ctx).unwrap(), &dz, 1e-5 / rows as f32, 1e-4);
    }
}

/// The benchmark's ceilings against their CPU references on sizes that
/// divide no workgroup, outputs pre-filled with NaN. An FMA loop may round
/// twice per step on a GPU (WGSL does not require a fused fma): each step
/// adds at most an ULP of a value near 1, and the contraction (a = 0.999)
/// keeps the sum of the steps' errors, times the values summed, under
/// values * steps * 2^-23: 32 values and `iters` steps for the per-FMA loop,
/// 16 values and 8 * `iters` steps for the chunked one. The copy is exact.
#[test]
fn ceiling_kernels_match_reference() {
    let Some(ctx) = ctx() else { return };
    for &(n, iters) in &[(1usize, 1u32), (65, 3), (1001, 37)] {
        for (kind, values, steps) in [
            (ceiling::FmaLoop::PerFma, 32.0, iters as f32),
            (ceiling::FmaLoop::Chunked, 16.0, (iters * ceiling::FMA_CHAIN) as f32),
        ] {
            let atol = values * steps * 2f32.powi(-23) + 1e-6;
            // The page's self-test uses the library's statement of the same bound.
            assert_eq!(kind.tolerance(iters), atol, "{kind:?}");
            let out = GpuTensor::zeros(ctx, &[n], "out");
            out.fill_nan(ctx).unwrap();
            kernels::run(ctx, &[&ceiling::fma_loop(ctx, kind, &out, iters).unwrap()]).unwrap();
            assert_close(
                &format!("fma loop {kind:?} {n}x{iters}"),
                &out.read_f32(ctx).unwrap(),
                &ceiling::cpu_fma_loop(kind, n, iters),
                atol,
                1e-6,
            );
        }
    }
    for &floats in &[4usize, 260, 4 * 1003] {
        let data: Vec<f32> = (0..floats).map(|i| i as f32 * 0.25 - 3.0).collect();
        let src = GpuTensor::from_f32(ctx, &[floats], "src", &data).unwrap();
        let dst = GpuTensor::zeros(ctx, &[floats], "dst");
        dst.fill_nan(ctx).unwrap();
        kernels::run(ctx, &[&ceiling::stream_copy(ctx, &src, &dst).unwrap()]).unwrap();
        assert_eq!(dst.read_f32(ctx).unwrap(), data, "copy of {floats}");
    }
    assert!(ceiling::stream_copy(ctx, &GpuTensor::zeros(ctx, &[6], "a"), &GpuTensor::zeros(ctx, &[6], "b")).is_err());
}

/// The label embedding on shapes that divide no workgroup and widths that
/// need padding (X + E = 7, 110, 794), labels out of range included (they
/// read the last row), every output pre-filled with NaN: join, split and
/// pad/crop only copy, so they are exact; the table gradient sums at most
/// `rows` terms in row order on both sides, so it is exact too.
#[test]
fn embedding_join_split_and_table_gradient_match_reference() {
    let Some(ctx) = ctx() else { return };
    for &(rows, x_cols, classes, emb) in &[(3usize, 5usize, 3usize, 2usize), (65, 100, 10, 10), (257, 784, 10, 10)] {
        let what = format!("embedding {rows}x{x_cols} + {classes}x{emb}");
        let mut r = rng(rows as u64);
        let x = uniform_vec(&mut r, rows * x_cols, -1.0, 1.0);
        let table = uniform_vec(&mut r, classes * emb, -2.0, 2.0);
        // The last label is out of range: the kernels clamp it to the last class.
        let labels: Vec<u32> = (0..rows)
            .map(|i| if i + 1 == rows { 250 } else { rand::Rng::random_range(&mut r, 0..classes as u32) })
            .collect();
        let cols = x_cols + emb;
        let width = embedding::padded_width(cols);
        assert!(width.is_multiple_of(4) && width >= cols && width < cols + 4, "{what}: width {width}");
        let gx = GpuTensor::from_f32(ctx, &[rows, x_cols], "x", &x).unwrap();
        let gt = GpuTensor::from_f32(ctx, &[classes, emb], "table", &table).unwrap();
        let gl = GpuTensor::from_u32(ctx, &[rows], "labels", &labels).unwrap();
        let joined = GpuTensor::zeros(ctx, &[rows, width], "joined");
        joined.fill_nan(ctx).unwrap();
        kernels::run(ctx, &[&embedding::join(ctx, &gx, &gt, &gl, &joined).unwrap()]).unwrap();
        let want = embedding::cpu_pad_columns(&embedding::cpu_join(&x, x_cols, &table, emb, &labels), cols, width);
        assert_eq!(joined.read_f32(ctx).unwrap(), want, "{what}: join");

        let d_joined_cpu = uniform_vec(&mut r, rows * cols, -1.0, 1.0);
        let d_joined = GpuTensor::from_f32(
            ctx,
            &[rows, width],
            "d_joined",
            &embedding::cpu_pad_columns(&d_joined_cpu, cols, width),
        )
        .unwrap();
        let d_x = GpuTensor::zeros(ctx, &[rows, x_cols], "d_x");
        let d_table = GpuTensor::zeros(ctx, &[classes, emb], "d_table");
        d_x.fill_nan(ctx).unwrap();
        d_table.fill_nan(ctx).unwrap();
        let split = embedding::split(ctx, &d_joined, &d_x, &gt).unwrap();
        let grad = embedding::table_grad(ctx, &d_joined, &gl, &d_table, x_cols).unwrap();
        kernels::run(ctx, &[&split, &grad]).unwrap();
        let (want_dx, want_dt) = embedding::cpu_backward(&d_joined_cpu, x_cols, emb, classes, &labels);
        assert_eq!(d_x.read_f32(ctx).unwrap(), want_dx, "{what}: split");
        assert_eq!(d_table.read_f32(ctx).unwrap(), want_dt, "{what}: table gradient");

        // The next layer's weight [out, cols] padded to W columns and its
        // gradient cropped back.
        let out = 37;
        let w = uniform_vec(&mut r, out * cols, -1.0, 1.0);
        let gw = GpuTensor::from_f32(ctx, &[out, cols], "w", &w).unwrap();
        let padded = GpuTensor::zeros(ctx, &[out, width], "w padded");
        padded.fill_nan(ctx).unwrap();
        kernels::run(ctx, &[&embedding::pad_weight(ctx, &gw, &padded).unwrap()]).unwrap();
        assert_eq!(padded.read_f32(ctx).unwrap(), embedding::cpu_pad_columns(&w, cols, width), "{what}: pad_weight");
        let cropped = GpuTensor::zeros(ctx, &[out, cols], "w cropped");
        cropped.fill_nan(ctx).unwrap();
        kernels::run(ctx, &[&embedding::crop_grad(ctx, &padded, &cropped).unwrap()]).unwrap();
        assert_eq!(cropped.read_f32(ctx).unwrap(), w, "{what}: crop_grad");
    }
    // Shapes that do not fit are errors naming the tensor.
    let x = GpuTensor::zeros(ctx, &[4, 6], "x");
    let t = GpuTensor::zeros(ctx, &[10, 10], "table");
    let l = GpuTensor::zeros(ctx, &[4], "labels");
    let unpadded = GpuTensor::zeros(ctx, &[4, 18], "joined");
    let err = embedding::join(ctx, &x, &t, &l, &unpadded).unwrap_err().to_string();
    assert!(err.contains("'joined'") && err.contains("multiple of 4"), "{err}");
}

/// Fake labels: the CPU reference's integers exactly, on counts that are
/// not a multiple of 4, and about uniform over the classes.
#[test]
fn rng_labels_match_reference_and_are_uniform() {
    let Some(ctx) = ctx() else { return };
    let counters = GpuTensor::from_u32(ctx, &[4], "counters", &[5, 0, 0, 0]).unwrap();
    for &(n, classes) in &[(1usize, 10usize), (7, 3), (129, 10), (100_003, 10)] {
        let s = krng::RngStream { seed: 77, stream: 2, draw_base: 0 };
        let out = GpuTensor::from_u32(ctx, &[n], "labels", &vec![u32::MAX; n]).unwrap();
        kernels::run(ctx, &[&krng::labels(ctx, &out, classes, s, &counters).unwrap()]).unwrap();
        let gpu = out.read_u32(ctx).unwrap();
        assert_eq!(gpu, krng::cpu_labels(n, classes, s, 5), "rng labels n={n}");
        assert!(gpu.iter().all(|&l| (l as usize) < classes));
        if n > 100_000 {
            let mut hist = vec![0usize; classes];
            gpu.iter().for_each(|&l| hist[l as usize] += 1);
            let expect = n as f64 / classes as f64;
            // 5 standard deviations of a binomial count.
            let sd = (expect * (1.0 - 1.0 / classes as f64)).sqrt();
            assert!(hist.iter().all(|&h| (h as f64 - expect).abs() < 5.0 * sd), "histogram {hist:?}");
        }
    }
}

/// Dropout in place: the CPU reference's values bit for bit (one f32
/// multiply, which WGSL rounds correctly) on counts that are not a multiple
/// of 4; a dropped element is 0 even where x is NaN; about 1 - p kept; the
/// mask depends on the stream and the step; and a second dispatch (the
/// backward's) multiplies by the same mask.
#[test]
fn dropout_matches_reference_and_keeps_one_minus_p() {
    let Some(ctx) = ctx() else { return };
    let counters = GpuTensor::from_u32(ctx, &[4], "counters", &[5, 0, 0, 0]).unwrap();
    let draw = dropout::DropoutDraw { seed: 77, stream: 16 };
    let mut r = rng(11);
    for &(n, p) in &[(1usize, 0.5f32), (7, 0.3), (129, 0.0), (1029, 0.5), (100_003, 0.3)] {
        let mut x = uniform_vec(&mut r, n, -1.0, 1.0);
        let mask = dropout::cpu_mask(n, p, draw, 5);
        // NaN where the mask drops: the output must still be 0.
        if let Some(j) = mask.iter().position(|&m| m == 0.0) {
            x[j] = f32::NAN;
        }
        let t = GpuTensor::from_f32(ctx, &[n], "x", &x).unwrap();
        let apply = dropout::apply(ctx, &t, p, draw, &counters).unwrap();
        kernels::run(ctx, &[&apply]).unwrap();
        let mut want = x.clone();
        dropout::cpu_apply(&mut want, &mask);
        let gpu = t.read_f32(ctx).unwrap();
        assert!(gpu.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "dropout n={n} p={p}");
        // The backward's dispatch: the same mask again.
        kernels::run(ctx, &[&apply]).unwrap();
        dropout::cpu_apply(&mut want, &mask);
        let twice = t.read_f32(ctx).unwrap();
        assert!(twice.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "dropout twice n={n} p={p}");
        let kept = mask.iter().filter(|&&m| m != 0.0).count() as f64;
        assert!(mask.iter().all(|&m| m == 0.0 || m == 1.0 / (1.0 - p)));
        if p == 0.0 {
            assert_eq!(kept as usize, n);
        }
        if n > 100_000 {
            let q = 1.0 - p as f64;
            let sd = (n as f64 * q * (1.0 - q)).sqrt();
            assert!((kept - n as f64 * q).abs() < 5.0 * sd, "kept {kept} of {n} at p = {p}");
            let other_stream = dropout::cpu_mask(n, p, draw.layer(1), 5);
            let other_step = dropout::cpu_mask(n, p, draw, 6);
            for other in [other_stream, other_step] {
                let same = other.iter().zip(&mask).filter(|(a, b)| a == b).count() as f64;
                // Independent masks agree on q^2 + p^2 of the elements.
                let agree = q * q + (p * p) as f64;
                assert!((same / n as f64 - agree).abs() < 0.01, "masks of another stream or step agree on {same}");
            }
        }
    }
    assert!(dropout::apply(ctx, &GpuTensor::zeros(ctx, &[4], "x"), 1.0, draw, &counters).is_err());
}

/// Real labels follow their images through the epoch's index list.
#[test]
fn gather_labels_follow_the_images() {
    let Some(ctx) = ctx() else { return };
    for &(n_images, rows) in &[(13usize, 3usize), (301, 128)] {
        let mut r = rng(n_images as u64);
        let labels: Vec<u8> = (0..n_images).map(|_| rand::Rng::random_range(&mut r, 0..10u8)).collect();
        let mut perm: Vec<u32> = (0..n_images as u32).collect();
        rand::seq::SliceRandom::shuffle(&mut perm[..], &mut r);
        let gl = GpuTensor::from_u32(ctx, &[n_images.div_ceil(4)], "labels", &gather::pack_pixels(&labels)).unwrap();
        let gperm = GpuTensor::from_u32(ctx, &[n_images], "perm", &perm).unwrap();
        let out = GpuTensor::zeros(ctx, &[rows + 1], "batch labels");
        for batch in 0..n_images / rows {
            let counters = GpuTensor::from_u32(ctx, &[4], "counters", &[0, batch as u32, 0, 0]).unwrap();
            out.write_u32(ctx, &vec![u32::MAX; rows + 1]).unwrap();
            kernels::run(ctx, &[&gather::gather_labels(ctx, &gl, &gperm, &out, 1, rows, &counters).unwrap()]).unwrap();
            let got = out.read_u32(ctx).unwrap();
            assert_eq!(got[0], u32::MAX, "gather_labels wrote the spare slot");
            assert_eq!(&got[1..], &gather::cpu_gather_labels(&labels, &perm, batch, rows)[..], "batch {batch}");
        }
    }
}
