//! Faults never lose work or end in a panic: interruption, divergence,
//! crashes mid-write, unwritable outputs, device errors, corrupt files.

mod common;
use gan_wgpu::io::checkpoint;
use gan_wgpu::io::data;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn gan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gan-wgpu"))
}

fn have_gpu() -> bool {
    common::ctx().is_some()
}

/// A small, fast training command: 256 images, batch 32 (8 steps an epoch).
fn small_train(out: &Path, epochs: usize) -> Command {
    let mut c = gan();
    c.args([
        "train",
        "--limit",
        "256",
        "--batch-size",
        "32",
        "--log-every",
        "1",
        "--epochs",
        &epochs.to_string(),
        "--out",
        out.to_str().unwrap(),
    ]);
    c
}

fn loss_columns(out: &Path) -> Vec<String> {
    std::fs::read_to_string(out.join("losses.csv"))
        .unwrap()
        .lines()
        .map(|l| l.rsplit_once(',').unwrap().0.to_string())
        .collect()
}

fn wait_for_line(out: &Path, at_least_rows: usize, child: &mut std::process::Child) {
    let start = Instant::now();
    // losses.csv is written at epoch ends and on stop; poll the state files instead.
    loop {
        let states = std::fs::read_dir(out.join("checkpoints")).map(|r| r.count()).unwrap_or(0);
        if states >= at_least_rows {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("trainer exited early: {status}");
        }
        assert!(start.elapsed() < Duration::from_secs(120), "timed out waiting for the trainer");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// SIGTERM at a known step: the trainer pauses after step 12 of 24 (inside
/// epoch 1) and says so; only then is the signal sent, so the stop-and-save
/// path runs every time, however fast the adapter.
#[test]
fn sigterm_saves_state_exits_130_and_resume_is_exact() {
    if !have_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full");
    assert!(small_train(&full, 3).stdout(Stdio::null()).status().unwrap().success());

    let part = dir.path().join("part");
    let mut child = small_train(&part, 3)
        .args(["--pause-after-steps", "12"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        let n = std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(n > 0, "the trainer ended before pausing: {seen}");
        seen.push_str(&line);
        if line.starts_with("paused after 12 steps") {
            break;
        }
    }
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(stderr.contains("saving a resumable state"), "{stderr}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(part.join("summary.json")).unwrap()).unwrap();
    assert_eq!(
        (&summary["exit_reason"], &summary["exit_code"], &summary["steps"]),
        (&"interrupted".into(), &130.into(), &12.into())
    );
    assert!(rest.contains("stopped at epoch 1, step 4 of the epoch"), "{rest}");
    assert!(part.join("checkpoints/state_0001_00004.safetensors").is_file());
    let resumed = small_train(&part, 3).arg("--resume").arg(&part).output().unwrap();
    assert!(resumed.status.success(), "{}", String::from_utf8_lossy(&resumed.stderr));
    assert!(String::from_utf8_lossy(&resumed.stdout).contains("resuming from"));
    assert_eq!(loss_columns(&part), loss_columns(&full), "resumed losses differ from the uninterrupted run");
}

#[test]
fn sigkill_mid_run_leaves_only_loadable_files() {
    if !have_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let mut child = small_train(&out, 50).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    wait_for_line(&out, 3, &mut child);
    // Kill while it is writing the next epoch's files, as near as timing allows.
    std::thread::sleep(Duration::from_millis(700));
    child.kill().unwrap();
    child.wait().unwrap();
    let g = gan_wgpu::models::GanArchitecture::tutorial(100, 784).generator;
    let d = gan_wgpu::models::GanArchitecture::tutorial(100, 784).discriminator;
    for e in std::fs::read_dir(out.join("checkpoints")).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue; // a temporary file of an interrupted write: never read
        }
        if name.starts_with("generator") {
            checkpoint::load_network(&p, &g).unwrap();
        } else if name.starts_with("discriminator") {
            checkpoint::load_network(&p, &d).unwrap();
        } else {
            checkpoint::Loaded::open(&p).unwrap();
        }
    }
    // And the run resumes from what is there.
    let r = small_train(&out, 3).arg("--resume").arg(&out).output().unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

#[test]
fn divergence_stops_with_the_step_and_keeps_the_last_checkpoint() {
    if !have_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    assert!(small_train(&out, 1).stdout(Stdio::null()).status().unwrap().success());
    let before = std::fs::read(out.join("checkpoints/generator_0.safetensors")).unwrap();
    let state_before = std::fs::read(out.join("checkpoints/state_0001_00000.safetensors")).unwrap();
    // A learning rate of 1e30 blows the weights up within a few steps.
    let r = small_train(&out, 3).args(["--resume", out.to_str().unwrap(), "--lr", "1e30"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("training diverged: the model went non-finite (inf or NaN) at epoch 1, step"), "{stderr}");
    // summary.json says so, with the step the run stands at.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["exit_reason"], "diverged", "{summary}");
    assert_eq!(summary["exit_code"], 3, "{summary}");
    assert!(summary["error"].as_str().unwrap().contains("non-finite"), "{summary}");
    assert!(stderr.contains("the last good checkpoints are epoch 0's"), "{stderr}");
    assert_eq!(std::fs::read(out.join("checkpoints/generator_0.safetensors")).unwrap(), before);
    assert_eq!(std::fs::read(out.join("checkpoints/state_0001_00000.safetensors")).unwrap(), state_before);
    assert!(!out.join("checkpoints/generator_1.safetensors").exists());
}

/// Divergence between loss readbacks (here --log-every is longer than the
/// run, so no loss is ever read): the GPU's non-finite flag still stops the
/// run with the step named, and nothing non-finite is written.
#[test]
fn divergence_between_readbacks_writes_nothing() {
    if !have_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    // The reproduction: 256 images, batch 32, 2 epochs, --log-every 100.
    let r = gan()
        .args(["train", "--limit", "256", "--batch-size", "32", "--epochs", "2", "--lr", "1e30", "--log-every", "100"])
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(3), "{stderr}");
    assert!(!String::from_utf8_lossy(&r.stdout).contains("done"));
    // The first step moves every weight by about lr (finite, 1e30); the
    // second overflows. The flag names the first non-finite step.
    let at = stderr.find("at epoch 0, step ").unwrap_or_else(|| panic!("{stderr}"));
    let step: u64 = stderr[at + 17..].split(' ').next().unwrap().parse().unwrap();
    assert!((1..=8).contains(&step), "{stderr}");
    assert!(stderr.contains(&format!("(global step {step})")), "{stderr}");
    assert!(stderr.contains("no checkpoint had been written yet"), "{stderr}");
    let written: Vec<String> = std::fs::read_dir(out.join("checkpoints"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(written.is_empty(), "files written from a diverged model: {written:?}");
}

#[test]
fn unwritable_out_fails_before_training() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let r = gan().args(["train", "--limit", "256", "--out", file.to_str().unwrap()]).output().unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("a-file") && !stderr.contains("panicked"), "{stderr}");
    assert!(!String::from_utf8_lossy(&r.stdout).contains("Epoch:"));
}

#[test]
fn atomic_write_keeps_the_old_file_on_failure() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("ck.safetensors");
    checkpoint::atomic_write(&target, b"good").unwrap();
    // Renaming onto a non-empty directory fails after the temporary file is written.
    let blocker = dir.path().join("blocked");
    std::fs::create_dir_all(blocker.join("inside")).unwrap();
    assert!(checkpoint::atomic_write(&blocker, b"new").is_err());
    assert_eq!(std::fs::read(&target).unwrap(), b"good");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn device_validation_errors_are_reported_not_panicked() {
    let Some(ctx) = common::ctx() else { return };
    // 70,000 workgroups exceed max_compute_workgroups_per_dimension (65,535).
    let t = gan_wgpu::GpuTensor::zeros(ctx, &[4], "x");
    let mut d = gan_wgpu::engine::kernels::bias_act::forward(
        ctx,
        gan_wgpu::engine::kernels::bias_act::Act::Relu,
        &t.reshaped(&[1, 4]).unwrap(),
        None,
    )
    .unwrap();
    d.groups = [70_000, 1, 1];
    let err = gan_wgpu::engine::kernels::run(ctx, &[&d]).unwrap_err().to_string();
    assert!(err.contains("GPU error during"), "{err}");
    // The device is still usable afterwards.
    let ok = gan_wgpu::engine::kernels::bias_act::forward(
        ctx,
        gan_wgpu::engine::kernels::bias_act::Act::Relu,
        &t.reshaped(&[1, 4]).unwrap(),
        None,
    )
    .unwrap();
    gan_wgpu::engine::kernels::run(ctx, &[&ok]).unwrap();
}

fn no_panic<T>(what: &str, f: impl FnOnce() -> T + std::panic::UnwindSafe) -> T {
    match std::panic::catch_unwind(f) {
        Ok(v) => v,
        Err(_) => panic!("{what} panicked"),
    }
}

#[test]
fn idx_reader_survives_truncation_bit_flips_and_random_bytes() {
    use rand::Rng;
    let mut r = common::rng(77);
    let pixels: Vec<u8> = (0..6 * 5 * 4).map(|_| r.random()).collect();
    let raw = data::idx_bytes(6, 5, 4, &pixels);
    let gz = {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(&raw).unwrap();
        e.finish().unwrap()
    };
    let start = Instant::now();
    for (name, bytes) in [("x-idx3-ubyte", &raw), ("x-idx3-ubyte.gz", &gz)] {
        let path = Path::new(name);
        // Every truncation.
        for len in 0..bytes.len() {
            let res = no_panic(name, || data::images_from_bytes(&bytes[..len], path, None));
            assert!(res.is_err(), "{name} truncated to {len} bytes was accepted");
        }
        // Bit flips: never a panic; any error names the file.
        for _ in 0..2000 {
            let mut b = bytes.clone();
            let i = r.random_range(0..b.len());
            b[i] ^= 1 << r.random_range(0..8);
            if let Err(e) = no_panic(name, || data::images_from_bytes(&b, path, None)) {
                assert!(e.to_string().contains(name), "{e}");
            }
        }
    }
    // Random bytes, and a header that asks for 16 GiB: refused without allocating it.
    for _ in 0..2000 {
        let n = r.random_range(0..64);
        let b: Vec<u8> = (0..n).map(|_| r.random()).collect();
        let _ = no_panic("random", || data::images_from_bytes(&b, Path::new("random"), None));
    }
    let huge = data::idx_bytes(1 << 20, 4096, 4096, &[]);
    let e = data::images_from_bytes(&huge, Path::new("huge"), None).unwrap_err().to_string();
    assert!(e.contains("more than the") || e.contains("truncated"), "{e}");
    // Specific cases, each with its message.
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("empty", vec![], "empty file"),
        ("magic", vec![1, 2, 3, 4, 0, 0, 0, 0], "wrong magic number"),
        ("labels-as-images", vec![0, 0, 8, 1, 0, 0, 0, 1, 5], "expected 3"),
        ("zero-side", data::idx_bytes(1, 0, 4, &[]), "absurd image size"),
    ];
    for (name, b, want) in cases {
        let e = data::images_from_bytes(&b, Path::new(name), None).unwrap_err().to_string();
        assert!(e.contains(want), "{name}: {e}");
    }
    let e = data::images_from_bytes(&raw, Path::new("fake.gz"), None).unwrap_err().to_string();
    assert!(e.contains("not a gzip file"), "{e}");
    let labels = [0u8, 0, 8, 1, 0, 0, 0, 5, 1, 2, 3, 4, 5];
    let e =
        data::images_from_bytes(&raw, Path::new("imgs"), Some((&labels, Path::new("labels")))).unwrap_err().to_string();
    assert!(e.contains("5 labels for 6 images"), "{e}");
    assert!(start.elapsed() < Duration::from_secs(60));
}

#[test]
fn checkpoint_loader_survives_corruption_and_names_tensors() {
    use rand::Rng;
    let dir = tempfile::tempdir().unwrap();
    let spec = gan_wgpu::models::GanArchitecture::tutorial(100, 4).discriminator;
    let mut r = common::rng(5);
    let params = spec.init_params(&mut r);
    let good = dir.path().join("d.safetensors");
    checkpoint::save_network(&good, &spec, &params, &[None, None, None], Default::default()).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    let bad = dir.path().join("bad.safetensors");
    // Truncations at many lengths, and bit flips: errors, never panics.
    for len in (0..bytes.len()).step_by(bytes.len() / 400 + 1) {
        std::fs::write(&bad, &bytes[..len]).unwrap();
        assert!(no_panic("truncated", || checkpoint::load_network(&bad, &spec)).is_err(), "accepted {len} bytes");
    }
    for _ in 0..300 {
        let mut b = bytes.clone();
        let i = r.random_range(0..b.len().min(400));
        b[i] ^= 1 << r.random_range(0..8);
        std::fs::write(&bad, &b).unwrap();
        let _ = no_panic("bit flip", || checkpoint::load_network(&bad, &spec));
    }
    // A tensor of the wrong shape, a missing tensor, a wrong dtype: named.
    let other = gan_wgpu::models::GanArchitecture::tutorial(100, 5).discriminator;
    let p5 = other.init_params(&mut r);
    checkpoint::save_network(&bad, &other, &p5, &[None, None, None], Default::default()).unwrap();
    let e = checkpoint::load_network(&bad, &spec).err().unwrap().to_string();
    assert!(e.contains("'model.0.weight' has shape [512, 5], expected [512, 4]"), "{e}");
    let tensors = vec![("model.0.weight".to_string(), checkpoint::OwnedTensor::f32(vec![512, 4], &vec![0.0; 2048]))];
    checkpoint::save_safetensors(&bad, &tensors, &[]).unwrap();
    let e = checkpoint::load_network(&bad, &spec).err().unwrap().to_string();
    assert!(e.contains("tensor 'model.0.bias' is missing"), "{e}");
    let tensors = vec![(
        "model.0.weight".to_string(),
        checkpoint::OwnedTensor { dtype: safetensors::Dtype::BF16, shape: vec![512, 4], data: vec![0; 4096] },
    )];
    checkpoint::save_safetensors(&bad, &tensors, &[]).unwrap();
    let e = checkpoint::load_network(&bad, &spec).err().unwrap().to_string();
    assert!(e.contains("dtype BF16, expected F32 or F16"), "{e}");
    let e = checkpoint::load_network(&dir.path().join("absent.safetensors"), &spec).err().unwrap().to_string();
    assert!(e.contains("absent.safetensors"), "{e}");
}

#[test]
fn npy_reader_rejects_what_it_cannot_read() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("z.npy");
    std::fs::write(&p, checkpoint::npy_bytes(&[3, 4], &[1.0; 12])).unwrap();
    assert_eq!(checkpoint::read_npy_f32_2d(&p).unwrap(), (3, 4, vec![1.0; 12]));
    let mut f64_file = checkpoint::npy_bytes(&[3, 4], &[1.0; 12]);
    let at = f64_file.windows(3).position(|w| w == b"<f4").unwrap();
    f64_file[at + 2] = b'8';
    std::fs::write(&p, &f64_file).unwrap();
    assert!(checkpoint::read_npy_f32_2d(&p).unwrap_err().to_string().contains("expected float32"));
    std::fs::write(&p, checkpoint::npy_bytes(&[12], &[1.0; 12])).unwrap();
    assert!(checkpoint::read_npy_f32_2d(&p).unwrap_err().to_string().contains("2-D array"));
    let mut short = checkpoint::npy_bytes(&[3, 4], &[1.0; 12]);
    short.truncate(short.len() - 4);
    std::fs::write(&p, &short).unwrap();
    assert!(checkpoint::read_npy_f32_2d(&p).unwrap_err().to_string().contains("needs 48 bytes"));
}

#[test]
fn disk_full_is_one_clear_error_and_leaves_no_partial_files() {
    if !have_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small-disk");
    std::fs::create_dir_all(&mnt).unwrap();
    // A 20 MiB disk: room for epoch 0's checkpoints (14 MiB with the
    // averaged generator), not for the 30 MiB training state that follows.
    let mounted =
        Command::new("mount").args(["-t", "tmpfs", "-o", "size=20m", "tmpfs", mnt.to_str().unwrap()]).status();
    if !mounted.map(|s| s.success()).unwrap_or(false) {
        eprintln!("SKIPPING disk-full test: cannot mount a small tmpfs here (needs root)");
        return;
    }
    let out = mnt.join("run");
    let r = small_train(&out, 2).output();
    let listing: Vec<String> = std::fs::read_dir(out.join("checkpoints"))
        .map(|rd| rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    let g1 = checkpoint::load_network(
        &out.join("checkpoints/generator_0.safetensors"),
        &gan_wgpu::models::GanArchitecture::tutorial(100, 784).generator,
    );
    Command::new("umount").arg(&mnt).status().unwrap();
    let r = r.unwrap();
    let stderr = String::from_utf8_lossy(&r.stderr);
    assert_eq!(r.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("state_0001_00000.safetensors") && stderr.contains("No space left on device"), "{stderr}");
    assert!(listing.iter().all(|n| !n.ends_with(".tmp")), "temporary files left: {listing:?}");
    assert!(!listing.iter().any(|n| n.starts_with("state_")), "a partial state was left: {listing:?}");
    g1.expect("the epoch 0 generator stays loadable");
}
