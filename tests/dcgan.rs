//! `train --model dcgan`: its generator against the CPU reference, a run
//! from the CLI writing every output with PyTorch's examples/dcgan names,
//! resuming bit for bit (both networks' batch-norm state saved), and the
//! images it cannot shape refused in one line.

mod common;
use gan_wgpu::models::GanArchitecture;
use gan_wgpu::nn::cpu_reference::CpuNet;
use gan_wgpu::nn::gpu_net::GpuNet;
use gan_wgpu::train::{images_from_outputs, Sampler};
use std::path::Path;
use std::process::Command;

fn gan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gan-wgpu"))
}

/// A DCGAN generator at the default width (64) in evaluation mode, running
/// statistics set away from 0 and 1: its outputs equal the CPU reference's
/// to 1e-4 of their scale (the step test's forward tolerance), and its
/// pixels within one grey level.
#[test]
fn a_dcgan_generator_samples_as_its_cpu_reference() {
    let Some(ctx) = common::ctx() else { return };
    let spec =
        GanArchitecture::dcgan(100, gan_wgpu::nn::spec::ImageShape::grey(28, 28), gan_wgpu::defaults::DCGAN_WIDTH)
            .unwrap()
            .generator;
    let params = spec.init_params(&mut common::rng(3));
    let mut cpu = CpuNet::new(spec.clone(), params.clone());
    let counters = gan_wgpu::GpuTensor::zeros(ctx, &[4], "counters");
    let g = GpuNet::new(ctx, spec.clone(), &params, &counters, Default::default()).unwrap();
    let mut r = common::rng(4);
    for b in cpu.bn.iter_mut().flatten() {
        b.running_mean = common::uniform_vec(&mut r, b.running_mean.len(), -0.05, 0.05);
        b.running_var = common::uniform_vec(&mut r, b.running_var.len(), 0.005, 0.02);
    }
    g.write_bn(ctx, &cpu.bn).unwrap();
    let n = 9;
    let z = common::uniform_vec(&mut r, n * 100, -2.0, 2.0);
    let gpu = Sampler::new(ctx, &g, n).unwrap().run(ctx, &z).unwrap();
    let want = cpu.forward(&z, n, false).pop().unwrap().out;
    let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    assert!(scale > 0.1, "the outputs span something: {scale}");
    common::assert_close("dcgan generator", &gpu, &want, 1e-4 * scale, 1e-4);
    let (a, b) = (images_from_outputs(&gpu, 784).concat(), images_from_outputs(&want, 784).concat());
    let worst = a.iter().zip(&b).map(|(x, y)| x.abs_diff(*y)).max().unwrap();
    assert!(worst <= 1, "pixels differ by {worst} grey levels");
}

fn tensor_shape(path: &Path, name: &str) -> Vec<usize> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensor(name).unwrap_or_else(|_| panic!("{name} in {}", path.display())).shape().to_vec()
}

/// A short dcgan run (width 8) writes every output; its checkpoints hold
/// examples/dcgan's tensors (G main.0 ConvTranspose2d [z, 2W, 7, 7], D
/// main.3 BatchNorm2d with running statistics); `sample` reads the
/// generator back; two epochs in one run equal one epoch resumed for a
/// second, bit for bit.
#[test]
fn dcgan_trains_from_the_cli_resumes_and_samples() {
    if common::ctx().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let train = |out: &Path, epochs: &str, resume: Option<&Path>| {
        let mut c = gan();
        c.args(["train", "--model", "dcgan", "--width", "8", "--epochs", epochs, "--limit", "256"])
            .args(["--batch-size", "32", "--eval-every", "0", "--log-every", "2", "--out"])
            .arg(out);
        if let Some(r) = resume {
            c.arg("--resume").arg(r);
        }
        let run = c.output().unwrap();
        assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    };
    let whole = dir.path().join("whole");
    train(&whole, "2", None);
    for f in [
        "images/test_0.png",
        "images/test_1.png",
        "images/test_ema_1.png",
        "checkpoints/generator_1.safetensors",
        "checkpoints/discriminator_1.safetensors",
        "checkpoints/generator_ema_1.safetensors",
        "losses.csv",
        "losses.png",
        "progress.gif",
        "fixed_latent.npy",
    ] {
        assert!(whole.join(f).is_file(), "no {f}");
    }
    let g = whole.join("checkpoints/generator_1.safetensors");
    let d = whole.join("checkpoints/discriminator_1.safetensors");
    assert_eq!(tensor_shape(&g, "main.0.weight"), [100, 16, 7, 7]);
    assert_eq!(tensor_shape(&g, "main.1.running_var"), [16]);
    assert_eq!(tensor_shape(&g, "main.6.weight"), [8, 1, 4, 4]);
    assert_eq!(tensor_shape(&d, "main.0.weight"), [8, 1, 4, 4]);
    assert_eq!(tensor_shape(&d, "main.3.running_mean"), [16]);
    assert_eq!(tensor_shape(&d, "main.5.weight"), [1, 16, 7, 7]);

    let half = dir.path().join("half");
    train(&half, "1", None);
    // The same state as an older engine wrote it (format 1: convolution
    // weights and their Adam moments in PyTorch's order) resumes the same.
    let legacy = dir.path().join("legacy");
    copy_dir(&half, &legacy);
    write_state_in_pytorch_order(&legacy);
    train(&half, "2", Some(&half));
    train(&legacy, "2", Some(&legacy));
    for (f, run) in ["losses.csv", "checkpoints/generator_1.safetensors", "checkpoints/discriminator_1.safetensors"]
        .into_iter()
        .flat_map(|f| [(f, &half), (f, &legacy)])
    {
        let (a, b) = (std::fs::read(whole.join(f)).unwrap(), std::fs::read(run.join(f)).unwrap());
        if f.ends_with(".csv") {
            // The seconds column differs; every other column must not.
            let strip = |s: &[u8]| -> Vec<String> {
                String::from_utf8_lossy(s).lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
            };
            assert_eq!(strip(&a), strip(&b), "losses of the resumed run");
        } else {
            assert_eq!(a, b, "{f}: resumed and uninterrupted runs differ");
        }
    }
    // The average is in the state too; the legacy state (no average) restarts it.
    let averaged = "checkpoints/generator_ema_1.safetensors";
    let read = |run: &Path| std::fs::read(run.join(averaged)).unwrap();
    assert_eq!(read(&whole), read(&half), "the averaged generator: resumed and uninterrupted runs differ");
    assert_ne!(read(&whole), read(&legacy), "a state without the average restarts it from G");

    let idx = dir.path().join("s.idx");
    let out =
        gan().args(["sample", "--count", "4", "--seed", "1", "--idx"]).arg(&idx).arg("--checkpoint").arg(&g).output();
    let out = out.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let samples = gan_wgpu::io::data::read_images(&idx, None).unwrap();
    assert_eq!((samples.count, samples.height, samples.width), (4, 28, 28));
    // After 16 steps the running statistics (momentum 0.1) are far from the
    // batch's, so evaluation-mode samples are nearly flat; not constant.
    let levels: std::collections::HashSet<u8> = samples.pixels.iter().copied().collect();
    assert!(levels.len() > 1, "samples are constant");
    // The averaged generator: its own weights, its decay recorded, and
    // `sample` draws from it as from the trained one.
    let avg = whole.join(averaged);
    let meta = gan_wgpu::io::checkpoint::Loaded::open(&avg).unwrap().metadata().unwrap();
    assert_eq!(meta.get("ema_decay").map(String::as_str), Some("0.999"), "{meta:?}");
    assert_ne!(tensor_bytes(&avg, "main.0.weight"), tensor_bytes(&g, "main.0.weight"));
    let mut sample = gan();
    let out = sample.args(["sample", "--count", "4", "--seed", "1", "--idx"]).arg(&idx).arg("--checkpoint").arg(&avg);
    let out = out.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let averaged_samples = gan_wgpu::io::data::read_images(&idx, None).unwrap();
    assert_ne!(averaged_samples.pixels, samples.pixels, "the average draws as the trained generator does");
}

fn tensor_bytes(path: &Path, name: &str) -> Vec<u8> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    st.tensor(name).unwrap().data().to_vec()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// Rewrites the run's newest state file as format 1 (before convolution
/// weights were kept in (kh, kw, c) order): flat parameters and moments in
/// PyTorch's order.
fn write_state_in_pytorch_order(run: &Path) {
    use gan_wgpu::io::checkpoint::{save_safetensors, Loaded, OwnedTensor};
    let path = gan_wgpu::train::find_latest_state(run).unwrap();
    let file = Loaded::open(&path).unwrap();
    let mut meta = file.metadata().unwrap();
    assert_eq!(meta.insert("format".into(), "gan-wgpu-state-1".into()).as_deref(), Some("gan-wgpu-state-2"));
    let arch = GanArchitecture::dcgan(100, gan_wgpu::nn::spec::ImageShape::grey(28, 28), 8).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors = Vec::new();
    let mut converted = 0;
    // An engine that wrote format 1 kept no average of G.
    for (name, view) in st.tensors().into_iter().filter(|(name, _)| !name.starts_with("g_ema.")) {
        let mut v: Vec<f32> = bytemuck::pod_collect_to_vec(view.data());
        if let Some((net, "params" | "m" | "v")) = name.split_once('.') {
            let spec = if net == "g" { &arch.generator } else { &arch.discriminator };
            spec.params_to_pytorch(&mut v);
            converted += 1;
        }
        tensors.push((name, OwnedTensor::f32(view.shape().to_vec(), &v)));
    }
    assert_eq!(converted, 6, "g and d: params, m, v");
    save_safetensors(&path, &tensors, &meta.into_iter().collect::<Vec<_>>()).unwrap();
}

/// Images dcgan cannot shape (not square, or a side that is no multiple of
/// 4): one line naming --model and the images' size.
#[test]
fn dcgan_refuses_images_it_cannot_shape() {
    if common::ctx().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("odd");
    std::fs::create_dir_all(data.join("train")).unwrap();
    std::fs::write(
        data.join("train/train-images-idx3-ubyte"),
        gan_wgpu::io::data::idx_bytes(64, 30, 30, &[7u8; 64 * 900]),
    )
    .unwrap();
    let bad = gan()
        .args(["train", "--model", "dcgan", "--epochs", "1", "--batch-size", "32", "--eval-every", "0", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("--model") && err.contains("30x30"), "{err}");
}

/// `sample` draws as many dcgan images as asked, in batches: 2,000 at the
/// default width would need a 400 MB column buffer at once (main.3's: 7 x 7
/// positions x W x 4 x 4 taps, f32, an image), past
/// lavapipe's 256 MiB `max_buffer_size` (an adapter with larger buffers
/// still runs them in batches). The first images equal a small run's, so
/// the batching changes no pixel.
#[test]
fn sample_draws_more_dcgan_images_than_fit_in_one_buffer() {
    if common::ctx().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let spec =
        GanArchitecture::dcgan(100, gan_wgpu::nn::spec::ImageShape::grey(28, 28), gan_wgpu::defaults::DCGAN_WIDTH)
            .unwrap()
            .generator;
    let params = spec.init_params(&mut common::rng(5));
    let bn: Vec<_> =
        spec.layers.iter().map(|l| l.bn.as_ref().map(|_| gan_wgpu::nn::spec::BnStats::new(l.out))).collect();
    let meta = vec![("image_height".to_string(), "28".to_string()), ("image_width".to_string(), "28".to_string())];
    let g = dir.path().join("g.safetensors");
    gan_wgpu::io::checkpoint::save_network(&g, &spec, &params, &bn, meta).unwrap();
    let draw = |count: &str, name: &str| {
        let idx = dir.path().join(name);
        let mut sample = gan();
        let out =
            sample.args(["sample", "--count", count, "--seed", "1", "--idx"]).arg(&idx).arg("--checkpoint").arg(&g);
        let out = out.output().unwrap();
        assert!(out.status.success(), "sample --count {count}: {}", String::from_utf8_lossy(&out.stderr));
        gan_wgpu::io::data::read_images(&idx, None).unwrap()
    };
    let many = draw("2000", "many.idx");
    let few = draw("9", "few.idx");
    assert_eq!((many.count, many.height, many.width), (2000, 28, 28));
    assert_eq!(many.pixels[..9 * 784], few.pixels[..], "the first 9 of 2,000 differ from 9 drawn alone");
    let levels: std::collections::HashSet<u8> = many.pixels[1999 * 784..].iter().copied().collect();
    assert!(levels.len() > 1, "the last image is constant");
}
