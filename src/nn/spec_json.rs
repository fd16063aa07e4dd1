//! A network's architecture as data in its checkpoint: a `NetSpec` written
//! as JSON into the safetensors metadata (key `architecture`), so `sample`
//! and `eval` rebuild the network from the file instead of guessing its
//! sizes from its tensors.
//!
//! {"network": "generator", "layers": [{"name": "model.0", "in": 100,
//!  "out": 128, "batch_norm": null, "activation": "relu"}, ...]}
//!
//! Each layer is a Linear named as in PyTorch's nn.Sequential (its
//! state_dict prefix), the BatchNorm1d that follows it (its prefix, or
//! null) and the activation after both. A convolution adds "kind"
//! ("conv2d" or "conv_transpose2d"; absent: Linear), its input's "h" and
//! "w", "k", "stride" and "pad", with "in"/"out" counting channels; a layer
//! without bias adds "bias": false; one with dropout after its
//! activation (training only) adds "dropout": p. A conditional network adds
//! `"embedding": {"name": "label_emb", "classes": 10, "dim": 10}`, the label
//! embedding joined after its input (its first layer's "in" counts the
//! embedding's columns); an unconditional one has no such key.

use crate::engine::kernels::bias_act::Act;
use crate::error::{GanError, Result};
use crate::nn::spec::EmbeddingSpec;
use crate::nn::spec::LayerKind;
use crate::nn::spec::LayerSpec;
use crate::nn::spec::NetSpec;

/// The metadata key the architecture is written under.
pub const METADATA_KEY: &str = "architecture";
/// The network names a checkpoint may hold.
pub const NETWORKS: [&str; 3] = ["generator", "discriminator", "classifier"];
/// Largest layer width accepted from a file (a corrupt one must not ask
/// for an absurd allocation).
pub const MAX_WIDTH: usize = 1 << 20;

/// `spec` as the JSON object described in the module header.
pub fn to_json(spec: &NetSpec) -> String {
    let layers: Vec<serde_json::Value> = spec
        .layers
        .iter()
        .map(|l| {
            let mut v = serde_json::json!({
                "name": l.name,
                "in": l.inp,
                "out": l.out,
                "batch_norm": l.bn,
                "activation": l.act.name(),
            });
            let conv = match l.kind {
                LayerKind::Dense => None,
                LayerKind::Conv { h, w, k, stride, pad } => Some(("conv2d", h, w, k, stride, pad)),
                LayerKind::ConvTranspose { h, w, k, stride, pad } => Some(("conv_transpose2d", h, w, k, stride, pad)),
            };
            if let Some((kind, h, w, k, stride, pad)) = conv {
                for (key, value) in [("h", h), ("w", w), ("k", k), ("stride", stride), ("pad", pad)] {
                    v[key] = value.into();
                }
                v["kind"] = kind.into();
            }
            if !l.bias {
                v["bias"] = false.into();
            }
            if let Some(p) = l.dropout {
                v["dropout"] = p.into();
            }
            v
        })
        .collect();
    let mut v = serde_json::json!({ "network": spec.name, "layers": layers });
    if let Some(e) = &spec.embedding {
        v["embedding"] = serde_json::json!({ "name": e.name, "classes": e.classes, "dim": e.dim });
    }
    v.to_string()
}

/// Parses and checks an architecture: a known network name, at least one
/// layer, widths in 1..=MAX_WIDTH, each layer's input the previous layer's
/// output, known activations, distinct names. Errors say what is wrong
/// (the caller adds the file).
pub fn from_json(text: &str) -> std::result::Result<NetSpec, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
    let name = v["network"].as_str().ok_or("no \"network\" name")?;
    let name = NETWORKS
        .into_iter()
        .find(|n| *n == name)
        .ok_or_else(|| format!("network \"{name}\" is none of {}", NETWORKS.join(", ")))?;
    let layers = v["layers"].as_array().filter(|l| !l.is_empty()).ok_or("no \"layers\" list")?;
    let mut out: Vec<LayerSpec> = Vec::with_capacity(layers.len());
    for (i, l) in layers.iter().enumerate() {
        let layer = layer_from_json(i, l, &out)?;
        out.push(layer);
    }
    let embedding = embedding_from_json(&v["embedding"], &out[0])?;
    // The scheme that drew the first weights is not part of the file.
    Ok(NetSpec { name, embedding, layers: out, init: Default::default() })
}

/// A width field of a layer or the embedding: in 1..=MAX_WIDTH.
fn width_field(v: &serde_json::Value, k: &str, what: &str) -> std::result::Result<usize, String> {
    v[k].as_u64()
        .map(|x| x as usize)
        .filter(|x| (1..=MAX_WIDTH).contains(x))
        .ok_or_else(|| format!("{what}: \"{k}\" is not a width in 1..={MAX_WIDTH}"))
}

/// Layer i's kind: dense (no "kind"), or a convolution whose geometry fits.
fn kind_from_json(i: usize, l: &serde_json::Value) -> std::result::Result<LayerKind, String> {
    let what = format!("layer {i}");
    let Some(kind) = l["kind"].as_str() else { return Ok(LayerKind::Dense) };
    if !matches!(kind, "conv2d" | "conv_transpose2d") {
        return Err(format!("layer {i}: kind \"{kind}\" is none of conv2d, conv_transpose2d"));
    }
    let field = |k: &str| width_field(l, k, &what);
    let (h, w, k, stride) = (field("h")?, field("w")?, field("k")?, field("stride")?);
    let pad = l["pad"]
        .as_u64()
        .map(|p| p as usize)
        .filter(|&p| p < k)
        .ok_or_else(|| format!("layer {i}: \"pad\" is not a padding below the kernel size {k}"))?;
    if kind == "conv2d" {
        if h + 2 * pad < k || w + 2 * pad < k {
            return Err(format!("layer {i}: a {k}x{k} kernel does not fit a padded {h}x{w} image"));
        }
        return Ok(LayerKind::Conv { h, w, k, stride, pad });
    }
    if (h - 1) * stride + k <= 2 * pad {
        return Err(format!("layer {i}: a transposed convolution with no output"));
    }
    Ok(LayerKind::ConvTranspose { h, w, k, stride, pad })
}

/// Layer i, checked on its own and against the layers before it (`before`).
fn layer_from_json(i: usize, l: &serde_json::Value, before: &[LayerSpec]) -> std::result::Result<LayerSpec, String> {
    let what = format!("layer {i}");
    let (inp, width) = (width_field(l, "in", &what)?, width_field(l, "out", &what)?);
    let kind = kind_from_json(i, l)?;
    let bias = match &l["bias"] {
        serde_json::Value::Null => true,
        serde_json::Value::Bool(b) => *b,
        _ => return Err(format!("layer {i}: \"bias\" is not true or false")),
    };
    let layer =
        LayerSpec { name: String::new(), kind, inp, out: width, bias, bn: None, act: Act::Identity, dropout: None };
    if layer.in_positions() * inp > MAX_WIDTH || layer.out_positions() * width > MAX_WIDTH {
        return Err(format!("layer {i}: more than {MAX_WIDTH} values a sample"));
    }
    if let Some(prev) = before.last() {
        if prev.out != inp {
            return Err(format!("layer {i} takes {inp} inputs, the layer before gives {}", prev.out));
        }
        if prev.out_positions() != layer.in_positions() {
            return Err(format!(
                "layer {i} reads {} positions a sample, the layer before gives {}",
                layer.in_positions(),
                prev.out_positions()
            ));
        }
    }
    let layer_name = l["name"].as_str().ok_or_else(|| format!("layer {i}: no \"name\""))?.to_string();
    let bn = match &l["batch_norm"] {
        serde_json::Value::Null => None,
        serde_json::Value::String(s) => Some(s.clone()),
        _ => return Err(format!("layer {i}: \"batch_norm\" is neither a name nor null")),
    };
    let act_name = l["activation"].as_str().ok_or_else(|| format!("layer {i}: no \"activation\""))?;
    let act = Act::ALL.into_iter().find(|a| a.name() == act_name).ok_or_else(|| {
        format!("layer {i}: activation \"{act_name}\" is none of {}", Act::ALL.map(Act::name).join(", "))
    })?;
    let taken = before.iter().any(|o| o.name == layer_name || o.bn.as_deref() == Some(&layer_name))
        || bn.as_ref().is_some_and(|b| *b == layer_name || before.iter().any(|o| &o.name == b));
    if taken {
        return Err(format!("layer {i}: the name \"{layer_name}\" is used twice"));
    }
    let dropout = match &l["dropout"] {
        serde_json::Value::Null => None,
        serde_json::Value::Number(p) => Some(p.as_f64().unwrap_or(f64::NAN) as f32),
        _ => return Err(format!("layer {i}: \"dropout\" is not a probability")),
    };
    let layer = LayerSpec { name: layer_name, bn, act, dropout, ..layer };
    match layer.dropout_error() {
        Some(why) => Err(format!("layer {i}: {why}")),
        None => Ok(layer),
    }
}

/// The label embedding joined to the first layer's input, if any.
fn embedding_from_json(e: &serde_json::Value, first: &LayerSpec) -> std::result::Result<Option<EmbeddingSpec>, String> {
    if e.is_null() {
        return Ok(None);
    }
    let size = |k: &str| {
        width_field(e, k, "embedding").map_err(|_| format!("embedding: \"{k}\" is not a size in 1..={MAX_WIDTH}"))
    };
    let name = e["name"].as_str().ok_or("embedding: no \"name\"")?.to_string();
    let (classes, dim) = (size("classes")?, size("dim")?);
    if first.inp <= dim {
        return Err(format!(
            "layer 0 takes {} inputs, no more than the embedding's {dim} columns joined to its input",
            first.inp
        ));
    }
    Ok(Some(EmbeddingSpec { name, classes, dim }))
}

/// How `recorded` differs from `expected`, naming the first difference
/// (the network, the layer count, or a layer's name, sizes, batch norm or
/// activation); None when they are the same.
pub fn difference(recorded: &NetSpec, expected: &NetSpec) -> Option<String> {
    if recorded.name != expected.name {
        return Some(format!("it is a {}, a {} is expected", recorded.name, expected.name));
    }
    if recorded.embedding != expected.embedding {
        let show = |e: &Option<EmbeddingSpec>| {
            e.as_ref()
                .map_or("no label embedding".to_string(), |e| format!("{} Embedding({}, {})", e.name, e.classes, e.dim))
        };
        return Some(format!("it has {}; {} is expected", show(&recorded.embedding), show(&expected.embedding)));
    }
    if recorded.layers.len() != expected.layers.len() {
        return Some(format!("{} layers, {} expected", recorded.layers.len(), expected.layers.len()));
    }
    let show = |l: &LayerSpec| {
        let (on, norm) = match l.kind {
            LayerKind::Dense => (String::new(), "BatchNorm1d"),
            LayerKind::Conv { h, w, .. } | LayerKind::ConvTranspose { h, w, .. } => {
                (format!(" on {h}x{w}"), "BatchNorm2d")
            }
        };
        format!(
            "{} {}{on}{}, {}{}",
            l.name,
            l.describe(),
            l.bn.as_ref().map_or(String::new(), |b| format!(" + {b} {norm}")),
            l.act.name(),
            l.dropout.map_or(String::new(), |p| format!(", Dropout({p})"))
        )
    };
    recorded.layers.iter().zip(&expected.layers).enumerate().find_map(|(i, (r, e))| {
        let (r, e) = (show(r), show(e));
        (r != e).then(|| format!("layer {i} is {r}; {e} is expected"))
    })
}

/// The architecture recorded in a checkpoint's metadata, if any; Err when it
/// is there but unreadable, naming the file.
pub fn from_metadata(
    meta: &std::collections::HashMap<String, String>,
    path: &std::path::Path,
) -> Result<Option<NetSpec>> {
    match meta.get(METADATA_KEY) {
        None => Ok(None),
        Some(text) => from_json(text).map(Some).map_err(|why| GanError::Checkpoint {
            path: path.into(),
            why: format!("metadata '{METADATA_KEY}': {why}"),
        }),
    }
}
