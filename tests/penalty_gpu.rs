//! WGAN-GP's gradient penalty on the GPU (`nn::penalty`'s phases) against
//! its CPU reference on critics of odd widths, outputs filled with NaN
//! first. The CPU reference's weight gradients are tied to finite
//! differences in gradcheck.rs; the whole WGAN-GP step is checked phase by
//! phase in step_gpu.rs.

mod common;
use common::{assert_close, ctx, odd_conv_critic, odd_critic, rng, uniform_vec};
use gan_wgpu::engine::kernels::adam::AdamConfig;
use gan_wgpu::engine::kernels::bias_act::Act;
use gan_wgpu::engine::kernels::gradient_penalty as gp;
use gan_wgpu::engine::kernels::matmul::Variant;
use gan_wgpu::engine::kernels::{self, Dispatch};
use gan_wgpu::nn::gpu_net::GpuNet;
use gan_wgpu::nn::penalty::{self, Penalty};
use gan_wgpu::GpuTensor;

#[test]
fn the_penalty_and_its_weight_gradients_match_the_cpu_reference_on_odd_shapes() {
    let Some(ctx) = ctx() else { return };
    let critics = [
        (odd_critic(&[45, 13, 7, 1], Act::LeakyRelu), 5),
        (odd_critic(&[33, 17, 1], Act::Relu), 3),
        (odd_conv_critic(Act::LeakyRelu), 5),
    ];
    for (spec, rows) in critics {
        let dim = spec.input_dim();
        let what = format!("critic {:?}, {rows} rows", spec.layers.iter().map(|l| (l.kind, l.out)).collect::<Vec<_>>());
        let mut r = rng(rows as u64);
        let params = spec.init_params(&mut r);
        let steps_done = 3;
        let counters = GpuTensor::from_u32(ctx, &[4], "counters", &[steps_done, 0, 0, 0]).unwrap();
        let net = GpuNet::new(ctx, spec.clone(), &params, &counters, AdamConfig::default()).unwrap();
        let lambda = 10.0;
        let p = Penalty::alloc(ctx, &net, rows, lambda).unwrap();
        for t in [&p.x_hat, &p.eps, &p.g, &p.norms] {
            t.fill_nan(ctx).unwrap();
        }
        // The biases' penalty gradient is never written: 0 from the start.
        for l in &spec.layers {
            net.view_of(&p.grads, &format!("{}.weight", l.name)).unwrap().fill_nan(ctx).unwrap();
        }
        let loss_grads = uniform_vec(&mut r, net.layout.len, -0.1, 0.1);
        net.grads.write_f32(ctx, &loss_grads).unwrap();
        let d_input = uniform_vec(&mut r, 2 * rows * dim, -1.0, 1.0);
        let d_in = GpuTensor::from_f32(ctx, &[2 * rows, dim], "d_input", &d_input).unwrap();
        let metrics = GpuTensor::from_f32(ctx, &[8], "metrics", &[0.25; 8]).unwrap();
        let seed = 77;
        let phases = p.phases(ctx, &net, (&d_in, seed), (&metrics, &counters), Variant::for_adapter(ctx)).unwrap();
        let all: Vec<&Dispatch> = phases.iter().flat_map(|(_, d)| d).collect();
        kernels::run(ctx, &all).unwrap();

        let eps = gp::cpu_eps(rows, seed, steps_done);
        assert_eq!(p.eps.read_f32(ctx).unwrap(), eps, "{what}: eps");
        let x_hat = gp::cpu_mix(&d_input, &eps, dim);
        assert_close(&format!("{what} x_hat"), &p.x_hat.read_f32(ctx).unwrap(), &x_hat, 1e-6, 1e-6);
        let cpu = penalty::cpu_penalty(&spec, &params, &x_hat, rows, lambda);
        assert!(cpu.penalty > 0.1 && cpu.grads.iter().any(|g| g.abs() > 1e-3), "{what}: a penalty to compare");
        // f32 sums over at most 45 terms per matmul, on both sides of the GPU.
        assert_close(&format!("{what} norms"), &p.norms.read_f32(ctx).unwrap(), &cpu.norms, 1e-6, 1e-5);
        let m = metrics.read_f32(ctx).unwrap();
        let want = [0.25 + cpu.penalty, cpu.penalty, cpu.mean_norm];
        assert_close(&format!("{what} loss_d, penalty, mean norm"), &[m[0], m[6], m[7]], &want, 1e-5, 1e-5);
        assert_close(&format!("{what} penalty gradients"), &p.grads.read_f32(ctx).unwrap(), &cpu.grads, 1e-5, 1e-4);
        let sum: Vec<f32> = loss_grads.iter().zip(&cpu.grads).map(|(a, b)| a + b).collect();
        assert_close(&format!("{what} loss + penalty gradients"), &net.grads.read_f32(ctx).unwrap(), &sum, 1e-5, 1e-4);
    }
}

/// Critics the double backward is not written for are refused in one line
/// naming the layer and what it has; dcgan's critic is D without its batch
/// norm, and cgan's label embedding is refused with the flag named.
#[test]
fn critics_with_batch_norm_or_an_embedding_are_refused() {
    use gan_wgpu::models::WhichModel;
    let mut spec = odd_critic(&[9, 5, 1], Act::LeakyRelu);
    spec.layers[0].bn = Some("model.1".into());
    let err = penalty::check_critic(&spec).unwrap_err().to_string();
    assert!(err.contains("model.0 has batch norm") && err.contains("without batch norm"), "{err}");
    let cfg =
        |model| gan_wgpu::train::GanConfig { model, loss: gan_wgpu::nn::loss::Loss::WganGp, ..Default::default() };
    let shape = gan_wgpu::nn::spec::ImageShape::grey(28, 28);
    let dcgan = cfg(WhichModel::Dcgan).architecture(shape).unwrap();
    assert!(dcgan.discriminator.layers.iter().all(|l| l.bn.is_none()), "dcgan's critic keeps no batch norm");
    let err = cfg(WhichModel::Cgan).architecture(shape).unwrap_err().to_string();
    assert!(err.contains("--loss") && err.contains("a label embedding"), "{err}");
}

/// The critic's whole WGAN-GP loss on the GPU (its Wasserstein part, the
/// penalty with eps drawn by the engine, and the weight gradients of both)
/// against PyTorch's autograd (`torch.autograd.grad(create_graph=True)`),
/// stored by scripts/make-gp-fixture.py: a 49-23-11-1 LeakyReLU critic on 6
/// real and 6 fake rows.
#[test]
fn the_dense_critic_loss_and_its_weight_gradients_match_pytorch_autograd() {
    matches_pytorch_fixture("wgan_gp_dense", &odd_critic(&[49, 23, 11, 1], Act::LeakyRelu));
}

/// The same for a convolutional critic (tests/common's odd_conv_critic) on
/// 5 real and 5 fake 7x7 images of 2 channels.
#[test]
fn the_conv_critic_loss_and_its_weight_gradients_match_pytorch_autograd() {
    matches_pytorch_fixture("wgan_gp_conv", &odd_conv_critic(Act::LeakyRelu));
}

fn matches_pytorch_fixture(name: &str, spec: &gan_wgpu::nn::spec::NetSpec) {
    use gan_wgpu::io::checkpoint::Loaded;
    use gan_wgpu::nn::gpu_net::{self, Activations, Backward};
    let Some(ctx) = ctx() else { return };
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/{name}.safetensors"));
    let file = Loaded::open(&path).unwrap();
    let meta = file.metadata().unwrap();
    let number = |k: &str| meta[k].parse::<f64>().unwrap();
    let (seed, steps_done, lambda) = (number("seed") as u64, number("steps_done") as u32, number("gp_weight") as f32);
    // Every tensor as stored (the script writes the engine's layouts).
    let tensor = |name: &str| file.f32(name, &file.shape_of(name).unwrap()).unwrap();
    let (rows, dim) = (tensor("eps").len(), spec.input_dim());
    let layout = spec.layout();
    let (mut params, mut want_grads) = (vec![0.0; layout.len], vec![0.0; layout.len]);
    for (name, shape, off) in &layout.entries {
        let n: usize = shape.iter().product();
        params[*off..off + n].copy_from_slice(&tensor(name));
        want_grads[*off..off + n].copy_from_slice(&tensor(&format!("grad.{name}")));
    }
    let d_input = [tensor("fake"), tensor("real")].concat();
    assert_eq!(d_input.len(), 2 * rows * dim, "{name}: the fixture's images fit the critic");

    let counters = GpuTensor::from_u32(ctx, &[4], "counters", &[steps_done, 0, 0, 0]).unwrap();
    let net = GpuNet::new(ctx, spec.clone(), &params, &counters, AdamConfig::default()).unwrap();
    let d_in = GpuTensor::from_f32(ctx, &[2 * rows, dim], "[fake; real]", &d_input).unwrap();
    let (acts, d_acts) = (
        Activations::alloc(ctx, spec, 2 * rows, "critic", None).unwrap(),
        Activations::alloc(ctx, spec, 2 * rows, "critic_grad", None).unwrap(),
    );
    let dscore = GpuTensor::zeros(ctx, &[2 * rows, 1], "dscore");
    let metrics = GpuTensor::zeros(ctx, &[8], "metrics");
    metrics.fill_nan(ctx).unwrap();
    net.grads.fill_nan(ctx).unwrap();
    let variant = Variant::for_adapter(ctx);
    let score = &acts.layers.last().unwrap().out;
    let mut step = gpu_net::forward(ctx, &net, &d_in, &acts, true, variant).unwrap();
    step.extend(gan_wgpu::nn::loss::Loss::WganGp.d_step(ctx, (score, &dscore), rows, &metrics, &counters).unwrap());
    step.extend(Backward::new(&net, (&d_in, &acts), (&dscore, &d_acts), variant).dispatches(ctx).unwrap());
    let p = Penalty::alloc(ctx, &net, rows, lambda).unwrap();
    for (_, dispatches) in p.phases(ctx, &net, (&d_in, seed), (&metrics, &counters), variant).unwrap() {
        step.extend(dispatches);
    }
    kernels::run(ctx, &step.iter().collect::<Vec<_>>()).unwrap();

    assert_eq!(p.eps.read_f32(ctx).unwrap(), tensor("eps"), "{name}: eps, the engine's draw as the script computes it");
    assert_close(&format!("{name} x_hat"), &p.x_hat.read_f32(ctx).unwrap(), &tensor("x_hat"), 1e-6, 1e-6);
    let m = metrics.read_f32(ctx).unwrap();
    let want = [tensor("critic_loss")[0], tensor("penalty")[0], tensor("mean_norm")[0]];
    assert_close(&format!("{name} critic loss, penalty, mean norm"), &[m[0], m[6], m[7]], &want, 1e-5, 1e-5);
    // f32 on both sides, sums of at most 49 terms: a few ulp of the largest.
    // Each tensor apart: the layout pads each to 256 bytes.
    let grads = net.grads.read_f32(ctx).unwrap();
    for (t, shape, off) in &layout.entries {
        let range = *off..off + shape.iter().product::<usize>();
        assert_close(&format!("{name} {t} gradient"), &grads[range.clone()], &want_grads[range], 1e-5, 1e-4);
    }
}
