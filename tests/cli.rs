//! The command line: error messages read as documented, exit codes, no panics.

mod common;
use std::path::Path;
use std::process::Command;

fn gan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gan-wgpu"))
}

#[test]
fn no_adapter_error_says_how_to_get_one() {
    // No Metal adapter exists on Linux: this is the no-adapter path for real.
    let out = gan().arg("devices").env("WGPU_BACKEND", "metal").output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if cfg!(target_os = "macos") {
        return;
    }
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("no GPU adapter found"), "{stderr}");
    assert!(stderr.contains("apt-get install -t bookworm-backports mesa-vulkan-drivers"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn devices_lists_adapters_with_limits() {
    if skip_without_adapter() {
        return;
    }
    let out = gan().arg("devices").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for needle in [
        "[0]",
        "type ",
        "backend ",
        "driver ",
        "max storage buffer binding",
        "workgroup storage",
        "subgroup size",
        "SHADER_F16",
        "TIMESTAMP_QUERY",
        "<- auto",
    ] {
        assert!(stdout.contains(needle), "missing '{needle}' in:\n{stdout}");
    }
}

#[test]
fn bad_device_index_names_the_flag_and_the_count() {
    let out = gan().args(["bench", "--quick", "--device", "99"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--device 99") && stderr.contains("gan-wgpu devices"), "{stderr}");
    let out = gan().args(["bench", "--device", "fastest"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--device fastest") && stderr.contains("expected auto, discrete"), "{stderr}");
}

/// Runs gan-wgpu, asserts success, returns stdout.
fn run_ok(args: &[&str]) -> String {
    let out = gan().args(args).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{args:?}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn stderr_of(args: &[&str]) -> (Option<i32>, String) {
    let out = gan().args(args).output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

/// One line on stderr, exit code 2 (bad input), no panic, and every needle present.
fn assert_clean_error(args: &[&str], needles: &[&str]) {
    let (code, stderr) = stderr_of(args);
    assert_eq!(code, Some(2), "{args:?}: {stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"), "{args:?}: {stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: one line expected: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "{args:?}: missing '{n}' in: {stderr}");
    }
}

#[test]
fn train_flags_are_checked_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().to_str().unwrap();
    assert_clean_error(&["train", "--batch-size", "0", "--out", out], &["--batch-size", "greater than zero"]);
    assert_clean_error(&["train", "--batch-size", "1", "--out", out], &["--batch-size", "at least 2"]);
    assert_clean_error(&["train", "--epochs", "0", "--out", out], &["--epochs"]);
    assert_clean_error(&["train", "--lr", "0", "--out", out], &["--lr"]);
    assert_clean_error(&["train", "--lr=-0.1", "--out", out], &["--lr"]);
    assert_clean_error(&["train", "--beta1", "1.5", "--out", out], &["--beta1"]);
    assert_clean_error(&["train", "--ema-decay", "1", "--out", out], &["--ema-decay", "[0, 1)"]);
    // clap's own messages for non-numbers name the flag (exit code 2).
    let (code, stderr) = stderr_of(&["train", "--epochs", "many"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("--epochs") && stderr.contains("many"), "{stderr}");
}

#[test]
fn data_folder_errors_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let out = out.to_str().unwrap();
    let missing = dir.path().join("nope");
    assert_clean_error(
        &["train", "--data", missing.to_str().unwrap(), "--out", out],
        &["nope", "data folder not found"],
    );
    let data = dir.path().join("data");
    std::fs::create_dir_all(data.join("train")).unwrap();
    assert_clean_error(
        &["train", "--data", data.to_str().unwrap(), "--out", out],
        &["train-images-idx3-ubyte", "missing"],
    );
    let img = data.join("train/train-images-idx3-ubyte");
    std::fs::write(&img, b"\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x1c").unwrap();
    assert_clean_error(
        &["train", "--data", data.to_str().unwrap(), "--out", out],
        &["train-images-idx3-ubyte", "truncated"],
    );
    std::fs::write(&img, gan_wgpu::io::data::idx_bytes(3, 2, 2, &[0; 12])).unwrap();
    assert_clean_error(
        &["train", "--data", data.to_str().unwrap(), "--out", out],
        &["3 images, fewer than one batch of 128"],
    );
    let train_args = ["train", "--data", data.to_str().unwrap(), "--out", out];
    // Test images of another size than the training images.
    std::fs::create_dir_all(data.join("test")).unwrap();
    std::fs::write(data.join("test/t10k-images-idx3-ubyte"), gan_wgpu::io::data::idx_bytes(2, 3, 3, &[0; 18])).unwrap();
    assert_clean_error(&train_args, &["t10k-images-idx3-ubyte", "test images are 3x3, training images 2x2"]);
    // Image and label counts that differ.
    std::fs::remove_dir_all(data.join("test")).unwrap();
    std::fs::write(data.join("train/train-labels-idx1-ubyte"), [0u8, 0, 8, 1, 0, 0, 0, 2, 1, 2]).unwrap();
    assert_clean_error(&train_args, &["train-labels-idx1-ubyte", "2 labels for 3 images"]);
}

#[test]
fn show_data_writes_a_grid() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("grid.png");
    let out = gan().args(["show-data", "--out", png.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let img = image::open(&png).unwrap();
    // 5x5 cells of 28x28 scaled 4x with 4-pixel gaps.
    assert_eq!((img.width(), img.height()), (5 * 116 + 4, 5 * 116 + 4));
}

#[test]
fn train_then_sample_from_the_checkpoint() {
    if skip_without_adapter() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run_s = run.to_str().unwrap();
    let stdout =
        run_ok(&["train", "--epochs", "1", "--limit", "256", "--batch-size", "64", "--log-every", "2", "--out", run_s]);
    // The seed's log format, and the memory report.
    assert!(stdout.contains("Epoch:[  0/  1], step:[   2/   4], loss_d:"), "{stdout}");
    assert!(stdout.contains("time of epoch 0 is"), "{stdout}");
    assert!(stdout.contains("GPU memory (MiB): parameters"), "{stdout}");
    let ck = run.join("checkpoints/generator_0.safetensors");
    let ck_s = ck.to_str().unwrap();
    let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (idx, idx2, idx3, png) = (path("samples.idx"), path("again.idx"), path("fixed.idx"), path("samples.png"));
    run_ok(&["sample", "--checkpoint", ck_s, "--count", "7", "--idx", &idx, "--out", &png]);
    let set = gan_wgpu::io::data::read_images(std::path::Path::new(&idx), None).unwrap();
    assert_eq!((set.count, set.height, set.width), (7, 28, 28));
    // Same seed, same samples.
    run_ok(&["sample", "--checkpoint", ck_s, "--count", "7", "--idx", &idx2]);
    assert_eq!(std::fs::read(&idx).unwrap(), std::fs::read(&idx2).unwrap());
    // --latent with the run's own fixed codes.
    let latent = run.join("fixed_latent.npy");
    run_ok(&["sample", "--checkpoint", ck_s, "--latent", latent.to_str().unwrap(), "--idx", &idx3]);
    assert_eq!(gan_wgpu::io::data::read_images(std::path::Path::new(&idx3), None).unwrap().count, 25);
    let png = std::path::PathBuf::from(png);

    // Wrong inputs: one clear line each.
    let png_s = png.to_str().unwrap();
    let sample_err = |checkpoint: &std::path::Path, extra: &[&str], needles: &[&str]| {
        let mut args = vec!["sample", "--checkpoint", checkpoint.to_str().unwrap(), "--out", png_s];
        args.extend_from_slice(extra);
        assert_clean_error(&args, needles);
    };
    let d = run.join("checkpoints/discriminator_0.safetensors");
    sample_err(&d, &[], &["discriminator checkpoint", "generator checkpoint is expected"]);
    let state = run.join("checkpoints/state_0001_00000.safetensors");
    sample_err(&state, &[], &["training state", "train --resume", "generator checkpoint"]);
    let junk = dir.path().join("junk.safetensors");
    std::fs::write(&junk, b"this is not a checkpoint at all").unwrap();
    sample_err(&junk, &[], &["junk.safetensors", "not a readable safetensors file"]);
    let wide = dir.path().join("wide.npy");
    std::fs::write(&wide, gan_wgpu::io::checkpoint::npy_bytes(&[2, 99], &[0.0; 198])).unwrap();
    sample_err(&ck, &["--latent", wide.to_str().unwrap()], &["wide.npy", "99 wide", "takes 100"]);
    let notnpy = dir.path().join("z.npy");
    std::fs::write(&notnpy, b"1,2,3").unwrap();
    sample_err(&ck, &["--latent", notnpy.to_str().unwrap()], &["z.npy", "not a .npy file"]);
}

#[test]
fn pipeline_warmup_runs_and_leaves_training_unchanged() {
    if skip_without_adapter() {
        return;
    }
    // Whether the adapter training picks is a CPU one (its line in `devices`
    // ends with "<- auto"; the next line gives its type).
    let devices = String::from_utf8_lossy(&gan().arg("devices").output().unwrap().stdout).into_owned();
    let cpu_adapter =
        devices.lines().skip_while(|l| !l.contains("<- auto")).nth(1).is_some_and(|l| l.contains("type Cpu"));
    let dir = tempfile::tempdir().unwrap();
    let mut losses = Vec::new();
    for warmup in ["1", "0"] {
        let out = dir.path().join(format!("run{warmup}"));
        // An empty Mesa shader cache, so that the warm-up really compiles.
        let cache = dir.path().join(format!("cache{warmup}"));
        let o = gan()
            .args(["train", "--epochs", "1", "--limit", "256", "--batch-size", "64", "--log-every", "1", "--out"])
            .arg(&out)
            .env("GAN_WGPU_WARMUP", warmup)
            .env("MESA_SHADER_CACHE_DIR", &cache)
            .env("RUST_LOG", "gan_wgpu=info")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert!(o.status.success(), "warm-up {warmup}: {stderr}");
        assert!(!stderr.contains("warm-up failed"), "{stderr}");
        // lavapipe (a CPU adapter) gets the warm-up unless it is turned off.
        let ran = stderr.contains("pipeline warm-up: ");
        assert_eq!(ran, cpu_adapter && warmup == "1", "warm-up {warmup}, CPU adapter {cpu_adapter}: {stderr}");
        // Every loss of every step, without the timing column.
        let csv = std::fs::read_to_string(out.join("losses.csv")).unwrap();
        let rows: Vec<String> =
            csv.lines().map(|l| l.rsplit_once(',').map(|(head, _)| head.to_string()).unwrap_or_default()).collect();
        assert_eq!(rows.len(), 5, "{csv}");
        losses.push(rows);
    }
    assert_eq!(losses[0], losses[1]);
}

/// `bench --quick --json` end to end at a small batch: the printed report,
/// and a JSON file with the step's figures and every kernel row. Figures are
/// not asserted (a benchmark, not a timed test); structure and invariants are.
#[test]
fn bench_quick_writes_step_and_kernel_figures_as_json() {
    if skip_without_adapter() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("bench.json");
    let out = gan()
        .args(["bench", "--quick", "--batch-size", "16", "--json"])
        .arg(&json_path)
        .env("GAN_WGPU_WARMUP", "0")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    for needle in ["training step, batch 16 (56 dispatches", "steps/s", "host time to encode one step", "sg32x32"] {
        assert!(stdout.contains(needle), "missing '{needle}' in:\n{stdout}");
    }
    let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json_path).unwrap()).unwrap();
    let step = &v["step"];
    assert_eq!(step["batch"], 16);
    assert_eq!(step["dispatches"], 56);
    assert!(step["steps_per_s"].as_f64().unwrap() > 0.0, "{step}");
    assert!(step["host_encode_best_us"].as_f64().unwrap() <= step["host_encode_us"].as_f64().unwrap(), "{step}");
    // Matmuls and step from the same submissions: the matmuls are part of
    // all the kernels, and those run within the submissions' wall time.
    if let (Some(wall), Some(kernels)) = (step["timed_step_wall_us"].as_f64(), step["timed_step_kernels_us"].as_f64()) {
        let matmuls = step["matmul_sum_us"].as_f64().unwrap();
        assert!(0.0 < matmuls && matmuls < kernels && kernels <= wall * 1.01, "{step}");
        assert!((step["step_over_matmul"].as_f64().unwrap() - wall / matmuls).abs() < 1e-3, "{step}");
    }
    // No allocation per step: the same buffers after the timed run.
    assert_eq!(step["gpu_buffers_after_warmup"], step["gpu_buffers_after_run"], "{step}");
    let timing = v["kernel_timing"].as_str().unwrap();
    assert!(timing.starts_with("GPU timestamps") || timing.starts_with("wall clock"), "{timing}");
    let kernels = v["kernels"].as_array().unwrap();
    let families: std::collections::BTreeSet<&str> = kernels.iter().map(|k| k["family"].as_str().unwrap()).collect();
    for family in ["matmul", "bias_act", "batchnorm", "bce", "adam", "rng", "gather"] {
        assert!(families.contains(family), "no {family} rows: {families:?}");
    }
    // Every matmul shape of the step has exactly one row the trainer uses.
    let chosen_matmuls: Vec<&serde_json::Value> =
        kernels.iter().filter(|k| k["family"] == "matmul" && k["chosen"] == true).collect();
    let model_shapes = gan_wgpu::models::matmul_shapes(16).len();
    assert!(chosen_matmuls.len() >= model_shapes, "{} chosen rows for {model_shapes} shapes", chosen_matmuls.len());
    // They are the variant the JSON names as the trainer's choice (or its
    // fallback on unaligned shapes, written "sg32x32>naive").
    let choice = v["matmul_choice"]["variant"].as_str().unwrap();
    assert!(v["matmul_choice"]["how"].as_str().is_some_and(|h| !h.is_empty()), "{}", v["matmul_choice"]);
    for row in &chosen_matmuls {
        let case = row["case"].as_str().unwrap();
        if case.contains("fused fwd") {
            continue;
        }
        assert!(row["variant"].as_str().unwrap().starts_with(choice), "{row} is not {choice}");
    }
    assert!(kernels.iter().all(|k| k["median_us"].as_f64().unwrap() > 0.0));
    // Both FMA ceilings: the per-FMA loop and the real one beside it.
    let ceilings: Vec<&str> =
        kernels.iter().filter(|k| k["family"] == "ceiling").map(|k| k["case"].as_str().unwrap()).collect();
    assert!(ceilings.iter().any(|c| c.contains("one update per FMA")), "{ceilings:?}");
    assert!(ceilings.iter().any(|c| c.contains("the real ceiling")), "{ceilings:?}");
    // A CPU adapter's figures come with the CPU that made them.
    let cpu_adapter = common::ctx().is_some_and(|c| c.is_cpu_adapter());
    assert_eq!(stdout.contains("\ncpu: "), cpu_adapter, "{stdout}");
    assert_eq!(v["cpu"].is_string(), cpu_adapter, "{}", v["cpu"]);
    if cfg!(target_os = "linux") && cpu_adapter {
        assert!(v["cpu"].as_str().unwrap().contains("logical CPUs"), "{}", v["cpu"]);
    }
}

/// True when there is no adapter and skipping was asked for
/// (GAN_WGPU_SKIP_GPU_TESTS=1; it says so); without an adapter and without
/// that, the test fails.
fn skip_without_adapter() -> bool {
    common::ctx().is_none()
}

/// Writes `count` random images of `h` x `w` in the seed's layout under `dir`.
fn write_idx_set(dir: &Path, count: usize, h: usize, w: usize) {
    let train = dir.join("train");
    std::fs::create_dir_all(&train).unwrap();
    let pixels: Vec<u8> = (0..count * h * w).map(|i| (i * 7919 % 251) as u8).collect();
    std::fs::write(train.join("train-images-idx3-ubyte"), gan_wgpu::io::data::idx_bytes(count, h, w, &pixels)).unwrap();
}

/// A grid of 25 images of h x w, scaled 4x with 4-pixel gaps, 5 a row.
fn grid_size(h: u32, w: u32) -> (u32, u32) {
    (5 * (w * 4 + 4) + 4, 5 * (h * 4 + 4) + 4)
}

/// Non-square and square images keep their height and width everywhere:
/// the epoch grid, the checkpoint metadata, `sample`'s grid and IDX. And
/// epochs are numbered from 0 wherever a user sees one, as in the tutorial
/// (log lines, file names, losses.csv, the epoch time).
#[test]
fn image_shape_and_epoch_numbers_follow_the_data_and_the_tutorial() {
    if skip_without_adapter() {
        return;
    }
    for (h, w) in [(20usize, 30usize), (28, 28)] {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        write_idx_set(&data, 64, h, w);
        let run = dir.path().join("run");
        let stdout = run_ok(&[
            "train",
            "--data",
            data.to_str().unwrap(),
            "--epochs",
            "2",
            "--batch-size",
            "32",
            "--log-every",
            "1",
            "--out",
            run.to_str().unwrap(),
        ]);
        assert!(stdout.contains(&format!("data: 64 images {h}x{w}")), "{stdout}");
        assert!(stdout.contains("Epoch:[  0/  2], step:[   1/   2]"), "{stdout}");
        assert!(stdout.contains("Epoch:[  1/  2], step:[   2/   2]"), "{stdout}");
        assert!(stdout.contains("time of epoch 0 is") && stdout.contains("time of epoch 1 is"), "{stdout}");
        assert!(!stdout.contains("time of epoch 2"), "{stdout}");
        for e in [0, 1] {
            let grid = image::open(run.join(format!("images/test_{e}.png"))).unwrap();
            assert_eq!((grid.width(), grid.height()), grid_size(h as u32, w as u32), "{h}x{w} test_{e}.png");
            assert!(run.join(format!("checkpoints/generator_{e}.safetensors")).is_file());
            assert!(run.join(format!("checkpoints/discriminator_{e}.safetensors")).is_file());
        }
        assert!(!run.join("images/test_2.png").exists() && !run.join("checkpoints/generator_2.safetensors").exists());
        let csv = std::fs::read_to_string(run.join("losses.csv")).unwrap();
        let epochs: Vec<&str> = csv.lines().skip(1).map(|l| l.split(',').next().unwrap()).collect();
        assert_eq!(epochs, ["0", "0", "1", "1"], "{csv}");
        let ck = run.join("checkpoints/generator_1.safetensors");
        let meta = gan_wgpu::io::checkpoint::Loaded::open(&ck).unwrap().metadata().unwrap();
        assert_eq!((meta["image_height"].as_str(), meta["image_width"].as_str()), (&*h.to_string(), &*w.to_string()));
        assert_eq!(meta["epoch"], "1");
        let (png, idx) = (dir.path().join("s.png"), dir.path().join("s.idx"));
        let ck_s = ck.to_str().unwrap();
        run_ok(&["sample", "--checkpoint", ck_s, "--out", png.to_str().unwrap(), "--idx", idx.to_str().unwrap()]);
        let grid = image::open(&png).unwrap();
        assert_eq!((grid.width(), grid.height()), grid_size(h as u32, w as u32), "{h}x{w} sample grid");
        let set = gan_wgpu::io::data::read_images(&idx, None).unwrap();
        assert_eq!((set.count, set.height, set.width), (25, h, w));
    }
}

/// Every flag of every command says what it does (clap adds the default).
#[test]
fn every_flag_has_a_description() {
    for cmd in [&["train"][..], &["sample"], &["show-data"], &["bench"], &["devices"], &[]] {
        let mut args = cmd.to_vec();
        args.push("--help");
        let help = run_ok(&args);
        let mut options = 0;
        for line in help.lines() {
            let t = line.trim_start();
            if !t.starts_with('-') {
                continue;
            }
            options += 1;
            // "--flag <VALUE>   What it does [default: x]": the description is
            // what follows the first run of two or more spaces.
            let description = t.split_once("  ").map(|(_, d)| d.trim()).unwrap_or("");
            let description = description.split("[default:").next().unwrap().trim();
            assert!(!description.is_empty(), "{cmd:?}: '{t}' has no description:\n{help}");
        }
        assert!(options >= 1, "{cmd:?}: no options in:\n{help}");
    }
}

/// A typo in an environment setting is an error listing the valid values,
/// before any adapter is opened (so no GPU is needed to see it).
#[test]
fn bad_environment_settings_are_errors_that_list_valid_values() {
    for (var, value, valid) in [
        ("GAN_WGPU_MATMUL", "sg32", "naive, tiled, reg4x4, sg32x32"),
        ("GAN_WGPU_AUTOTUNE", "yes", "0 (use the table), 1 (measure)"),
    ] {
        let out = gan().args(["bench", "--quick"]).env(var, value).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{var}={value}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(var) && stderr.contains(value) && stderr.contains(valid), "{stderr}");
    }
}

/// README is for users: no lab notebook, no issue numbers in the docs.
#[test]
fn docs_refer_to_no_issue_numbers_and_readme_stays_short() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    for e in std::fs::read_dir(root.join("docs")).expect("a docs/ folder") {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "md") {
            files.push(p);
        }
    }
    assert!(files.len() >= 3, "README.md and docs/*.md: {files:?}");
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let lower = text.to_lowercase();
        for (i, _) in lower.match_indices("issue") {
            let rest = lower[i + 5..].trim_start_matches([' ', '#']);
            assert!(
                !rest.starts_with(|c: char| c.is_ascii_digit()),
                "{}: refers to an issue number: {}",
                f.display(),
                &text[i..(i + 20).min(text.len())]
            );
        }
    }
    let readme = std::fs::metadata(root.join("README.md")).unwrap().len();
    assert!(readme < 10_000, "README.md is {readme} bytes: keep it a product page, move notes to docs/");
    assert!(root.join("docs/architecture.md").is_file(), "docs/architecture.md, the code map, is missing");
}

/// An adapter short of a limit the run needs is refused in one line that
/// names the limit, what is needed and what the adapter has, before any
/// pipeline is built or parameter drawn: here WebGPU's default 128 MiB
/// storage binding against a generator whose last layer alone takes
/// 4096x4096 images (the data set itself, 144 MiB, would be held in two).
#[test]
fn an_adapter_short_of_a_limit_is_refused_in_one_line() {
    if skip_without_adapter() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let train = data.join("train");
    std::fs::create_dir_all(&train).unwrap();
    let mut bytes = gan_wgpu::io::data::idx_bytes(9, 4096, 4096, &[]);
    bytes.resize(bytes.len() + 9 * 4096 * 4096, 7);
    std::fs::write(train.join("train-images-idx3-ubyte"), &bytes).unwrap();
    drop(bytes);
    let out = gan()
        .args(["train", "--batch-size", "8", "--data", data.to_str().unwrap()])
        .args(["--out", dir.path().join("run").to_str().unwrap()])
        .env("GAN_WGPU_LIMITS", "webgpu")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    for needle in
        ["WebGPU's default limits", "max_storage_buffer_binding_size is 134217728", "the generator's parameters"]
    {
        assert!(stderr.contains(needle), "missing '{needle}' in: {stderr}");
    }
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Epoch:"));
}

/// Each default lives in `gan_wgpu::defaults`: clap shows those values,
/// the page reads them as JSON, and the page's files write none of their own.
#[test]
fn defaults_live_in_one_place_and_reach_clap_and_the_page() {
    use gan_wgpu::defaults;
    let out = gan().args(["train", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for (flag, value) in [
        ("--batch-size", defaults::BATCH.to_string()),
        ("--epochs", defaults::EPOCHS.to_string()),
        ("--latent-size", defaults::LATENT.to_string()),
        ("--lr", defaults::LR.to_string()),
        ("--seed", defaults::SEED.to_string()),
        ("--ema-decay", defaults::EMA_DECAY.to_string()),
    ] {
        let line = help.lines().position(|l| l.trim_start().starts_with(flag)).expect(flag);
        let text: String = help.lines().skip(line).take(3).collect();
        assert!(text.contains(&format!("[default: {value}]")), "{flag}: {text}");
    }
    let json: serde_json::Value = serde_json::from_str(&gan_wgpu::models::defaults_json()).unwrap();
    assert_eq!(json["batch"], defaults::BATCH);
    assert_eq!(json["lr"].as_f64(), Some(0.0002), "the shortest decimal form: {json}");
    assert_eq!(json["seed"], defaults::SEED);
    assert_eq!(json["grid_samples"], defaults::GRID_SAMPLES);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("web/static");
    // The page's modules (app.js, state.js, draw.js, training.js) and its HTML.
    let mut page = std::fs::read_to_string(root.join("index.html")).unwrap();
    let mut modules = 0;
    for e in std::fs::read_dir(&root).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "js") {
            page += &std::fs::read_to_string(&p).unwrap();
            modules += 1;
        }
    }
    assert!(modules >= 4, "the page's modules: {modules}");
    for written in ["value=\"128\"", "0.0002", "num('seed', 1)", "num('batch', 128)", ", 25, h, w"] {
        assert!(!page.contains(written), "the page writes a default of its own: {written}");
    }
}
