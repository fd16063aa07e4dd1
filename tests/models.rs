//! `train --model`: the default `gan` trains as it did before models were
//! chosen, and `cgan` and `dcgan` with `--loss bce --n-critic 1` as they did
//! before the loss was a choice (bit for bit where the records were made);
//! `cgan` writes its outputs, samples the class asked for, and refuses what
//! it cannot do.

mod common;
use gan_wgpu::engine::kernels::embedding;
use gan_wgpu::models::GanArchitecture;
use gan_wgpu::nn::cpu_reference::CpuNet;
use gan_wgpu::nn::gpu_net::GpuNet;
use std::path::Path;
use std::process::Command;

fn gan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gan-wgpu"))
}

/// FNV-1a 64 over each tensor's name and bytes, by name (metadata left out:
/// it may gain keys).
fn tensors_hash(path: &Path) -> u64 {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for n in names {
        for &b in n.as_bytes().iter().chain(st.tensor(&n).unwrap().data()) {
            h = (h ^ b as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h
}

/// Where the record below was made: main before models were chosen
/// (208ff9c), `train --seed 0 --epochs 2 --limit 2048`, the matmul pinned
/// to sg32x32, on this adapter and an Intel Xeon (family 6 model 207); main
/// before the loss became a choice (36ccaf5, BCE) gave the same bits on an
/// AMD EPYC (family 25 model 17), so `--loss bce --n-critic 1` is held to
/// the bit on both. Elsewhere float rounding differs (lavapipe's other
/// vector widths, other CPUs' code), so there the losses are held to 2e-3.
const RECORD_ADAPTER: &str = "llvmpipe (LLVM 15.0.6, 256 bits)";
const RECORD_CPUS: [&str; 2] = ["(family 6 model 207)", "(family 25 model 17)"];
/// (epoch, step, loss_d, loss_g, D(x), D(G(z))) as losses.csv wrote them.
const RECORD_LOSSES: [&str; 2] =
    ["0,10,1.1412543,0.600283,0.8349621,0.61703056", "1,26,1.3140241,0.6813251,0.6564687,0.59001803"];
const RECORD_GENERATOR_1: u64 = 0x7769_7407_d9ec_5e79;
const RECORD_DISCRIMINATOR_1: u64 = 0xa6de_3b43_ae03_e049;

/// A run's losses.csv (without the seconds) and its epoch-1 checkpoints
/// against a record: to the bit on the record's adapter and one of its CPUs
/// (`cpus`), the losses within 2e-3 elsewhere.
fn check_against_record(what: &str, stdout: &str, out: &Path, cpus: &[&str], losses: &[&str], tensors: (u64, u64)) {
    let csv = std::fs::read_to_string(out.join("losses.csv")).unwrap();
    let rows: Vec<String> = csv.lines().skip(1).map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect();
    assert_eq!(rows.len(), losses.len(), "{what}: {csv}");
    let adapter = stdout.lines().find(|l| l.starts_with("adapter: ")).unwrap_or_default();
    let cpu = gan_wgpu::engine::settings::host_cpu_model().unwrap_or_default();
    if adapter.contains(RECORD_ADAPTER) && cpus.iter().any(|c| cpu.contains(c)) {
        assert_eq!(rows, losses, "{what}: losses, bit for bit");
        let ck = out.join("checkpoints");
        assert_eq!(tensors_hash(&ck.join("generator_1.safetensors")), tensors.0, "{what}: generator tensors");
        assert_eq!(tensors_hash(&ck.join("discriminator_1.safetensors")), tensors.1, "{what}: discriminator tensors");
        return;
    }
    eprintln!(
        "{what}: the record was made on {RECORD_ADAPTER} {cpus:?}; this is {adapter} on {cpu}: losses held to 2e-3"
    );
    for (row, want) in rows.iter().zip(losses) {
        let (a, b): (Vec<&str>, Vec<&str>) = (row.split(',').collect(), want.split(',').collect());
        assert_eq!(a[..2], b[..2], "{what}: epoch and step");
        for (x, y) in a[2..].iter().zip(&b[2..]) {
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!((x - y).abs() <= 2e-3 * y.abs(), "{what}: {row} against the record {want}");
        }
    }
}

#[test]
fn model_gan_trains_as_before_models_were_chosen() {
    if common::ctx().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("r");
    let run = gan()
        .args(["train", "--model", "gan", "--seed", "0", "--epochs", "2", "--limit", "2048", "--eval-every", "0"])
        .arg("--out")
        .arg(&out)
        .env("GAN_WGPU_MATMUL", "sg32x32")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
    let tensors = (RECORD_GENERATOR_1, RECORD_DISCRIMINATOR_1);
    check_against_record("gan", &stdout, &out, &RECORD_CPUS, &RECORD_LOSSES, tensors);
    let ck = out.join("checkpoints");
    // The architecture is in the metadata; no embedding for gan.
    let f = gan_wgpu::io::checkpoint::Loaded::open(&ck.join("generator_1.safetensors")).unwrap();
    let meta = f.metadata().unwrap();
    assert!(!meta["architecture"].contains("embedding"), "{}", meta["architecture"]);
}

#[test]
fn cgan_writes_class_rows_and_samples_the_class_asked_for() {
    if common::ctx().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("c");
    let run = gan()
        .args([
            "train",
            "--model",
            "cgan",
            "--epochs",
            "1",
            "--limit",
            "512",
            "--batch-size",
            "64",
            "--eval-every",
            "0",
        ])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    // A row per class over 10 fixed codes: a 10x10 grid (4x scale, 4-pixel gaps).
    let grid = image::open(out.join("images/test_0.png")).unwrap();
    assert_eq!((grid.width(), grid.height()), (10 * 116 + 4, 10 * 116 + 4));
    let g = out.join("checkpoints/generator_0.safetensors");
    let meta = gan_wgpu::io::checkpoint::Loaded::open(&g).unwrap().metadata().unwrap();
    assert!(meta["architecture"].contains("\"embedding\""), "{}", meta["architecture"]);

    // --class 7: every sample is the generator's 7, the same pixels as the
    // 7s of a --classes grid for the same codes.
    let seven = dir.path().join("seven.idx");
    let s = gan()
        .args(["sample", "--count", "6", "--class", "7", "--idx"])
        .arg(&seven)
        .arg("--checkpoint")
        .arg(&g)
        .output()
        .unwrap();
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    let rows = dir.path().join("rows.idx");
    let s = gan()
        .args(["sample", "--count", "6", "--classes", "3,7", "--idx"])
        .arg(&rows)
        .arg("--checkpoint")
        .arg(&g)
        .output()
        .unwrap();
    assert!(s.status.success(), "{}", String::from_utf8_lossy(&s.stderr));
    let seven = gan_wgpu::io::data::read_images(&seven, None).unwrap();
    let rows = gan_wgpu::io::data::read_images(&rows, None).unwrap();
    assert_eq!((seven.count, rows.count), (6, 12));
    assert_eq!(&rows.pixels[6 * 784..], &seven.pixels[..], "--classes 3,7: the second row is --class 7's");
    assert_ne!(&rows.pixels[..6 * 784], &seven.pixels[..], "class 3 is drawn otherwise");

    // Errors: a class past the model's, and --class on an unconditional checkpoint.
    let bad = gan().args(["sample", "--class", "10", "--out", "x.png", "--checkpoint"]).arg(&g).output().unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(err.contains("--class") && err.contains("0..9"), "{err}");
}

#[test]
fn class_flags_are_refused_for_an_unconditional_generator_and_cgan_needs_labels() {
    if common::ctx().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("g");
    let run = gan()
        .args(["train", "--epochs", "1", "--limit", "128", "--batch-size", "64", "--eval-every", "0"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let g = out.join("checkpoints/generator_0.safetensors");
    let bad = gan()
        .args(["sample", "--class", "3", "--out"])
        .arg(dir.path().join("x.png"))
        .arg("--checkpoint")
        .arg(&g)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("--class") && err.contains("unconditional"), "{err}");

    // Images without labels cannot train a cgan: one line naming the data.
    let data = dir.path().join("unlabelled");
    std::fs::create_dir_all(data.join("train")).unwrap();
    std::fs::write(
        data.join("train/train-images-idx3-ubyte"),
        gan_wgpu::io::data::idx_bytes(128, 28, 28, &vec![0u8; 128 * 784]),
    )
    .unwrap();
    let bad = gan()
        .args(["train", "--model", "cgan", "--epochs", "1", "--batch-size", "64", "--eval-every", "0", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(2), "{err}");
    assert!(err.contains("--model cgan needs the images' labels") && err.contains("unlabelled"), "{err}");
}

/// A conditional generator's pixels for given latent codes and labels equal
/// its CPU reference's (batch norm in eval mode, running statistics set
/// away from 0 and 1), to 1e-4 of the output's scale: the step test's
/// tolerance for a forward pass. Its joined input's padding is zero.
#[test]
fn a_conditional_generator_samples_as_its_cpu_reference() {
    let Some(ctx) = common::ctx() else { return };
    let spec = GanArchitecture::conditional(100, 784, 10).generator;
    let params = spec.init_params(&mut common::rng(3));
    let mut cpu = CpuNet::new(spec.clone(), params.clone());
    let counters = gan_wgpu::GpuTensor::zeros(ctx, &[4], "counters");
    let g = GpuNet::new(ctx, spec.clone(), &params, &counters, Default::default()).unwrap();
    let mut r = common::rng(4);
    for b in cpu.bn.iter_mut().flatten() {
        b.running_mean = common::uniform_vec(&mut r, b.running_mean.len(), -0.5, 0.5);
        b.running_var = common::uniform_vec(&mut r, b.running_var.len(), 0.5, 2.0);
    }
    g.write_bn(ctx, &cpu.bn).unwrap();
    let n = 37;
    let z = common::uniform_vec(&mut r, n * 100, -2.0, 2.0);
    let labels: Vec<u32> = (0..n as u32).map(|i| (i * 3) % 10).collect();
    let sampler = gan_wgpu::train::Sampler::new(ctx, &g, n).unwrap();
    assert!(sampler.is_conditional());
    let gpu = sampler.run_labeled(ctx, &z, Some(&labels)).unwrap();
    let want = cpu.forward_labeled(&z, Some(&labels), n, false).pop().unwrap().out;
    common::assert_close("conditional generator", &gpu, &want, 1e-4, 1e-4);
    // Without labels, or with labels for an unconditional one: errors.
    let err = sampler.run(ctx, &z).unwrap_err().to_string();
    assert!(err.contains("needs a class for each sample"), "{err}");
    assert_eq!(embedding::padded_width(110), 112);
}

/// cgan's and dcgan's record, made by main before the loss became a choice
/// (36ccaf5, BCE only) with the matmul pinned to sg32x32, on lavapipe
/// (256 bits) and an AMD EPYC (family 25 model 17): `train --seed 0 --epochs
/// 2 --limit 512 --batch-size 64 --log-every 4` (dcgan `--width 16`). The
/// rows are losses.csv's without the seconds; the hashes `tensors_hash`'s of
/// generator_1 and discriminator_1.
struct ModelRecord {
    model: &'static str,
    extra: &'static [&'static str],
    losses: [&'static str; 4],
    generator: u64,
    discriminator: u64,
}

const BCE_RECORDS: [ModelRecord; 2] = [
    ModelRecord {
        model: "cgan",
        extra: &[],
        losses: [
            "0,4,1.1398041,0.59620386,0.7276579,0.5582008",
            "0,8,1.1216632,0.50484526,0.8690273,0.62366223",
            "1,12,1.1479902,0.55612576,0.8384466,0.6195573",
            "1,16,1.2002718,0.60067093,0.7483096,0.5946581",
        ],
        generator: 0xdcb8_1ef3_ae35_8dd7,
        discriminator: 0xeb24_c23a_93fc_f997,
    },
    ModelRecord {
        model: "dcgan",
        extra: &["--width", "16"],
        losses: [
            "0,4,1.2721926,0.685473,0.5749784,0.5079584",
            "0,8,1.0426837,0.64430356,0.76173,0.53487885",
            "1,12,0.99078953,0.6181316,0.84338945,0.555775",
            "1,16,0.9690598,0.6215474,0.86133075,0.5560318",
        ],
        generator: 0x9d71_0542_b2bd_3413,
        discriminator: 0x1c4c_0d50_7282_84be,
    },
];
const BCE_RECORD_CPU: &str = "(family 25 model 17)";

/// `--loss bce --n-critic 1` trains cgan and dcgan as before the loss
/// became a choice: to the bit where the record was made, within 2e-3 elsewhere.
#[test]
fn bce_with_one_critic_step_trains_cgan_and_dcgan_as_before() {
    if common::ctx().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for rec in &BCE_RECORDS {
        let out = dir.path().join(rec.model);
        let run = gan()
            .args(["train", "--model", rec.model, "--loss", "bce", "--n-critic", "1", "--seed", "0", "--epochs", "2"])
            .args(["--limit", "512", "--batch-size", "64", "--log-every", "4", "--eval-every", "0"])
            .args(rec.extra)
            .arg("--out")
            .arg(&out)
            .env("GAN_WGPU_MATMUL", "sg32x32")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(run.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&run.stderr));
        let tensors = (rec.generator, rec.discriminator);
        check_against_record(rec.model, &stdout, &out, &[BCE_RECORD_CPU], &rec.losses, tensors);
    }
}
