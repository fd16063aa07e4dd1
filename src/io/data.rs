//! IDX image sets (MNIST's format), raw or gzipped, read with every header
//! checked before anything is allocated from it.
//!
//! IDX: magic 0x00 0x00 <type> <ndims>, then ndims big-endian u32 sizes, then
//! the data. Images are type 0x08 (u8) with 3 dims (count, rows, cols); labels
//! type 0x08 with 1 dim (count).

use crate::error::{GanError, Result};
pub use crate::nn::spec::ImageShape;
use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Largest image set accepted (bytes of pixels): 4 GiB. A header asking for
/// more is treated as corrupt rather than allocated.
pub const MAX_DATA_BYTES: u64 = 4 << 30;
/// Largest image side accepted.
pub const MAX_SIDE: u32 = 4096;

/// The embedded default: MNIST's training set.
static MNIST_TRAIN_IMAGES: &[u8] = include_bytes!("../../assets/mnist/train/train-images-idx3-ubyte.gz");
static MNIST_TRAIN_LABELS: &[u8] = include_bytes!("../../assets/mnist/train/train-labels-idx1-ubyte.gz");
static MNIST_TEST_IMAGES: &[u8] = include_bytes!("../../assets/mnist/test/t10k-images-idx3-ubyte.gz");
static MNIST_TEST_LABELS: &[u8] = include_bytes!("../../assets/mnist/test/t10k-labels-idx1-ubyte.gz");

#[derive(Clone, Debug)]
pub struct ImageSet {
    pub count: usize,
    pub height: usize,
    pub width: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    /// count * height * width * channels bytes, image after image,
    /// row-major, channels interleaved (`ImageShape`'s HWC).
    pub pixels: Vec<u8>,
    pub labels: Option<Vec<u8>>,
    /// The classes' names by label (an image folder's sub-folders); empty:
    /// labels are numbers, named "0" .. "K-1".
    pub class_names: Vec<String>,
    /// Where the images came from, for messages.
    pub source: String,
}

impl ImageSet {
    /// FNV-1a (`autotune::stable_hash`) of the set's sizes, pixels and
    /// labels: its identity by content, whatever its path (a resumed run's
    /// data, the classifier cache's key).
    pub fn content_hash(&self) -> u64 {
        use crate::engine::autotune::{stable_hash, stable_hash_from};
        let mut head = format!("{}x{}x{} labels {}", self.count, self.height, self.width, self.labels.is_some());
        // Grey sets keep the hash they had before colour existed (states
        // and checkpoints record it).
        if self.channels != 1 || !self.class_names.is_empty() {
            head += &format!(" channels {} classes {}", self.channels, self.class_names.join("/"));
        }
        let h = stable_hash_from(stable_hash(head.as_bytes()), &self.pixels);
        stable_hash_from(h, self.labels.as_deref().unwrap_or(&[]))
    }

    /// Bytes an image: height x width x channels.
    pub fn dim(&self) -> usize {
        self.shape().dim()
    }

    pub fn shape(&self) -> ImageShape {
        ImageShape { height: self.height, width: self.width, channels: self.channels }
    }

    /// The classes' names: the folders' for an image folder, else "0" ..
    /// "K-1" for labels 0 .. K-1 (IDX labels are numbers); none for an
    /// unlabelled set.
    pub fn class_names(&self) -> Vec<String> {
        if self.labels.is_some() && !self.class_names.is_empty() {
            return self.class_names.clone();
        }
        let classes = self.labels.as_ref().and_then(|l| l.iter().max()).map_or(0, |&m| usize::from(m) + 1);
        (0..classes).map(|k| k.to_string()).collect()
    }

    /// The set's sizes and source without its pixels and labels.
    pub fn clone_header(&self) -> ImageSet {
        ImageSet {
            count: self.count,
            height: self.height,
            width: self.width,
            channels: self.channels,
            pixels: Vec::new(),
            labels: None,
            class_names: self.class_names.clone(),
            source: self.source.clone(),
        }
    }

    pub fn image(&self, i: usize) -> &[u8] {
        &self.pixels[i * self.dim()..(i + 1) * self.dim()]
    }
}

fn is_gzip(bytes: &[u8]) -> bool {
    bytes.len() >= 2 && bytes[0] == 0x1f && bytes[1] == 0x8b
}

/// The data a generator was trained on, recorded in its checkpoints
/// (`data_*` metadata keys): the whole set by content (before `--limit`),
/// where it came from, its shape and classes, and the limit. `eval` and
/// `sample` print it, and `eval` compares it with the data it scores against.
#[derive(Clone, Debug, PartialEq)]
pub struct DataIdentity {
    /// `ImageSet::content_hash` of the whole set.
    pub hash: u64,
    pub source: String,
    pub height: usize,
    pub width: usize,
    pub channels: usize,
    /// `ImageSet::class_names`; empty for an unlabelled set.
    pub classes: Vec<String>,
    /// `--limit`: the run trained on the first N images.
    pub limit: Option<usize>,
}

impl DataIdentity {
    /// The identity of `set` (the whole set) trained on with `limit`.
    pub fn of(set: &ImageSet, limit: Option<usize>) -> Self {
        DataIdentity {
            hash: set.content_hash(),
            source: set.source.clone(),
            height: set.height,
            width: set.width,
            channels: set.channels,
            classes: set.class_names(),
            limit: limit.filter(|&n| n < set.count),
        }
    }

    /// The hash as the metadata writes it (16 hex digits).
    pub fn hash_hex(&self) -> String {
        format!("{:016x}", self.hash)
    }

    /// The checkpoint metadata entries.
    pub fn meta(&self) -> Vec<(String, String)> {
        [
            ("data_hash", self.hash_hex()),
            ("data_source", self.source.clone()),
            ("data_shape", format!("{}x{}", self.height, self.width)),
            ("data_channels", self.channels.to_string()),
            ("data_classes", self.classes.join(",")),
            ("data_limit", self.limit.map_or_else(|| "all".to_string(), |n| n.to_string())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The identity a checkpoint's metadata records; None for checkpoints
    /// written before it was recorded (or with an unreadable entry).
    pub fn from_meta(meta: &std::collections::HashMap<String, String>) -> Option<Self> {
        let (h, w) = meta.get("data_shape")?.split_once('x')?;
        let classes = meta.get("data_classes")?;
        Some(DataIdentity {
            hash: u64::from_str_radix(meta.get("data_hash")?, 16).ok()?,
            source: meta.get("data_source")?.clone(),
            height: h.parse().ok()?,
            width: w.parse().ok()?,
            channels: meta.get("data_channels")?.parse().ok()?,
            classes: if classes.is_empty() { Vec::new() } else { classes.split(',').map(String::from).collect() },
            limit: meta.get("data_limit").and_then(|l| l.parse().ok()),
        })
    }

    /// One line: source, shape, channels, classes, limit and hash.
    pub fn describe(&self) -> String {
        let classes = match self.classes.len() {
            0 => "unlabelled".to_string(),
            k => format!("{k} classes"),
        };
        let limit = self.limit.map_or(String::new(), |n| format!(", its first {n} images"));
        let shape = ImageShape { height: self.height, width: self.width, channels: self.channels };
        format!("{} ({}, {classes}{limit}; content hash {})", self.source, shape.describe(), self.hash_hex())
    }
}

/// Parses an IDX file held in memory (raw or gzipped); returns (dims, data).
pub fn parse_idx(bytes: &[u8], path: &Path, want_dims: usize) -> Result<(Vec<u32>, Vec<u8>)> {
    parse_idx_of(bytes, path, &[want_dims])
}

/// `parse_idx` taking any of `allowed` numbers of dimensions (images: 3,
/// or 4 for colour (n, h, w, c), as `sample --idx` writes them).
pub fn parse_idx_of(bytes: &[u8], path: &Path, allowed: &[usize]) -> Result<(Vec<u32>, Vec<u8>)> {
    let want_dims = allowed[0];
    let err = |why: String| GanError::data(path, why);
    if bytes.is_empty() {
        return Err(err("empty file".into()));
    }
    let named_gz = path.extension().is_some_and(|e| e == "gz");
    let gz = is_gzip(bytes);
    if named_gz && !gz {
        return Err(err("named .gz but is not a gzip file".into()));
    }
    let mut reader: Box<dyn Read + '_> = if gz { Box::new(GzDecoder::new(bytes)) } else { Box::new(bytes) };
    let io_err = |e: std::io::Error| {
        if gz {
            GanError::data(path, format!("corrupt gzip data: {e}"))
        } else {
            GanError::data(path, e.to_string())
        }
    };
    let mut head = [0u8; 4];
    read_full(&mut reader, &mut head)
        .map_err(io_err)?
        .then_some(())
        .ok_or_else(|| err("truncated: shorter than the 4-byte IDX magic".into()))?;
    if head[0] != 0 || head[1] != 0 {
        return Err(err(format!(
            "wrong magic number {:02x}{:02x}{:02x}{:02x}: not an IDX file",
            head[0], head[1], head[2], head[3]
        )));
    }
    if head[2] != 0x08 {
        return Err(err(format!("IDX data type 0x{:02x}, only unsigned bytes (0x08) are supported", head[2])));
    }
    let ndims = head[3] as usize;
    if ndims != want_dims && !allowed.contains(&ndims) {
        return Err(err(format!(
            "IDX file has {ndims} dimensions, expected {want_dims} ({})",
            if want_dims == 3 { "images: count, rows, cols" } else { "labels: count" }
        )));
    }
    let mut dims = Vec::with_capacity(ndims);
    for i in 0..ndims {
        let mut d = [0u8; 4];
        if !read_full(&mut reader, &mut d).map_err(io_err)? {
            return Err(err(format!("truncated in the header (dimension {i} of {ndims})")));
        }
        dims.push(u32::from_be_bytes(d));
    }
    let total: u64 = dims.iter().map(|&d| d as u64).product();
    if ndims >= 3 && (dims[1] == 0 || dims[2] == 0 || dims[1] > MAX_SIDE || dims[2] > MAX_SIDE) {
        return Err(err(format!(
            "absurd image size {}x{} in the header (at most {MAX_SIDE} a side)",
            dims[1], dims[2]
        )));
    }
    if total > MAX_DATA_BYTES {
        return Err(err(format!(
            "header declares {total} bytes of data ({dims:?}), more than the {MAX_DATA_BYTES} accepted"
        )));
    }
    if !gz {
        // Raw files: the size is known, so check before allocating.
        let have = bytes.len() as u64 - 4 - 4 * ndims as u64;
        if have < total {
            return Err(err(format!("truncated: header {dims:?} needs {total} bytes of data, the file has {have}")));
        }
    }
    let mut data = Vec::new();
    // Never read more than the header promised (a gzip bomb stops here).
    (&mut reader).take(total).read_to_end(&mut data).map_err(io_err)?;
    if (data.len() as u64) < total {
        return Err(err(format!(
            "truncated: header {dims:?} needs {total} bytes of data, the file has {}",
            data.len()
        )));
    }
    // The stream must end here: for gzip this also checks the CRC trailer,
    // so a cut-off .gz file is caught even when all the data decoded.
    let mut extra = [0u8; 1];
    let more = reader.read(&mut extra).map_err(|e| {
        if gz {
            GanError::data(path, format!("truncated or corrupt gzip stream after the data: {e}"))
        } else {
            GanError::data(path, e.to_string())
        }
    })?;
    if more > 0 {
        return Err(err(format!("more data than the header {dims:?} declares ({total} bytes)")));
    }
    Ok((dims, data))
}

/// Reads until `buf` is full; false if the input ended first.
fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| GanError::io(path, e))
}

/// Reads an IDX image file (and its labels, if given) into an ImageSet.
pub fn read_images(images: &Path, labels: Option<&Path>) -> Result<ImageSet> {
    let bytes = read_file(images)?;
    let label_bytes = labels.map(read_file).transpose()?;
    images_from_bytes(&bytes, images, label_bytes.as_deref().zip(labels))
}

pub fn images_from_bytes(bytes: &[u8], path: &Path, labels: Option<(&[u8], &Path)>) -> Result<ImageSet> {
    let (dims, pixels) = parse_idx_of(bytes, path, &[3, 4])?;
    let channels = dims.get(3).map_or(1, |&c| c as usize);
    if ![1, 3].contains(&channels) {
        return Err(GanError::data(path, format!("IDX images of {channels} channels: 1 (grey) or 3 (RGB) are read")));
    }
    let labels = match labels {
        None => None,
        Some((lb, lpath)) => {
            let (ldims, l) = parse_idx(lb, lpath, 1)?;
            if ldims[0] != dims[0] {
                return Err(GanError::data(
                    lpath,
                    format!("{} labels for {} images in {}", ldims[0], dims[0], path.display()),
                ));
            }
            Some(l)
        }
    };
    Ok(ImageSet {
        count: dims[0] as usize,
        height: dims[1] as usize,
        width: dims[2] as usize,
        channels,
        pixels,
        labels,
        class_names: Vec::new(),
        source: path.display().to_string(),
    })
}

/// `name` or `name.gz` in `dir`, whichever exists.
fn find(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(name), dir.join(format!("{name}.gz"))].into_iter().find(|p| p.is_file())
}

/// Whether `dir` holds IDX training images where `load_train_dir` looks
/// for them (in it, or in its `train/`).
pub fn holds_idx_training_set(dir: &Path) -> bool {
    [dir.to_path_buf(), dir.join("train")].iter().any(|d| find(d, "train-images-idx3-ubyte").is_some())
}

/// The training set from a folder in the seed's layout:
/// DIR/train/train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz]
/// (the files directly in DIR are accepted too). When DIR/test holds test
/// images, their size must match the training images.
pub fn load_train_dir(dir: &Path) -> Result<ImageSet> {
    if !dir.is_dir() {
        return Err(GanError::data(dir, "data folder not found"));
    }
    let train_dir = if dir.join("train").is_dir() { dir.join("train") } else { dir.to_path_buf() };
    let images = find(&train_dir, "train-images-idx3-ubyte").ok_or_else(|| {
        GanError::data(train_dir.join("train-images-idx3-ubyte"), "missing (looked for it and for .gz)")
    })?;
    let labels = find(&train_dir, "train-labels-idx1-ubyte");
    let set = read_images(&images, labels.as_deref())?;
    if let Some(test_images) = find_test_images(dir) {
        let test = read_images(&test_images, None)?;
        if (test.height, test.width) != (set.height, set.width) {
            return Err(GanError::data(
                &test_images,
                format!("test images are {}x{}, training images {}x{}", test.height, test.width, set.height, set.width),
            ));
        }
    }
    Ok(set)
}

/// The data folder that `load_train_dir` read the training images `images`
/// (an `ImageSet::source`) from: their folder, or its parent when that is
/// the seed's layout (DIR/train/...). None for the embedded set.
pub fn data_dir_of(images: &Path) -> Option<PathBuf> {
    if images.starts_with("<embedded>") {
        return None;
    }
    // An image folder's source is the folder.
    if images.is_dir() {
        return Some(images.to_path_buf());
    }
    let folder = images.parent()?;
    let dir = match folder.parent() {
        Some(root) if folder.file_name().is_some_and(|n| n == "train") => root,
        _ => folder,
    };
    Some(if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir.to_path_buf() })
}

/// The embedded MNIST training set.
pub fn embedded_mnist() -> Result<ImageSet> {
    images_from_bytes(
        MNIST_TRAIN_IMAGES,
        Path::new("<embedded>/train-images-idx3-ubyte.gz"),
        Some((MNIST_TRAIN_LABELS, Path::new("<embedded>/train-labels-idx1-ubyte.gz"))),
    )
}

/// The embedded MNIST test set (10,000 images with labels).
pub fn embedded_mnist_test() -> Result<ImageSet> {
    images_from_bytes(
        MNIST_TEST_IMAGES,
        Path::new("<embedded>/t10k-images-idx3-ubyte.gz"),
        Some((MNIST_TEST_LABELS, Path::new("<embedded>/t10k-labels-idx1-ubyte.gz"))),
    )
}

/// The test images of a data folder: DIR/test/t10k-images-idx3-ubyte[.gz]
/// (the seed's layout), else DIR/t10k-images-idx3-ubyte[.gz] beside the
/// training files (the original MNIST download, Debian's Fashion-MNIST).
fn find_test_images(dir: &Path) -> Option<PathBuf> {
    [dir.join("test"), dir.to_path_buf()].into_iter().find_map(|d| find(&d, "t10k-images-idx3-ubyte"))
}

/// The test split of `--data DIR` (`find_test_images`, with the labels
/// beside them) when given, else the embedded MNIST test set; None when DIR
/// has no test split.
pub fn load_test(dir: Option<&Path>) -> Result<Option<ImageSet>> {
    let Some(dir) = dir else {
        return embedded_mnist_test().map(Some);
    };
    match find_test_images(dir) {
        Some(images) => {
            let labels = images.parent().and_then(|d| find(d, "t10k-labels-idx1-ubyte"));
            read_images(&images, labels.as_deref()).map(Some)
        }
        None => Ok(None),
    }
}

/// Most images held out of a training split that has no test split beside it.
pub const MAX_HELD_OUT: usize = 10_000;
/// Without a test split, every HELD_OUT_STRIDE-th training image at least is
/// held out (a sixth: MNIST's 10,000 test images for 60,000 training ones).
pub const HELD_OUT_STRIDE: usize = 6;

/// Where the reference images of an evaluation come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Reference {
    /// The data's own test split.
    TestSplit,
    /// No test split: every `stride`-th training image (the last of each
    /// `stride`) was held out, and the classifier trains on the others.
    HeldOut { stride: usize, of: usize },
}

/// The classifier's training images and the reference images (its accuracy
/// and the FID statistics) of an evaluation on `train`.
#[derive(Clone, Debug)]
pub struct EvalSplits {
    pub train: ImageSet,
    pub reference: ImageSet,
    pub kind: Reference,
}

impl EvalSplits {
    /// What the classifier's accuracy is measured on, for its line.
    pub fn accuracy_name(&self) -> &'static str {
        match self.kind {
            Reference::TestSplit => "test accuracy",
            Reference::HeldOut { .. } => "held-out accuracy",
        }
    }

    /// The reference, for a line of output.
    pub fn describe(&self) -> String {
        match &self.kind {
            Reference::TestSplit => format!("the test split, {} images from {}", self.reference.count, self.reference.source),
            Reference::HeldOut { stride, of } => format!(
                "{} images held out of the {of}-image training split (every {stride}th; the data has no t10k-* test files), \
                 the classifier trains on the other {}",
                self.reference.count, self.train.count
            ),
        }
    }
}

/// The splits of an evaluation on `train` (the training set of `--data DIR`,
/// or the embedded MNIST when `dir` is None): its test split where there is
/// one, else images held out of `train` (`HeldOut`) so that no score is
/// measured on images the classifier trained on.
pub fn eval_splits(dir: Option<&Path>, train: &ImageSet) -> Result<EvalSplits> {
    if let Some(test) = load_test(dir)? {
        return Ok(EvalSplits { train: train.clone(), reference: test, kind: Reference::TestSplit });
    }
    let (kept, held) = hold_out(train)?;
    let stride = held_out_stride(train.count);
    Ok(EvalSplits { train: kept, reference: held, kind: Reference::HeldOut { stride, of: train.count } })
}

/// Every how many training images one is held out: a sixth, at most
/// MAX_HELD_OUT images.
pub fn held_out_stride(count: usize) -> usize {
    HELD_OUT_STRIDE.max(count.div_ceil(MAX_HELD_OUT))
}

/// (kept, held out): image i is held out when i % stride == stride - 1.
/// Spread over the set, so a set sorted by class still gives every class.
pub fn hold_out(set: &ImageSet) -> Result<(ImageSet, ImageSet)> {
    let stride = held_out_stride(set.count);
    if set.count < stride {
        return Err(GanError::data(
            &set.source,
            format!("{} images and no test split: too few to hold {stride} out", set.count),
        ));
    }
    let dim = set.dim();
    let mut parts = [set.clone_header(), set.clone_header()];
    let mut labels: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    for i in 0..set.count {
        let part = usize::from(i % stride == stride - 1);
        parts[part].pixels.extend_from_slice(set.image(i));
        if let Some(l) = &set.labels {
            labels[part].push(l[i]);
        }
    }
    let [mut kept, mut held] = parts;
    let [kept_labels, held_labels] = labels;
    for (p, l, what) in [(&mut kept, kept_labels, "kept"), (&mut held, held_labels, "held out")] {
        p.count = p.pixels.len() / dim;
        p.labels = set.labels.is_some().then_some(l);
        p.source = format!("{} ({what})", set.source);
    }
    Ok((kept, held))
}

/// `--data DIR` when given, else the embedded MNIST.
pub fn load(dir: Option<&Path>) -> Result<ImageSet> {
    match dir {
        Some(d) => load_train_dir(d),
        None => embedded_mnist(),
    }
}

/// Writes an IDX u8 image file (raw) of (count, height, width).
pub fn idx_bytes(count: usize, height: usize, width: usize, pixels: &[u8]) -> Vec<u8> {
    idx_bytes_dims(&[count, height, width], pixels)
}

/// Writes an IDX u8 file (raw) of any dims: (n, h, w, 3) for colour images.
pub fn idx_bytes_dims(dims: &[usize], pixels: &[u8]) -> Vec<u8> {
    let mut out = vec![0, 0, 0x08, dims.len() as u8];
    for &d in dims {
        out.extend_from_slice(&(d as u32).to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}
