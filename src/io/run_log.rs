//! A run's log for tools beside its CSV files: `metrics.jsonl` (one JSON
//! object a line), TensorBoard's event file in `tensorboard/`, and
//! `summary.json` at the end. docs/runs.md documents every key.
//!
//! The trainer only queues entries (`RunLog::log`: a channel send, no
//! disk); a writer thread encodes and appends them, and flushes whenever
//! the queue is empty, so a slow disk never holds a step back.
//!
//! A resumed run carries the log of the folder it resumes from up to its
//! state's step (`RunLogConfig::up_to_step`) into a fresh event file and a
//! rewritten `metrics.jsonl`, and drops anything after it: no step is
//! logged twice, whatever the reader.
//!
//! May import: `io::tfevents`, `io::images` (a loss row), `fs`, `error`.

use super::images::LossRow;
use super::tfevents::{self, Event};
use crate::error::{GanError, Result};
use crate::fs::{atomic_write, read_text_if_exists};
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

pub const METRICS_FILE: &str = "metrics.jsonl";
pub const SUMMARY_FILE: &str = "summary.json";
pub const TENSORBOARD_DIR: &str = "tensorboard";
/// The text tag of the run's settings in TensorBoard.
const SETTINGS_TAG: &str = "settings";

/// Which generator a score is of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Track {
    Trained,
    /// The moving average (`--ema-decay`).
    Averaged,
}

impl Track {
    pub fn name(self) -> &'static str {
        match self {
            Track::Trained => "trained",
            Track::Averaged => "averaged",
        }
    }
    fn scalar_prefix(self) -> &'static str {
        match self {
            Track::Trained => "quality",
            Track::Averaged => "quality_averaged",
        }
    }
}

/// One generator scored at one step (`train --eval-every`).
#[derive(Clone, Debug, PartialEq)]
pub struct QualityPoint {
    pub epoch: usize,
    pub step: u64,
    pub track: Track,
    pub fid: f64,
    pub inception_score: f64,
    pub classes_covered: usize,
    /// A conditional model's: the share of samples classified as their label.
    pub conditional_accuracy: Option<f64>,
    pub seconds: f64,
}

/// What the log records.
#[derive(Clone, Debug)]
pub enum Entry {
    /// A run starts (or resumes) at `step` with these settings.
    Start {
        step: u64,
        settings: Value,
        resumed_from: Option<String>,
    },
    /// A logged step (a row of losses.csv).
    Step(LossRow),
    Quality(QualityPoint),
    /// An epoch ended at `step`: its grids, as paths inside the run folder,
    /// with their TensorBoard tags.
    Epoch {
        epoch: usize,
        step: u64,
        seconds: f64,
        grids: Vec<(&'static str, PathBuf)>,
    },
}

/// A JSON number, or null for a non-finite one.
fn num(v: f64) -> Value {
    serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number)
}

/// An f32 as the shortest decimal that reads back as the same f32 (as
/// losses.csv writes it), or null for a non-finite one.
pub fn json_f32(v: f32) -> Value {
    format!("{v}").parse::<f64>().map_or(Value::Null, num)
}

impl Entry {
    /// The entry's line of metrics.jsonl (without the newline). `time` is
    /// the Unix time in seconds; `elapsed` the run's training seconds so far.
    pub fn json_line(&self, time: f64, elapsed: f64) -> String {
        let v = match self {
            Entry::Start { step, settings, resumed_from } => {
                json!({"kind": "start", "step": step, "time": time, "settings": settings, "resumed_from": resumed_from})
            }
            Entry::Step(r) => json!({
                "kind": "step", "epoch": r.epoch, "step": r.step, "loss_d": json_f32(r.loss_d),
                "loss_g": json_f32(r.loss_g), "d_x": json_f32(r.d_real), "d_g_z": json_f32(r.d_fake),
                "seconds_per_step": num(r.seconds), "steps_per_s": num(1.0 / r.seconds),
                "time": time, "elapsed": num(elapsed)
            }),
            Entry::Quality(q) => json!({
                "kind": "quality", "epoch": q.epoch, "step": q.step, "generator": q.track.name(),
                "fid": num(q.fid), "inception_score": num(q.inception_score),
                "classes_covered": q.classes_covered, "conditional_accuracy": q.conditional_accuracy.map(num),
                "seconds": num(q.seconds), "time": time
            }),
            Entry::Epoch { epoch, step, seconds, grids } => {
                let grids: serde_json::Map<String, Value> =
                    grids.iter().map(|(tag, p)| (tag.to_string(), json!(p.to_string_lossy()))).collect();
                json!({"kind": "epoch", "epoch": epoch, "step": step, "seconds": num(*seconds), "grids": grids,
                       "time": time, "elapsed": num(elapsed)})
            }
        };
        v.to_string()
    }

    fn step(&self) -> u64 {
        match self {
            Entry::Start { step, .. } | Entry::Epoch { step, .. } => *step,
            Entry::Step(r) => r.step,
            Entry::Quality(q) => q.step,
        }
    }
}

/// Where a run's log goes and what it carries over.
#[derive(Clone, Debug)]
pub struct RunLogConfig {
    /// The run's output folder.
    pub dir: PathBuf,
    /// The folder a resumed run goes on from (its own or another); None
    /// for a fresh run.
    pub carry_from: Option<PathBuf>,
    /// The resumed state's step: what the old log holds after it is dropped.
    pub up_to_step: u64,
    /// Write TensorBoard's event file (metrics.jsonl is always written).
    pub tensorboard: bool,
}

/// The best and the latest FID of one generator.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FidTally {
    pub last: Option<(u64, f64)>,
    pub best: Option<(u64, f64)>,
    pub classes_covered: Option<usize>,
}

impl FidTally {
    fn add(&mut self, step: u64, fid: f64, classes: usize) {
        self.last = Some((step, fid));
        self.classes_covered = Some(classes);
        if fid.is_finite() && self.best.is_none_or(|(_, b)| fid < b) {
            self.best = Some((step, fid));
        }
    }
}

enum Message {
    /// An entry with its metrics.jsonl line (made once, by `RunLog::log`).
    Write {
        entry: Entry,
        line: String,
        time: f64,
    },
    Close,
}

/// The open log: entries go to the writer thread.
pub struct RunLog {
    dir: PathBuf,
    sender: mpsc::Sender<Message>,
    writer: Option<std::thread::JoinHandle<Result<()>>>,
    /// Training seconds of the run before this process (carried entries).
    carried_elapsed: f64,
    started: std::time::Instant,
    /// [trained, averaged].
    pub fid: [FidTally; 2],
}

fn unix_time() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

impl RunLog {
    /// Opens the log of a run in `cfg.dir`: carries the resumed folder's
    /// entries up to `cfg.up_to_step` (or starts empty), then starts the
    /// writer. Errors name the file.
    pub fn open(cfg: &RunLogConfig) -> Result<RunLog> {
        let carried = carried_lines(cfg)?;
        let mut fid = [FidTally::default(); 2];
        let mut carried_elapsed = 0.0f64;
        for (_, v) in &carried {
            carried_elapsed = carried_elapsed.max(v["elapsed"].as_f64().unwrap_or(0.0));
            if v["kind"] == "quality" {
                let i = usize::from(v["generator"] == "averaged");
                let (step, f) = (v["step"].as_u64().unwrap_or(0), v["fid"].as_f64().unwrap_or(f64::NAN));
                fid[i].add(step, f, v["classes_covered"].as_u64().unwrap_or(0) as usize);
            }
        }
        let text: String = carried.iter().map(|(l, _)| format!("{l}\n")).collect();
        let metrics_path = cfg.dir.join(METRICS_FILE);
        atomic_write(&metrics_path, text.as_bytes())?;
        let metrics = std::fs::OpenOptions::new().append(true).open(&metrics_path);
        let metrics = std::io::BufWriter::new(metrics.map_err(|e| GanError::io(&metrics_path, e))?);
        let events = if cfg.tensorboard { Some(open_event_file(cfg)?) } else { None };
        let (sender, receiver) = mpsc::channel();
        let files = Files { dir: cfg.dir.clone(), metrics, metrics_path, events };
        let writer = std::thread::Builder::new()
            .name("gan-wgpu run log".into())
            .spawn(move || files.run(receiver))
            .map_err(|e| GanError::io(&cfg.dir, e))?;
        Ok(RunLog {
            dir: cfg.dir.clone(),
            sender,
            writer: Some(writer),
            carried_elapsed,
            started: std::time::Instant::now(),
            fid,
        })
    }

    /// The run's training seconds so far, across the runs it resumed.
    pub fn elapsed(&self) -> f64 {
        self.carried_elapsed + self.started.elapsed().as_secs_f64()
    }

    /// Queues `entry` for the writer and returns its metrics.jsonl line.
    /// Never waits on the disk.
    pub fn log(&mut self, entry: Entry) -> String {
        let (time, elapsed) = (unix_time(), self.elapsed());
        if let Entry::Quality(q) = &entry {
            self.fid[usize::from(q.track == Track::Averaged)].add(q.step, q.fid, q.classes_covered);
        }
        let line = entry.json_line(time, elapsed);
        // A writer that stopped on an error reports it at `finish`.
        let _ = self.sender.send(Message::Write { entry, line: line.clone(), time });
        line
    }

    /// Waits for the writer to empty its queue, then writes summary.json.
    /// An error the writer met (a full disk) is returned here.
    pub fn finish(mut self, summary: &Value) -> Result<()> {
        let written = self.close();
        atomic_write(&self.dir.join(SUMMARY_FILE), format!("{summary:#}\n").as_bytes())?;
        written
    }

    fn close(&mut self) -> Result<()> {
        let _ = self.sender.send(Message::Close);
        match self.writer.take().map(|w| w.join()) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(GanError::data(&self.dir, "the run log's writer panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for RunLog {
    fn drop(&mut self) {
        let _ = self.close();
    }
}

/// The lines of the resumed folder's metrics.jsonl at steps up to
/// `up_to_step`, each with its parsed object (a start line at that very
/// step is replaced by this run's; a line that does not parse is dropped).
fn carried_lines(cfg: &RunLogConfig) -> Result<Vec<(String, Value)>> {
    let Some(from) = &cfg.carry_from else { return Ok(Vec::new()) };
    let Some(text) = read_text_if_exists(&from.join(METRICS_FILE))? else { return Ok(Vec::new()) };
    Ok(text
        .lines()
        .filter_map(|l| Some((l.to_string(), serde_json::from_str::<Value>(l).ok()?)))
        .filter(|(_, v)| {
            let step = v["step"].as_u64().unwrap_or(u64::MAX);
            step < cfg.up_to_step || (step == cfg.up_to_step && v["kind"] != "start")
        })
        .collect())
}

/// The mean of the last 20 logged steps' rates (steps a second), from each
/// logged step's seconds a step, newest last; None without any.
pub fn recent_steps_per_s(seconds_per_step: impl DoubleEndedIterator<Item = f64>) -> Option<f64> {
    let rates: Vec<f64> = seconds_per_step.rev().take(20).map(|s| 1.0 / s).collect();
    (!rates.is_empty()).then(|| rates.iter().sum::<f64>() / rates.len() as f64)
}

/// Whether `name` is a TensorBoard event file.
fn is_event_file(name: &str) -> bool {
    name.contains("tfevents")
}

/// The event files of a folder, oldest first (their names start with the
/// time they were made).
pub fn event_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let Ok(list) = std::fs::read_dir(dir) else { return Ok(Vec::new()) };
    let mut files: Vec<PathBuf> = list
        .filter_map(|e| e.ok())
        .filter(|e| is_event_file(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(files)
}

/// Makes this run's event file: the version event and the carried events
/// (steps up to `up_to_step`), written atomically; then removes the
/// folder's older event files, and opens the new one for appending.
fn open_event_file(cfg: &RunLogConfig) -> Result<std::io::BufWriter<std::fs::File>> {
    let tb = cfg.dir.join(TENSORBOARD_DIR);
    std::fs::create_dir_all(&tb).map_err(|e| GanError::io(&tb, e))?;
    let mut bytes = tfevents::record(&tfevents::file_version_event(unix_time()));
    if let Some(from) = &cfg.carry_from {
        for f in event_files(&from.join(TENSORBOARD_DIR))? {
            let old = std::fs::read(&f).map_err(|e| GanError::io(&f, e))?;
            for ev in tfevents::read_records(&f, &old)?.iter().filter(|e| keeps(e, cfg.up_to_step)) {
                bytes.extend(tfevents::record(ev));
            }
        }
    }
    let (secs, pid) = (unix_time() as u64, std::process::id());
    let path = tb.join(format!("events.out.tfevents.{secs:010}.gan-wgpu.{pid}"));
    let old = event_files(&tb)?;
    atomic_write(&path, &bytes)?;
    for f in old.iter().filter(|f| **f != path) {
        std::fs::remove_file(f).map_err(|e| GanError::io(f, e))?;
    }
    let file = std::fs::OpenOptions::new().append(true).open(&path).map_err(|e| GanError::io(&path, e))?;
    Ok(std::io::BufWriter::new(file))
}

/// Whether a carried event stays: a summary at a step up to `up_to`, but
/// not the settings of a start at `up_to` (this run writes its own).
fn keeps(e: &Event, up_to: u64) -> bool {
    let Some(s) = &e.summary else { return false };
    let step = e.step.max(0) as u64;
    step < up_to || (step == up_to && !s.value.iter().any(|v| v.tag == SETTINGS_TAG))
}

/// The writer thread's files.
struct Files {
    dir: PathBuf,
    metrics: std::io::BufWriter<std::fs::File>,
    metrics_path: PathBuf,
    events: Option<std::io::BufWriter<std::fs::File>>,
}

impl Files {
    /// Writes entries as they come, flushing whenever the queue is empty.
    fn run(mut self, receiver: mpsc::Receiver<Message>) -> Result<()> {
        while let Ok(first) = receiver.recv() {
            for message in std::iter::once(first).chain(receiver.try_iter()) {
                match message {
                    Message::Write { entry, line, time } => self.write(&entry, &line, time)?,
                    Message::Close => return self.flush(),
                }
            }
            self.flush()?;
        }
        self.flush()
    }

    fn write(&mut self, entry: &Entry, line: &str, time: f64) -> Result<()> {
        writeln!(self.metrics, "{line}").map_err(|e| GanError::io(&self.metrics_path, e))?;
        if self.events.is_none() {
            return Ok(());
        }
        let records: Vec<u8> = self.events_of(entry, time)?.iter().flat_map(tfevents::record).collect();
        if let Some(events) = &mut self.events {
            events.write_all(&records).map_err(|e| GanError::io(self.dir.join(TENSORBOARD_DIR), e))?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.metrics.flush().map_err(|e| GanError::io(&self.metrics_path, e))?;
        if let Some(ev) = &mut self.events {
            ev.flush().map_err(|e| GanError::io(self.dir.join(TENSORBOARD_DIR), e))?;
        }
        Ok(())
    }

    /// The TensorBoard events of one entry.
    fn events_of(&self, entry: &Entry, time: f64) -> Result<Vec<Event>> {
        let step = entry.step();
        Ok(match entry {
            Entry::Start { settings, .. } => {
                vec![tfevents::text_event(time, step, SETTINGS_TAG, &settings_markdown(settings))]
            }
            Entry::Step(r) => vec![tfevents::scalars_event(
                time,
                step,
                &[
                    ("train/loss_d", r.loss_d),
                    ("train/loss_g", r.loss_g),
                    ("train/D(x)", r.d_real),
                    ("train/D(G(z))", r.d_fake),
                    ("train/steps_per_s", (1.0 / r.seconds) as f32),
                ],
            )],
            Entry::Quality(q) => {
                let p = q.track.scalar_prefix();
                let (fid, cov, acc) =
                    (format!("{p}/fid"), format!("{p}/coverage"), format!("{p}/conditional_accuracy"));
                let mut scalars = vec![(fid.as_str(), q.fid as f32), (cov.as_str(), q.classes_covered as f32)];
                if let Some(a) = q.conditional_accuracy {
                    scalars.push((acc.as_str(), a as f32));
                }
                vec![tfevents::scalars_event(time, step, &scalars)]
            }
            Entry::Epoch { grids, .. } => grids
                .iter()
                .map(|(tag, rel)| {
                    let path = self.dir.join(rel);
                    let png = std::fs::read(&path).map_err(|e| GanError::io(&path, e))?;
                    tfevents::image_event(time, step, tag, png)
                })
                .collect::<Result<_>>()?,
        })
    }
}

/// The settings as a two-column Markdown table (TensorBoard's text tab).
fn settings_markdown(settings: &Value) -> String {
    let mut s = String::from("| setting | value |\n|---|---|\n");
    if let Some(map) = settings.as_object() {
        for (k, v) in map {
            let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
            s.push_str(&format!("| {k} | {v} |\n"));
        }
    }
    s
}
