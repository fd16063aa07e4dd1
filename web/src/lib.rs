//! gan-wgpu in a browser page: the library's engine (context, kernels, step
//! graph, checkpoints) on the browser's WebGPU, exported to the page's
//! modules (web/static/*.js) through wasm-bindgen.
//!
//! Every GPU wait is awaited, never blocked on: each call that touches the
//! GPU returns a Promise. The page makes one call at a time; a call made
//! while another is pending is refused with "busy", never a panic.

// A call holds its RefCell borrow across its GPU awaits on purpose: that
// borrow is what refuses a second call with "busy" (one thread, no locks).
#![allow(clippy::await_holding_refcell_ref)]

use gan_wgpu::engine::autotune;
use gan_wgpu::engine::kernels::adam::AdamConfig;
use gan_wgpu::eval::evaluate::{self, Evaluator, LoadedGenerator};
use gan_wgpu::io::checkpoint::Loaded;
use gan_wgpu::io::data::{self, ImageSet};
use gan_wgpu::models::WhichModel;
use gan_wgpu::nn::gpu_net::GpuNet;
use gan_wgpu::train::{self, GanConfig, Session};
use gan_wgpu::{DeviceChoice, DeviceOptions, GpuContext, Requirements};
use js_sys::{Promise, Uint8Array};
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

/// The generator's latent size, as in the tutorial (one default for the CLI and the page).
const LATENT: usize = gan_wgpu::defaults::LATENT;

fn js_err(e: impl std::fmt::Display) -> JsValue {
    JsError::new(&e.to_string()).into()
}

fn busy() -> JsValue {
    js_err("busy: another GPU call of this page is still running")
}

#[wasm_bindgen]
extern "C" {
    /// The page's clock, in milliseconds (`performance.now()`).
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    fn performance_now() -> f64;
}

/// The run's defaults (batch, lr, beta1, beta2, seed, latent,
/// grid_samples, epochs) as JSON: the CLI's, from `gan_wgpu::defaults`.
#[wasm_bindgen]
pub fn defaults() -> String {
    gan_wgpu::models::defaults_json()
}

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

struct Inner {
    ctx: GpuContext,
    data: RefCell<Option<ImageSet>>,
    session: RefCell<Option<Session>>,
    generator: RefCell<Option<LoadedGenerator>>,
    /// The classifier and reference statistics of the live quality.
    scorer: RefCell<Option<Evaluator>>,
}

/// The engine on the browser's adapter.
#[wasm_bindgen]
pub struct Engine {
    inner: Rc<Inner>,
}

/// Opens the browser's WebGPU adapter with the limits the kernels need, and
/// chooses the kernel variants by timing them on it with the page's clock,
/// each verified on it against the reference.
#[wasm_bindgen]
pub async fn open_engine() -> Result<Engine, JsValue> {
    let ctx = GpuContext::new_async(&DeviceChoice::Auto, &Requirements::default(), DeviceOptions::default())
        .await
        .map_err(js_err)?;
    let (matmul, reduce) = autotune::choose_without_blocking(&ctx, Some(&performance_now)).await;
    ctx.set_kernel_choices(matmul, reduce);
    ctx.check_health("choosing the kernels").map_err(js_err)?;
    Ok(Engine {
        inner: Rc::new(Inner {
            ctx,
            data: RefCell::new(None),
            session: RefCell::new(None),
            generator: RefCell::new(None),
            scorer: RefCell::new(None),
        }),
    })
}

#[wasm_bindgen]
impl Engine {
    /// The adapter as JSON: name, backend, type, features, the device's
    /// limits and the kernel choices.
    pub fn adapter_json(&self) -> String {
        let ctx = &self.inner.ctx;
        let l = &ctx.limits;
        let features: Vec<String> = ctx.adapter.features().iter_names().map(|(n, _)| n.to_string()).collect();
        serde_json::json!({
            "name": if ctx.info.name.is_empty() { "(the browser gives no name)".to_string() } else { ctx.info.name.clone() },
            "backend": format!("{:?}", ctx.info.backend),
            "device_type": format!("{:?}", ctx.info.device_type),
            "features": features,
            "limits": {
                "max_storage_buffer_binding_size": l.max_storage_buffer_binding_size,
                "max_buffer_size": l.max_buffer_size,
                "max_storage_buffers_per_shader_stage": l.max_storage_buffers_per_shader_stage,
                "max_compute_workgroup_storage_size": l.max_compute_workgroup_storage_size,
                "max_compute_invocations_per_workgroup": l.max_compute_invocations_per_workgroup,
            },
            "matmul": ctx.matmul_choice().describe(),
            "reductions": ctx.reduce_choice().describe(),
        })
        .to_string()
    }

    /// Decodes an IDX image file (gzipped or raw, as in assets/mnist), and
    /// its IDX labels file if given (a conditional model needs them), into
    /// the training set; returns a one-line description.
    pub fn load_images(
        &self,
        bytes: &[u8],
        name: &str,
        labels: Option<Vec<u8>>,
        labels_name: Option<String>,
    ) -> Result<String, JsValue> {
        let labels_name = labels_name.unwrap_or_else(|| "labels".into());
        let labels = labels.as_deref().map(|l| (l, Path::new(&labels_name)));
        let set = data::images_from_bytes(bytes, Path::new(name), labels).map_err(js_err)?;
        let desc = format!("{} images {} from {name}", set.count, set.shape().describe());
        *self.inner.data.try_borrow_mut().map_err(|_| busy())? = Some(set);
        Ok(desc)
    }

    /// Takes images the page decoded itself (a chosen folder or files) as
    /// the training set: `pixels`, images of height x width x channels
    /// bytes (HWC, as the CLI's image folders hold them); `header`, JSON
    /// {"count", "height", "width", "channels", "classes": [names; empty
    /// for an unlabelled set], "name"}; `labels`, one byte an image for a
    /// labelled set. Returns a one-line description.
    pub fn load_pixels(&self, pixels: Vec<u8>, header: String, labels: Option<Vec<u8>>) -> Result<String, JsValue> {
        let h: serde_json::Value = serde_json::from_str(&header).map_err(|e| js_err(format!("image header: {e}")))?;
        let num = |k: &str| h.get(k).and_then(serde_json::Value::as_u64).map(|v| v as usize);
        let (Some(count), Some(height), Some(width), Some(channels)) =
            (num("count"), num("height"), num("width"), num("channels"))
        else {
            return Err(js_err(format!("image header {header}: count, height, width and channels are needed")));
        };
        let class_names: Vec<String> = h
            .get("classes")
            .and_then(serde_json::Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default();
        let name = h.get("name").and_then(serde_json::Value::as_str).unwrap_or("your images").to_string();
        let set = data::ImageSet { count, height, width, channels, pixels, labels, class_names, source: name.clone() };
        if count == 0 || set.pixels.len() != count * set.dim() || ![1, 3].contains(&channels) {
            return Err(js_err(format!(
                "{name}: {} bytes for {count} images of {}",
                set.pixels.len(),
                set.shape().describe()
            )));
        }
        if set.labels.as_ref().is_some_and(|l| l.len() != count) {
            return Err(js_err(format!(
                "{name}: labels for {} images, {count} images",
                set.labels.as_ref().map_or(0, Vec::len)
            )));
        }
        let desc = format!("{} images {} from {name}", set.count, set.shape().describe());
        *self.inner.data.try_borrow_mut().map_err(|_| busy())? = Some(set);
        Ok(desc)
    }

    /// Starts a fresh run (the CLI's `train --model M --loss L --batch-size B --lr LR
    /// --seed S --limit L`: same weights, batches and losses). Returns the
    /// steps of one epoch.
    pub fn new_session(
        &self,
        model: &str,
        loss: &str,
        batch: usize,
        lr: f32,
        seed: u32,
        limit: usize,
    ) -> Result<usize, JsValue> {
        let model: WhichModel = model.parse().map_err(js_err)?;
        let loss: gan_wgpu::nn::loss::Loss = loss.parse().map_err(js_err)?;
        let mut cfg = GanConfig {
            batch,
            latent: LATENT,
            seed: seed as u64,
            adam: AdamConfig { lr, ..AdamConfig::default() },
            model,
            loss,
            // As the CLI without --n-critic: 5 critic steps a G step for wgan-gp.
            n_critic: loss.default_n_critic(),
            // The page draws and scores the trained generator, and its runs
            // are short: it keeps no average (`train --ema-decay 0`).
            ema_decay: 0.0,
            ..GanConfig::default()
        };
        cfg.validate().map_err(js_err)?;
        let data = self.inner.data.try_borrow().map_err(|_| busy())?;
        let data = data.as_ref().ok_or_else(|| js_err("no training images loaded"))?;
        // A conditional model draws the data's classes, as the CLI's does.
        cfg.classes = data.class_names().len().max(1);
        let limit = (limit > 0).then_some(limit);
        // Checkpoints record the whole set and the limit, as the CLI's do.
        let identity = data::DataIdentity::of(data, limit);
        let data = train::first_images(data, limit, batch).map_err(js_err)?;
        let mut slot = self.inner.session.try_borrow_mut().map_err(|_| busy())?;
        // The old run's buffers go before the new one's are made.
        *slot = None;
        let mut session = Session::new(&self.inner.ctx, cfg, &data).map_err(js_err)?;
        session.gan.data = identity;
        let steps = session.gan.steps_per_epoch();
        *slot = Some(session);
        Ok(steps)
    }

    /// [height, width, channels] of the training images.
    pub fn image_shape(&self) -> Result<Vec<u32>, JsValue> {
        let data = self.inner.data.try_borrow().map_err(|_| busy())?;
        let d = data.as_ref().ok_or_else(|| js_err("no training images loaded"))?;
        Ok(vec![d.height as u32, d.width as u32, d.channels as u32])
    }

    /// Runs up to `n` steps (never past the epoch's end); resolves to a JSON
    /// array, one object a step (`StepReading::to_json`: step, epoch, batch,
    /// loss_d, loss_g, d_real, d_fake).
    pub fn run_steps(&self, n: usize) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let mut slot = inner.session.try_borrow_mut().map_err(|_| busy())?;
            let session = slot.as_mut().ok_or_else(|| js_err("no training run: press Reset"))?;
            let readings = session.run_steps(&inner.ctx, n).await.map_err(js_err)?;
            let rows: Vec<serde_json::Value> = readings.iter().map(|r| r.to_json()).collect();
            Ok(JsValue::from_str(&serde_json::Value::Array(rows).to_string()))
        })
    }

    /// [images, columns] of the live grid: 25 in 5 columns, or a
    /// conditional model's row per class.
    pub fn grid_shape(&self) -> Result<Vec<u32>, JsValue> {
        let slot = self.inner.session.try_borrow().map_err(|_| busy())?;
        let session = slot.as_ref().ok_or_else(|| js_err("no training run"))?;
        let n = session.fixed.len();
        let cols = session.gan.classes().unwrap_or_else(|| (n as f64).sqrt().ceil() as usize);
        Ok(vec![n as u32, cols as u32])
    }

    /// The images of the fixed grid under the generator being trained, u8
    /// pixels image after image.
    pub fn grid(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let slot = inner.session.try_borrow().map_err(|_| busy())?;
            let session = slot.as_ref().ok_or_else(|| js_err("no training run"))?;
            let pixels = session.grid(&inner.ctx).await.map_err(js_err)?;
            Ok(Uint8Array::from(&pixels[..]).into())
        })
    }

    /// "generator" or "discriminator": the checkpoint file the CLI writes
    /// (PyTorch state_dict names, safetensors), as the run stands.
    pub fn checkpoint(&self, which: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let slot = inner.session.try_borrow().map_err(|_| busy())?;
            let session = slot.as_ref().ok_or_else(|| js_err("no training run"))?;
            let (g, d) = session.checkpoint_files(&inner.ctx).await.map_err(js_err)?;
            let bytes = match which.as_str() {
                "generator" => g,
                "discriminator" => d,
                other => return Err(js_err(format!("no network called {other:?}"))),
            };
            Ok(Uint8Array::from(&bytes[..]).into())
        })
    }

    /// The epoch and steps of the run, for file names: [epoch, steps done].
    pub fn progress(&self) -> Result<Vec<f64>, JsValue> {
        let slot = self.inner.session.try_borrow().map_err(|_| busy())?;
        let p = slot.as_ref().ok_or_else(|| js_err("no training run"))?.progress;
        Ok(vec![p.epoch as f64, p.steps_done as f64])
    }

    /// Loads a generator checkpoint (from the CLI or this page); every tensor
    /// is checked. Returns JSON: latent size, image height and width.
    pub fn load_generator(&self, bytes: Vec<u8>, name: String) -> Result<String, JsValue> {
        let file = Loaded::from_bytes(bytes, Path::new(&name)).map_err(js_err)?;
        let g = evaluate::generator_from(&self.inner.ctx, &file).map_err(js_err)?;
        self.inner.ctx.check_health("loading the generator").map_err(js_err)?;
        let classes = g.net.spec.embedding.as_ref().map(|e| e.classes);
        let info = serde_json::json!({
            "name": name, "latent": g.latent, "height": g.height, "width": g.width, "classes": classes,
        });
        *self.inner.generator.try_borrow_mut().map_err(|_| busy())? = Some(g);
        Ok(info.to_string())
    }

    /// `count` samples from the loaded generator (`from_loaded`) or the one
    /// being trained, on the latent codes `gan-wgpu sample --seed SEED
    /// --count COUNT` draws; u8 pixels image after image. A conditional
    /// generator draws class `class` for every sample (`sample --class`),
    /// or with a negative `class` class i mod 10 for sample i (`eval`'s).
    pub fn sample(&self, seed: u32, count: usize, from_loaded: bool, class: i32) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            if count == 0 || count > 400 {
                return Err(js_err(format!("count must be 1 to 400 (got {count})")));
            }
            let loaded = inner.generator.try_borrow().map_err(|_| busy())?;
            let session = inner.session.try_borrow().map_err(|_| busy())?;
            let net: &GpuNet = if from_loaded {
                &loaded.as_ref().ok_or_else(|| js_err("no generator file loaded"))?.net
            } else {
                &session.as_ref().ok_or_else(|| js_err("no training run"))?.gan.g
            };
            let labels = match (&net.spec.embedding, class) {
                (None, c) if c >= 0 => return Err(js_err("this generator is unconditional: it draws no class")),
                (None, _) => None,
                (Some(e), c) if c >= e.classes as i32 => {
                    return Err(js_err(format!("{c} is not a class of this generator (0..{})", e.classes - 1)))
                }
                (Some(e), c) if c < 0 => Some(evaluate::sample_labels(count, e.classes)),
                (Some(_), c) => Some(vec![c as u32; count]),
            };
            let pixels = evaluate::sample_pixels_labeled_async(&inner.ctx, net, count, seed as u64, labels.as_deref())
                .await
                .map_err(js_err)?;
            Ok(Uint8Array::from(&pixels[..]).into())
        })
    }

    /// Loads the classifier file of the live quality (`gan-wgpu eval
    /// --export-classifier`: f16 weights and the reference Gaussian).
    /// Returns JSON: classes, image height and width, the classifier's test
    /// accuracy and the reference it was measured against.
    pub fn load_scorer(&self, bytes: Vec<u8>, name: String) -> Result<String, JsValue> {
        let file = Loaded::from_bytes(bytes, Path::new(&name)).map_err(js_err)?;
        let ev = Evaluator::from_file(&self.inner.ctx, &file).map_err(js_err)?;
        self.inner.ctx.check_health("loading the classifier").map_err(js_err)?;
        let c = &ev.classifier;
        let info = serde_json::json!({
            "name": name, "classes": c.classes, "height": c.height, "width": c.width,
            "test_accuracy": c.test_accuracy, "reference": ev.reference_desc,
        });
        *self.inner.scorer.try_borrow_mut().map_err(|_| busy())? = Some(ev);
        Ok(info.to_string())
    }

    /// Scores `count` samples of the generator in training (batch norm in
    /// eval mode; latent codes of `gan-wgpu eval --seed SEED --count
    /// COUNT`, a conditional generator asked for class i mod 10): resolves
    /// to JSON {n, fid, inception_score, classes_covered, class_histogram,
    /// conditional_accuracy (cgan), seconds}, `eval`'s numbers.
    pub fn score(&self, count: usize, seed: u32) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let scorer = inner.scorer.try_borrow().map_err(|_| busy())?;
            let scorer = scorer.as_ref().ok_or_else(|| js_err("no classifier loaded: the live quality is off"))?;
            let session = inner.session.try_borrow().map_err(|_| busy())?;
            let g = &session.as_ref().ok_or_else(|| js_err("no training run"))?.gan.g;
            let image = g.spec.output_dim();
            if image != scorer.classifier.shape().dim() {
                return Err(js_err(format!(
                    "the generator makes images of {image} pixels, the classifier takes {}x{}",
                    scorer.classifier.height, scorer.classifier.width
                )));
            }
            let t0 = performance_now();
            let s = scorer.score_generator_async(&inner.ctx, g, count, seed as u64).await.map_err(js_err)?;
            let mut v = serde_json::json!({
                "n": s.n, "fid": s.fid, "inception_score": s.inception_score,
                "classes_covered": s.classes_covered, "class_histogram": s.class_histogram,
                "seconds": (performance_now() - t0) / 1000.0,
            });
            if let Some(c) = &s.conditional {
                v["conditional_accuracy"] = c.accuracy.into();
            }
            Ok(JsValue::from_str(&v.to_string()))
        })
    }

    /// [height, width, channels] of the loaded generator's images.
    pub fn loaded_shape(&self) -> Result<Vec<u32>, JsValue> {
        let g = self.inner.generator.try_borrow().map_err(|_| busy())?;
        let g = g.as_ref().ok_or_else(|| js_err("no generator file loaded"))?;
        Ok(vec![g.height as u32, g.width as u32, g.channels as u32])
    }

    /// Every kernel family against its CPU reference on this adapter;
    /// resolves to JSON: [{shader, what, ok, error}].
    pub fn self_test(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let _guard = inner.session.try_borrow_mut().map_err(|_| busy())?;
            let results = gan_wgpu::engine::selftest::run_all(&inner.ctx).await;
            let rows: Vec<serde_json::Value> = results
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "shader": r.shader,
                        "what": r.what,
                        "ok": r.outcome.is_ok(),
                        "error": r.outcome.as_ref().err(),
                    })
                })
                .collect();
            Ok(JsValue::from_str(&serde_json::Value::Array(rows).to_string()))
        })
    }
}
