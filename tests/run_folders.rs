//! Where a run writes and what it reads, as a user meets it: a resumed run
//! goes on in its own folder, refuses other data or another --limit without
//! writing anything, two runs never share a folder (a killed run's lock does
//! not block the next), and a data folder with its test files beside the
//! training files (or none) is evaluated on images the classifier never saw.

mod common;
use gan_wgpu::io::data::{self, ImageSet, Reference};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn gan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gan-wgpu"))
}

fn have_gpu() -> bool {
    common::ctx().is_some()
}

/// A small training command (256 images, batch 32: 8 steps an epoch) run in `cwd`.
fn small_train(cwd: &Path, epochs: usize, extra: &[&str]) -> Command {
    let mut c = gan();
    c.current_dir(cwd)
        .args(["train", "--limit", "256", "--batch-size", "32", "--log-every", "4", "--eval-every", "0"])
        .args(["--epochs", &epochs.to_string()])
        .args(extra);
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// One line on stderr, exit 2 (bad input), and every needle in it.
fn assert_one_line_error(out: &Output, needles: &[&str]) {
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}{stderr}", text(&out.stdout));
    assert_eq!(stderr.trim().lines().count(), 1, "one line expected: {stderr}");
    for n in needles {
        assert!(stderr.contains(n), "missing '{n}' in: {stderr}");
    }
}

/// Every file under `dir` with its length and modification time.
fn listing(dir: &Path) -> Vec<(PathBuf, u64, std::time::SystemTime)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let m = e.metadata().unwrap();
        if m.is_dir() {
            v.extend(listing(&e.path()));
        } else {
            v.push((e.path(), m.len(), m.modified().unwrap()));
        }
    }
    v.sort();
    v
}

#[test]
fn a_resumed_run_goes_on_in_its_own_folder_and_says_so_first() {
    if !have_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    ok(small_train(dir.path(), 1, &["--out", "r"]).output().unwrap());
    let stdout = ok(small_train(dir.path(), 2, &["--resume", "r"]).output().unwrap());
    assert_eq!(stdout.lines().next(), Some("outputs in r (resuming r)"), "{stdout}");
    let r = dir.path().join("r");
    for f in ["checkpoints/generator_1.safetensors", "checkpoints/state_0002_00000.safetensors", "images/test_1.png"] {
        assert!(r.join(f).is_file(), "the resumed run wrote no r/{f}");
    }
    assert!(!dir.path().join("result").exists(), "the resumed run wrote into ./result");
    let losses = std::fs::read_to_string(r.join("losses.csv")).unwrap();
    assert!(losses.lines().any(|l| l.starts_with("1,16,")), "epoch 1's losses are not in r/losses.csv:\n{losses}");
    // A new run without --out still writes ./result, and says so.
    let stdout = ok(small_train(dir.path(), 1, &[]).output().unwrap());
    assert_eq!(stdout.lines().next(), Some("outputs in result"), "{stdout}");
    assert!(dir.path().join("result/checkpoints/generator_0.safetensors").is_file());
}

/// `count` images of `h` x `w` in two classes that a classifier can tell
/// apart (class 1 is bright in its top half), as `{prefix}-images-idx3-ubyte`
/// and `{prefix}-labels-idx1-ubyte` in `dir`.
fn write_labelled(dir: &Path, prefix: &str, count: usize, h: usize, w: usize, seed: u64) {
    std::fs::create_dir_all(dir).unwrap();
    let mut r = common::rng(seed);
    let labels: Vec<u8> = (0..count).map(|i| (i % 2) as u8).collect();
    let mut pixels = Vec::with_capacity(count * h * w);
    for &l in &labels {
        for y in 0..h {
            for _ in 0..w {
                let bright = (y < h / 2) == (l == 1);
                let base: u8 = if bright { 200 } else { 20 };
                pixels.push(base.saturating_add(rand::Rng::random_range(&mut r, 0..40)));
            }
        }
    }
    std::fs::write(dir.join(format!("{prefix}-images-idx3-ubyte")), data::idx_bytes(count, h, w, &pixels)).unwrap();
    let mut lb = vec![0, 0, 0x08, 1];
    lb.extend_from_slice(&(count as u32).to_be_bytes());
    lb.extend_from_slice(&labels);
    std::fs::write(dir.join(format!("{prefix}-labels-idx1-ubyte")), lb).unwrap();
}

#[test]
fn resuming_on_other_data_or_another_limit_is_one_line_and_writes_nothing() {
    if !have_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    ok(small_train(dir.path(), 1, &["--out", "r"]).output().unwrap());
    let other = dir.path().join("other-data");
    write_labelled(&other, "train", 256, 28, 28, 5);
    let before = listing(&dir.path().join("r"));

    let out = small_train(dir.path(), 2, &["--resume", "r", "--data", other.to_str().unwrap()]).output().unwrap();
    assert_one_line_error(
        &out,
        &["other data", "<embedded>/train-images-idx3-ubyte.gz", "other-data/train-images-idx3-ubyte", "content hash"],
    );
    // Same data, another --limit: the flag is named with both values.
    let mut c = gan();
    c.current_dir(dir.path()).args(["train", "--limit", "128", "--batch-size", "32", "--epochs", "2", "--resume", "r"]);
    assert_one_line_error(&c.output().unwrap(), &["--limit 256", "--limit 128"]);
    // Into another folder: not even that folder is made.
    let out = small_train(dir.path(), 2, &["--resume", "r", "--data", other.to_str().unwrap(), "--out", "elsewhere"])
        .output()
        .unwrap();
    assert_one_line_error(&out, &["other data"]);
    assert!(!dir.path().join("elsewhere").exists(), "a refused resume made its --out");
    assert_eq!(listing(&dir.path().join("r")), before, "a refused resume changed the run's files");
    // The matching resume still goes on.
    ok(small_train(dir.path(), 2, &["--resume", "r"]).output().unwrap());
}

/// `--resume DIR` alone goes on as the run was started: model, sizes,
/// seed, limit, optimiser, average and epochs come from its state, the log
/// names those that differ from the defaults, and the run ends bit for bit
/// as an uninterrupted one. A flag given again that the state contradicts
/// is one line naming the flag to leave out.
#[test]
fn a_resume_takes_the_runs_settings_for_the_flags_left_out() {
    if !have_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let mut c = gan();
        c.current_dir(dir.path()).args(["train", "--eval-every", "0", "--log-every", "4"]).args(args);
        c.output().unwrap()
    };
    let flags = [
        "--limit",
        "96",
        "--batch-size",
        "32",
        "--epochs",
        "2",
        "--latent-size",
        "16",
        "--seed",
        "3",
        "--lr",
        "0.001",
        "--beta1",
        "0.6",
        "--ema-decay",
        "0.9",
        "--loss",
        "hinge",
        "--n-critic",
        "2",
    ];
    ok(run(&[&flags[..], &["--out", "whole"]].concat()));
    ok(run(&[&flags[..], &["--out", "part", "--stop-after-steps", "4"]].concat()));
    let log = ok(run(&["--resume", "part"]));
    let settings =
        log.lines().find(|l| l.starts_with("settings of the resumed run:")).unwrap_or_else(|| panic!("{log}"));
    for f in [
        "--epochs 2",
        "--batch-size 32",
        "--latent-size 16",
        "--seed 3",
        "--lr 0.001",
        "--beta1 0.6",
        "--ema-decay 0.9",
        "--limit 96",
        "--loss hinge",
        "--n-critic 2",
    ] {
        assert!(settings.contains(f), "'{f}' missing from: {settings}");
    }
    assert!(log.contains("done: 2 epochs, 6 steps"), "{log}");
    let losses = |run: &str| -> Vec<String> {
        let csv = std::fs::read_to_string(dir.path().join(run).join("losses.csv")).unwrap();
        csv.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
    };
    assert_eq!(losses("part"), losses("whole"));
    for f in ["checkpoints/generator_1.safetensors", "checkpoints/generator_ema_1.safetensors"] {
        let read = |run: &str| std::fs::read(dir.path().join(run).join(f)).unwrap();
        assert_eq!(read("part"), read("whole"), "{f}: the resumed run differs");
    }
    // Given again against the state: refused, naming the flag.
    let again = run(&["--resume", "whole", "--latent-size", "8", "--epochs", "3"]);
    assert_one_line_error(&again, &["latent_size 16", "this run has 8", "leave --latent-size out"]);
    let again = run(&["--resume", "whole", "--loss", "bce", "--epochs", "3"]);
    assert_one_line_error(&again, &["--loss hinge", "this run has --loss bce", "leave --loss out"]);

    // A data folder (the seed's layout) is taken too: the run goes on on it.
    let folder = dir.path().join("digits");
    write_labelled(&folder.join("train"), "train", 96, 28, 28, 7);
    let data = folder.to_str().unwrap();
    ok(run(&["--data", data, "--limit", "64", "--batch-size", "32", "--epochs", "2", "--out", "on-folder"]));
    let stopped = run(&[
        "--data",
        data,
        "--limit",
        "64",
        "--batch-size",
        "32",
        "--epochs",
        "2",
        "--stop-after-steps",
        "1",
        "--out",
        "on-folder-part",
    ]);
    ok(stopped);
    let log = ok(run(&["--resume", "on-folder-part"]));
    assert!(log.contains(&format!("--data {data}")), "{log}");
    assert_eq!(losses("on-folder-part"), losses("on-folder"));
}

/// `data_dir_of` inverts what `--data` reads: the seed's layout gives the
/// folder above train/, the flat one the images' folder, the embedded set none.
#[test]
fn the_data_folder_is_found_from_the_images_it_read() {
    use std::path::Path;
    for (images, dir) in [
        ("/d/mnist/train/train-images-idx3-ubyte.gz", Some("/d/mnist")),
        ("/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz", Some("/usr/share/datasets/fashion-mnist")),
        ("train/train-images-idx3-ubyte", Some(".")),
        ("train-images-idx3-ubyte", Some(".")),
        ("<embedded>/train-images-idx3-ubyte.gz", None),
    ] {
        assert_eq!(data::data_dir_of(Path::new(images)), dir.map(PathBuf::from), "{images}");
    }
}

/// A child process killed when the test ends, failed or not (a paused run
/// would otherwise wait out its two minutes).
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn two_runs_never_share_a_folder_and_a_killed_runs_lock_does_not_block() {
    if !have_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Run A holds the folder, paused after its first step.
    let mut a = KillOnDrop(
        small_train(dir.path(), 2, &["--out", "same", "--pause-after-steps", "1"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let a_pid = a.0.id();
    let mut stdout = std::io::BufReader::new(a.0.stdout.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() > 0, "A ended early: {seen}");
        seen.push_str(&line);
        if line.starts_with("paused after 1 steps") {
            break;
        }
    }
    let b = small_train(dir.path(), 2, &["--out", "same"]).output().unwrap();
    assert_one_line_error(&b, &["same", "in use by another gan-wgpu run", &format!("process {a_pid}")]);
    assert!(!dir.path().join("same/checkpoints/generator_0.safetensors").exists(), "B wrote into A's folder");

    // A is killed (no clean-up runs): its lock file stays, the lock does not.
    drop(a);
    let lock_file = dir.path().join("same").join(gan_wgpu::train::LOCK_FILE);
    assert_eq!(std::fs::read_to_string(&lock_file).unwrap(), a_pid.to_string(), "the lock file names its holder");
    ok(small_train(dir.path(), 1, &["--out", "same"]).output().unwrap());
    assert!(dir.path().join("same/checkpoints/generator_0.safetensors").is_file());
}

#[test]
fn one_process_shares_its_own_lock_and_releases_it_with_the_last_guard() {
    let dir = tempfile::tempdir().unwrap();
    let first = gan_wgpu::train::open_run_dir(dir.path(), true, false).unwrap();
    let again = gan_wgpu::train::lock_out_dir(dir.path()).expect("the same process may lock its folder again");
    assert_eq!(first.lock.dir(), again.dir());
    // Another open file description is another holder: refused while held.
    let other = std::fs::File::open(dir.path().join(gan_wgpu::train::LOCK_FILE)).unwrap();
    assert!(other.try_lock().is_err(), "the folder was not locked");
    drop(first);
    assert!(other.try_lock().is_err(), "released while a guard was alive");
    drop(again);
    other.try_lock().expect("released with the last guard");
}

fn labelled_set(count: usize) -> ImageSet {
    let mut set = common::random_set(count, 4, 3, 9);
    set.labels = Some((0..count).map(|i| (i % 10) as u8).collect());
    set
}

#[test]
fn test_files_beside_the_training_files_are_the_test_split() {
    let dir = tempfile::tempdir().unwrap();
    write_labelled(dir.path(), "train", 60, 6, 5, 1);
    write_labelled(dir.path(), "t10k", 14, 6, 5, 2);
    let train = data::load(Some(dir.path())).unwrap();
    let test = data::load_test(Some(dir.path())).unwrap().expect("t10k-* beside train-* is the test split");
    assert_eq!((test.count, test.height, test.width), (14, 6, 5));
    assert_eq!(test.labels.as_ref().map(Vec::len), Some(14), "the test labels beside them are read");
    let splits = data::eval_splits(Some(dir.path()), &train).unwrap();
    assert_eq!(splits.kind, Reference::TestSplit);
    assert_eq!((splits.train.count, splits.reference.count), (60, 14));
    assert_eq!(splits.accuracy_name(), "test accuracy");
    // A test split of another image size is refused, as in DIR/test.
    write_labelled(dir.path(), "t10k", 14, 5, 5, 2);
    let err = data::load(Some(dir.path())).unwrap_err().to_string();
    assert!(err.contains("test images are 5x5, training images 6x5"), "{err}");
}

#[test]
fn without_a_test_split_every_sixth_training_image_is_held_out() {
    let dir = tempfile::tempdir().unwrap();
    write_labelled(dir.path(), "train", 61, 6, 5, 1);
    let train = data::load(Some(dir.path())).unwrap();
    let splits = data::eval_splits(Some(dir.path()), &train).unwrap();
    assert_eq!(splits.kind, Reference::HeldOut { stride: 6, of: 61 });
    assert_eq!((splits.train.count, splits.reference.count), (51, 10));
    assert_eq!(splits.accuracy_name(), "held-out accuracy");
    assert!(splits.describe().contains("10 images held out of the 61-image training split"), "{}", splits.describe());
    // Images 5, 11, ... are held out with their labels; the rest are kept, in order.
    let labels = train.labels.as_ref().unwrap();
    let (mut kept, mut held) = (0, 0);
    for (i, &label) in labels.iter().enumerate() {
        let (part, j) = if i % 6 == 5 { (&splits.reference, &mut held) } else { (&splits.train, &mut kept) };
        assert_eq!(part.image(*j), train.image(i), "image {i}");
        assert_eq!(part.labels.as_ref().unwrap()[*j], label, "label {i}");
        *j += 1;
    }
    // At most 10,000 images are held out of a large set.
    assert_eq!(data::held_out_stride(60_000), 6);
    assert_eq!(data::held_out_stride(70_000), 7);
    let (kept, held) = data::hold_out(&labelled_set(70_000)).unwrap();
    assert_eq!((kept.count, held.count), (60_000, 10_000));
    let err = data::hold_out(&labelled_set(5)).unwrap_err().to_string();
    assert!(err.contains("too few"), "{err}");
}

/// `eval --baselines` on a flat folder: its t10k-* files are the reference;
/// without them, held-out images are, and no line calls that a test.
#[test]
fn eval_on_a_flat_folder_names_what_it_measured_on() {
    if !have_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let eval = |data: &Path| {
        let out = gan()
            .args(["eval", "--baselines", "--count", "64", "--data", data.to_str().unwrap()])
            .env("GAN_WGPU_CACHE_DIR", &cache)
            .stderr(Stdio::null())
            .output()
            .unwrap();
        ok(out)
    };
    let with_test = dir.path().join("with-test");
    write_labelled(&with_test, "train", 400, 8, 8, 1);
    write_labelled(&with_test, "t10k", 100, 8, 8, 2);
    let stdout = eval(&with_test);
    assert!(stdout.contains("test accuracy 100.00%"), "{stdout}");
    assert!(stdout.contains("reference: the test split, 100 images from"), "{stdout}");

    let without = dir.path().join("without-test");
    write_labelled(&without, "train", 400, 8, 8, 1);
    let stdout = eval(&without);
    assert!(!stdout.contains("test accuracy") && !stdout.contains("test split,"), "{stdout}");
    assert!(stdout.contains("held-out accuracy"), "{stdout}");
    assert!(stdout.contains("reference: 66 images held out of the 400-image training split"), "{stdout}");
}

/// The metadata of a safetensors file (a state or a checkpoint).
fn metadata(path: &Path) -> std::collections::HashMap<String, String> {
    gan_wgpu::io::checkpoint::Loaded::open(path).unwrap().metadata().unwrap()
}

/// A fresh run into a folder that holds a run refuses in one line naming
/// what is there and the ways on; `--overwrite` moves the old run's files
/// into `previous-<time>/` (nothing deleted), and a resume then goes on
/// with the new run, not the old one.
#[test]
fn a_fresh_run_into_a_folder_with_a_run_refuses_and_overwrite_moves_it_aside() {
    if !have_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    ok(small_train(dir.path(), 2, &["--out", "same"]).output().unwrap());
    let same = dir.path().join("same");
    let before = listing(&same);
    let first_losses = std::fs::read(same.join("losses.csv")).unwrap();

    let out = small_train(dir.path(), 1, &["--out", "same", "--seed", "5"]).output().unwrap();
    assert_one_line_error(
        &out,
        &["same", "already holds a run", "model gan", "seed 0", "2 epochs done", "--resume", "--out", "--overwrite"],
    );
    assert_eq!(listing(&same), before, "a refused run changed the folder");

    let stdout = ok(small_train(dir.path(), 1, &["--out", "same", "--seed", "5", "--overwrite"]).output().unwrap());
    let moved: Vec<PathBuf> = std::fs::read_dir(&same)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("previous-"))
        .collect();
    assert_eq!(moved.len(), 1, "one previous-<time> folder expected: {moved:?}");
    let old = &moved[0];
    assert!(
        stdout.contains(&old.file_name().unwrap().to_string_lossy().to_string()),
        "the log names {old:?}: {stdout}"
    );
    assert_eq!(std::fs::read(old.join("losses.csv")).unwrap(), first_losses, "the old losses were not kept");
    for f in ["checkpoints/generator_1.safetensors", "checkpoints/state_0002_00000.safetensors", "images/test_1.png"] {
        assert!(old.join(f).is_file(), "the old run's {f} was not moved aside");
        assert!(!same.join(f).exists(), "the old run's {f} is still mixed into the new run");
    }
    let state = same.join("checkpoints/state_0001_00000.safetensors");
    assert_eq!(metadata(&state).get("seed").map(String::as_str), Some("5"));

    // A resume goes on with the new run (seed 5), from its own state.
    let log = ok(small_train(dir.path(), 2, &["--resume", "same"]).output().unwrap());
    assert!(log.contains("--seed 5"), "{log}");
    assert!(log.contains("state_0001_00000"), "{log}");
}

/// A folder holding the states of two runs (as older versions left them)
/// is not resumed: the refusal names both states and how they differ.
#[test]
fn a_resume_of_a_folder_with_states_of_two_runs_names_them_and_refuses() {
    if !have_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    ok(small_train(dir.path(), 1, &["--out", "a"]).output().unwrap());
    ok(small_train(dir.path(), 2, &["--out", "b", "--seed", "5"]).output().unwrap());
    let state_b = "checkpoints/state_0002_00000.safetensors";
    std::fs::copy(dir.path().join("b").join(state_b), dir.path().join("a").join(state_b)).unwrap();
    let before = listing(&dir.path().join("a"));
    let out = small_train(dir.path(), 3, &["--resume", "a"]).output().unwrap();
    assert_one_line_error(&out, &["states of more than one run", "state_0001_00000", "state_0002_00000", "seed"]);
    assert_eq!(listing(&dir.path().join("a")), before);
}

/// Every refusal of a new run (data, model and shape, batch against data,
/// resume identity, another run's folder) leaves no output folder.
#[test]
fn a_refused_run_leaves_no_folder_behind() {
    if !have_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let odd = dir.path().join("odd");
    write_labelled(&odd, "train", 64, 20, 30, 3);
    let odd = odd.to_str().unwrap();
    ok(small_train(dir.path(), 1, &["--out", "r"]).output().unwrap());
    let small = ["--limit", "256", "--batch-size", "32"];
    let refusals: [(Vec<&str>, &str); 5] = [
        ([&["--model", "dcgan", "--data", odd][..], &small].concat(), "square"),
        (vec!["--batch-size", "100000"], "fewer than one batch of 100000"),
        ([&["--data", "no-such-folder"][..], &small].concat(), "no-such-folder"),
        ([&["--resume", "r", "--data", odd][..], &small].concat(), "other data"),
        (vec!["--resume", "no-such-run"], "no-such-run"),
    ];
    for (i, (flags, needle)) in refusals.iter().enumerate() {
        let name = format!("d{i}");
        let out = gan()
            .current_dir(dir.path())
            .args(["train", "--epochs", "2", "--eval-every", "0", "--out", name.as_str()])
            .args(flags)
            .output()
            .unwrap();
        assert_one_line_error(&out, &[needle]);
        assert!(!dir.path().join(&name).exists(), "{flags:?}: the refused run left {name}/ behind");
    }
}

/// Latent codes with a NaN or an infinity are one line naming the file and
/// the first bad row and column; nothing is drawn.
#[test]
fn non_finite_latent_codes_are_refused_with_the_row_and_column() {
    if !have_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    ok(small_train(dir.path(), 1, &["--out", "r", "--ema-decay", "0"]).output().unwrap());
    let mut z = vec![0.5f32; 4 * 100];
    z[2 * 100 + 7] = f32::NAN;
    z[3 * 100] = f32::INFINITY;
    let npy = dir.path().join("z.npy");
    std::fs::write(&npy, gan_wgpu::io::checkpoint::npy_bytes(&[4, 100], &z)).unwrap();
    let out = gan()
        .current_dir(dir.path())
        .args(["sample", "--checkpoint", "r/checkpoints/generator_0.safetensors", "--latent", "z.npy"])
        .args(["--out", "b.png"])
        .output()
        .unwrap();
    assert_one_line_error(&out, &["z.npy", "row 2, column 7", "NaN"]);
    assert!(!dir.path().join("b.png").exists(), "samples were drawn from NaN codes");
}

/// Generator checkpoints record their data set (content hash, source,
/// shape, channels, classes); `sample` and `eval` print it, and `eval`
/// warns in one line when it scores against other data, and still scores.
#[test]
fn checkpoints_record_their_data_and_eval_warns_on_other_data() {
    if !have_gpu() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("data-a"), dir.path().join("data-b"));
    write_labelled(&a, "train", 400, 8, 8, 1);
    write_labelled(&b, "train", 400, 8, 8, 2);
    let train = data::load(Some(&a)).unwrap();
    ok(small_train(dir.path(), 1, &["--out", "r", "--data", a.to_str().unwrap(), "--model", "cgan"]).output().unwrap());
    let ck = dir.path().join("r/checkpoints/generator_0.safetensors");
    for file in [ck.clone(), dir.path().join("r/checkpoints/generator_ema_0.safetensors")] {
        let meta = metadata(&file);
        let get = |k: &str| meta.get(k).map(String::as_str).unwrap_or_else(|| panic!("{file:?} has no {k}: {meta:?}"));
        assert_eq!(get("data_hash"), format!("{:016x}", train.content_hash()));
        assert!(get("data_source").ends_with("data-a/train-images-idx3-ubyte"), "{}", get("data_source"));
        assert_eq!(get("data_shape"), "8x8");
        assert_eq!(get("data_channels"), "1");
        assert_eq!(get("data_classes"), "0,1");
        assert_eq!(get("data_limit"), "256");
    }
    let cache = dir.path().join("cache");
    let eval = |data: &Path| {
        gan()
            .args(["eval", "--checkpoint", ck.to_str().unwrap(), "--count", "64", "--data", data.to_str().unwrap()])
            .env("GAN_WGPU_CACHE_DIR", &cache)
            .output()
            .unwrap()
    };
    let same = eval(&a);
    let stdout = ok(same.clone());
    assert!(stdout.contains("trained on: ") && stdout.contains("data-a/train-images-idx3-ubyte"), "{stdout}");
    assert!(!text(&same.stderr).contains("warning"), "{}", text(&same.stderr));

    let other = eval(&b);
    let stdout = ok(other.clone());
    let warnings: Vec<String> =
        text(&other.stderr).lines().filter(|l| l.starts_with("warning")).map(String::from).collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    for needle in ["not the data", "data-a/train-images-idx3-ubyte", "data-b/train-images-idx3-ubyte"] {
        assert!(warnings[0].contains(needle), "missing '{needle}': {}", warnings[0]);
    }
    assert!(stdout.contains("FID"), "scoring across data sets still scores: {stdout}");

    let sampled = ok(gan()
        .args(["sample", "--checkpoint", ck.to_str().unwrap(), "--count", "4"])
        .arg("--out")
        .arg(dir.path().join("s.png"))
        .output()
        .unwrap());
    assert!(sampled.contains("trained on: ") && sampled.contains("data-a/train-images-idx3-ubyte"), "{sampled}");
}
