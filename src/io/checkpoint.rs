//! Files: PyTorch-loadable safetensors checkpoints, the training-state file
//! that `--resume` reads, .npy latent codes; all written atomically
//! (temporary file, fsync, rename) so a crash never leaves a half file.

use crate::error::{GanError, Result};
use crate::nn::spec::NetSpec;
use crate::nn::spec::{BnStats, ImageShape};
use safetensors::{Dtype, SafeTensors};
use std::borrow::Cow;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use crate::fs::{atomic_write, read_text_if_exists};

/// An owned tensor for serialisation.
pub struct OwnedTensor {
    pub dtype: Dtype,
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

impl OwnedTensor {
    pub fn f32(shape: Vec<usize>, v: &[f32]) -> Self {
        OwnedTensor { dtype: Dtype::F32, shape, data: bytemuck::cast_slice(v).to_vec() }
    }

    /// `v` rounded to IEEE half precision (round to nearest even).
    pub fn f16(shape: Vec<usize>, v: &[f32]) -> Self {
        let data = v.iter().flat_map(|&x| half::f16::from_f32(x).to_le_bytes()).collect();
        OwnedTensor { dtype: Dtype::F16, shape, data }
    }

    /// `v` as `dtype` (F32 or F16).
    fn float(dtype: Dtype, shape: Vec<usize>, v: &[f32]) -> Self {
        if dtype == Dtype::F16 {
            Self::f16(shape, v)
        } else {
            Self::f32(shape, v)
        }
    }
}

impl safetensors::View for &OwnedTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Serialises `tensors` as a safetensors file: an 8-byte little-endian
/// header length, a JSON header padded with spaces to 8 bytes, the data.
/// The header is written in a fixed order (metadata keys sorted, tensors in
/// the given order) so that identical runs give byte-identical files.
pub fn safetensors_bytes(tensors: &[(String, OwnedTensor)], meta: &[(String, String)]) -> Result<Vec<u8>> {
    let quote = |s: &str| serde_json::to_string(s).expect("a string serialises");
    let mut sorted: Vec<&(String, String)> = meta.iter().collect();
    sorted.sort();
    let mut header = String::from("{");
    if !sorted.is_empty() {
        let fields: Vec<String> = sorted.iter().map(|(k, v)| format!("{}:{}", quote(k), quote(v))).collect();
        header.push_str(&format!("\"__metadata__\":{{{}}}", fields.join(",")));
    }
    let mut offset = 0usize;
    for (name, t) in tensors {
        let elems: usize = t.shape.iter().product();
        if elems * t.dtype.bitsize() / 8 != t.data.len() {
            return Err(GanError::shape(
                name,
                format!("{} bytes of data for shape {:?} of {:?}", t.data.len(), t.shape, t.dtype),
            ));
        }
        if header.len() > 1 {
            header.push(',');
        }
        let shape: Vec<String> = t.shape.iter().map(|d| d.to_string()).collect();
        header.push_str(&format!(
            "{}:{{\"dtype\":\"{:?}\",\"shape\":[{}],\"data_offsets\":[{},{}]}}",
            quote(name),
            t.dtype,
            shape.join(","),
            offset,
            offset + t.data.len()
        ));
        offset += t.data.len();
    }
    header.push('}');
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = Vec::with_capacity(8 + header.len() + offset);
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for (_, t) in tensors {
        out.extend_from_slice(&t.data);
    }
    Ok(out)
}

pub fn save_safetensors(path: &Path, tensors: &[(String, OwnedTensor)], meta: &[(String, String)]) -> Result<()> {
    let bytes =
        safetensors_bytes(tensors, meta).map_err(|e| GanError::Checkpoint { path: path.into(), why: e.to_string() })?;
    // What we wrote must read back (the format's own parser is the judge).
    SafeTensors::deserialize(&bytes)
        .map_err(|e| GanError::Checkpoint { path: path.into(), why: format!("serialised header rejected: {e}") })?;
    atomic_write(path, &bytes)
}

/// The image shape of a generator checkpoint whose output has `dim`
/// values: from its metadata (image_height, image_width, image_channels,
/// grey without the last), else grey and square when `dim` is a square
/// (checkpoints written elsewhere), else an error.
pub fn image_shape(path: &Path, meta: &HashMap<String, String>, dim: usize) -> Result<ImageShape> {
    let parse = |k: &str| meta.get(k).map(|v| v.parse::<usize>().ok());
    let bad = |why: String| GanError::Checkpoint { path: path.into(), why };
    // Checkpoints from before colour record no channels: grey.
    let channels = match parse("image_channels") {
        None => 1,
        Some(Some(c)) if c > 0 => c,
        Some(_) => {
            return Err(bad(format!("metadata image_channels '{}' is not a channel count", meta["image_channels"])))
        }
    };
    match (parse("image_height"), parse("image_width")) {
        (Some(Some(h)), Some(Some(w))) if h * w * channels == dim => Ok(ImageShape { height: h, width: w, channels }),
        (Some(h), Some(w)) => Err(bad(format!(
            "metadata says images of {}x{} with {channels} channels, but the network has {dim} values an image",
            h.map_or("?".into(), |v| v.to_string()),
            w.map_or("?".into(), |v| v.to_string())
        ))),
        _ => {
            let side = (dim as f64).sqrt().round() as usize;
            if side * side == dim {
                Ok(ImageShape::grey(side, side))
            } else {
                Err(bad(format!(
                    "no image_height/image_width metadata, and {dim} pixels is not a square: the image shape is unknown"
                )))
            }
        }
    }
}

/// The metadata of the safetensors file `path`, reading only its header
/// (8-byte length, then JSON), not its tensors: for listing states.
pub fn metadata_of(path: &Path) -> Result<HashMap<String, String>> {
    use std::io::Read;
    let bad = |why: String| GanError::Checkpoint { path: path.into(), why };
    let mut f = std::fs::File::open(path).map_err(|e| GanError::io(path, e))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len).map_err(|e| GanError::io(path, e))?;
    let n = u64::from_le_bytes(len);
    let size = f.metadata().map_err(|e| GanError::io(path, e))?.len();
    if n > size.saturating_sub(8) || n > 100_000_000 {
        return Err(bad(format!("not a readable safetensors file (header of {n} bytes in a file of {size})")));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header).map_err(|e| GanError::io(path, e))?;
    let json: serde_json::Value =
        serde_json::from_slice(&header).map_err(|e| bad(format!("not a readable safetensors header ({e})")))?;
    let meta = json.get("__metadata__").and_then(serde_json::Value::as_object);
    Ok(meta
        .map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect())
        .unwrap_or_default())
}

/// A safetensors file read into memory and parsed.
pub struct Loaded {
    pub path: PathBuf,
    bytes: Vec<u8>,
}

impl Loaded {
    pub fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| GanError::io(path, e))?;
        Self::from_bytes(bytes, path)
    }

    /// A file already in memory (a browser upload); `name` is what errors
    /// call it.
    pub fn from_bytes(bytes: Vec<u8>, name: &Path) -> Result<Self> {
        let l = Loaded { path: name.into(), bytes };
        l.parsed()?;
        Ok(l)
    }

    fn parsed(&self) -> Result<SafeTensors<'_>> {
        SafeTensors::deserialize(&self.bytes).map_err(|e| GanError::Checkpoint {
            path: self.path.clone(),
            why: format!("not a readable safetensors file ({e})"),
        })
    }

    /// The file's size in bytes.
    pub fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    pub fn metadata(&self) -> Result<HashMap<String, String>> {
        let (_, meta) = SafeTensors::read_metadata(&self.bytes)
            .map_err(|e| GanError::Checkpoint { path: self.path.clone(), why: e.to_string() })?;
        Ok(meta.metadata().clone().unwrap_or_default())
    }

    pub fn shape_of(&self, name: &str) -> Option<Vec<usize>> {
        self.parsed().ok()?.tensor(name).ok().map(|t| t.shape().to_vec())
    }

    fn err(&self, why: String) -> GanError {
        GanError::Checkpoint { path: self.path.clone(), why }
    }

    /// Tensor `name` as f32 values of exactly `shape` (stored as F32, or as
    /// F16 and widened exactly).
    pub fn f32(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let st = self.parsed()?;
        let t = st.tensor(name).map_err(|_| self.err(format!("tensor '{name}' is missing")))?;
        if t.shape() != shape {
            return Err(self.err(format!("tensor '{name}' has shape {:?}, expected {shape:?}", t.shape())));
        }
        match t.dtype() {
            Dtype::F32 => Ok(t.data().chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()),
            Dtype::F16 => {
                Ok(t.data().chunks_exact(2).map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32()).collect())
            }
            other => Err(self.err(format!("tensor '{name}' has dtype {other:?}, expected F32 or F16"))),
        }
    }

    pub fn i64_scalar(&self, name: &str) -> Result<i64> {
        let st = self.parsed()?;
        let t = st.tensor(name).map_err(|_| self.err(format!("tensor '{name}' is missing")))?;
        if t.dtype() != Dtype::I64 || t.data().len() != 8 {
            return Err(self.err(format!(
                "tensor '{name}' should be an I64 scalar, is {:?} {:?}",
                t.dtype(),
                t.shape()
            )));
        }
        Ok(i64::from_le_bytes(t.data().try_into().expect("8 bytes")))
    }
}

/// A network checkpoint: its spec, flat parameters (spec.layout() order,
/// the engine's element order) and batch-norm statistics.
pub struct NetCheckpoint {
    pub params: Vec<f32>,
    pub bn: Vec<Option<BnStats>>,
    pub meta: HashMap<String, String>,
}

/// Saves a network as PyTorch's state_dict names it, loadable with
/// `model.load_state_dict(safetensors.torch.load_file(path))`.
pub fn save_network(
    path: &Path,
    spec: &NetSpec,
    params: &[f32],
    bn: &[Option<BnStats>],
    meta: Vec<(String, String)>,
) -> Result<()> {
    let bytes = network_bytes(spec, params, bn, meta)
        .map_err(|e| GanError::Checkpoint { path: path.into(), why: e.to_string() })?;
    atomic_write(path, &bytes)
}

/// The bytes of `save_network`'s file (a page offers them as a download).
/// They are parsed back by safetensors' own parser before they are returned.
pub fn network_bytes(
    spec: &NetSpec,
    params: &[f32],
    bn: &[Option<BnStats>],
    meta: Vec<(String, String)>,
) -> Result<Vec<u8>> {
    network_bytes_as(Dtype::F32, spec, params, bn, meta)
}

/// `network_bytes` with the float tensors (parameters, running statistics)
/// stored as `dtype`: F32, or F16 for a file half the size.
pub fn network_bytes_as(
    dtype: Dtype,
    spec: &NetSpec,
    params: &[f32],
    bn: &[Option<BnStats>],
    meta: Vec<(String, String)>,
) -> Result<Vec<u8>> {
    network_bytes_with(dtype, spec, params, bn, meta, Vec::new())
}

/// `network_bytes_as` with `extra` tensors after the network's (data that
/// travels with it, such as a classifier's reference statistics).
pub fn network_bytes_with(
    dtype: Dtype,
    spec: &NetSpec,
    params: &[f32],
    bn: &[Option<BnStats>],
    mut meta: Vec<(String, String)>,
    extra: Vec<(String, OwnedTensor)>,
) -> Result<Vec<u8>> {
    let layout = spec.layout();
    let mut pytorch = params.to_vec();
    spec.params_to_pytorch(&mut pytorch);
    let params = pytorch.as_slice();
    let mut tensors = Vec::new();
    for (name, shape, off) in &layout.entries {
        let n: usize = shape.iter().product();
        tensors.push((name.clone(), OwnedTensor::float(dtype, shape.clone(), &params[*off..off + n])));
    }
    for (l, stats) in spec.layers.iter().zip(bn) {
        if let (Some(b), Some(s)) = (&l.bn, stats) {
            tensors.push((format!("{b}.running_mean"), OwnedTensor::float(dtype, vec![l.out], &s.running_mean)));
            tensors.push((format!("{b}.running_var"), OwnedTensor::float(dtype, vec![l.out], &s.running_var)));
            tensors.push((
                format!("{b}.num_batches_tracked"),
                OwnedTensor { dtype: Dtype::I64, shape: vec![], data: s.num_batches_tracked.to_le_bytes().to_vec() },
            ));
        }
    }
    tensors.extend(extra);
    meta.push(("network".into(), spec.name.into()));
    meta.push((crate::nn::spec_json::METADATA_KEY.into(), crate::nn::spec_json::to_json(spec)));
    meta.push(("format".into(), "pt".into()));
    let bytes = safetensors_bytes(&tensors, &meta)?;
    SafeTensors::deserialize(&bytes).map_err(|e| GanError::Checkpoint {
        path: format!("<{} checkpoint>", spec.name).into(),
        why: format!("serialised header rejected: {e}"),
    })?;
    Ok(bytes)
}

/// Loads a network checkpoint written for `spec`; every tensor is checked
/// for presence, dtype and shape, and the file must be of `spec.name`.
pub fn load_network(path: &Path, spec: &NetSpec) -> Result<NetCheckpoint> {
    network_from(&Loaded::open(path)?, spec)
}

/// `load_network` on a file already read.
pub fn network_from(file: &Loaded, spec: &NetSpec) -> Result<NetCheckpoint> {
    let path = file.path.as_path();
    let meta = file.metadata()?;
    if let Some(kind) = meta.get("network") {
        if kind != spec.name {
            return Err(GanError::Checkpoint {
                path: path.into(),
                why: format!("this is a {kind} checkpoint, a {} checkpoint is expected", spec.name),
            });
        }
    }
    let layout = spec.layout();
    let mut params = vec![0f32; layout.len];
    for (name, shape, off) in &layout.entries {
        let v = file.f32(name, shape)?;
        params[*off..off + v.len()].copy_from_slice(&v);
    }
    spec.params_from_pytorch(&mut params);
    let mut bn = Vec::new();
    for l in &spec.layers {
        bn.push(match &l.bn {
            Some(b) => Some(BnStats {
                running_mean: file.f32(&format!("{b}.running_mean"), &[l.out])?,
                running_var: file.f32(&format!("{b}.running_var"), &[l.out])?,
                num_batches_tracked: file.i64_scalar(&format!("{b}.num_batches_tracked"))?,
            }),
            None => None,
        });
    }
    // The tensors fit; what they cannot show (activations, batch-norm
    // placement) must agree with the architecture the file records.
    if let Some(recorded) = crate::nn::spec_json::from_metadata(&meta, path)? {
        if let Some(why) = crate::nn::spec_json::difference(&recorded, spec) {
            return Err(GanError::Checkpoint {
                path: path.into(),
                why: format!("the file's architecture differs: {why}"),
            });
        }
    }
    Ok(NetCheckpoint { params, bn, meta })
}

/// Writes a float32 .npy file of shape `shape`.
pub fn npy_bytes(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_txt = if dims.len() == 1 { format!("({},)", dims[0]) } else { format!("({})", dims.join(", ")) };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_txt}, }}");
    // Pad so that the data starts at a multiple of 64 bytes; end with '\n'.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(bytemuck::cast_slice(data));
    out
}

/// Reads a float32, C-order, 2-D .npy file: (rows, cols, data).
pub fn read_npy_f32_2d(path: &Path) -> Result<(usize, usize, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(|e| GanError::io(path, e))?;
    let err = |why: &str| GanError::data(path, why.to_string());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(err("not a .npy file (no \\x93NUMPY magic)"));
    }
    let (hlen, hstart) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(err(&format!("unsupported .npy version {v}"))),
    };
    let header = bytes.get(hstart..hstart + hlen).ok_or_else(|| err("truncated .npy header"))?;
    let header = String::from_utf8_lossy(header);
    let field = |key: &str| -> Option<String> {
        let i = header.find(&format!("'{key}'"))?;
        let rest = header[i + key.len() + 2..].trim_start().strip_prefix(':')?.trim_start();
        let end = if rest.starts_with('(') { rest.find(')')? + 1 } else { rest.find(',').unwrap_or(rest.len()) };
        Some(rest[..end].trim().to_string())
    };
    let descr = field("descr").ok_or_else(|| err("no 'descr' in the .npy header"))?;
    if descr.trim_matches('\'') != "<f4" {
        return Err(err(&format!("dtype {descr}, expected float32 ('<f4')")));
    }
    if field("fortran_order").as_deref() != Some("False") {
        return Err(err("Fortran-ordered arrays are not supported"));
    }
    let shape = field("shape").ok_or_else(|| err("no 'shape' in the .npy header"))?;
    let dims: Vec<usize> = shape
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| err(&format!("bad shape {shape}"))))
        .collect::<Result<_>>()?;
    let [rows, cols] = dims[..] else {
        return Err(err(&format!("shape {shape}: a 2-D array (count, latent size) is expected")));
    };
    let data = &bytes[hstart + hlen..];
    let want = rows.checked_mul(cols).and_then(|n| n.checked_mul(4)).ok_or_else(|| err("shape overflows"))?;
    if data.len() != want {
        return Err(err(&format!("shape {shape} needs {want} bytes of data, the file has {}", data.len())));
    }
    Ok((rows, cols, data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()))
}
