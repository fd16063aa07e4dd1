//! The CPU backward references against central finite differences of the CPU
//! forwards. The GPU backward kernels are checked against these references in
//! kernels_gpu.rs, so together the GPU gradients are tied to the true derivatives.

mod common;
use common::{rng, uniform_vec};
use gan_wgpu::engine::kernels::bias_act::Act;
use gan_wgpu::engine::kernels::hinge::{self, HingeSide};
use gan_wgpu::engine::kernels::{batchnorm, bce, bias_act, matmul, softmax_ce};

const H: f64 = 1e-2;

/// Central difference of `f` at x[i].
fn central(x: &[f32], i: usize, f: &dyn Fn(&[f32]) -> f64) -> f64 {
    let mut xp = x.to_vec();
    let mut xm = x.to_vec();
    xp[i] += H as f32;
    xm[i] -= H as f32;
    (f(&xp) - f(&xm)) / (2.0 * H)
}

// Index i is both the coordinate perturbed and the gradient entry compared.
#[allow(clippy::needless_range_loop)]
fn check(what: &str, x: &[f32], analytic: &[f32], f: &dyn Fn(&[f32]) -> f64) {
    for i in 0..x.len() {
        let num = central(x, i, f);
        let ana = analytic[i] as f64;
        assert!(
            (num - ana).abs() <= 2e-3 + 2e-3 * ana.abs(),
            "{what}: element {i}: analytic {ana}, finite difference {num}"
        );
    }
}

fn weighted(w: &[f32], y: &[f32]) -> f64 {
    w.iter().zip(y).map(|(&a, &b)| a as f64 * b as f64).sum()
}

#[test]
fn bias_act_backward_matches_finite_differences() {
    let (rows, cols) = (5, 4);
    for act in bias_act::Act::ALL {
        let mut r = rng(1);
        // Keep pre-activations away from the ReLU kinks at 0.
        let x: Vec<f32> = uniform_vec(&mut r, rows * cols, 0.2, 1.5)
            .into_iter()
            .enumerate()
            .map(|(i, v)| if i % 2 == 0 { v } else { -v })
            .collect();
        let bias = vec![0.0f32; cols];
        let w = uniform_vec(&mut r, rows * cols, -1.0, 1.0);
        let y = bias_act::cpu_forward(act, &x, Some(&bias), rows, cols);
        let (dz, dbias) = bias_act::cpu_backward(act, &y, &w, rows, cols);
        let loss_x = |xv: &[f32]| weighted(&w, &bias_act::cpu_forward(act, xv, Some(&bias), rows, cols));
        check(&format!("{} dx", act.name()), &x, &dz, &loss_x);
        // The bias moves every x of its column; its kinks sit elsewhere, so use a small bias probe.
        let loss_b = |bv: &[f32]| weighted(&w, &bias_act::cpu_forward(act, &x, Some(bv), rows, cols));
        if act != bias_act::Act::Relu && act != bias_act::Act::LeakyRelu {
            check(&format!("{} dbias", act.name()), &bias, &dbias, &loss_b);
        }
    }
}

#[test]
fn batchnorm_backward_matches_finite_differences() {
    let (rows, cols) = (6, 3);
    for relu in [Act::Identity, Act::Relu, Act::LeakyRelu] {
        let mut r = rng(2);
        let x = uniform_vec(&mut r, rows * cols, -2.0, 2.0);
        let gamma = uniform_vec(&mut r, cols, 0.5, 1.5);
        let beta = uniform_vec(&mut r, cols, 0.3, 0.6);
        let w = uniform_vec(&mut r, rows * cols, -1.0, 1.0);
        let fwd = |xv: &[f32], g: &[f32], b: &[f32]| {
            let (mut rm, mut rv) = (vec![0.0; cols], vec![1.0; cols]);
            batchnorm::cpu_forward_train(
                xv,
                batchnorm::CpuBn { rows, cols, gamma: g, beta: b, act: relu },
                (&mut rm, &mut rv),
            )
        };
        let out = fwd(&x, &gamma, &beta);
        let (dx, dgamma, dbeta, dbias) = batchnorm::cpu_backward(
            &w,
            (&out.y, &out.xhat),
            &out.invstd,
            batchnorm::CpuBn { rows, cols, gamma: &gamma, beta: &beta, act: relu },
        );
        let what = format!("batchnorm {}", relu.name());
        check(&format!("{what} dx"), &x, &dx, &|xv| weighted(&w, &fwd(xv, &gamma, &beta).y));
        check(&format!("{what} dgamma"), &gamma, &dgamma, &|g| weighted(&w, &fwd(&x, g, &beta).y));
        check(&format!("{what} dbeta"), &beta, &dbeta, &|b| weighted(&w, &fwd(&x, &gamma, b).y));
        // A bias before the batch norm shifts a whole column: its gradient is
        // the column sum of dx (zero up to rounding).
        let shift = |bias: &[f32]| {
            let xs: Vec<f32> = x.iter().enumerate().map(|(i, &v)| v + bias[i % cols]).collect();
            weighted(&w, &fwd(&xs, &gamma, &beta).y)
        };
        check(&format!("{what} dbias"), &vec![0.0; cols], &dbias, &shift);
    }
}

#[test]
fn bce_gradient_matches_finite_differences() {
    let mut r = rng(3);
    let p = uniform_vec(&mut r, 9, 0.1, 0.9);
    for n_zero in [0, 4, 9] {
        let (_, dprob, _, _) = bce::cpu_forward_backward(&p, n_zero);
        check(&format!("bce n_zero={n_zero}"), &p, &dprob, &|pv| bce::cpu_forward_backward(pv, n_zero).0 as f64);
    }
}

/// Away from its kinks (|s| = 1, where it has no derivative) the hinge loss's
/// gradient is the finite difference's, for D's two segments and for G.
#[test]
fn hinge_gradient_matches_finite_differences() {
    let mut r = rng(5);
    let s: Vec<f32> = uniform_vec(&mut r, 11, -2.5, 2.5)
        .into_iter()
        .map(|v| if (v.abs() - 1.0).abs() < 0.05 { v + 0.1 } else { v })
        .collect();
    for (side, n_zero) in [
        (HingeSide::Discriminator, 0),
        (HingeSide::Discriminator, 5),
        (HingeSide::Discriminator, 11),
        (HingeSide::Generator, 0),
        (HingeSide::Critic, 0),
        (HingeSide::Critic, 5),
        (HingeSide::Critic, 11),
    ] {
        let (_, ds, _, _) = hinge::cpu_forward_backward(&s, side, n_zero);
        check(&format!("hinge {side:?} n_zero={n_zero}"), &s, &ds, &|sv| {
            hinge::cpu_forward_backward(sv, side, n_zero).0 as f64
        });
    }
}

#[test]
fn dense_layer_gradients_match_finite_differences() {
    // y = x W^T; with upstream w: dX = w W (NN form), dW = w^T x (TN form).
    let (batch, inp, out) = (4, 5, 3);
    let mut r = rng(4);
    let x = uniform_vec(&mut r, batch * inp, -1.0, 1.0);
    let wt = uniform_vec(&mut r, out * inp, -1.0, 1.0);
    let up = uniform_vec(&mut r, batch * out, -1.0, 1.0);
    let fwd = |xv: &[f32], wv: &[f32]| matmul::cpu_matmul(matmul::Form::NT, xv, wv, batch, out, inp);
    let dx = matmul::cpu_matmul(matmul::Form::NN, &up, &wt, batch, inp, out);
    let dw = matmul::cpu_matmul(matmul::Form::TN, &up, &x, out, inp, batch);
    check("dense dX", &x, &dx, &|xv| weighted(&up, &fwd(xv, &wt)));
    check("dense dW", &wt, &dw, &|wv| weighted(&up, &fwd(&x, wv)));
}

#[test]
fn softmax_cross_entropy_gradient_matches_finite_differences() {
    let (rows, classes) = (5, 7);
    let mut r = rng(6);
    let z = uniform_vec(&mut r, rows * classes, -3.0, 3.0);
    let labels: Vec<u8> = vec![0, 6, 3, 3, 1];
    let (_, dz, _) = softmax_ce::cpu_softmax_ce(&z, &labels, rows, classes);
    check("softmax_ce", &z, &dz, &|zv| softmax_ce::cpu_softmax_ce(zv, &labels, rows, classes).0 as f64);
}

/// Critic parameters and inputs in [-1, 1) (from the first of seeds 34,
/// 35, ... that gives them) whose hidden pre-activations all lie more than
/// 0.011 from the activations' kink at 0: a difference step of 1e-2 on one
/// weight moves a pre-activation by less than that (inputs and hidden
/// outputs are below 1), so no gate flips between the two evaluations of a
/// central difference.
fn away_from_kinks(spec: &gan_wgpu::nn::spec::NetSpec, rows: usize) -> (Vec<f32>, Vec<f32>) {
    use gan_wgpu::nn::cpu_reference::CpuNet;
    for seed in 34..2034 {
        let mut r = rng(seed);
        let params = spec.init_params(&mut r);
        let x = uniform_vec(&mut r, rows * spec.input_dim(), -1.0, 1.0);
        // Layer i's pre-activation: the critic cut after layer i, without
        // its activation (the layout is the full one's prefix).
        let clear = (0..spec.layers.len() - 1).all(|i| {
            let mut cut = spec.clone();
            cut.layers.truncate(i + 1);
            cut.layers[i].act = Act::Identity;
            let n = cut.layout().len;
            let z = CpuNet::new(cut, params[..n].to_vec()).forward(&x, rows, false).pop().unwrap().out;
            z.iter().all(|v| v.abs() > 0.011)
        });
        if clear {
            return (params, x);
        }
    }
    panic!("{}: no seed in 34..2034 keeps the pre-activations away from 0", spec.name);
}

/// WGAN-GP's penalty P(W) = lambda mean_r (||grad_x D(x_hat_r)|| - 1)^2:
/// its gradient w.r.t. every critic parameter (the double backward of
/// nn::penalty, in plain loops) against central differences of P, on a
/// dense and a convolutional critic of odd widths with each hidden activation. The biases' gradient
/// is 0 (P sees them only through phi', constant between kinks) and the
/// differences agree.
#[test]
fn gradient_penalty_weight_gradients_match_finite_differences() {
    use gan_wgpu::nn::penalty;
    let critics = [Act::LeakyRelu, Act::Relu, Act::Identity]
        .into_iter()
        .flat_map(|hidden| [common::odd_critic(&[7, 5, 3, 1], hidden), common::odd_conv_critic(hidden)]);
    for spec in critics {
        let hidden = spec.layers[0].act;
        let rows = 2;
        let (params, x_hat) = away_from_kinks(&spec, rows);
        let lambda = 10.0;
        let got = penalty::cpu_penalty(&spec, &params, &x_hat, rows, lambda);
        assert!(got.penalty > 0.0 && got.grads.iter().any(|&g| g.abs() > 1e-3), "{hidden:?}: a penalty to check");
        let what = format!("gradient penalty, {} critic, first layer {:?}", hidden.name(), spec.layers[0].kind);
        check(&what, &params, &got.grads, &|p| penalty::cpu_penalty_value(&spec, p, &x_hat, rows, lambda));
    }
}
