//! What a run tells tools (`io::run_log`): its settings, its start in the
//! log, and summary.json when it ends.

use super::{ImageSet, Reporter, Result, Run, RunSummary, TrainConfig, TrainEvent};
use crate::io::run_log::{json_f32, recent_steps_per_s, Entry, RunLog, RunLogConfig};
use std::sync::atomic::Ordering;

/// Opens the run's log (metrics.jsonl, TensorBoard) at `steps_done`,
/// carrying a resumed run's, and logs the start with the settings.
pub(super) fn open_run_log(
    cfg: &TrainConfig,
    data: &ImageSet,
    steps_done: u64,
    report: &mut Reporter,
) -> Result<Option<RunLog>> {
    if !cfg.run_log {
        return Ok(None);
    }
    let log_cfg = RunLogConfig {
        dir: cfg.out.clone(),
        carry_from: cfg.resume.as_deref().map(super::run_dir_of),
        up_to_step: steps_done,
        tensorboard: cfg.tensorboard,
    };
    let mut log = RunLog::open(&log_cfg)?;
    let resumed_from = cfg.resume.as_ref().map(|r| r.display().to_string());
    let line = log.log(Entry::Start { step: steps_done, settings: settings_json(cfg, data), resumed_from });
    report(TrainEvent::Metrics(line));
    Ok(Some(log))
}

/// The run's settings as summary.json and the log's start record them;
/// the keys are `train`'s flags.
pub fn settings_json(cfg: &TrainConfig, data: &ImageSet) -> serde_json::Value {
    let (g, f) = (&cfg.gan, json_f32);
    serde_json::json!({
        "model": g.model.name(), "loss": g.loss.to_string(), "n_critic": g.n_critic, "gp_weight": f(g.gp_weight),
        "epochs": cfg.epochs, "batch_size": g.batch, "latent_size": g.latent, "lr": f(g.adam.lr),
        "beta1": f(g.adam.beta1), "beta2": f(g.adam.beta2), "seed": g.seed, "ema_decay": f(g.ema_decay),
        "width": g.dcgan_width, "limit": cfg.limit, "data": data.source,
        "image": data.shape().describe(), "images": data.count, "log_every": cfg.log_every,
    })
}

/// summary.json: how the run ended (`exit_reason`, and the process's
/// `exit_code`), where it stands, its time and its FIDs.
pub(super) fn summary_json(
    cfg: &TrainConfig,
    run: &Run,
    data: &ImageSet,
    result: &Result<RunSummary>,
) -> serde_json::Value {
    use crate::error::exit_code;
    let (reason, code, error) = match result {
        Ok(s) if !s.interrupted => ("done", exit_code::DONE, None),
        Ok(_) if run.interrupt.load(Ordering::Relaxed) => ("interrupted", exit_code::INTERRUPTED, None),
        Ok(_) => ("stopped", exit_code::DONE, None),
        Err(e) => (e.exit_reason(), e.exit_code(), Some(e.to_string())),
    };
    let p = result.as_ref().map_or(run.session.progress, |s| s.progress);
    let log = run.log.as_ref();
    let fid = |i: usize| {
        let t = log.map(|l| l.fid[i]).unwrap_or_default();
        serde_json::json!({"final": t.last.map(|x| x.1), "final_step": t.last.map(|x| x.0),
            "best": t.best.map(|x| x.1), "best_step": t.best.map(|x| x.0), "classes_covered": t.classes_covered})
    };
    let steps_per_s = recent_steps_per_s(run.losses.iter().map(|r| r.seconds));
    serde_json::json!({
        "exit_reason": reason, "exit_code": code, "error": error,
        "epochs": cfg.epochs, "epochs_done": p.epoch, "step_in_epoch": p.batch_in_epoch, "steps": p.steps_done,
        "steps_per_epoch": run.session.steps_per_epoch(), "seconds": log.map(RunLog::elapsed),
        "steps_per_s": steps_per_s, "fid": fid(0), "fid_averaged": fid(1), "settings": settings_json(cfg, data),
    })
}
