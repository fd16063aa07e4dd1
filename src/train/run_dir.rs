//! A run's output folder: made and checked writable before any training,
//! and locked for the run's life so two runs never write one folder.
//!
//! The lock is an advisory lock (`flock` on Unix, `LockFileEx` on Windows,
//! through `std::fs::File::try_lock`) on `DIR/.gan-wgpu.lock`, which holds
//! the process id of the run that took it. The kernel releases the lock when
//! the process ends, crashed or killed included, so a stale file left by a
//! killed run never blocks the next one: only a live holder does.
//!
//! Within one process the lock is shared: the CLI takes it before loading
//! the data (a second run fails at once) and `train_with_hook` takes it again
//! for library callers; both get the same lock, released with the last guard.

use crate::checkpoint;
use crate::error::{GanError, Result};
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

/// Creates the output folders, checks that they can be written, and locks
/// the folder for this run: an unwritable --out, or one another run is
/// writing, fails before any training.
pub fn prepare_out_dir(out: &Path) -> Result<OutDirLock> {
    for sub in ["", "images", "checkpoints"] {
        let d = out.join(sub);
        std::fs::create_dir_all(&d).map_err(|e| GanError::io(&d, e))?;
    }
    let lock = lock_out_dir(out)?;
    let probe = out.join(".write-test");
    checkpoint::atomic_write(&probe, b"ok")?;
    let _ = std::fs::remove_file(&probe);
    Ok(lock)
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
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.read_to_string(&mut text);
            let holder = match text.trim().parse::<u32>() {
                Ok(pid) => format!("process {pid}"),
                Err(_) => "another process".to_string(),
            };
            return Err(GanError::data(
                out,
                format!(
                    "output folder in use by another gan-wgpu run ({holder} holds {LOCK_FILE}); \
                     wait for it to end or choose another --out"
                ),
            ));
        }
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
