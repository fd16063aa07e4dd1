//! Convolutions (shaders/conv.wgsl around the matmul kernels) against their
//! CPU references, on every adapter of the CI matrix: im2col and col2im
//! exactly; Conv2d and ConvTranspose2d as columns and matmuls, for every
//! matmul variant, against PyTorch's definitions computed directly; and
//! their input and weight gradients against finite differences of those
//! definitions. Geometries that divide nothing, outputs pre-filled with NaN.
//! Tolerances: the matmul tests' (f32 sums of k products of numbers in
//! [-1, 1]: 2e-6 k + 1e-6 absolute, 1e-4 relative).

mod common;
use common::{assert_close, ctx, rng, uniform_vec};
use gan_wgpu::engine::kernels::conv::{self, ConvGeometry};
use gan_wgpu::engine::kernels::matmul::{Form, Matmul, Variant};
use gan_wgpu::engine::kernels::{self, Dispatch};
use gan_wgpu::{GpuContext, GpuTensor};

/// Conv2d geometries: DCGAN's k4 s2 p1 on odd sizes, a k3 s1 p1, and D's
/// last layer (7x7 to 1x1).
fn conv_geometries() -> Vec<ConvGeometry> {
    vec![
        ConvGeometry::conv(3, 7, 5, 3, 4, 2, 1),
        ConvGeometry::conv(2, 6, 9, 2, 3, 1, 1),
        ConvGeometry::conv(2, 7, 7, 5, 7, 1, 0),
    ]
}

/// ConvTranspose2d geometries: G's first layer (1x1 to 7x7) and k4 s2 p1 on
/// an odd grid (5x3 to 10x6).
fn transposed_geometries() -> Vec<ConvGeometry> {
    vec![ConvGeometry::transposed(3, 1, 1, 5, 7, 1, 0), ConvGeometry::transposed(2, 5, 3, 3, 4, 2, 1)]
}

fn nan_tensor(ctx: &GpuContext, shape: &[usize], label: &str) -> GpuTensor {
    let t = GpuTensor::zeros(ctx, shape, label);
    t.fill_nan(ctx).unwrap();
    t
}

fn run(ctx: &GpuContext, ds: &[Dispatch]) {
    kernels::run(ctx, &ds.iter().collect::<Vec<_>>()).unwrap();
}

fn matmul(ctx: &GpuContext, form: Form, variant: Variant, a: &GpuTensor, b: &GpuTensor, c: &GpuTensor) -> Dispatch {
    Matmul::new(ctx, form, variant, a, b, c).unwrap().dispatch
}

fn atol(k: usize) -> f32 {
    2e-6 * k as f32 + 1e-6
}

/// (L(v + h) - L(v - h)) / 2h at `indices` of `v`, L computed in f64.
fn finite_differences(v: &[f32], indices: &[usize], loss: impl Fn(&[f32]) -> f64) -> Vec<f32> {
    indices
        .iter()
        .map(|&i| {
            let mut p = v.to_vec();
            p[i] = v[i] + 0.01;
            let up = loss(&p);
            let hi = p[i];
            p[i] = v[i] - 0.01;
            let down = loss(&p);
            ((up - down) / (hi - p[i]) as f64) as f32
        })
        .collect()
}

fn some_indices(len: usize, count: usize) -> Vec<usize> {
    (0..count).map(|i| (i * 7919 + 13) % len).collect()
}

#[test]
fn im2col_and_col2im_equal_the_cpu_exactly() {
    let Some(ctx) = ctx() else { return };
    for (i, g) in conv_geometries().into_iter().chain(transposed_geometries()).enumerate() {
        let mut r = rng(i as u64);
        let x = uniform_vec(&mut r, g.image_len(), -1.0, 1.0);
        let gx = GpuTensor::from_f32(ctx, &[g.n * g.h * g.w, g.c], "x", &x).unwrap();
        let gcols = nan_tensor(ctx, &[g.positions(), g.patch()], "cols");
        run(ctx, &[conv::im2col(ctx, &gx, &gcols, &g).unwrap()]);
        let cols = conv::cpu_im2col(&x, &g);
        assert_eq!(gcols.read_f32(ctx).unwrap(), cols, "im2col {g:?}");
        // The network skips both movements for these: they must be the identity.
        if g.is_whole() {
            assert_eq!(cols, x, "im2col of a whole-image geometry {g:?}");
        }
        // col2im of arbitrary columns (not only of im2col's).
        let cols = uniform_vec(&mut r, cols.len(), -1.0, 1.0);
        gcols.write_f32(ctx, &cols).unwrap();
        let gimg = nan_tensor(ctx, &[g.n * g.h * g.w, g.c], "image");
        run(ctx, &[conv::col2im(ctx, &gcols, &gimg, &g).unwrap()]);
        assert_eq!(gimg.read_f32(ctx).unwrap(), conv::cpu_col2im(&cols, &g), "col2im {g:?}");
    }
}

/// Conv2d: y = im2col(x) W^T; dW = dy^T im2col(x); dx = col2im(dy W). The
/// gradients are of L = sum(y * r) for a random r (so dy = r).
#[test]
fn conv2d_forward_and_gradients() {
    let Some(ctx) = ctx() else { return };
    let out = 5;
    for (i, g) in conv_geometries().into_iter().enumerate() {
        let mut r = rng(10 + i as u64);
        let (m, k) = (g.positions(), g.patch());
        let x = uniform_vec(&mut r, g.image_len(), -1.0, 1.0);
        let w = uniform_vec(&mut r, out * k, -1.0, 1.0);
        let dy = uniform_vec(&mut r, m * out, -1.0, 1.0);
        let gx = GpuTensor::from_f32(ctx, &[g.n * g.h * g.w, g.c], "x", &x).unwrap();
        // w is in PyTorch's order, the GPU's copy in the engine's.
        let gw = GpuTensor::from_f32(ctx, &[out, k], "weight", &conv::to_patch_order(&w, out, g.c, g.k)).unwrap();
        let gdy = GpuTensor::from_f32(ctx, &[m, out], "dy", &dy).unwrap();
        let cpu_y: Vec<f32> = conv::cpu_conv2d(&x, &w, out, &g).into_iter().map(|v| v as f32).collect();
        let loss = |x: &[f32], w: &[f32]| -> f64 {
            conv::cpu_conv2d(x, w, out, &g).iter().zip(&dy).map(|(y, r)| y * *r as f64).sum()
        };
        for variant in Variant::ALL {
            let cols = nan_tensor(ctx, &[m, k], "cols");
            let y = nan_tensor(ctx, &[m, out], "y");
            let dw = nan_tensor(ctx, &[out, k], "dw");
            let dcols = nan_tensor(ctx, &[m, k], "dcols");
            let dx = nan_tensor(ctx, &[g.n * g.h * g.w, g.c], "dx");
            run(
                ctx,
                &[
                    conv::im2col(ctx, &gx, &cols, &g).unwrap(),
                    matmul(ctx, Form::NT, variant, &cols, &gw, &y),
                    matmul(ctx, Form::TN, variant, &gdy, &cols, &dw),
                    matmul(ctx, Form::NN, variant, &gdy, &gw, &dcols),
                    conv::col2im(ctx, &dcols, &dx, &g).unwrap(),
                ],
            );
            let what = format!("conv2d {} {g:?}", variant.name());
            assert_close(&format!("{what} forward"), &y.read_f32(ctx).unwrap(), &cpu_y, atol(k), 1e-4);
            let dw = conv::to_pytorch_order(&dw.read_f32(ctx).unwrap(), out, g.c, g.k);
            let dx = dx.read_f32(ctx).unwrap();
            let xi = some_indices(x.len(), 12);
            let wi = some_indices(w.len(), 12);
            let fd_x = finite_differences(&x, &xi, |x| loss(x, &w));
            let fd_w = finite_differences(&w, &wi, |w| loss(&x, w));
            let pick = |v: &[f32], idx: &[usize]| idx.iter().map(|&i| v[i]).collect::<Vec<_>>();
            assert_close(&format!("{what} dx vs finite differences"), &pick(&dx, &xi), &fd_x, atol(m), 1e-3);
            assert_close(&format!("{what} dW vs finite differences"), &pick(&dw, &wi), &fd_w, atol(m), 1e-3);
        }
    }
}

/// ConvTranspose2d: y = col2im(x W); dW = x^T im2col(dy); dx = im2col(dy) W^T,
/// for L = sum(y * r).
#[test]
fn conv_transpose2d_forward_and_gradients() {
    let Some(ctx) = ctx() else { return };
    let inp = 6;
    for (i, g) in transposed_geometries().into_iter().enumerate() {
        let mut r = rng(20 + i as u64);
        let (m, k) = (g.positions(), g.patch());
        let x = uniform_vec(&mut r, m * inp, -1.0, 1.0);
        let w = uniform_vec(&mut r, inp * k, -1.0, 1.0);
        let dy = uniform_vec(&mut r, g.image_len(), -1.0, 1.0);
        let gx = GpuTensor::from_f32(ctx, &[m, inp], "x", &x).unwrap();
        let gw = GpuTensor::from_f32(ctx, &[inp, k], "weight", &conv::to_patch_order(&w, inp, g.c, g.k)).unwrap();
        let gdy = GpuTensor::from_f32(ctx, &[g.n * g.h * g.w, g.c], "dy", &dy).unwrap();
        let cpu_y: Vec<f32> = conv::cpu_conv_transpose2d(&x, &w, inp, &g).into_iter().map(|v| v as f32).collect();
        let loss = |x: &[f32], w: &[f32]| -> f64 {
            conv::cpu_conv_transpose2d(x, w, inp, &g).iter().zip(&dy).map(|(y, r)| y * *r as f64).sum()
        };
        for variant in Variant::ALL {
            let cols = nan_tensor(ctx, &[m, k], "cols");
            let y = nan_tensor(ctx, &[g.n * g.h * g.w, g.c], "y");
            let dcols = nan_tensor(ctx, &[m, k], "dcols");
            let dw = nan_tensor(ctx, &[inp, k], "dw");
            let dx = nan_tensor(ctx, &[m, inp], "dx");
            run(
                ctx,
                &[
                    matmul(ctx, Form::NN, variant, &gx, &gw, &cols),
                    conv::col2im(ctx, &cols, &y, &g).unwrap(),
                    conv::im2col(ctx, &gdy, &dcols, &g).unwrap(),
                    matmul(ctx, Form::TN, variant, &gx, &dcols, &dw),
                    matmul(ctx, Form::NT, variant, &dcols, &gw, &dx),
                ],
            );
            let what = format!("conv_transpose2d {} {g:?}", variant.name());
            assert_close(&format!("{what} forward"), &y.read_f32(ctx).unwrap(), &cpu_y, atol(inp * g.k * g.k), 1e-4);
            let dw = conv::to_pytorch_order(&dw.read_f32(ctx).unwrap(), inp, g.c, g.k);
            let dx = dx.read_f32(ctx).unwrap();
            let xi = some_indices(x.len(), 12);
            let wi = some_indices(w.len(), 12);
            let fd_x = finite_differences(&x, &xi, |x| loss(x, &w));
            let fd_w = finite_differences(&w, &wi, |w| loss(&x, w));
            let pick = |v: &[f32], idx: &[usize]| idx.iter().map(|&i| v[i]).collect::<Vec<_>>();
            assert_close(&format!("{what} dx vs finite differences"), &pick(&dx, &xi), &fd_x, atol(k), 1e-3);
            assert_close(&format!("{what} dW vs finite differences"), &pick(&dw, &wi), &fd_w, atol(m), 1e-3);
        }
    }
}

#[test]
fn inconsistent_geometries_are_refused() {
    let Some(ctx) = ctx() else { return };
    let g = ConvGeometry::conv(2, 7, 7, 3, 4, 2, 1);
    let x = GpuTensor::zeros(ctx, &[2 * 7 * 7, 3], "x");
    let cols = GpuTensor::zeros(ctx, &[g.positions(), g.patch() + 1], "cols");
    let e = conv::im2col(ctx, &x, &cols, &g).expect_err("refused").to_string();
    assert!(e.contains("cols"), "{e}");
    let bad = ConvGeometry { oh: 5, ..g };
    let cols = GpuTensor::zeros(ctx, &[bad.positions(), bad.patch()], "cols");
    let e = conv::im2col(ctx, &x, &cols, &bad).expect_err("refused").to_string();
    assert!(e.contains("geometry"), "{e}");
}

/// The implicit-GEMM Conv2d forward (patches read from the image inside the
/// subgroup matmul) against the direct definition, with a bias and
/// LeakyReLU in its epilogue, on geometries of 4, 8 and 12 channels that
/// divide no tile (37 output channels; 3x7x5, 2x6x9, 5x14x14 images). Where
/// the adapter has no usable subgroups the launcher must refuse it, naming
/// the need.
#[test]
fn implicit_gemm_conv2d_forward_equals_the_definition() {
    use gan_wgpu::engine::kernels::bias_act::{self, Act};
    use gan_wgpu::engine::kernels::conv_gemm;
    use gan_wgpu::engine::kernels::matmul::Epilogue;
    let Some(ctx) = ctx() else { return };
    let out = 37;
    let geometries = [
        ConvGeometry::conv(3, 7, 5, 4, 4, 2, 1),
        ConvGeometry::conv(2, 6, 9, 8, 3, 1, 1),
        ConvGeometry::conv(5, 14, 14, 12, 4, 2, 1),
    ];
    for (i, g) in geometries.into_iter().enumerate() {
        let mut r = rng(40 + i as u64);
        let (m, k) = (g.positions(), g.patch());
        let x = uniform_vec(&mut r, g.image_len(), -1.0, 1.0);
        let w = uniform_vec(&mut r, out * k, -1.0, 1.0);
        let bias = uniform_vec(&mut r, out, -1.0, 1.0);
        let gx = GpuTensor::from_f32(ctx, &[g.n * g.h * g.w, g.c], "x", &x).unwrap();
        let gw = GpuTensor::from_f32(ctx, &[out, k], "weight", &conv::to_patch_order(&w, out, g.c, g.k)).unwrap();
        let gbias = GpuTensor::from_f32(ctx, &[out], "bias", &bias).unwrap();
        let y = nan_tensor(ctx, &[m, out], "y");
        let epilogue = Epilogue { bias: Some(&gbias), act: Act::LeakyRelu };
        let launched = conv_gemm::conv2d_forward(ctx, &gx, &gw, &y, &g, epilogue);
        if !gan_wgpu::engine::kernels::matmul::Variant::subgroups_usable(ctx) {
            assert!(!conv_gemm::applies(ctx, &g));
            let e = launched.expect_err("refused without subgroups").to_string();
            assert!(e.contains("subgroups"), "{e}");
            continue;
        }
        assert!(conv_gemm::applies(ctx, &g));
        run(ctx, &[launched.unwrap()]);
        let z: Vec<f32> = conv::cpu_conv2d(&x, &w, out, &g).into_iter().map(|v| v as f32).collect();
        let want = bias_act::cpu_forward(Act::LeakyRelu, &z, Some(&bias), m, out);
        assert_close(&format!("implicit conv2d {g:?}"), &y.read_f32(ctx).unwrap(), &want, atol(k), 1e-4);
    }
    // Channels that are no multiple of 4 are not its job.
    assert!(!conv_gemm::applies(ctx, &ConvGeometry::conv(2, 7, 7, 3, 4, 2, 1)));
}

/// The implicit-GEMM weight gradient dy^T im2col(x) against the CPU's
/// im2col and product, for Conv2d geometries and a ConvTranspose2d one (its
/// x^T im2col(dy)), 12 rows of dW (no tile's multiple); refused where the
/// adapter has no usable subgroups, or positions are no multiple of 4.
#[test]
fn implicit_gemm_weight_gradient_equals_the_cpu() {
    use gan_wgpu::engine::kernels::conv_gemm;
    use gan_wgpu::engine::kernels::matmul::cpu_matmul;
    let Some(ctx) = ctx() else { return };
    let lead = 12;
    let geometries = [
        ConvGeometry::conv(2, 7, 5, 4, 4, 2, 1),
        ConvGeometry::conv(2, 6, 9, 8, 3, 1, 1),
        ConvGeometry::conv(4, 14, 14, 12, 4, 2, 1),
        ConvGeometry::transposed(4, 5, 3, 8, 4, 2, 1),
    ];
    for (i, g) in geometries.into_iter().enumerate() {
        let mut r = rng(50 + i as u64);
        let (m, k) = (g.positions(), g.patch());
        let x = uniform_vec(&mut r, g.image_len(), -1.0, 1.0);
        let dy = uniform_vec(&mut r, m * lead, -1.0, 1.0);
        let gx = GpuTensor::from_f32(ctx, &[g.n * g.h * g.w, g.c], "image", &x).unwrap();
        let gdy = GpuTensor::from_f32(ctx, &[m, lead], "dy", &dy).unwrap();
        let dw = nan_tensor(ctx, &[lead, k], "dw");
        let launched = conv_gemm::weight_grad(ctx, &gdy, &gx, &dw, &g);
        if !gan_wgpu::engine::kernels::matmul::Variant::subgroups_usable(ctx) {
            let e = launched.expect_err("refused without subgroups").to_string();
            assert!(e.contains("subgroups"), "{e}");
            continue;
        }
        run(ctx, &[launched.unwrap()]);
        let want = cpu_matmul(Form::TN, &dy, &conv::cpu_im2col(&x, &g), lead, k, m);
        assert_close(&format!("implicit dW {g:?}"), &dw.read_f32(ctx).unwrap(), &want, atol(m), 1e-4);
    }
    // 1 x 3 x 2 positions, or 6 rows of dW: the explicit path's.
    let six_positions = ConvGeometry::conv(1, 7, 5, 4, 4, 2, 1);
    assert!(!conv_gemm::applies_to_weight_grad(ctx, &six_positions, lead));
    assert!(!conv_gemm::applies_to_weight_grad(ctx, &six_positions.with_batch(2), 6));
}
