//! A run's log for tools: TensorBoard's event records, metrics.jsonl,
//! summary.json, the JSON stream on stdout, exit codes, and `compare`.
//! TensorBoard's own reader checks the event files in CI
//! (scripts/check-tensorboard.py); here the records are read back with
//! their CRCs checked.

mod common;
use gan_wgpu::io::images::LossRow;
use gan_wgpu::io::run_log::{self, Entry, QualityPoint, RunLog, RunLogConfig, Track};
use gan_wgpu::io::tfevents;
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};

/// A child process killed when the test ends, failed or not.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn gan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gan-wgpu"))
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Every event of the folder's event files, CRCs checked.
fn events_in(run: &Path) -> Vec<tfevents::Event> {
    let files = run_log::event_files(&run.join(run_log::TENSORBOARD_DIR)).unwrap();
    assert_eq!(files.len(), 1, "one event file expected: {files:?}");
    tfevents::read_records(&files[0], &std::fs::read(&files[0]).unwrap()).unwrap()
}

/// (step, value) of a scalar tag.
fn scalars(events: &[tfevents::Event], tag: &str) -> Vec<(i64, f32)> {
    events
        .iter()
        .flat_map(|e| e.summary.iter().flat_map(|s| &s.value).map(move |v| (e.step, v)))
        .filter(|(_, v)| v.tag == tag)
        .filter_map(|(step, v)| Some((step, v.simple_value?)))
        .collect()
}

fn json_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn event_records_read_back_and_a_damaged_one_is_refused() {
    let events = vec![
        tfevents::file_version_event(1.5),
        tfevents::scalars_event(2.0, 7, &[("train/loss_d", 0.25), ("train/loss_g", -3.5)]),
        tfevents::text_event(2.5, 7, "settings", "| a | b |"),
    ];
    let bytes: Vec<u8> = events.iter().flat_map(tfevents::record).collect();
    let path = Path::new("test.tfevents");
    assert_eq!(tfevents::read_records(path, &bytes).unwrap(), events);
    // A record cut short at the end (a writer killed mid-record) is left out.
    assert_eq!(tfevents::read_records(path, &bytes[..bytes.len() - 3]).unwrap(), events[..2]);
    // A flipped byte inside an event fails its CRC, naming the record.
    let mut bad = bytes.clone();
    let second = tfevents::record(&events[0]).len();
    bad[second + 14] ^= 1;
    let err = tfevents::read_records(path, &bad).unwrap_err().to_string();
    assert!(err.contains(&format!("record at byte {second}")) && err.contains("CRC"), "{err}");
    // The record layout: u64 length, then its masked CRC32C.
    let rec = tfevents::record(&events[1]);
    let len = u64::from_le_bytes(rec[..8].try_into().unwrap()) as usize;
    assert_eq!(rec.len(), 8 + 4 + len + 4);
    // A PNG's size and colour type come from its header.
    let png = gan_wgpu::io::images::png_bytes(&gan_wgpu::io::images::Picture {
        width: 3,
        height: 2,
        channels: 3,
        bytes: vec![9; 18],
    })
    .unwrap();
    let img = tfevents::image_event(0.0, 1, "grid", png).unwrap();
    let v = &img.summary.unwrap().value[0];
    let i = v.image.as_ref().unwrap();
    assert_eq!((i.width, i.height, i.colorspace), (3, 2, 3));
}

fn row(step: u64, loss: f32) -> LossRow {
    LossRow { epoch: 0, step, loss_d: loss, loss_g: 1.0 - loss, d_real: 0.5, d_fake: 0.25, seconds: 0.01 }
}

#[test]
fn the_log_writes_every_entry_and_a_resume_drops_what_came_after_its_state() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().to_path_buf();
    std::fs::create_dir_all(run.join("images")).unwrap();
    let grid = gan_wgpu::io::images::Picture { width: 4, height: 4, channels: 1, bytes: vec![7; 16] };
    std::fs::write(run.join("images/test_0.png"), gan_wgpu::io::images::png_bytes(&grid).unwrap()).unwrap();
    let cfg = RunLogConfig { dir: run.clone(), carry_from: None, up_to_step: 0, tensorboard: true };
    let mut log = RunLog::open(&cfg).unwrap();
    let settings = serde_json::json!({"model": "gan", "lr": 0.0002});
    log.log(Entry::Start { step: 0, settings: settings.clone(), resumed_from: None });
    for s in [2, 4, 6, 8] {
        log.log(Entry::Step(row(s, s as f32 / 10.0)));
    }
    let grids = vec![("grid/trained", Path::new("images/test_0.png").to_path_buf())];
    log.log(Entry::Epoch { epoch: 0, step: 8, seconds: 1.0, grids });
    let q = |step, fid| QualityPoint {
        epoch: 0,
        step,
        track: Track::Trained,
        fid,
        inception_score: 2.0,
        classes_covered: 9,
        conditional_accuracy: None,
        seconds: 0.5,
    };
    let line = log.log(Entry::Quality(q(8, 30.5)));
    assert!(line.contains("\"fid\":30.5"), "{line}");
    assert_eq!(log.fid[0].best, Some((8, 30.5)));
    log.finish(&serde_json::json!({"exit_reason": "done"})).unwrap();

    let lines = json_lines(&run.join(run_log::METRICS_FILE));
    let kinds: Vec<&str> = lines.iter().map(|l| l["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["start", "step", "step", "step", "step", "epoch", "quality"]);
    // The step line's keys are the documented ones (docs/runs.md).
    let mut keys: Vec<&str> = lines[1].as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    let documented = [
        "d_g_z",
        "d_x",
        "elapsed",
        "epoch",
        "kind",
        "loss_d",
        "loss_g",
        "seconds_per_step",
        "step",
        "steps_per_s",
        "time",
    ];
    assert_eq!(keys, documented);
    assert_eq!(lines[2]["loss_d"].to_string(), "0.4", "f32s are written in their shortest form");
    let events = events_in(&run);
    assert_eq!(events[0].file_version.as_deref(), Some(tfevents::FILE_VERSION));
    let want: Vec<(i64, f32)> = [2, 4, 6, 8].iter().map(|&s| (s, s as f32 / 10.0)).collect();
    assert_eq!(scalars(&events, "train/loss_d"), want);
    assert_eq!(scalars(&events, "quality/fid"), [(8, 30.5)]);
    assert!(events.iter().any(|e| e.summary.as_ref().is_some_and(|s| s.value[0].image.is_some())));
    assert!(run.join(run_log::SUMMARY_FILE).is_file());

    // Resumed from a state at step 4: steps 6 and 8, the epoch and the
    // score after it are dropped; the log goes on from there.
    let resumed = RunLogConfig { dir: run.clone(), carry_from: Some(run.clone()), up_to_step: 4, tensorboard: true };
    let mut log = RunLog::open(&resumed).unwrap();
    assert_eq!(log.fid[0].best, None, "the score at step 8 was dropped");
    log.log(Entry::Start { step: 4, settings, resumed_from: Some(run.display().to_string()) });
    log.log(Entry::Step(row(6, 0.75)));
    log.finish(&serde_json::json!({"exit_reason": "done"})).unwrap();
    let steps: Vec<(String, u64)> = json_lines(&run.join(run_log::METRICS_FILE))
        .iter()
        .map(|l| (l["kind"].as_str().unwrap().to_string(), l["step"].as_u64().unwrap()))
        .collect();
    let want: Vec<(String, u64)> =
        [("start", 0), ("step", 2), ("step", 4), ("start", 4), ("step", 6)].map(|(k, s)| (k.into(), s)).into();
    assert_eq!(steps, want);
    let events = events_in(&run);
    assert_eq!(scalars(&events, "train/loss_d"), [(2, 0.2), (4, 0.4), (6, 0.75)]);
    assert!(scalars(&events, "quality/fid").is_empty());
}

fn small_train(out: &Path) -> Command {
    let mut c = gan();
    c.args(["train", "--limit", "256", "--batch-size", "32", "--log-every", "2", "--epochs", "2", "--out"]).arg(out);
    c
}

/// `--log-format json`: stdout carries exactly metrics.jsonl's lines, the
/// log goes to stderr; summary.json says the run is done.
#[test]
fn json_stdout_is_the_metrics_file_and_the_summary_says_done() {
    if common::ctx().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let o = small_train(&out).args(["--log-format", "json"]).output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    let file = std::fs::read_to_string(out.join(run_log::METRICS_FILE)).unwrap();
    assert_eq!(text(&o.stdout), file, "stdout and metrics.jsonl differ");
    assert!(text(&o.stderr).contains("Epoch:[  1/  2], step:[   8/   8]"), "{}", text(&o.stderr));
    let lines = json_lines(&out.join(run_log::METRICS_FILE));
    assert_eq!(lines.iter().filter(|l| l["kind"] == "step").count(), 8);
    assert_eq!(lines.iter().filter(|l| l["kind"] == "epoch").count(), 2);
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!((&summary["exit_reason"], &summary["exit_code"]), (&"done".into(), &0.into()), "{summary}");
    assert_eq!((&summary["steps"], &summary["epochs_done"]), (&16.into(), &2.into()), "{summary}");
    assert_eq!(summary["settings"]["batch_size"], 32);
    // The event file holds the same losses.
    let events = events_in(&out);
    let csv: Vec<(i64, f32)> = std::fs::read_to_string(out.join("losses.csv"))
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[1].parse().unwrap(), f[2].parse().unwrap())
        })
        .collect();
    assert_eq!(scalars(&events, "train/loss_d"), csv);
    // --no-tensorboard: no event file, the rest as before.
    let plain = dir.path().join("plain");
    let o = small_train(&plain).arg("--no-tensorboard").output().unwrap();
    assert!(o.status.success(), "{}", text(&o.stderr));
    assert!(!plain.join(run_log::TENSORBOARD_DIR).exists());
    assert!(text(&o.stdout).contains("Epoch:["), "text stdout keeps the log");
    assert_eq!(std::fs::read_to_string(plain.join(run_log::METRICS_FILE)).unwrap().lines().count(), 1 + 8 + 2);
}

/// compare over a finished, a stopped, a diverged, a running run and one
/// without metrics.jsonl: one row each with its status and the setting
/// that differs; the figure and the sheet.
#[test]
fn compare_lists_each_run_with_its_status() {
    if common::ctx().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let runs = dir.path().join("sweep");
    let run = |name: &str, extra: &[&str]| {
        let o = small_train(&runs.join(name)).args(extra).output().unwrap();
        (o.status.code(), text(&o.stderr))
    };
    assert_eq!(run("done", &[]).0, Some(0));
    // A run folder as engines before metrics.jsonl wrote it: read from its
    // losses.csv and state.
    assert_eq!(run("older", &["--lr", "0.0003", "--no-run-log"]).0, Some(0));
    assert!(!runs.join("older/metrics.jsonl").exists());
    assert_eq!(run("stopped", &["--lr", "0.0001", "--stop-after-steps", "5"]).0, Some(0));
    let (code, err) = run("diverged", &["--lr", "1e30"]);
    assert_eq!(code, Some(3), "{err}");
    std::fs::create_dir_all(runs.join("not-a-run")).unwrap();
    // A run paused after 3 steps holds its folder's lock: running.
    let mut paused = KillOnDrop(
        small_train(&runs.join("going")).args(["--pause-after-steps", "3"]).stdout(Stdio::piped()).spawn().unwrap(),
    );
    let mut stdout = std::io::BufReader::new(paused.0.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("paused after 3 steps") {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut stdout, &mut line).unwrap() > 0, "the paused run ended");
    }
    let cmp = dir.path().join("cmp");
    let pattern = format!("{}/*", runs.display());
    let o = gan().args(["compare", &pattern, "--out"]).arg(&cmp).output().unwrap();
    let stdout = text(&o.stdout);
    assert!(o.status.success(), "{}{}", stdout, text(&o.stderr));
    assert!(text(&o.stderr).contains("not-a-run holds no metrics.jsonl or losses.csv"), "{}", text(&o.stderr));
    let header = stdout.lines().next().unwrap();
    assert!(header.starts_with("| run | lr | status |"), "only lr differs: {header}");
    let expected = [
        ("done", "0.0002", "done"),
        ("stopped", "0.0001", "resumable"),
        ("diverged", "1e30", "diverged"),
        ("going", "0.0002", "running"),
        ("older", "0.0003", "done"),
    ];
    for (name, lr, status) in expected {
        let line = stdout.lines().find(|l| l.starts_with(&format!("| {name} |"))).unwrap_or_else(|| panic!("{stdout}"));
        let lr_shown = line.split(" | ").nth(1).unwrap();
        assert_eq!(lr_shown.parse::<f64>().unwrap(), lr.parse::<f64>().unwrap(), "{line}");
        assert!(line.contains(&format!("| {status} |")), "{line}");
    }
    assert!(stdout.contains("5 runs (2 done, 1 running, 1 resumable, 1 diverged)"), "{stdout}");
    let table: Vec<&str> = stdout.lines().take(7).collect();
    assert_eq!(std::fs::read_to_string(cmp.join("table.md")).unwrap(), table.join("\n") + "\n");
    let curves = image::open(cmp.join("compare.png")).unwrap();
    assert_eq!((curves.width(), curves.height()), (1000, 900));
    let sheet = image::open(cmp.join("grids.png")).unwrap();
    assert_eq!(sheet.height(), 5 * 244, "one row per run");
}

/// Removes ANSI escape sequences (ESC [ ... letter) and keeps what a
/// terminal shows of each line: the text after its last carriage return.
fn terminal_lines(raw: &str) -> Vec<String> {
    let mut plain = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            plain.push(c);
        }
    }
    plain.split('\n').map(|l| l.trim_end_matches('\r').rsplit('\r').next().unwrap_or("").to_string()).collect()
}

/// On a terminal (util-linux's `script` gives the run a pseudo-terminal),
/// the progress bar is drawn on stderr and the JSON lines still reach the
/// terminal whole, each on its own line, equal to metrics.jsonl.
#[cfg(target_os = "linux")]
#[test]
fn json_lines_stay_whole_beside_the_progress_bar_on_a_terminal() {
    if common::ctx().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let typescript = dir.path().join("typescript");
    let cmd = format!(
        "{} train --epochs 2 --limit 1024 --batch-size 64 --log-every 2 --log-format json --out {}",
        env!("CARGO_BIN_EXE_gan-wgpu"),
        out.display()
    );
    let o = Command::new("script").arg("-qec").arg(&cmd).arg(&typescript).output().expect("util-linux's script");
    assert!(o.status.success(), "{}{}", text(&o.stdout), text(&o.stderr));
    let raw = String::from_utf8_lossy(&std::fs::read(&typescript).unwrap()).into_owned();
    assert!(raw.contains("steps, "), "no progress bar was drawn: {raw}");
    let lines = terminal_lines(&raw);
    let json: Vec<&String> = lines.iter().filter(|l| l.starts_with('{')).collect();
    let file = std::fs::read_to_string(out.join(run_log::METRICS_FILE)).unwrap();
    assert_eq!(json, file.lines().collect::<Vec<_>>(), "the terminal's JSON lines differ from metrics.jsonl");
    assert!(lines.iter().all(|l| l.starts_with('{') || !l.contains("{\"")), "a JSON line was cut by the bar");
}
