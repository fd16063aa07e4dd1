//! The trainer on the GPU: three full steps against the CPU reference, exact
//! resume, every output file, checkpoint round trips.

mod common;
use common::{assert_close, ctx, rng};
use gan_wgpu::checkpoint;
use gan_wgpu::data::{self, ImageSet};
use gan_wgpu::kernels::adam::AdamConfig;
use gan_wgpu::model::{self, CpuNet};
use gan_wgpu::network::GpuNet;
use gan_wgpu::train::{self, Gan, GanConfig, TrainConfig};
use rand::Rng;
use std::sync::atomic::AtomicBool;

/// Random images with MNIST's shape (real data is not needed to check arithmetic).
fn random_set(n: usize, h: usize, w: usize, seed: u64) -> ImageSet {
    let mut r = rng(seed);
    ImageSet {
        count: n,
        height: h,
        width: w,
        pixels: (0..n * h * w).map(|_| r.random::<u8>()).collect(),
        labels: None,
        source: "random".into(),
    }
}

#[test]
fn three_gpu_steps_match_the_cpu_reference() {
    let Some(ctx) = ctx() else { return };
    let batch = 64;
    let set = random_set(3 * batch, 28, 28, 7);
    let cfg = GanConfig { batch, latent: 100, seed: 42, adam: AdamConfig::default() };
    let mut init = rng(1);
    let g_spec = model::generator_spec(cfg.latent, set.dim());
    let d_spec = model::discriminator_spec(set.dim());
    let (gp, dp) = (g_spec.init_params(&mut init), d_spec.init_params(&mut init));
    let gan = Gan::new(ctx, cfg, &set, &gp, &dp).unwrap();
    let mut g = CpuNet::new(g_spec.clone(), gp);
    let mut d = CpuNet::new(d_spec, dp);
    gan.start_epoch(ctx, 0, 0, 0).unwrap();
    let lr = cfg.adam.lr;
    // Elements whose gradient was at rounding-noise level in some step.
    let mut noisy_g = vec![false; g.layout.len];
    let mut noisy_d = vec![false; d.layout.len];
    for step in 1..=3u32 {
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        gan.record_step(&mut enc);
        ctx.queue.submit([enc.finish()]);
        ctx.wait("step").unwrap();
        // The step's own inputs, read back: z and the real half of D's input.
        let z = gan.z.read_f32(ctx).unwrap();
        let d_in = gan.d_input.read_f32(ctx).unwrap();
        let real = &d_in[batch * set.dim()..];
        let cpu_step = model::cpu_train_step(&mut g, &mut d, real, &z, batch, cfg.adam, step);
        let want = cpu_step.metrics;
        let got = gan.read_metrics(ctx).unwrap();
        let what = format!("step {step}");
        assert_close(&format!("{what} loss_d"), &[got.loss_d], &[want.loss_d], 1e-5, 1e-4);
        assert_close(&format!("{what} loss_g"), &[got.loss_g], &[want.loss_g], 1e-5, 1e-4);
        assert_close(&format!("{what} D(x)"), &[got.d_real], &[want.d_real], 1e-5, 1e-4);
        assert_close(&format!("{what} D(G(z))"), &[got.d_fake], &[want.d_fake], 1e-5, 1e-4);

        for (net, cpu, cpu_grads, noisy) in
            [(&gan.g, &g, &cpu_step.g_grads, &mut noisy_g), (&gan.d, &d, &cpu_step.d_grads, &mut noisy_d)]
        {
            let params = net.params.read_f32(ctx).unwrap();
            let grads = net.grads.read_f32(ctx).unwrap();
            for (name, shape, off) in &net.layout.entries {
                let n: usize = shape.iter().product();
                let range = *off..off + n;
                let what = format!("{what} {}.{name}", net.spec.name);
                let before_bn = cpu.spec.layers.iter().any(|l| l.bn.is_some() && *name == format!("{}.bias", l.name));
                // Gradients: to 1e-3 of the tensor's largest gradient. A bias
                // feeding a batch norm has a true gradient of exactly zero
                // (batch norm removes the mean): both sides must be near it.
                let scale = cpu_grads[range.clone()].iter().fold(0f32, |m, v| m.max(v.abs()));
                if before_bn {
                    assert_close(
                        &format!("{what} gradient (true value 0)"),
                        &grads[range.clone()],
                        &vec![0.0; n],
                        1e-6,
                        0.0,
                    );
                    assert_close(
                        &format!("{what} cpu gradient (true value 0)"),
                        &cpu_grads[range.clone()],
                        &vec![0.0; n],
                        1e-6,
                        0.0,
                    );
                } else {
                    assert_close(
                        &format!("{what} gradient"),
                        &grads[range.clone()],
                        &cpu_grads[range.clone()],
                        1e-3 * scale + 1e-12,
                        1e-3,
                    );
                }
                // The bias of a dense layer followed by batch norm has a
                // gradient that is zero up to rounding, and so does any
                // element below 1e-4 of its tensor's scale. Adam turns such
                // noise into steps of up to ~lr (step 1 moves every element by
                // lr * g / (|g| + eps)), so GPU and CPU may differ by up to
                // 2 lr a step there. Every other element agrees to 2e-5.
                for i in range.clone() {
                    noisy[i] |= before_bn || cpu_grads[i].abs() < 1e-4 * scale;
                }
                for i in range.clone() {
                    let tol = if noisy[i] { 2.0 * lr * step as f32 } else { 2e-5 + 1e-3 * cpu.params[i].abs() };
                    assert!(
                        (params[i] - cpu.params[i]).abs() <= tol,
                        "{what}: element {} gpu {} cpu {} (tolerance {tol}, gradient {} of scale {scale})",
                        i - off,
                        params[i],
                        cpu.params[i],
                        cpu_grads[i]
                    );
                }
            }
        }
        let bn = gan.g.read_bn(ctx, step as i64).unwrap();
        for (i, (gpu, cpu)) in bn.iter().zip(&g.bn).enumerate() {
            if let (Some(a), Some(b)) = (gpu, cpu) {
                assert_close(&format!("{what} bn{i} running_mean"), &a.running_mean, &b.running_mean, 1e-5, 1e-4);
                assert_close(&format!("{what} bn{i} running_var"), &a.running_var, &b.running_var, 1e-5, 1e-4);
                assert_eq!(b.num_batches_tracked, step as i64);
            }
        }
        // The next step starts both sides from the GPU's state, so each step
        // is checked on its own: otherwise the noise-level elements above
        // (legitimately different by up to 2 lr) perturb the next forward
        // pass and the comparison would measure chaos, not arithmetic.
        for (net, cpu) in [(&gan.g, &mut g), (&gan.d, &mut d)] {
            cpu.params = net.params.read_f32(ctx).unwrap();
            cpu.m = net.m.read_f32(ctx).unwrap();
            cpu.v = net.v.read_f32(ctx).unwrap();
        }
        g.bn = bn;
    }
    // The batches came from the epoch's permutation, in order.
    let perm = Gan::permutation(42, 0, set.count);
    let d_in = gan.d_input.read_f32(ctx).unwrap();
    let want = gan_wgpu::kernels::gather::cpu_gather(&set.pixels, set.dim(), &perm, 2, batch);
    assert_close("third real batch", &d_in[batch * set.dim()..], &want, 0.0, 0.0);
}

fn small_run(out: &std::path::Path, epochs: usize, resume: bool, stop_after: Option<u64>) -> train::RunSummary {
    let ctx = ctx().expect("adapter");
    let set = random_set(96, 28, 28, 3);
    let cfg = TrainConfig {
        epochs,
        gan: GanConfig { batch: 32, latent: 100, seed: 9, adam: AdamConfig::default() },
        log_every: 1,
        out: out.to_path_buf(),
        resume: resume.then(|| out.to_path_buf()),
        limit: None,
        stop_after_steps: stop_after,
        quiet: true,
    };
    train::train(ctx, &cfg, &set, &AtomicBool::new(false)).unwrap()
}

#[test]
fn resume_gives_bit_identical_losses() {
    if ctx().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let full = small_run(&dir.path().join("full"), 3, false, None);
    assert_eq!(full.losses.len(), 9);
    // Stopped mid-epoch (step 4 of 9, inside epoch 2), then resumed.
    let part = dir.path().join("part");
    let first = small_run(&part, 3, false, Some(4));
    assert!(first.interrupted);
    assert_eq!(first.progress.steps_done, 4);
    let rest = small_run(&part, 3, true, None);
    assert!(!rest.interrupted);
    // Stopped at an epoch boundary (after epoch 1 of 3), then resumed.
    let part2 = dir.path().join("part2");
    small_run(&part2, 1, false, None);
    let rest2 = small_run(&part2, 3, true, None);
    for resumed in [&rest, &rest2] {
        assert_eq!(resumed.losses.len(), full.losses.len());
        for (a, b) in resumed.losses.iter().zip(&full.losses) {
            assert_eq!(
                (a.step, a.loss_d.to_bits(), a.loss_g.to_bits(), a.d_real.to_bits(), a.d_fake.to_bits()),
                (b.step, b.loss_d.to_bits(), b.loss_g.to_bits(), b.d_real.to_bits(), b.d_fake.to_bits()),
                "step {}",
                a.step
            );
        }
    }
    // The final generators are identical too.
    let load = |p: &std::path::Path| {
        checkpoint::load_network(&p.join("checkpoints/generator_3.safetensors"), &model::generator_spec(100, 784))
            .unwrap()
    };
    let (a, b) = (load(&dir.path().join("full")), load(&part));
    assert!(a.params.iter().zip(&b.params).all(|(x, y)| x.to_bits() == y.to_bits()));
    assert_eq!(a.bn, b.bn);
}

#[test]
fn a_short_run_writes_every_output_and_checkpoints_round_trip() {
    let Some(ctx) = ctx() else { return };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let s = small_run(&out, 2, false, None);
    assert_eq!(s.progress.epoch, 2);
    for f in [
        "images/test_1.png",
        "images/test_2.png",
        "checkpoints/generator_1.safetensors",
        "checkpoints/discriminator_1.safetensors",
        "checkpoints/generator_2.safetensors",
        "checkpoints/discriminator_2.safetensors",
        "checkpoints/state_0002_00000.safetensors",
        "losses.csv",
        "losses.png",
        "progress.gif",
        "fixed_latent.npy",
    ] {
        let p = out.join(f);
        assert!(p.is_file() && std::fs::metadata(&p).unwrap().len() > 0, "missing {f}");
    }
    let csv = std::fs::read_to_string(out.join("losses.csv")).unwrap();
    assert!(csv.starts_with("epoch,step,loss_d,loss_g,d_x,d_g_z,seconds\n"));
    assert_eq!(csv.lines().count(), 1 + 6);
    let gif =
        image::codecs::gif::GifDecoder::new(std::io::Cursor::new(std::fs::read(out.join("progress.gif")).unwrap()))
            .unwrap();
    assert_eq!(image::AnimationDecoder::into_frames(gif).count(), 2);

    // The generator checkpoint, read back, gives the epoch grid exactly.
    let spec = model::generator_spec(100, 784);
    let ck = checkpoint::load_network(&out.join("checkpoints/generator_2.safetensors"), &spec).unwrap();
    assert_eq!(ck.bn[1].as_ref().unwrap().num_batches_tracked, 6);
    let counters = gan_wgpu::GpuTensor::zeros(ctx, &[4], "counters");
    let g = GpuNet::new(ctx, spec.clone(), &ck.params, &counters, AdamConfig::default()).unwrap();
    g.write_bn(ctx, &ck.bn).unwrap();
    let sampler = train::Sampler::new(ctx, &g, 25).unwrap();
    let (rows, cols, latent) = checkpoint::read_npy_f32_2d(&out.join("fixed_latent.npy")).unwrap();
    assert_eq!((rows, cols), (25, 100));
    assert_eq!(latent, train::fixed_latent(100));
    let imgs = train::images_from_outputs(&sampler.run(ctx, &latent).unwrap(), 784);
    let grid = image::open(out.join("images/test_2.png")).unwrap().to_luma8();
    let (scale, pad, cell) = (4u32, 4u32, 28 * 4 + 4);
    for (i, img) in imgs.iter().enumerate() {
        let (gx, gy) = (pad + (i as u32 % 5) * cell, pad + (i as u32 / 5) * cell);
        for y in 0..28u32 {
            for x in 0..28u32 {
                assert_eq!(
                    grid.get_pixel(gx + x * scale, gy + y * scale)[0],
                    img[(y * 28 + x) as usize],
                    "sample {i} pixel ({x},{y})"
                );
            }
        }
    }
    // Saving what was loaded and loading it again changes nothing.
    let again = dir.path().join("again.safetensors");
    checkpoint::save_network(&again, &spec, &ck.params, &ck.bn, Default::default()).unwrap();
    let ck2 = checkpoint::load_network(&again, &spec).unwrap();
    assert_eq!(ck.params, ck2.params);
    assert_eq!(ck.bn, ck2.bn);
    // A discriminator file is refused where a generator is expected.
    let err = checkpoint::load_network(&out.join("checkpoints/discriminator_2.safetensors"), &spec)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("discriminator checkpoint, a generator checkpoint is expected"), "{err}");
}

#[test]
fn idx_reader_reads_raw_and_gzip() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let set = random_set(5, 3, 4, 11);
    let bytes = data::idx_bytes(5, 3, 4, &set.pixels);
    let train = dir.path().join("train");
    std::fs::create_dir_all(&train).unwrap();
    std::fs::write(train.join("train-images-idx3-ubyte"), &bytes).unwrap();
    let raw = data::load_train_dir(dir.path()).unwrap();
    assert_eq!((raw.count, raw.height, raw.width), (5, 3, 4));
    assert_eq!(raw.pixels, set.pixels);
    std::fs::remove_file(train.join("train-images-idx3-ubyte")).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&bytes).unwrap();
    std::fs::write(train.join("train-images-idx3-ubyte.gz"), gz.finish().unwrap()).unwrap();
    let mut labels = vec![0, 0, 8, 1, 0, 0, 0, 5];
    labels.extend_from_slice(&[1, 2, 3, 4, 5]);
    std::fs::write(train.join("train-labels-idx1-ubyte"), &labels).unwrap();
    let gzd = data::load_train_dir(dir.path()).unwrap();
    assert_eq!(gzd.pixels, set.pixels);
    assert_eq!(gzd.labels.as_deref(), Some(&[1u8, 2, 3, 4, 5][..]));
    // The embedded MNIST is the canonical set.
    let mnist = data::embedded_mnist().unwrap();
    assert_eq!((mnist.count, mnist.height, mnist.width), (60_000, 28, 28));
    assert_eq!(mnist.labels.as_ref().unwrap().len(), 60_000);
}
