//! Runs side by side (`gan-wgpu compare`): each run folder read from its
//! metrics.jsonl, summary.json, lock and states (a folder written before
//! metrics.jsonl existed, from its losses.csv, quality.csv and newest
//! state); a table of what differs and how each did; a figure of their
//! curves; a sheet of their latest grids, one row per run.

use crate::error::{GanError, Result};
use crate::io::images;
use crate::io::run_log::{recent_steps_per_s, METRICS_FILE, SUMMARY_FILE};
use crate::train::{is_in_use, state_files};
use serde_json::Value;
use std::path::{Path, PathBuf};

/// Where a run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunStatus {
    /// Its lock is held: a process is training it now.
    Running,
    Done,
    /// Interrupted, stopped, killed or failed with a state to go on from.
    Resumable,
    Diverged,
    /// Failed before a state was saved.
    Failed,
}

impl RunStatus {
    pub fn name(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Done => "done",
            RunStatus::Resumable => "resumable",
            RunStatus::Diverged => "diverged",
            RunStatus::Failed => "failed",
        }
    }
}

/// One run folder as compare reads it.
#[derive(Clone, Debug)]
pub struct RunRecord {
    pub dir: PathBuf,
    pub name: String,
    pub status: RunStatus,
    /// The latest start's settings (`train`'s flags).
    pub settings: serde_json::Map<String, Value>,
    /// (step, loss_d, loss_g) of each logged step.
    pub losses: Vec<(u64, f64, f64)>,
    /// (step, FID, classes covered) of each evaluation of the trained generator.
    pub fid: Vec<(u64, f64, usize)>,
    pub epochs: Option<u64>,
    pub epochs_done: u64,
    pub steps: u64,
    /// Training seconds so far, across resumes.
    pub seconds: Option<f64>,
    /// Mean of the last 20 logged steps' rates.
    pub steps_per_s: Option<f64>,
    pub latest_grid: Option<PathBuf>,
}

/// Whether `dir` holds a run compare can read: a metrics.jsonl, or an
/// older run's losses.csv.
pub fn is_run(dir: &Path) -> bool {
    dir.join(METRICS_FILE).is_file() || dir.join("losses.csv").is_file()
}

/// A record of the run in `dir` with nothing read yet.
fn empty_record(dir: &Path) -> RunRecord {
    let name = dir.file_name().map_or_else(|| dir.display().to_string(), |n| n.to_string_lossy().into_owned());
    RunRecord {
        dir: dir.to_path_buf(),
        name,
        status: RunStatus::Failed,
        settings: Default::default(),
        losses: Vec::new(),
        fid: Vec::new(),
        epochs: None,
        epochs_done: 0,
        steps: 0,
        seconds: None,
        steps_per_s: None,
        latest_grid: None,
    }
}

/// Reads the run in `dir` (`is_run`); errors name the file.
pub fn read_run(dir: &Path) -> Result<RunRecord> {
    let metrics = dir.join(METRICS_FILE);
    if !metrics.is_file() {
        return read_csv_run(dir);
    }
    let text = std::fs::read_to_string(&metrics).map_err(|e| GanError::io(&metrics, e))?;
    let summary: Option<Value> =
        std::fs::read_to_string(dir.join(SUMMARY_FILE)).ok().and_then(|t| serde_json::from_str(&t).ok());
    let mut r = empty_record(dir);
    let mut seconds_per_step = Vec::new();
    for v in text.lines().filter_map(|l| serde_json::from_str::<Value>(l).ok()) {
        let step = v["step"].as_u64().unwrap_or(0);
        r.steps = r.steps.max(step);
        match v["kind"].as_str() {
            Some("start") => r.settings = v["settings"].as_object().cloned().unwrap_or_default(),
            Some("step") => {
                r.losses.push((
                    step,
                    v["loss_d"].as_f64().unwrap_or(f64::NAN),
                    v["loss_g"].as_f64().unwrap_or(f64::NAN),
                ));
                seconds_per_step.extend(v["seconds_per_step"].as_f64());
                r.seconds = v["elapsed"].as_f64().or(r.seconds);
            }
            Some("epoch") => {
                r.epochs_done = v["epoch"].as_u64().map_or(r.epochs_done, |e| e + 1);
                r.seconds = v["elapsed"].as_f64().or(r.seconds);
            }
            Some("quality") if v["generator"] == "trained" => {
                let fid = v["fid"].as_f64().unwrap_or(f64::NAN);
                r.fid.push((step, fid, v["classes_covered"].as_u64().unwrap_or(0) as usize));
            }
            _ => {}
        }
    }
    r.steps_per_s = recent_steps_per_s(seconds_per_step.into_iter());
    r.epochs = r.settings.get("epochs").and_then(Value::as_u64);
    if let Some(s) = &summary {
        r.seconds = s["seconds"].as_f64().or(r.seconds);
        r.steps = s["steps"].as_u64().unwrap_or(r.steps);
    }
    r.status = status_of(dir, summary.as_ref());
    r.latest_grid = latest_grid(dir);
    Ok(r)
}

/// A run written before metrics.jsonl: its losses.csv, quality.csv and
/// the settings its newest state records.
fn read_csv_run(dir: &Path) -> Result<RunRecord> {
    let mut r = empty_record(dir);
    let rows = crate::train::read_losses(dir)?;
    r.losses = rows.iter().map(|l| (l.step, l.loss_d as f64, l.loss_g as f64)).collect();
    r.steps_per_s = recent_steps_per_s(rows.iter().map(|l| l.seconds));
    let quality = crate::eval::evaluate::read_quality_csv(&dir.join("quality.csv"), u64::MAX)?;
    r.fid = quality.iter().map(|q| (q.step, q.fid, q.classes_covered)).collect();
    if let Some(newest) = state_files(&dir.join("checkpoints")).unwrap_or_default().last() {
        let meta = crate::io::checkpoint::metadata_of(newest)?;
        for (key, setting) in SETTINGS_IN_STATES {
            if let Some(v) = meta.get(*key) {
                r.settings.insert(setting.to_string(), setting_value(v));
            }
        }
        r.steps = meta.get("steps_done").and_then(|s| s.parse().ok()).unwrap_or(0);
        r.epochs_done = meta.get("epoch").and_then(|s| s.parse().ok()).unwrap_or(0);
    }
    r.steps = r.steps.max(rows.last().map_or(0, |l| l.step));
    r.epochs = r.settings.get("epochs").and_then(Value::as_f64).map(|e| e as u64);
    r.status = match status_of(dir, None) {
        // Without a summary, a state at the last epoch's end is a finished run.
        RunStatus::Resumable if r.epochs.is_some_and(|e| r.epochs_done >= e) => RunStatus::Done,
        other => other,
    };
    r.latest_grid = latest_grid(dir);
    Ok(r)
}

/// A state's metadata value as metrics.jsonl writes the setting: an
/// integer, a number, or text.
fn setting_value(v: &str) -> Value {
    if let Ok(i) = v.parse::<u64>() {
        return Value::from(i);
    }
    v.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map_or_else(|| Value::from(v), Value::Number)
}

/// (a state's metadata key, the setting's name in metrics.jsonl).
const SETTINGS_IN_STATES: &[(&str, &str)] = &[
    ("model", "model"),
    ("loss", "loss"),
    ("n_critic", "n_critic"),
    ("gp_weight", "gp_weight"),
    ("epochs", "epochs"),
    ("batch_size", "batch_size"),
    ("latent_size", "latent_size"),
    ("lr", "lr"),
    ("beta1", "beta1"),
    ("beta2", "beta2"),
    ("seed", "seed"),
    ("ema_decay", "ema_decay"),
    ("dcgan_width", "width"),
    ("limit", "limit"),
    ("log_every", "log_every"),
];

fn status_of(dir: &Path, summary: Option<&Value>) -> RunStatus {
    if is_in_use(dir) {
        return RunStatus::Running;
    }
    let has_state = state_files(&dir.join("checkpoints")).is_ok_and(|s| !s.is_empty());
    match summary.and_then(|s| s["exit_reason"].as_str()) {
        Some("done") => RunStatus::Done,
        Some("diverged") => RunStatus::Diverged,
        _ if has_state => RunStatus::Resumable,
        _ => RunStatus::Failed,
    }
}

/// images/test_N.png of the highest N.
fn latest_grid(dir: &Path) -> Option<PathBuf> {
    let list = std::fs::read_dir(dir.join("images")).ok()?;
    list.filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let n: usize = name.strip_prefix("test_")?.strip_suffix(".png")?.parse().ok()?;
            Some((n, e.path()))
        })
        .max_by_key(|(n, _)| *n)
        .map(|(_, p)| p)
}

/// The settings with two different values among the runs that record
/// them (a run that does not, an older one, differs from none).
pub fn differing_settings(runs: &[RunRecord]) -> Vec<String> {
    let mut keys: Vec<String> = runs.iter().flat_map(|r| r.settings.keys().cloned()).collect();
    keys.sort();
    keys.dedup();
    keys.retain(|k| {
        let mut values = runs.iter().filter_map(|r| r.settings.get(k));
        let first = values.next();
        values.any(|v| Some(v) != first)
    });
    keys
}

fn setting_text(r: &RunRecord, k: &str) -> String {
    match r.settings.get(k) {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => "-".into(),
    }
}

/// A Markdown table: one row per run, its differing settings, status,
/// epochs, steps, last and best FID, classes covered, time and steps/s.
pub fn table(runs: &[RunRecord]) -> String {
    let keys = differing_settings(runs);
    let mut head = vec!["run".to_string()];
    head.extend(keys.iter().cloned());
    head.extend(["status", "epochs", "steps", "last FID", "best FID", "classes", "time", "steps/s"].map(String::from));
    let mut s = format!("| {} |\n|{}\n", head.join(" | "), "---|".repeat(head.len()));
    let opt = |v: Option<f64>, prec: usize| v.map_or("-".into(), |v| format!("{v:.prec$}"));
    for r in runs {
        let mut row = vec![r.name.clone()];
        row.extend(keys.iter().map(|k| setting_text(r, k)));
        let best = r.fid.iter().filter(|f| f.1.is_finite()).min_by(|a, b| a.1.total_cmp(&b.1));
        let epochs = r.epochs.map_or(format!("{}", r.epochs_done), |e| format!("{}/{e}", r.epochs_done));
        row.extend([
            r.status.name().to_string(),
            epochs,
            r.steps.to_string(),
            opt(r.fid.last().map(|f| f.1), 2),
            best.map_or("-".into(), |b| format!("{:.2} (step {})", b.1, b.0)),
            r.fid.last().map_or("-".into(), |f| f.2.to_string()),
            r.seconds.map_or("-".into(), |t| format!("{t:.1} s")),
            opt(r.steps_per_s, 1),
        ]);
        s.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    s
}

/// A run's colour in the figure and the sheet: matplotlib's ten, dark
/// enough for text on white, then around again.
fn colour(i: usize) -> plotters::style::RGBColor {
    const TEN: [(u8, u8, u8); 10] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
        (188, 189, 34),
        (23, 190, 207),
    ];
    let (r, g, b) = TEN[i % TEN.len()];
    plotters::style::RGBColor(r, g, b)
}

/// compare.png: FID (top), loss_d (middle) and loss_g (bottom) against
/// steps, one colour per run, named in the top panel's legend.
pub fn save_curves(path: &Path, runs: &[RunRecord]) -> Result<()> {
    use plotters::prelude::*;
    images::register_font();
    let (w, h) = (1000u32, 900u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let draw_err = |e: String| GanError::data(path, format!("drawing the comparison: {e}"));
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(e.to_string()))?;
        let panels = root.split_evenly((3, 1));
        let max_step = runs.iter().map(|r| r.steps).max().unwrap_or(1).max(1) as f64;
        type Pick = fn(&RunRecord) -> Vec<(f64, f64)>;
        let series: [(&str, Pick); 3] = [
            ("FID", |r| r.fid.iter().map(|f| (f.0 as f64, f.1)).collect()),
            ("loss_d", |r| r.losses.iter().map(|l| (l.0 as f64, l.1)).collect()),
            ("loss_g", |r| r.losses.iter().map(|l| (l.0 as f64, l.2)).collect()),
        ];
        for (panel, (label, pick)) in panels.iter().zip(series) {
            let all: Vec<Vec<(f64, f64)>> =
                runs.iter().map(|r| pick(r).into_iter().filter(|p| p.1.is_finite()).collect()).collect();
            let hi = all.iter().flatten().map(|p| p.1).fold(f64::MIN, f64::max).max(0.1) * 1.05;
            let lo = all.iter().flatten().map(|p| p.1).fold(0f64, f64::min);
            let mut chart = ChartBuilder::on(panel)
                .margin(12)
                .x_label_area_size(35)
                .y_label_area_size(60)
                .build_cartesian_2d(0f64..max_step, lo..hi)
                .map_err(|e| draw_err(e.to_string()))?;
            chart
                .configure_mesh()
                .x_desc("steps")
                .y_desc(label)
                .label_style(("sans-serif", 14))
                .draw()
                .map_err(|e| draw_err(e.to_string()))?;
            for (i, (r, points)) in runs.iter().zip(all).enumerate() {
                let c = colour(i);
                let drawn = chart.draw_series(LineSeries::new(points, c.stroke_width(2)));
                drawn
                    .map_err(|e| draw_err(e.to_string()))?
                    .label(r.name.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], c.stroke_width(2)));
            }
            // One legend, in the top panel.
            if label == "FID" {
                chart
                    .configure_series_labels()
                    .position(SeriesLabelPosition::UpperRight)
                    .label_font(("sans-serif", 14))
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK)
                    .draw()
                    .map_err(|e| draw_err(e.to_string()))?;
            }
        }
        root.present().map_err(|e| draw_err(e.to_string()))?;
    }
    images::save_rgb_png(path, &buf, w, h)
}

/// grids.png: one row per run, its name, status and last FID on the left
/// (in its colour in compare.png) and its latest grid scaled to one height.
pub fn save_sheet(path: &Path, runs: &[RunRecord]) -> Result<()> {
    use plotters::prelude::*;
    const ROW: u32 = 240;
    const LABEL: u32 = 240;
    images::register_font();
    let grids: Vec<Option<image::RgbImage>> = runs
        .iter()
        .map(|r| {
            let img = image::open(r.latest_grid.as_ref()?).ok()?.to_rgb8();
            let w = (img.width() * ROW / img.height().max(1)).max(1);
            Some(image::imageops::resize(&img, w, ROW, image::imageops::FilterType::Nearest))
        })
        .collect();
    let w = LABEL + grids.iter().flatten().map(|g| g.width()).max().unwrap_or(ROW) + 8;
    let h = ROW * runs.len().max(1) as u32 + 4 * runs.len() as u32;
    let mut buf = vec![255u8; (w * h * 3) as usize];
    let draw_err = |e: String| GanError::data(path, format!("drawing the sheet: {e}"));
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        for (i, r) in runs.iter().enumerate() {
            let y = (i as u32 * (ROW + 4)) as i32;
            let fid = r.fid.last().map_or("no FID".into(), |f| format!("FID {:.2}", f.1));
            let lines = [r.name.clone(), format!("{}, step {}", r.status.name(), r.steps), fid];
            for (j, line) in lines.iter().enumerate() {
                let style = ("sans-serif", 18).into_font().color(&colour(i));
                root.draw(&Text::new(line.clone(), (8, y + 20 + 26 * j as i32), style))
                    .map_err(|e| draw_err(e.to_string()))?;
            }
        }
        root.present().map_err(|e| draw_err(e.to_string()))?;
    }
    for (i, g) in grids.iter().enumerate() {
        let Some(g) = g else { continue };
        let y0 = i as u32 * (ROW + 4);
        for (x, y, p) in g.enumerate_pixels() {
            let at = (((y0 + y) * w + LABEL + x) * 3) as usize;
            buf[at..at + 3].copy_from_slice(&p.0);
        }
    }
    images::save_rgb_png(path, &buf, w, h)
}
