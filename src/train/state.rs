//! The resumable training state: state_{epoch}_{batch}.safetensors files,
//! written after each epoch and on a stop, read by --resume.

use super::{
    checkpoint, first_images, BnStats, Gan, GanError, GpuContext, ImageSet, Loaded, OwnedTensor, Path, PathBuf,
    Progress, Result, TrainConfig, WhichModel, METRICS_LEN, STATE_FORMAT, STATE_FORMAT_PYTORCH_ORDER,
};

fn state_path(out: &Path, epoch: usize, batch: usize) -> PathBuf {
    out.join("checkpoints").join(format!("state_{epoch:04}_{batch:05}.safetensors"))
}

/// (epoch, batch) of a training-state file name, state_{epoch}_{batch}.safetensors.
fn state_position(name: &str) -> Option<(u64, u64)> {
    let (epoch, batch) = name.strip_prefix("state_")?.strip_suffix(".safetensors")?.split_once('_')?;
    Some((epoch.parse().ok()?, batch.parse().ok()?))
}

/// The training-state files (state_*.safetensors) in `dir`, oldest first:
/// by epoch, then batch, as numbers (past epoch 9999 the names no longer
/// sort as strings).
pub fn state_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v: Vec<((u64, u64), PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| Some((state_position(&p.file_name()?.to_string_lossy())?, p)))
        .collect();
    v.sort();
    Ok(v.into_iter().map(|(_, p)| p).collect())
}

/// The output folder of the run that `resume` (a run folder, its
/// checkpoints folder, or a state file) belongs to.
pub fn run_dir_of(resume: &Path) -> PathBuf {
    let dir = if resume.is_file() { resume.parent().unwrap_or(Path::new(".")) } else { resume };
    if dir.file_name().is_some_and(|n| n == "checkpoints") && !dir.join("checkpoints").is_dir() {
        dir.parent().unwrap_or(Path::new(".")).to_path_buf()
    } else {
        dir.to_path_buf()
    }
}

/// Newest training-state file in DIR/checkpoints (or DIR itself).
pub fn find_latest_state(dir: &Path) -> Result<PathBuf> {
    if dir.is_file() {
        return Ok(dir.to_path_buf());
    }
    let ck = if dir.join("checkpoints").is_dir() { dir.join("checkpoints") } else { dir.to_path_buf() };
    let states = state_files(&ck).map_err(|e| GanError::io(&ck, e))?;
    check_one_run(&ck, &states)?;
    states.last().cloned().ok_or_else(|| GanError::Checkpoint {
        path: ck,
        why: "no training state (state_*.safetensors) to resume from".into(),
    })
}

/// The metadata keys that tell runs apart: two states whose values differ
/// were written by different runs.
const RUN_KEYS: &[&str] = &[
    "model",
    "loss",
    "n_critic",
    "seed",
    "data_hash",
    "limit",
    "batch_size",
    "latent_size",
    "image_dim",
    "n_images",
    "dcgan_width",
];

/// Refuses a folder holding the states of more than one run (engines
/// before the fresh-run guard left such folders): the error names an older
/// state, the newest, and a key on which they differ.
fn check_one_run(ck: &Path, states: &[PathBuf]) -> Result<()> {
    // An unreadable state is left to the loader, which names what is wrong.
    let Some((newest, older)) = states.split_last() else { return Ok(()) };
    let Ok(newest_meta) = checkpoint::metadata_of(newest) else { return Ok(()) };
    let name = |p: &Path| p.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned());
    for old in older {
        let Ok(meta) = checkpoint::metadata_of(old) else { continue };
        for k in RUN_KEYS {
            if let (Some(a), Some(b)) = (meta.get(*k), newest_meta.get(*k)) {
                if a != b {
                    return Err(GanError::Checkpoint {
                        path: ck.into(),
                        why: format!(
                            "holds states of more than one run: {} ({k} {a}) and {} ({k} {b}); \
                             resume one by its state file, or move the other's files out",
                            name(old),
                            name(newest)
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

pub(super) struct SavedState {
    pub(super) g_params: Vec<f32>,
    pub(super) d_params: Vec<f32>,
    pub(super) g_m: Vec<f32>,
    pub(super) g_v: Vec<f32>,
    pub(super) d_m: Vec<f32>,
    pub(super) d_v: Vec<f32>,
    pub(super) g_bn: Vec<Option<BnStats>>,
    pub(super) d_bn: Vec<Option<BnStats>>,
    /// The generator's average (parameters, running statistics), when the
    /// run that wrote the state kept one.
    pub(super) g_ema: Option<(Vec<f32>, Vec<Option<BnStats>>)>,
    /// The metrics buffer as the last step left it: with `--n-critic` above
    /// 1, a D-only step reports the last G step's loss_g from it (None in
    /// states written before it was saved).
    pub(super) metrics: Option<Vec<f32>>,
    pub(super) progress: Progress,
}

/// What a resumed run must match besides the sizes: the model, the data
/// (by content) and the image limit. Recorded in every state file.
#[derive(Clone, Debug, PartialEq)]
pub struct RunIdentity {
    /// The model's name (`gan`, `cgan`; `WhichModel::name`).
    pub model: &'static str,
    /// The whole data set's `ImageSet::content_hash`, before `--limit`.
    pub data_hash: u64,
    /// Where the data came from, for messages only.
    pub data_source: String,
    /// The images' shape (an image folder's `--image-size`, `--channels`).
    pub data_shape: crate::nn::spec::ImageShape,
    pub limit: Option<usize>,
}

impl RunIdentity {
    /// The identity of a run of `cfg` on `data` (the whole set, before the limit).
    pub fn of(cfg: &TrainConfig, data: &ImageSet) -> Self {
        RunIdentity {
            model: cfg.gan.model.name(),
            data_hash: data.content_hash(),
            data_source: data.source.clone(),
            data_shape: data.shape(),
            limit: cfg.limit,
        }
    }

    fn limit_text(limit: Option<usize>) -> String {
        limit.map_or_else(|| "all".to_string(), |n| n.to_string())
    }

    fn meta(&self) -> Vec<(&'static str, String)> {
        vec![
            ("model", self.model.to_string()),
            ("data_hash", format!("{:016x}", self.data_hash)),
            ("data_source", self.data_source.clone()),
            ("data_height", self.data_shape.height.to_string()),
            ("data_channels", self.data_shape.channels.to_string()),
            ("limit", Self::limit_text(self.limit)),
        ]
    }

    /// Err names the first value the state's run had otherwise (both
    /// values). States written before these keys existed are not checked on them.
    fn check(&self, meta: &std::collections::HashMap<String, String>, path: &Path) -> Result<()> {
        let bad = |why: String| GanError::Checkpoint { path: path.into(), why };
        if let Some(m) = meta.get("model") {
            if m != self.model {
                return Err(bad(format!(
                    "the run trained model {m}; this run has model {} (leave --model out to take the run's)",
                    self.model
                )));
            }
        }
        if let Some(h) = meta.get("data_hash") {
            let mine = format!("{:016x}", self.data_hash);
            if *h != mine {
                let theirs = meta.get("data_source").map_or("?", String::as_str);
                return Err(bad(format!(
                    "the run was started on other data: {theirs} (content hash {h}); this run has {} (content hash {mine}) (pass the same --data to resume)",
                    self.data_source
                )));
            }
        }
        if let Some(l) = meta.get("limit") {
            let mine = Self::limit_text(self.limit);
            if *l != mine {
                return Err(bad(format!("the run was started with --limit {l}; this run has --limit {mine} (leave --limit out to take the run's)")));
            }
        }
        Ok(())
    }
}

/// Whether a safetensors file's metadata is a training state's (any format
/// version this engine has written).
pub fn is_training_state(meta: &std::collections::HashMap<String, String>) -> bool {
    matches!(meta.get("format").map(String::as_str), Some(STATE_FORMAT | STATE_FORMAT_PYTORCH_ORDER))
}

/// The settings the run that wrote a state was started with, as the
/// state's metadata records them; None where a state written before the
/// key existed lacks it. `train --resume` takes each one for a flag it is
/// not given.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecordedRun {
    pub model: Option<WhichModel>,
    /// dcgan's W (recorded for dcgan runs only).
    pub dcgan_width: Option<usize>,
    /// The epochs the run was to train in all.
    pub epochs: Option<usize>,
    pub batch: Option<usize>,
    pub latent: Option<usize>,
    pub seed: Option<u64>,
    /// Some(None): the run trained on every image.
    pub limit: Option<Option<usize>>,
    pub lr: Option<f32>,
    pub beta1: Option<f32>,
    pub beta2: Option<f32>,
    pub ema_decay: Option<f32>,
    pub loss: Option<crate::nn::loss::Loss>,
    pub n_critic: Option<usize>,
    /// The gradient penalty's weight (recorded by wgan-gp runs).
    pub gp_weight: Option<f32>,
    /// How often the run logged its losses (`--log-every`).
    pub log_every: Option<u64>,
    /// The data folder the run read (`--data`), when the state names one
    /// that exists here; None for the embedded MNIST.
    pub data_dir: Option<PathBuf>,
    /// The images' side and channels (an image folder's `--image-size`
    /// and `--channels`).
    pub image_size: Option<usize>,
    pub channels: Option<usize>,
}

/// The settings recorded in the newest state of `resume` (a run folder,
/// its checkpoints folder or a state file). Err names the state file and a
/// key whose value does not parse.
pub fn recorded_run(resume: &Path) -> Result<RecordedRun> {
    let path = find_latest_state(resume)?;
    let meta = Loaded::open(&path)?.metadata()?;
    let limit = match meta.get("limit").map(String::as_str) {
        Some("all") => Some(None),
        Some(_) => Some(meta_value(&meta, "limit", &path)?),
        None => None,
    };
    Ok(RecordedRun {
        model: meta_value(&meta, "model", &path)?,
        dcgan_width: meta_value(&meta, "dcgan_width", &path)?,
        epochs: meta_value(&meta, "epochs", &path)?,
        batch: meta_value(&meta, "batch_size", &path)?,
        latent: meta_value(&meta, "latent_size", &path)?,
        seed: meta_value(&meta, "seed", &path)?,
        limit,
        lr: meta_value(&meta, "lr", &path)?,
        beta1: meta_value(&meta, "beta1", &path)?,
        beta2: meta_value(&meta, "beta2", &path)?,
        ema_decay: meta_value(&meta, "ema_decay", &path)?,
        loss: meta_value(&meta, "loss", &path)?,
        n_critic: meta_value(&meta, "n_critic", &path)?,
        gp_weight: meta_value(&meta, "gp_weight", &path)?,
        log_every: meta_value(&meta, "log_every", &path)?,
        data_dir: meta
            .get("data_source")
            .and_then(|source| crate::io::data::data_dir_of(Path::new(source)))
            .filter(|dir| dir.is_dir()),
        image_size: meta_value(&meta, "data_height", &path)?,
        channels: meta_value(&meta, "data_channels", &path)?,
    })
}

/// Checks that the run `cfg` resumes can go on with `data` (the whole set)
/// and these flags, reading only the state's metadata: Err names both
/// values. Returns the state file. Writes nothing.
pub fn check_resume(cfg: &TrainConfig, data: &ImageSet) -> Result<PathBuf> {
    let Some(dir) = &cfg.resume else {
        return Err(GanError::Flag { flag: "--resume", why: "no run to resume was given".into() });
    };
    let path = find_latest_state(dir)?;
    let cut = first_images(data, cfg.limit, cfg.gan.batch)?;
    check_state_meta(&Loaded::open(&path)?, cfg, &RunIdentity::of(cfg, data), cut.dim(), cut.count)?;
    Ok(path)
}

pub(super) fn save_state(
    ctx: &GpuContext,
    gan: &Gan,
    cfg: &TrainConfig,
    identity: &RunIdentity,
    p: &Progress,
) -> Result<PathBuf> {
    let mut tensors = Vec::new();
    for (prefix, net) in [("g", &gan.g), ("d", &gan.d)] {
        for (name, t) in [("params", &net.params), ("m", &net.m), ("v", &net.v)] {
            tensors.push((format!("{prefix}.{name}"), OwnedTensor::f32(vec![t.numel()], &t.read_f32(ctx)?)));
        }
    }
    tensors.push(("metrics".to_string(), OwnedTensor::f32(vec![METRICS_LEN], &gan.metrics.read_f32(ctx)?)));
    if let Some(avg) = &gan.g_ema {
        tensors
            .push(("g_ema.params".to_string(), OwnedTensor::f32(vec![avg.params.numel()], &avg.params.read_f32(ctx)?)));
    }
    let nets = [("g", Some(&gan.g)), ("d", Some(&gan.d)), ("g_ema", gan.g_ema.as_ref())];
    for (prefix, net) in nets.iter().filter_map(|(p, n)| n.map(|n| (p, n))) {
        for (i, bn) in net.bn.iter().enumerate() {
            if let Some(b) = bn {
                tensors.push((
                    format!("{prefix}.bn{i}.running_mean"),
                    OwnedTensor::f32(vec![b.running_mean.numel()], &b.running_mean.read_f32(ctx)?),
                ));
                tensors.push((
                    format!("{prefix}.bn{i}.running_var"),
                    OwnedTensor::f32(vec![b.running_var.numel()], &b.running_var.read_f32(ctx)?),
                ));
            }
        }
    }
    let g = &cfg.gan;
    let meta: Vec<(String, String)> = [
        ("format", STATE_FORMAT.to_string()),
        ("epoch", p.epoch.to_string()),
        ("batch_in_epoch", p.batch_in_epoch.to_string()),
        ("steps_done", p.steps_done.to_string()),
        ("seed", g.seed.to_string()),
        ("batch_size", g.batch.to_string()),
        ("latent_size", g.latent.to_string()),
        ("image_dim", gan.dim.to_string()),
        ("n_images", gan.n_images.to_string()),
        ("epochs", cfg.epochs.to_string()),
        ("lr", g.adam.lr.to_string()),
        ("beta1", g.adam.beta1.to_string()),
        ("beta2", g.adam.beta2.to_string()),
        ("ema_decay", g.ema_decay.to_string()),
        ("loss", g.loss.name().to_string()),
        ("n_critic", g.n_critic.to_string()),
        ("log_every", cfg.log_every.to_string()),
    ]
    .into_iter()
    .chain((g.model == WhichModel::Dcgan).then(|| ("dcgan_width", g.dcgan_width.to_string())))
    .chain(g.loss.has_gradient_penalty().then(|| ("gp_weight", g.gp_weight.to_string())))
    .chain(identity.meta())
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let path = state_path(&cfg.out, p.epoch, p.batch_in_epoch);
    checkpoint::save_safetensors(&path, &tensors, &meta)?;
    // Keep the two newest states; older ones only cost disk.
    if let Ok(old) = state_files(&cfg.out.join("checkpoints")) {
        let keep = old.len().saturating_sub(2);
        for q in &old[..keep] {
            let _ = std::fs::remove_file(q);
        }
    }
    Ok(path)
}

/// Metadata `key` of the state file `path` parsed as a T; None when the
/// key is absent, Err naming it when its value does not parse.
fn meta_value<T: std::str::FromStr>(
    meta: &std::collections::HashMap<String, String>,
    key: &str,
    path: &Path,
) -> Result<Option<T>> {
    let bad =
        |v: &String| GanError::Checkpoint { path: path.into(), why: format!("metadata '{key}' is not valid: {v:?}") };
    meta.get(key).map(|v| v.parse().map_err(|_| bad(v))).transpose()
}

/// Metadata `key` of the state file `path` as a number, which it must hold.
fn meta_u64(meta: &std::collections::HashMap<String, String>, key: &str, path: &Path) -> Result<u64> {
    meta_value(meta, key, path)?
        .ok_or_else(|| GanError::Checkpoint { path: path.into(), why: format!("metadata '{key}' missing") })
}

/// The state file's metadata, checked against this run: format, sizes,
/// seed, then the identity.
fn check_state_meta(
    f: &Loaded,
    cfg: &TrainConfig,
    identity: &RunIdentity,
    dim: usize,
    n_images: usize,
) -> Result<std::collections::HashMap<String, String>> {
    let path = f.path.as_path();
    let meta = f.metadata()?;
    let bad = |why: String| GanError::Checkpoint { path: path.into(), why };
    if !is_training_state(&meta) {
        return Err(bad(format!("not a gan-wgpu training state (format {:?})", meta.get("format"))));
    }
    // The flags a user names (--data, --limit) before the sizes they imply.
    identity.check(&meta, path)?;
    let num = |k: &str| meta_u64(&meta, k, path);
    // (key, this run's value, what to change): a flag the resume would take
    // from the run if left out, or the data.
    let width = (meta.contains_key("dcgan_width") && cfg.gan.model == WhichModel::Dcgan).then_some((
        "dcgan_width",
        cfg.gan.dcgan_width as u64,
        "leave --width out to take the run's",
    ));
    // States written before the loss was a choice trained BCE, one D step a G step.
    if let Some(l) = meta.get("loss").filter(|l| *l != cfg.gan.loss.name()) {
        return Err(bad(format!(
            "the run was started with --loss {l}; this run has --loss {} (leave --loss out to take the run's)",
            cfg.gan.loss
        )));
    }
    let n_critic = meta.contains_key("n_critic").then_some((
        "n_critic",
        cfg.gan.n_critic as u64,
        "leave --n-critic out to take the run's",
    ));
    for (k, want, hint) in [
        ("batch_size", cfg.gan.batch as u64, "leave --batch-size out to take the run's"),
        ("latent_size", cfg.gan.latent as u64, "leave --latent-size out to take the run's"),
        ("image_dim", dim as u64, "pass the run's --data"),
        ("n_images", n_images as u64, "pass the run's --data and --limit"),
        ("seed", cfg.gan.seed, "leave --seed out to take the run's"),
    ]
    .into_iter()
    .chain(width)
    .chain(n_critic)
    {
        let have = num(k)?;
        if have != want {
            return Err(bad(format!("the run was started with {k} {have}; this run has {want} ({hint})")));
        }
    }
    Ok(meta)
}

pub(super) fn load_state(
    path: &Path,
    cfg: &TrainConfig,
    identity: &RunIdentity,
    shape: crate::nn::spec::ImageShape,
    n_images: usize,
) -> Result<SavedState> {
    let f = Loaded::open(path)?;
    let meta = check_state_meta(&f, cfg, identity, shape.dim(), n_images)?;
    let num = |k: &str| meta_u64(&meta, k, path);
    let arch = cfg.gan.architecture(shape)?;
    let steps = num("steps_done")? as i64;
    // Batch-norm statistics per network (the counts are the checkpoints').
    let bn_of = |prefix: &str, spec: &crate::nn::spec::NetSpec| -> Result<Vec<Option<BnStats>>> {
        spec.layers
            .iter()
            .enumerate()
            .map(|(i, l)| match l.bn {
                Some(_) => Ok(Some(BnStats {
                    running_mean: f.f32(&format!("{prefix}.bn{i}.running_mean"), &[l.out])?,
                    running_var: f.f32(&format!("{prefix}.bn{i}.running_var"), &[l.out])?,
                    num_batches_tracked: steps,
                })),
                None => Ok(None),
            })
            .collect()
    };
    let g_bn = bn_of("g", &arch.generator)?;
    let d_bn = bn_of("d", &arch.discriminator)?;
    let pytorch_order = meta.get("format").map(String::as_str) == Some(STATE_FORMAT_PYTORCH_ORDER);
    let flat = |name: &str, spec: &crate::nn::spec::NetSpec| -> Result<Vec<f32>> {
        let mut v = f.f32(name, &[spec.layout().len])?;
        if pytorch_order {
            spec.params_from_pytorch(&mut v);
        }
        Ok(v)
    };
    let (g, d) = (&arch.generator, &arch.discriminator);
    // A state written without the average (by a run with --ema-decay 0)
    // restarts it from the generator.
    let g_ema = match f.shape_of("g_ema.params") {
        Some(_) => Some((flat("g_ema.params", g)?, bn_of("g_ema", g)?)),
        None => None,
    };
    let metrics = f.shape_of("metrics").map(|_| f.f32("metrics", &[METRICS_LEN])).transpose()?;
    Ok(SavedState {
        g_ema,
        metrics,
        g_params: flat("g.params", g)?,
        d_params: flat("d.params", d)?,
        g_m: flat("g.m", g)?,
        g_v: flat("g.v", g)?,
        d_m: flat("d.m", d)?,
        d_v: flat("d.v", d)?,
        g_bn,
        d_bn,
        progress: Progress {
            epoch: num("epoch")? as usize,
            batch_in_epoch: num("batch_in_epoch")? as usize,
            steps_done: num("steps_done")?,
        },
    })
}
