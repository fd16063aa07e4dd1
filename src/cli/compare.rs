//! `gan-wgpu compare DIR...`: run folders side by side (`eval::compare`
//! reads and draws them). A pattern the shell did not expand (quoted, or
//! on a shell without globbing) is expanded here.

use super::{GanError, PathBuf};
use gan_wgpu::eval::compare;

#[derive(clap::Args)]
pub(super) struct CompareArgs {
    /// Run folders (train --out), or glob patterns of them such as 'sweep/*'; folders without a metrics.jsonl or losses.csv are skipped with a note.
    #[arg(required = true, value_name = "DIR")]
    runs: Vec<String>,
    /// Folder for table.md, compare.png (FID and loss curves) and grids.png (the latest grids, a row per run).
    #[arg(long, value_name = "DIR", default_value = "compare")]
    out: PathBuf,
}

/// The folders named by `args`: each an existing path, else a glob pattern.
fn run_folders(args: &[String]) -> gan_wgpu::Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for a in args {
        let path = PathBuf::from(a);
        if path.exists() {
            dirs.push(path);
            continue;
        }
        let bad = |why: String| GanError::Flag { flag: "compare DIR", why };
        let matches = glob::glob(a).map_err(|e| bad(format!("{a}: {e}")))?;
        let found: Vec<PathBuf> = matches.filter_map(|m| m.ok()).collect();
        if found.is_empty() {
            return Err(bad(format!("{a}: no such folder, and no folder matches it as a pattern")));
        }
        dirs.extend(found);
    }
    dirs.retain(|d| d.is_dir());
    dirs.sort();
    dirs.dedup();
    Ok(dirs)
}

pub(super) fn compare(a: CompareArgs) -> gan_wgpu::Result<()> {
    let out_dir = a.out.canonicalize().ok();
    let mut runs = Vec::new();
    for dir in run_folders(&a.runs)? {
        if dir.canonicalize().ok() == out_dir && out_dir.is_some() {
            continue;
        }
        if !compare::is_run(&dir) {
            eprintln!("note: {} holds no metrics.jsonl or losses.csv: not a run folder, skipped", dir.display());
            continue;
        }
        runs.push(compare::read_run(&dir)?);
    }
    if runs.is_empty() {
        return Err(GanError::Flag { flag: "compare DIR", why: "none of the folders holds a run".into() });
    }
    let table = compare::table(&runs);
    std::fs::create_dir_all(&a.out).map_err(|e| GanError::io(&a.out, e))?;
    gan_wgpu::fs::atomic_write(&a.out.join("table.md"), table.as_bytes())?;
    compare::save_curves(&a.out.join("compare.png"), &runs)?;
    compare::save_sheet(&a.out.join("grids.png"), &runs)?;
    print!("{table}");
    let count = |s: compare::RunStatus| runs.iter().filter(|r| r.status == s).count();
    let statuses: Vec<String> = [
        compare::RunStatus::Done,
        compare::RunStatus::Running,
        compare::RunStatus::Resumable,
        compare::RunStatus::Diverged,
        compare::RunStatus::Failed,
    ]
    .into_iter()
    .filter(|s| count(*s) > 0)
    .map(|s| format!("{} {}", count(s), s.name()))
    .collect();
    println!(
        "{} runs ({}); table.md, compare.png and grids.png in {}",
        runs.len(),
        statuses.join(", "),
        a.out.display()
    );
    Ok(())
}
