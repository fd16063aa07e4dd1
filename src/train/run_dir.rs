//! A run's output folder: made and checked writable before any training,
//! and locked for the run's life so two runs never write one folder.
//!
//! The lock is an advisory lock (`flock` on Unix, `LockFileEx` on Windows,
//! through `std::fs::File::try_lock`) on `DIR/.gan-wgpu.lock`, which holds
//! the process id of the run that took it. The kernel releases the lock when
//! the process ends, crashed or killed included, so a stale file left by a
//! killed run never blocks the next one: only a live holder does.
//!
//! Within one process the lock is shared: a second guard on the same folder
//! gets the same lock, released with the last guard. Before loading the
//! data, the CLI only probes it (`check_not_in_use`), creating nothing.

use crate::error::{GanError, Result};
use crate::io::checkpoint;
use std::collections::HashMap;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// The lock file inside an output folder.
pub const LOCK_FILE: &str = ".gan-wgpu.lock";

/// Holds the output folder's lock while alive (clones share it).
#[derive(Clone, Debug)]
pub struct OutDirLock {
    held: Arc<HeldLock>,
}

#[derive(Debug)]
struct HeldLock {
    dir: PathBuf,
    /// Keeps the lock: closing the file releases it.
    _file: std::fs::File,
}

impl OutDirLock {
    /// The folder this lock holds (canonical).
    pub fn dir(&self) -> &Path {
        &self.held.dir
    }
}

/// The locks this process holds, by canonical folder.
fn held_here() -> &'static Mutex<HashMap<PathBuf, Weak<HeldLock>>> {
    static HELD: OnceLock<Mutex<HashMap<PathBuf, Weak<HeldLock>>>> = OnceLock::new();
    HELD.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The refusal of a folder whose lock `file` another process holds: names
/// the holder's process id, as the lock file records it.
fn in_use(out: &Path, file: &mut std::fs::File) -> GanError {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    let holder = match text.trim().parse::<u32>() {
        Ok(pid) => format!("process {pid}"),
        Err(_) => "another process".to_string(),
    };
    GanError::data(
        out,
        format!(
            "output folder in use by another gan-wgpu run ({holder} holds {LOCK_FILE}); \
             wait for it to end or choose another --out"
        ),
    )
}

/// Whether a live process (this one or another) holds `out`'s lock: a run
/// is training into it now.
pub fn is_in_use(out: &Path) -> bool {
    out.join(LOCK_FILE).is_file() && check_not_in_use(out).is_err()
}

/// Refuses `out` if another process holds its lock, creating nothing: a
/// folder without a lock file is free. Checked before a run loads its data.
pub(super) fn check_not_in_use(out: &Path) -> Result<()> {
    let path = out.join(LOCK_FILE);
    let mut file = match std::fs::OpenOptions::new().read(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(GanError::io(&path, e)),
    };
    let dir = out.canonicalize().map_err(|e| GanError::io(out, e))?;
    if held_here().lock().unwrap_or_else(|p| p.into_inner()).get(&dir).and_then(Weak::upgrade).is_some() {
        return Ok(());
    }
    match file.try_lock_shared() {
        Ok(()) => Ok(()),
        Err(std::fs::TryLockError::WouldBlock) => Err(in_use(out, &mut file)),
        Err(std::fs::TryLockError::Error(e)) => Err(GanError::io(&path, e)),
    }
}

/// Locks the existing folder `out` for this process (see the module doc).
pub fn lock_out_dir(out: &Path) -> Result<OutDirLock> {
    let dir = out.canonicalize().map_err(|e| GanError::io(out, e))?;
    // A poisoned map only means another thread panicked while holding it;
    // its entries are still valid.
    let mut held = held_here().lock().unwrap_or_else(|p| p.into_inner());
    if let Some(h) = held.get(&dir).and_then(Weak::upgrade) {
        return Ok(OutDirLock { held: h });
    }
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(|e| GanError::io(&path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => return Err(in_use(out, &mut file)),
        Err(std::fs::TryLockError::Error(e)) => return Err(GanError::io(&path, e)),
    }
    // Ours now: say who holds it, for the next run's message.
    let written = file
        .set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| file.write_all(std::process::id().to_string().as_bytes()))
        .and_then(|()| file.flush());
    written.map_err(|e| GanError::io(&path, e))?;
    let h = Arc::new(HeldLock { dir: dir.clone(), _file: file });
    held.retain(|_, w| w.strong_count() > 0);
    held.insert(dir, Arc::downgrade(&h));
    Ok(OutDirLock { held: h })
}

/// What a run writes into its folder (`outputs`, the quality hook): a fresh
/// run into a folder holding any of these would mix two runs, and
/// `--overwrite` moves exactly these aside. Nothing else in the folder is
/// touched.
const RUN_OUTPUTS: &[&str] = &[
    "checkpoints",
    "images",
    "losses.csv",
    "losses.png",
    "progress.gif",
    "fixed_latent.npy",
    "quality.csv",
    "quality.png",
    "quality_ema.csv",
    "quality_ema.png",
    "metrics.jsonl",
    "summary.json",
    "tensorboard",
];

/// The prefix of the folder `--overwrite` moves an earlier run into.
const PREVIOUS_PREFIX: &str = "previous-";

/// A line saying what run the folder `out` holds (model, seed, epochs
/// done, from its newest state; else its checkpoints or losses.csv), or
/// None when it holds no state, checkpoint or losses.csv.
fn run_in(out: &Path) -> Option<String> {
    let ck = out.join("checkpoints");
    let states = super::state_files(&ck).unwrap_or_default();
    if let Some(newest) = states.last() {
        let meta = checkpoint::metadata_of(newest).unwrap_or_default();
        let get = |k: &str| meta.get(k).map_or("?", String::as_str);
        let mut done = format!("{} epochs done", get("epoch"));
        if meta.get("batch_in_epoch").is_some_and(|b| b != "0") {
            done.push_str(&format!(" and {} steps of the next", get("batch_in_epoch")));
        }
        return Some(format!("model {}, seed {}, {done}", get("model"), get("seed")));
    }
    let checkpoints = std::fs::read_dir(&ck)
        .map(|d| d.filter_map(|e| e.ok()).filter(|e| e.file_name().to_string_lossy().ends_with(".safetensors")).count())
        .unwrap_or(0);
    if checkpoints > 0 {
        return Some(format!("{checkpoints} checkpoint files, no training state"));
    }
    out.join("losses.csv").is_file().then(|| "a losses.csv".to_string())
}

/// A fresh run into `out` (or a resumed one into another run's folder):
/// refused in one line when the folder holds a run, unless `overwrite`.
/// Reads only; run before the data is loaded and again under the lock.
pub(super) fn check_fresh_out_dir(out: &Path, overwrite: bool) -> Result<()> {
    match run_in(out) {
        Some(what) if !overwrite => Err(GanError::data(
            out,
            format!(
                "already holds a run ({what}): --resume {d} to continue it, another --out for a new run, \
                 or --overwrite to move its files into {d}/{PREVIOUS_PREFIX}<time>/",
                d = out.display()
            ),
        )),
        _ => Ok(()),
    }
}

/// UTC `YYYYMMDD-HHMMSS` of `t` (proleptic Gregorian; Hinnant's civil-from-days).
fn utc_stamp(t: std::time::SystemTime) -> String {
    let secs = t.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{day:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Moves the run outputs (`RUN_OUTPUTS`) of the folder `out` into a new
/// `out/previous-<UTC time>/`, deleting nothing. Returns that folder, or
/// None when there was nothing to move.
fn move_run_aside(out: &Path) -> Result<Option<PathBuf>> {
    let present: Vec<&str> = RUN_OUTPUTS.iter().copied().filter(|n| out.join(n).exists()).collect();
    if present.is_empty() {
        return Ok(None);
    }
    let stamp = utc_stamp(std::time::SystemTime::now());
    let mut aside = out.join(format!("{PREVIOUS_PREFIX}{stamp}"));
    for k in 2.. {
        if !aside.exists() {
            break;
        }
        aside = out.join(format!("{PREVIOUS_PREFIX}{stamp}-{k}"));
    }
    std::fs::create_dir(&aside).map_err(|e| GanError::io(&aside, e))?;
    for name in present {
        let (from, to) = (out.join(name), aside.join(name));
        std::fs::rename(&from, &to).map_err(|e| GanError::io(&from, e))?;
    }
    Ok(Some(aside))
}

/// A run's output folder, made and locked for the run (`open_run_dir`).
/// Until `keep` is called, dropping it removes what it made (the folders
/// and the lock file), so a run that fails before writing its first file
/// leaves no folder behind.
#[derive(Debug)]
pub struct RunDir {
    pub lock: OutDirLock,
    /// Where `--overwrite` moved the earlier run's files.
    pub moved_aside: Option<PathBuf>,
    /// The folders this run created, outermost first; emptied by `keep`.
    made: Vec<PathBuf>,
}

impl RunDir {
    /// The run has written into the folder: it stays, whatever happens next.
    pub fn keep(&mut self) {
        self.made.clear();
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if self.made.is_empty() {
            return;
        }
        // Only a folder this run made loses its lock file: it holds nothing else.
        if self.made.iter().any(|d| d == self.lock.dir()) {
            let _ = std::fs::remove_file(self.lock.dir().join(LOCK_FILE));
        }
        for d in self.made.iter().rev() {
            let _ = std::fs::remove_dir(d);
        }
    }
}

/// Makes and locks a run's output folder `out` after every check has
/// passed: refuses (again, now under the lock) a folder holding a run unless
/// `overwrite`, which moves that run aside first.
pub fn open_run_dir(out: &Path, fresh: bool, overwrite: bool) -> Result<RunDir> {
    let mut made = Vec::new();
    let missing: Vec<PathBuf> =
        out.ancestors().take_while(|a| !a.as_os_str().is_empty() && !a.exists()).map(Path::to_path_buf).collect();
    for d in missing.into_iter().rev() {
        std::fs::create_dir(&d).map_err(|e| GanError::io(&d, e))?;
        made.push(d.canonicalize().map_err(|e| GanError::io(&d, e))?);
    }
    let lock = lock_out_dir(out)?;
    let mut dir = RunDir { lock, moved_aside: None, made };
    if fresh {
        check_fresh_out_dir(out, overwrite)?;
        if overwrite {
            dir.moved_aside = move_run_aside(out)?;
        }
    }
    for sub in ["images", "checkpoints"] {
        let d = out.join(sub);
        if !d.exists() {
            std::fs::create_dir(&d).map_err(|e| GanError::io(&d, e))?;
            dir.made.push(d.canonicalize().map_err(|e| GanError::io(&d, e))?);
        }
    }
    let probe = out.join(".write-test");
    checkpoint::atomic_write(&probe, b"ok")?;
    let _ = std::fs::remove_file(&probe);
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::utc_stamp;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn utc_stamps_are_calendar_times() {
        for (secs, want) in [
            (0, "19700101-000000"),
            (951_782_400, "20000229-000000"),
            (1_796_663_233, "20261207-170713"),
            (4_107_542_399, "21000228-235959"),
        ] {
            assert_eq!(utc_stamp(UNIX_EPOCH + Duration::from_secs(secs)), want, "{secs}");
        }
    }
}
