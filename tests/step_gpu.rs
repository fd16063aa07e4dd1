//! The training step on the GPU against the CPU reference, phase by phase.
//!
//! Each phase of the step (latent codes and batch, G forward, D forward,
//! loss, D backward, Adam, ...) runs on its own and is checked against the
//! CPU reference fed the GPU's own inputs to that phase: the GPU's z, its
//! G(z), its activations and gradients. So every comparison measures one
//! phase's arithmetic, and a ReLU or LeakyReLU gate whose input is within
//! rounding of 0 is decided the same way on both sides (the backward reads
//! the GPU's activations). Comparing whole steps instead made the
//! comparison depend on such gates: a different summation order (say, tree
//! against column reductions) could flip one and move a deep gradient by 7%.
//! Then the same three steps, recorded whole in one submission each on a
//! second GAN, give bit-identical parameters: the phases are the step.
//! Both models: the conditional GAN's labels (drawn and gathered), its
//! embedding joins and its table gradients are checked the same way.

mod common;
use common::{assert_close, ctx, random_set, rng};
use gan_wgpu::engine::kernels::adam::AdamConfig;
use gan_wgpu::engine::kernels::dropout::{self, DropoutDraw};
use gan_wgpu::engine::kernels::matmul::Variant;
use gan_wgpu::engine::kernels::{self, conv, ema, embedding, gather, rng as krng, Dispatch};
use gan_wgpu::models::WhichModel;
use gan_wgpu::nn::conv_layer;
use gan_wgpu::nn::cpu_reference::CpuNet;
use gan_wgpu::nn::cpu_reference::LayerCache;
use gan_wgpu::nn::gpu_net::{Activations, GpuNet};
use gan_wgpu::nn::loss::Loss;
use gan_wgpu::nn::spec::ImageShape;
use gan_wgpu::nn::spec::LayerKind;
use gan_wgpu::train::{Gan, GanConfig};
use gan_wgpu::{GpuContext, GpuTensor};

fn read(ctx: &GpuContext, t: &GpuTensor) -> Vec<f32> {
    t.read_f32(ctx).unwrap()
}

/// The largest magnitude in `v` (a tensor's scale), at least `floor`.
fn scale(v: &[f32], floor: f32) -> f32 {
    v.iter().fold(floor, |m, x| m.max(x.abs()))
}

/// Asserts gpu ~ cpu to `rel` of the tensor's scale, plus `rel` relative.
fn close(what: &str, gpu: &[f32], cpu: &[f32], rel: f32) {
    assert_close(what, gpu, cpu, rel * scale(cpu, 1e-6), rel);
}

/// The CPU reference's per-layer cache built from the GPU's buffers: the
/// layer inputs, a convolution's columns, xhat and invstd (of each of
/// `groups` row groups) of batch-norm layers, and the outputs, of the first
/// `rows` samples.
fn gpu_caches(
    ctx: &GpuContext,
    net: &GpuNet,
    acts: &Activations,
    input: &[f32],
    labels: &[u32],
    rows: usize,
    groups: usize,
) -> Vec<LayerCache> {
    let mut caches = Vec::new();
    let mut x = input.to_vec();
    if let Some(e) = &net.spec.embedding {
        let table = read(ctx, &net.param(&format!("{}.weight", e.name)).unwrap());
        x = embedding::cpu_join(input, net.spec.input_dim(), &table, e.dim, &labels[..rows]);
        let joined = acts.joined.as_ref().unwrap();
        let width = joined.shape[1];
        let padded = embedding::cpu_pad_columns(&x, net.spec.layers[0].inp, width);
        let gpu = read(ctx, joined)[..rows * width].to_vec();
        assert_eq!(gpu, padded, "{}: the joined input is [x | table[label] | 0]", net.spec.name);
    }
    for (i, l) in net.spec.layers.iter().enumerate() {
        let cut = |t: &GpuTensor| read(ctx, t)[..rows * l.out_positions() * l.out].to_vec();
        let out = cut(&acts.layers[i].out);
        let (xhat, invstd) = match (&acts.layers[i].pre, &net.bn[i]) {
            (Some(pre), Some(bn)) => (cut(pre), bn.invstd[..groups].iter().flat_map(|t| read(ctx, t)).collect()),
            _ => (Vec::new(), Vec::new()),
        };
        // A Conv2d's columns: the GPU's; for a kernel covering the whole
        // image (no column buffer) the input itself; for an implicit-GEMM
        // forward whose pass needs no weight gradient (no buffer either),
        // the CPU's im2col.
        let cols = match (&acts.layers[i].cols, l.kind, l.geometry(rows)) {
            (Some(c), LayerKind::Conv { .. }, _) => read(ctx, c)[..rows * l.out_positions() * c.shape[1]].to_vec(),
            (None, LayerKind::Conv { .. }, Some(g)) if g.is_whole() => x.clone(),
            (None, LayerKind::Conv { .. }, Some(g)) => {
                assert!(conv_layer::uses_implicit_gemm(ctx, Variant::for_adapter(ctx), &g), "{}: no columns", l.name);
                conv::cpu_im2col(&x, &g)
            }
            _ => Vec::new(),
        };
        let labels = if i == 0 && net.spec.embedding.is_some() { labels[..rows].to_vec() } else { Vec::new() };
        caches.push(LayerCache { input: x, labels, cols, xhat, invstd, out: out.clone(), mask: Vec::new() });
        x = out;
    }
    caches
}

/// Compares each layer's output of a CPU forward with the GPU's: a dropout
/// layer's dropped outputs are exactly 0 on both. The GPU caches take the
/// CPU's dropout masks (for the backward), which the outputs just checked.
fn check_forward(what: &str, gpu: &mut [LayerCache], cpu: &[LayerCache]) {
    for (i, (g, c)) in gpu.iter_mut().zip(cpu).enumerate() {
        if !c.mask.is_empty() {
            let dropped = c.mask.iter().zip(&g.out).filter(|(m, _)| **m == 0.0);
            assert!(dropped.clone().all(|(_, y)| *y == 0.0), "{what} layer {i}: a dropped output is not 0");
            assert!(dropped.count() > 0, "{what} layer {i}: dropout dropped nothing");
            g.mask = c.mask.clone();
        }
        // Products over up to 1024 terms in f32 against f64 sums, then batch
        // norm (which divides by a standard deviation): 1e-4 of the scale.
        close(&format!("{what} layer {i} output"), &g.out, &c.out, 1e-4);
        if !c.xhat.is_empty() {
            close(&format!("{what} layer {i} xhat"), &g.xhat, &c.xhat, 1e-4);
            close(&format!("{what} layer {i} invstd"), &g.invstd, &c.invstd, 1e-4);
        }
    }
}

/// Compares a flat gradient tensor by tensor, to 1e-4 of each tensor's
/// scale: the backward of one network from identical inputs and gates (sums
/// over at most 2B = 128 rows; batch norm's backward subtracts means, so the
/// scale, not each element, sets the yardstick). A dense layer's bias in
/// front of a batch norm has a true gradient of 0: both sides must be at
/// rounding level of the layer's weight gradient.
fn check_grads(what: &str, net: &GpuNet, gpu: &[f32], cpu: &[f32]) {
    for (name, shape, off) in &net.layout.entries {
        let range = *off..off + shape.iter().product::<usize>();
        let before_bn = net.spec.layers.iter().any(|l| l.bn.is_some() && *name == format!("{}.bias", l.name));
        let what = format!("{what} {}.{name} gradient", net.spec.name);
        if before_bn {
            let weight = net.layout.find(&name.replace(".bias", ".weight")).unwrap();
            let w_range = weight.2..weight.2 + weight.1.iter().product::<usize>();
            let tiny = 1e-5 * scale(&cpu[w_range], 1e-6);
            assert_close(&what, &gpu[range.clone()], &vec![0.0; range.len()], tiny, 0.0);
            assert_close(&format!("{what} (cpu)"), &cpu[range.clone()], &vec![0.0; range.len()], tiny, 0.0);
        } else {
            close(&what, &gpu[range.clone()], &cpu[range], 1e-4);
        }
    }
}

/// One Adam phase: the CPU update from the GPU's gradients and its state
/// before the phase, against the GPU's state after it (tolerances of the
/// Adam kernel test).
fn check_adam(ctx: &GpuContext, what: &str, net: &GpuNet, cpu: &mut CpuNet, adam: AdamConfig, t: u32) {
    cpu.adam_step(adam, t, &read(ctx, &net.grads));
    assert_close(&format!("{what} params"), &read(ctx, &net.params), &cpu.params, 1e-6, 1e-5);
    assert_close(&format!("{what} m"), &read(ctx, &net.m), &cpu.m, 1e-7, 1e-5);
    assert_close(&format!("{what} v"), &read(ctx, &net.v), &cpu.v, 1e-9, 1e-5);
}

/// The batch-norm running statistics of the GPU network against the CPU's.
fn check_running_stats(ctx: &GpuContext, what: &str, net: &GpuNet, cpu: &CpuNet) {
    for (i, (gpu, cpu)) in net.read_bn(ctx, 0).unwrap().iter().zip(&cpu.bn).enumerate() {
        if let (Some(a), Some(b)) = (gpu, cpu) {
            assert_close(&format!("{what} bn{i} running_mean"), &a.running_mean, &b.running_mean, 1e-5, 1e-4);
            assert_close(&format!("{what} bn{i} running_var"), &a.running_var, &b.running_var, 1e-5, 1e-4);
        }
    }
}

/// The CPU network set to the GPU's parameters and Adam moments.
fn sync(ctx: &GpuContext, net: &GpuNet, cpu: &mut CpuNet) {
    cpu.params = read(ctx, &net.params);
    cpu.m = read(ctx, &net.m);
    cpu.v = read(ctx, &net.v);
}

#[test]
fn three_gpu_steps_match_the_cpu_reference_phase_by_phase() {
    three_steps_phase_by_phase(WhichModel::Gan, Loss::Bce, 1);
}

#[test]
fn three_conditional_gpu_steps_match_the_cpu_reference_phase_by_phase() {
    three_steps_phase_by_phase(WhichModel::Cgan, Loss::Bce, 1);
}

/// The hinge loss on D's raw score (D without its sigmoid).
#[test]
fn three_hinge_gpu_steps_match_the_cpu_reference_phase_by_phase() {
    three_steps_phase_by_phase(WhichModel::Gan, Loss::Hinge, 1);
}

#[test]
fn three_hinge_dcgan_gpu_steps_match_the_cpu_reference_phase_by_phase() {
    three_steps_phase_by_phase(WhichModel::Dcgan, Loss::Hinge, 1);
}

/// Two D steps a G step: steps 1 and 3 train D alone, step 2 both; G's Adam
/// and its average count G's updates (t = 1 at step 2).
#[test]
fn two_critic_steps_a_generator_step_match_the_cpu_reference_phase_by_phase() {
    three_steps_phase_by_phase(WhichModel::Cgan, Loss::Hinge, 2);
}

/// DCGAN (width 8: the CPU reference's convolutions stay quick): the
/// convolutions, BatchNorm2d in G, and D's batch norm on the fake and real
/// halves apart.
#[test]
fn three_dcgan_gpu_steps_match_the_cpu_reference_phase_by_phase() {
    three_steps_phase_by_phase(WhichModel::Dcgan, Loss::Bce, 1);
}

/// examples/dcgan's 64x64 pyramid in colour (width 4, batch 8: the CPU
/// reference's convolutions stay quick): five layers each way, three
/// channels in and out, D's last 4x4 kernel over the whole 4x4 grid.
#[test]
fn three_dcgan_64_rgb_gpu_steps_match_the_cpu_reference_phase_by_phase() {
    three_steps_on(WhichModel::Dcgan, (Loss::Bce, 1), ImageShape { height: 64, width: 64, channels: 3 }, 8);
}

/// The 32x32 pyramid in colour (four layers each way).
#[test]
fn three_dcgan_32_rgb_gpu_steps_match_the_cpu_reference_phase_by_phase() {
    three_steps_on(WhichModel::Dcgan, (Loss::Bce, 1), ImageShape { height: 32, width: 32, channels: 3 }, 16);
}

/// WGAN-GP: the critic's loss, the gradient penalty's phases (eps, x_hat,
/// norms, the penalty and its weight gradients added to the loss's) and
/// G's step every second step.
#[test]
fn three_wgan_gp_gpu_steps_match_the_cpu_reference_phase_by_phase() {
    three_steps_phase_by_phase(WhichModel::Gan, Loss::WganGp, 2);
}

/// WGAN-GP with dcgan's critic (D's convolutions without batch norm): the
/// double backward through the convolutions.
#[test]
fn three_dcgan_wgan_gp_gpu_steps_match_the_cpu_reference_phase_by_phase() {
    three_steps_phase_by_phase(WhichModel::Dcgan, Loss::WganGp, 2);
}

const PENALTY_PHASES: [&str; 6] =
    ["GP interpolates", "GP D forward (x_hat)", "GP D backward to x_hat", "GP norms", "GP double backward", "GP add"];

/// After the penalty's phases of 1-based `step`: its draws and interpolates
/// against the CPU's, then (from the GPU's x_hat) the norms, the penalty in
/// the metrics and loss_d, and D's gradients = the loss's (`loss_grads`) +
/// the penalty's.
fn check_penalty(
    ctx: &GpuContext,
    (what, step): (&str, u32),
    gan: &Gan,
    (p, d): (&gan_wgpu::nn::penalty::Penalty, &CpuNet),
    (d_in, loss_grads, loss_d): (&[f32], &[f32], f32),
) {
    use gan_wgpu::engine::kernels::gradient_penalty as gp;
    let (batch, dim) = (gan.cfg.batch, gan.dim);
    let eps = gp::cpu_eps(batch, gan.cfg.seed, step - 1);
    assert_eq!(read(ctx, &p.eps), eps, "{what}: eps");
    let x_hat = read(ctx, &p.x_hat);
    assert_close(&format!("{what} x_hat"), &x_hat, &gp::cpu_mix(d_in, &eps, dim), 1e-6, 1e-6);
    let cpu = gan_wgpu::nn::penalty::cpu_penalty(&d.spec, &d.params, &x_hat, batch, gan.cfg.gp_weight);
    close(&format!("{what} gradient norms"), &read(ctx, &p.norms), &cpu.norms, 1e-4);
    let m = read(ctx, &gan.metrics);
    let at = gan_wgpu::nn::penalty::METRICS_AT;
    assert_close(&format!("{what} penalty, mean norm"), &m[at..at + 2], &[cpu.penalty, cpu.mean_norm], 1e-5, 1e-4);
    assert_close(&format!("{what} loss_d with the penalty"), &[m[0]], &[loss_d + cpu.penalty], 1e-5, 1e-4);
    close(&format!("{what} penalty gradients"), &read(ctx, &p.grads), &cpu.grads, 1e-4);
    let want: Vec<f32> = loss_grads.iter().zip(&cpu.grads).map(|(a, b)| a + b).collect();
    check_grads(&format!("{what} (loss + penalty)"), &gan.d, &read(ctx, &gan.d.grads), &want);
}

fn three_steps_phase_by_phase(model: WhichModel, loss: Loss, n_critic: usize) {
    three_steps_on(model, (loss, n_critic), ImageShape::grey(28, 28), 64);
}

fn three_steps_on(model: WhichModel, (loss, n_critic): (Loss, usize), shape: ImageShape, batch: usize) {
    let Some(ctx) = ctx() else { return };
    let mut set = random_set(3 * batch, shape.height, shape.width * shape.channels, 7);
    (set.width, set.channels) = (shape.width, shape.channels);
    let labels: Vec<u8> = (0..set.count).map(|i| ((i * 7 + 3) % 10) as u8).collect();
    set.labels = Some(labels.clone());
    let dim = set.dim();
    let cfg = GanConfig {
        batch,
        seed: 42,
        model,
        dcgan_width: if shape.height > 28 { 4 } else { 8 },
        ema_decay: 0.9,
        loss,
        n_critic,
        ..GanConfig::default()
    };
    let mut init = rng(1);
    let arch = cfg.architecture(set.shape()).unwrap();
    let (g_spec, d_spec) = (arch.generator, arch.discriminator);
    let (gp, dp) = (g_spec.init_params(&mut init), d_spec.init_params(&mut init));
    let gan = Gan::new(ctx, cfg, &set, &gp, &dp).unwrap();
    let mut g = CpuNet::new(g_spec, gp.clone());
    let mut d = CpuNet::new(d_spec, dp.clone());
    gan.start_epoch(ctx, 0, 0, 0).unwrap();
    let names: Vec<&str> = gan.phases.iter().map(|(n, _)| *n).collect();
    let penalty_phases: &[&str] = match loss.has_gradient_penalty() {
        true => &PENALTY_PHASES,
        false => &[],
    };
    let want_names = [
        &["latent + batch", "G forward", "D forward (2B)", "loss D", "D backward"][..],
        penalty_phases,
        &["Adam D", "D forward (B)", "loss G", "D backward to G(z)", "G backward", "Adam G", "G average", "counters"],
    ]
    .concat();
    assert_eq!(names, want_names);
    let next = std::cell::Cell::new(0usize);
    let run_phase = |name: &str| {
        assert_eq!(names.get(next.get()), Some(&name), "phases run in the step's order");
        next.set(next.get() + 1);
        let range = gan.phases.iter().find(|(n, _)| *n == name).unwrap().1.clone();
        let refs: Vec<&Dispatch> = gan.dispatches()[range].iter().collect();
        kernels::run(ctx, &refs).unwrap();
    };
    let perm = Gan::permutation(cfg.seed, 0, set.count);
    // The CPU side of the generator's average: parameters and statistics.
    let mut avg_params = gp.clone();
    let mut avg_bn = g.bn.clone();
    // The labels a conditional network's CPU forward joins (none for gan).
    let cond = |l: &[u32]| -> Option<Vec<u32>> { model.is_conditional().then(|| l.to_vec()) };
    for step in 1..=3u32 {
        let what = format!("step {step}");
        next.set(0);

        run_phase("latent + batch");
        let z = read(ctx, &gan.z);
        let want_z =
            krng::cpu_normal(batch * cfg.latent, krng::RngStream { seed: cfg.seed, stream: 0, draw_base: 0 }, step - 1);
        // The rng test holds each number to its WGSL bound; here: these are
        // the step's codes (at most 5.77 * 2^-11 + 2^-10 < 4e-3 apart).
        assert_close(&format!("{what} z"), &z, &want_z, 4e-3, 0.0);
        let d_in = read(ctx, &gan.d_input);
        let real = gather::cpu_gather(&set.pixels, dim, &perm, step as usize - 1, batch);
        // WGSL allows the division in (pixel - 127.5) / 127.5 2.5 ULP.
        assert_close(&format!("{what} real batch"), &d_in[batch * dim..], &real, 0.0, 3e-7);
        let step_labels: Vec<u32> = match &gan.d_labels {
            Some(l) => {
                let stream =
                    krng::RngStream { seed: cfg.seed, stream: gan_wgpu::train::FAKE_LABEL_STREAM, draw_base: 0 };
                let mut want = krng::cpu_labels(batch, 10, stream, step - 1);
                want.extend(gather::cpu_gather_labels(&labels, &perm, step as usize - 1, batch));
                let got = l.read_u32(ctx).unwrap();
                assert_eq!(got, want, "{what}: [fake; real] labels");
                got
            }
            None => vec![0; 2 * batch],
        };

        run_phase("G forward");
        let g_cpu = g.forward_labeled(&z, cond(&step_labels[..batch]).as_deref(), batch, true);
        let mut g_gpu = gpu_caches(ctx, &gan.g, &gan.g_acts, &z, &step_labels, batch, 1);
        check_forward(&format!("{what} G forward"), &mut g_gpu, &g_cpu);
        check_running_stats(ctx, &format!("{what} G"), &gan.g, &g);
        // G's output is the fake half of D's input.
        let d_in = read(ctx, &gan.d_input);
        assert_eq!(&d_in[..batch * dim], &g_gpu.last().unwrap().out[..], "{what}: G(z) lands in D's input");

        run_phase("D forward (2B)");
        // D's dropout masks (cgan): each pass its own, drawn at the steps done.
        let masks = |stream| Some((DropoutDraw { seed: cfg.seed, stream }, step - 1));
        let d_cpu =
            d.forward_grouped(&d_in, cond(&step_labels).as_deref(), 2 * batch, true, 2, masks(dropout::D_STEP_STREAM));
        let mut d_gpu = gpu_caches(ctx, &gan.d, &gan.d_acts, &d_in, &step_labels, 2 * batch, 2);
        check_forward(&format!("{what} D forward on [G(z); x]"), &mut d_gpu, &d_cpu);
        check_running_stats(ctx, &format!("{what} D"), &gan.d, &d);

        run_phase("loss D");
        let prob = &d_gpu.last().unwrap().out;
        let (loss_d, dprob, d_real, d_fake) = loss.cpu_d_step(prob, batch);
        let m = gan.read_metrics(ctx).unwrap();
        assert_close(&format!("{what} loss_d"), &[m.loss_d], &[loss_d], 1e-5, 1e-5);
        assert_close(&format!("{what} D(x)"), &[m.d_real], &[d_real], 1e-6, 1e-5);
        assert_close(&format!("{what} D(G(z))"), &[m.d_fake], &[d_fake], 1e-6, 1e-5);
        let dprob_gpu = read(ctx, &gan.d_prob_grad);
        assert_close(&format!("{what} dloss_d/dp"), &dprob_gpu, &dprob, 1e-6, 1e-5);

        run_phase("D backward");
        let (d_grads, _) = d.backward_grouped(&d_gpu, &dprob_gpu, 2 * batch, 2);
        check_grads(&what, &gan.d, &read(ctx, &gan.d.grads), &d_grads);
        if let Some(p) = &gan.penalty {
            PENALTY_PHASES.iter().for_each(|name| run_phase(name));
            check_penalty(ctx, (&what, step), &gan, (p, &d), (&d_in, &d_grads, loss_d));
        }

        run_phase("Adam D");
        check_adam(ctx, &format!("{what} Adam D"), &gan.d, &mut d, cfg.adam, step);
        sync(ctx, &gan.d, &mut d);
        if !cfg.trains_g_at(step as u64) {
            // A D-only step: G's phases are left out of the whole step.
            next.set(names.iter().position(|n| *n == "counters").unwrap());
            run_phase("counters");
            assert_eq!(gan.counters.read_u32(ctx).unwrap(), [step, step, 0, 0], "{what}: counters");
            continue;
        }
        // G's own update count: its Adam's t, and its average's.
        let g_t = step / n_critic as u32;

        run_phase("D forward (B)");
        let fake = &d_in[..batch * dim];
        let d2_cpu = d.forward_grouped(
            fake,
            cond(&step_labels[..batch]).as_deref(),
            batch,
            true,
            1,
            masks(dropout::G_STEP_STREAM),
        );
        let mut d2_gpu = gpu_caches(ctx, &gan.d, &gan.d_acts, fake, &step_labels, batch, 1);
        check_forward(&format!("{what} updated D forward on G(z)"), &mut d2_gpu, &d2_cpu);

        run_phase("loss G");
        let prob_b = &d2_gpu.last().unwrap().out;
        let (loss_g, dprob_b, _, _) = loss.cpu_g_step(prob_b);
        assert_close(&format!("{what} loss_g"), &[gan.read_metrics(ctx).unwrap().loss_g], &[loss_g], 1e-5, 1e-5);
        let dprob_b_gpu = read(ctx, &gan.d_prob_grad)[..batch].to_vec();
        assert_close(&format!("{what} dloss_g/dp"), &dprob_b_gpu, &dprob_b, 1e-6, 1e-5);

        run_phase("D backward to G(z)");
        let (_, d_fake_grad) = d.backward(&d2_gpu, &dprob_b_gpu, batch);
        let d_fake_grad_gpu = read(ctx, &gan.d_fake_grad);
        close(&format!("{what} dloss_g/dG(z)"), &d_fake_grad_gpu, &d_fake_grad, 1e-4);

        run_phase("G backward");
        let (g_grads, _) = g.backward(&g_gpu, &d_fake_grad_gpu, batch);
        check_grads(&what, &gan.g, &read(ctx, &gan.g.grads), &g_grads);

        run_phase("Adam G");
        check_adam(ctx, &format!("{what} Adam G"), &gan.g, &mut g, cfg.adam, g_t);
        sync(ctx, &gan.g, &mut g);

        run_phase("G average");
        // Towards G as Adam left it, with the statistics of this step's forward.
        ema::cpu_update(&mut avg_params, &g.params, cfg.ema_decay, g_t - 1);
        let stats = gan.g.read_bn(ctx, 0).unwrap();
        for (a, b) in avg_bn.iter_mut().zip(&stats) {
            if let (Some(a), Some(b)) = (a, b) {
                ema::cpu_update(&mut a.running_mean, &b.running_mean, cfg.ema_decay, g_t - 1);
                ema::cpu_update(&mut a.running_var, &b.running_var, cfg.ema_decay, g_t - 1);
            }
        }
        let avg = gan.g_ema.as_ref().expect("an average at ema_decay 0.9");
        let avg_gpu = read(ctx, &avg.params);
        if g_t == 1 {
            assert_eq!(avg_gpu, g.params, "{what}: the first update's average is G itself");
        }
        // w's division: 2.5 ulp in WGSL.
        assert_close(&format!("{what} G average"), &avg_gpu, &avg_params, 1e-7, 1e-5);
        for (i, (a, b)) in avg.read_bn(ctx, 0).unwrap().iter().zip(&avg_bn).enumerate() {
            if let (Some(a), Some(b)) = (a, b) {
                assert_close(&format!("{what} G average bn{i} mean"), &a.running_mean, &b.running_mean, 1e-7, 1e-5);
                assert_close(&format!("{what} G average bn{i} var"), &a.running_var, &b.running_var, 1e-7, 1e-5);
            }
        }

        run_phase("counters");
        assert_eq!(gan.counters.read_u32(ctx).unwrap(), [step, step, 0, 0], "{what}: counters");
        assert_eq!(next.get(), names.len(), "{what}: every phase ran");
    }

    // The same three steps recorded whole, one submission each, on a second
    // GAN: bit-identical parameters, moments and running statistics.
    let whole = Gan::new(ctx, cfg, &set, &gp, &dp).unwrap();
    whole.start_epoch(ctx, 0, 0, 0).unwrap();
    for step in 1..=3 {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        whole.record_step_at(&mut enc, step);
        ctx.queue.submit([enc.finish()]);
    }
    ctx.wait("three whole steps").unwrap();
    for (a, b) in [(&gan.g, &whole.g), (&gan.d, &whole.d)] {
        for (name, x, y) in [("params", &a.params, &b.params), ("m", &a.m, &b.m), ("v", &a.v, &b.v)] {
            let (x, y) = (read(ctx, x), read(ctx, y));
            assert!(
                x.iter().zip(&y).all(|(p, q)| p.to_bits() == q.to_bits()),
                "{} {name}: phase by phase and whole steps differ",
                a.spec.name
            );
        }
    }
    assert_eq!(gan.g.read_bn(ctx, 3).unwrap(), whole.g.read_bn(ctx, 3).unwrap());
    assert_eq!(gan.d.read_bn(ctx, 3).unwrap(), whole.d.read_bn(ctx, 3).unwrap());
    let (a, b) = (gan.g_ema.as_ref().unwrap(), whole.g_ema.as_ref().unwrap());
    assert_eq!(read(ctx, &a.params), read(ctx, &b.params), "the average: phase by phase and whole steps differ");
    assert_eq!(a.read_bn(ctx, 3).unwrap(), b.read_bn(ctx, 3).unwrap());
}
