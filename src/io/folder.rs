//! Image folders as data sets: PNG, JPEG, WebP, BMP and GIF (first frame)
//! files, decoded through the `image` crate into one `ImageSet`.
//!
//! Layout (torchvision's ImageFolder): sub-folders of DIR are classes,
//! labelled 0, 1, ... in sorted name order, each searched recursively;
//! without sub-folders the files directly in DIR are one unlabelled set.
//! Files are taken in sorted path order, so a flat folder of MNIST PNGs
//! named in IDX order gives the IDX file's set, byte for byte.
//!
//! Each image: alpha composited on white (emoji and icons are
//! transparent), palette, 16-bit and grey+alpha converted to 8-bit grey or
//! RGB; with a size S, the shorter side resized to S (bilinear) and the
//! centre S x S cropped, as examples/dcgan's `Resize(S)` + `CenterCrop(S)`.
//! Channels: 3 if any image has colour, else 1, unless asked for.
//! Files that do not decode are skipped and listed in the report.
//!
//! The decoded set is cached (`cache_path`) keyed by the file list, sizes,
//! mtimes and the options, so a second run reads one file.
//!
//! May import: `engine` (the stable hash), `nn` (ImageShape), `fs`, `error`.

use crate::engine::autotune::{stable_hash, stable_hash_from};
use crate::error::{GanError, Result};
use crate::io::data::ImageSet;
use std::path::{Path, PathBuf};

/// File name endings read as images (case-insensitive).
pub const IMAGE_EXTENSIONS: [&str; 7] = ["png", "jpg", "jpeg", "webp", "bmp", "gif", "jpe"];

/// Largest side `--image-size` accepts.
pub const MAX_IMAGE_SIZE: usize = 1024;

/// How a folder's images become a set: `--image-size` and `--channels`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FolderOptions {
    /// Resize the shorter side to S and centre-crop S x S; None: every
    /// image must already have one size.
    pub image_size: Option<usize>,
    /// 1 or 3; None: 3 if any image has colour, else 1.
    pub channels: Option<usize>,
}

impl FolderOptions {
    /// Errors name the flag.
    pub fn validate(&self) -> Result<()> {
        if let Some(s) = self.image_size.filter(|&s| s == 0 || s > MAX_IMAGE_SIZE) {
            return Err(GanError::Flag { flag: "--image-size", why: format!("{s}: must be 1 to {MAX_IMAGE_SIZE}") });
        }
        if let Some(c) = self.channels.filter(|c| ![1, 3].contains(c)) {
            return Err(GanError::Flag { flag: "--channels", why: format!("{c}: must be 1 (grey) or 3 (RGB)") });
        }
        Ok(())
    }
}

/// What reading a folder did, for the host to print.
#[derive(Clone, Debug, Default)]
pub struct FolderReport {
    /// Files that did not decode, with why, in path order.
    pub skipped: Vec<(PathBuf, String)>,
    /// The cache file the set was read from or written to.
    pub cache: Option<PathBuf>,
    pub from_cache: bool,
}

impl FolderReport {
    /// One warning line naming the first few skipped files and the count;
    /// None when nothing was skipped.
    pub fn skipped_line(&self) -> Option<String> {
        const SHOWN: usize = 3;
        if self.skipped.is_empty() {
            return None;
        }
        let names: Vec<String> =
            self.skipped.iter().take(SHOWN).map(|(p, why)| format!("{} ({why})", p.display())).collect();
        let more = self.skipped.len().saturating_sub(SHOWN);
        let more = if more > 0 { format!(" and {more} more") } else { String::new() };
        Some(format!("skipped {} files that are not readable images: {}{more}", self.skipped.len(), names.join(", ")))
    }
}

/// The files of an image folder: (path, label) in sorted order, and the
/// class names (empty: one unlabelled set).
#[derive(Clone, Debug, PartialEq)]
pub struct Listing {
    pub files: Vec<(PathBuf, Option<u8>)>,
    pub classes: Vec<String>,
}

/// Whether `dir` holds an image folder rather than IDX files.
pub fn is_image_folder(dir: &Path) -> bool {
    dir.is_dir() && !crate::io::data::holds_idx_training_set(dir)
}

fn visible_entries(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| GanError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')))
        .collect();
    v.sort();
    Ok(v)
}

/// Every file under `dir`, recursively, sorted by path.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for p in visible_entries(dir)? {
        if p.is_dir() {
            files_under(&p, out)?;
        } else {
            out.push(p);
        }
    }
    Ok(())
}

/// Lists `dir`: sub-folders as classes (at most 256), else its own files.
/// Files directly in DIR beside class folders are listed unlabelled and
/// skipped by `read_folder` with a reason.
pub fn list(dir: &Path) -> Result<Listing> {
    let entries = visible_entries(dir)?;
    let class_dirs: Vec<&PathBuf> = entries.iter().filter(|p| p.is_dir()).collect();
    if class_dirs.is_empty() {
        return Ok(Listing { files: entries.into_iter().map(|p| (p, None)).collect(), classes: Vec::new() });
    }
    if class_dirs.len() > 256 {
        return Err(GanError::data(dir, format!("{} class folders, at most 256 are supported", class_dirs.len())));
    }
    let mut files: Vec<(PathBuf, Option<u8>)> =
        entries.iter().filter(|p| p.is_file()).map(|p| (p.clone(), None)).collect();
    let mut classes = Vec::new();
    for (k, d) in class_dirs.iter().enumerate() {
        let mut under = Vec::new();
        files_under(d, &mut under)?;
        files.extend(under.into_iter().map(|p| (p, Some(k as u8))));
        classes.push(d.file_name().map_or(String::new(), |n| n.to_string_lossy().into_owned()));
    }
    Ok(Listing { files, classes })
}

/// One decoded image: its pixels (HWC) and whether it has colour.
struct Decoded {
    size: (usize, usize),
    colour: bool,
    /// height x width x (3 if colour else 1) bytes.
    pixels: Vec<u8>,
}

/// c over white with alpha a (0..255), rounded.
fn over_white(c: u8, a: u8) -> u8 {
    ((u32::from(c) * u32::from(a) + 255 * (255 - u32::from(a)) + 127) / 255) as u8
}

/// Grey of an RGB pixel (Rec. 709 weights, as the `image` crate's luma):
/// exact for r = g = b.
fn grey_of(p: &[u8]) -> u8 {
    ((2126 * u32::from(p[0]) + 7152 * u32::from(p[1]) + 722 * u32::from(p[2]) + 5000) / 10000) as u8
}

/// Resizes the shorter side to `s` (bilinear) and crops the centre s x s.
fn resize_crop(img: image::DynamicImage, s: usize) -> image::DynamicImage {
    let (w, h) = (img.width() as usize, img.height() as usize);
    let (nw, nh) = if w <= h { (s, (h * s / w).max(s)) } else { ((w * s / h).max(s), s) };
    let img = if (nw, nh) == (w, h) {
        img
    } else {
        img.resize_exact(nw as u32, nh as u32, image::imageops::FilterType::Triangle)
    };
    let (left, top) = ((nw - s) as f64 / 2.0, (nh - s) as f64 / 2.0);
    img.crop_imm(left.round() as u32, top.round() as u32, s as u32, s as u32)
}

/// Decodes one file: alpha over white, 8-bit grey or RGB, resized.
fn decode(path: &Path, size: Option<usize>) -> std::result::Result<Decoded, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let reader =
        image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    if reader.format().is_none() {
        return Err("not an image".into());
    }
    let img = reader.decode().map_err(|e| e.to_string())?;
    let colour = img.color().has_color();
    let img = if colour {
        let rgba = img.to_rgba8();
        let rgb: Vec<u8> = rgba.pixels().flat_map(|p| [0, 1, 2].map(|i| over_white(p[i], p[3]))).collect();
        image::DynamicImage::ImageRgb8(image::RgbImage::from_raw(rgba.width(), rgba.height(), rgb).ok_or("bad size")?)
    } else {
        let la = img.to_luma_alpha8();
        let l: Vec<u8> = la.pixels().map(|p| over_white(p[0], p[1])).collect();
        image::DynamicImage::ImageLuma8(image::GrayImage::from_raw(la.width(), la.height(), l).ok_or("bad size")?)
    };
    let img = match size {
        Some(s) => resize_crop(img, s),
        None => img,
    };
    let size = (img.height() as usize, img.width() as usize);
    let pixels = if colour { img.to_rgb8().into_raw() } else { img.to_luma8().into_raw() };
    Ok(Decoded { size, colour, pixels })
}

/// `pixels` (one image, `from` channels) as `to` channels.
fn convert_channels(pixels: &[u8], from: usize, to: usize) -> Vec<u8> {
    match (from, to) {
        (3, 1) => pixels.chunks(3).map(grey_of).collect(),
        (1, 3) => pixels.iter().flat_map(|&v| [v, v, v]).collect(),
        _ => pixels.to_vec(),
    }
}

/// Decodes every listed file (in parallel where the `cli` feature brings
/// rayon), calling `progress` with the number done so far.
fn decode_all(
    listing: &Listing,
    size: Option<usize>,
    progress: &(dyn Fn(usize) + Sync),
) -> Vec<std::result::Result<Decoded, String>> {
    let done = std::sync::atomic::AtomicUsize::new(0);
    let one = |(path, label): &(PathBuf, Option<u8>)| {
        let r = if label.is_none() && !listing.classes.is_empty() {
            Err("outside the class folders".to_string())
        } else {
            decode(path, size)
        };
        progress(done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
        r
    };
    #[cfg(feature = "cli")]
    {
        use rayon::prelude::*;
        listing.files.par_iter().map(one).collect()
    }
    #[cfg(not(feature = "cli"))]
    {
        listing.files.iter().map(one).collect()
    }
}

/// The set of decoded images (skipping the failures into `report`): one
/// size, the channels asked for or found.
fn assemble(
    dir: &Path,
    listing: &Listing,
    decoded: Vec<std::result::Result<Decoded, String>>,
    opts: FolderOptions,
    report: &mut FolderReport,
) -> Result<ImageSet> {
    let mut good = Vec::new();
    for ((path, label), d) in listing.files.iter().zip(decoded) {
        match d {
            Ok(d) => good.push((path, *label, d)),
            Err(why) => report.skipped.push((path.clone(), why)),
        }
    }
    let Some((first_path, _, first)) = good.first() else {
        return Err(GanError::data(
            dir,
            format!("no readable image among its {} files (PNG, JPEG, WebP, BMP or GIF)", listing.files.len()),
        ));
    };
    let size = first.size;
    if let Some((p, _, d)) = good.iter().find(|(_, _, d)| d.size != size) {
        return Err(GanError::data(
            dir,
            format!(
                "images of different sizes: {} is {}x{}, {} is {}x{}; --image-size S resizes them all to S x S",
                first_path.display(),
                size.0,
                size.1,
                p.display(),
                d.size.0,
                d.size.1
            ),
        ));
    }
    let channels = opts.channels.unwrap_or(if good.iter().any(|(_, _, d)| d.colour) { 3 } else { 1 });
    let mut pixels = Vec::with_capacity(good.len() * size.0 * size.1 * channels);
    for (_, _, d) in &good {
        pixels.extend(convert_channels(&d.pixels, if d.colour { 3 } else { 1 }, channels));
    }
    let labels = (!listing.classes.is_empty()).then(|| good.iter().map(|(_, l, _)| l.unwrap_or(0)).collect());
    Ok(ImageSet {
        count: good.len(),
        height: size.0,
        width: size.1,
        channels,
        pixels,
        labels,
        class_names: listing.classes.clone(),
        source: dir.display().to_string(),
    })
}

/// The cache key of `listing` read with `opts`: every file's path, size
/// and mtime, and the options.
pub fn cache_key(listing: &Listing, opts: FolderOptions) -> u64 {
    let head = format!(
        "gan-wgpu image folder v1 size {:?} channels {:?} classes {}",
        opts.image_size,
        opts.channels,
        listing.classes.join("/")
    );
    let mut h = stable_hash(head.as_bytes());
    for (path, label) in &listing.files {
        let meta = std::fs::metadata(path).ok();
        let mtime =
            meta.as_ref().and_then(|m| m.modified().ok()).and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        let line =
            format!("{}|{:?}|{:?}|{:?}\n", path.display(), label, meta.map(|m| m.len()), mtime.map(|d| d.as_nanos()));
        h = stable_hash_from(h, line.as_bytes());
    }
    h
}

/// Where the decoded set of `key` is cached under `cache_dir`.
pub fn cache_path(cache_dir: &Path, key: u64) -> PathBuf {
    cache_dir.join("image-folders").join(format!("{key:016x}.bin"))
}

const CACHE_MAGIC: &[u8; 8] = b"GANWIMG1";

/// The cache file's bytes: magic, header length (u64 LE), JSON header,
/// pixels, labels.
fn cache_bytes(set: &ImageSet, skipped: &[(PathBuf, String)]) -> Vec<u8> {
    let header = serde_json::json!({
        "count": set.count, "height": set.height, "width": set.width, "channels": set.channels,
        "labelled": set.labels.is_some(), "classes": set.class_names, "source": set.source,
        "skipped": skipped.iter().map(|(p, w)| [p.display().to_string(), w.clone()]).collect::<Vec<_>>(),
    })
    .to_string();
    let mut out = CACHE_MAGIC.to_vec();
    out.extend_from_slice(&(header.len() as u64).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&set.pixels);
    out.extend_from_slice(set.labels.as_deref().unwrap_or(&[]));
    out
}

/// The set and skipped files of a cache file; None when it is missing or
/// does not read back whole (it is then decoded again).
fn read_cache(path: &Path) -> Option<(ImageSet, Vec<(PathBuf, String)>)> {
    let bytes = std::fs::read(path).ok()?;
    let rest = bytes.strip_prefix(CACHE_MAGIC)?;
    let len = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?) as usize;
    let h: serde_json::Value = serde_json::from_slice(rest.get(8..8 + len)?).ok()?;
    let n = |k: &str| h.get(k).and_then(|v| v.as_u64()).map(|v| v as usize);
    let (count, height, width, channels) = (n("count")?, n("height")?, n("width")?, n("channels")?);
    let body = rest.get(8 + len..)?;
    let dim = height * width * channels;
    let labelled = h.get("labelled")?.as_bool()?;
    if body.len() != count * dim + if labelled { count } else { 0 } {
        return None;
    }
    let strings = |k: &str| -> Option<Vec<String>> {
        h.get(k)?.as_array()?.iter().map(|v| v.as_str().map(String::from)).collect()
    };
    let skipped = h
        .get("skipped")?
        .as_array()?
        .iter()
        .filter_map(|v| Some((PathBuf::from(v.get(0)?.as_str()?), v.get(1)?.as_str()?.to_string())))
        .collect();
    let set = ImageSet {
        count,
        height,
        width,
        channels,
        pixels: body[..count * dim].to_vec(),
        labels: labelled.then(|| body[count * dim..].to_vec()),
        class_names: strings("classes")?,
        source: h.get("source")?.as_str()?.to_string(),
    };
    Some((set, skipped))
}

/// Reads the image folder `dir` with `opts`: from the cache under
/// `cache_dir` when it holds this listing, else decoded (calling
/// `progress(done, total)`) and cached. Errors name the folder.
pub fn read_folder(
    dir: &Path,
    opts: FolderOptions,
    cache_dir: Option<&Path>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<(ImageSet, FolderReport)> {
    opts.validate()?;
    let listing = list(dir)?;
    if listing.files.is_empty() {
        return Err(GanError::data(
            dir,
            "no images (PNG, JPEG, WebP, BMP or GIF) and no IDX files: train-images-idx3-ubyte[.gz] missing, in it or in train/",
        ));
    }
    let cache = cache_dir.map(|c| cache_path(c, cache_key(&listing, opts)));
    let mut report = FolderReport { cache: cache.clone(), ..Default::default() };
    if let Some((set, skipped)) = cache.as_deref().and_then(read_cache) {
        report.from_cache = true;
        report.skipped = skipped;
        return Ok((set, report));
    }
    let total = listing.files.len();
    let decoded = decode_all(&listing, opts.image_size, &|done| progress(done, total));
    let set = assemble(dir, &listing, decoded, opts, &mut report)?;
    if let Some(path) = &cache {
        // A cache that cannot be written costs the next run a decode, no more.
        let _ = path.parent().map(std::fs::create_dir_all);
        let _ = crate::fs::atomic_write(path, &cache_bytes(&set, &report.skipped));
    }
    Ok((set, report))
}

/// The training set of `--data`: an image folder (read with `opts`,
/// cached under `cache_dir`), IDX files in the seed's layout, or the
/// embedded MNIST when `dir` is None. The report is an image folder's.
/// `--image-size` and `--channels` apply to image folders only: IDX data
/// refuses a size or channel count other than its own.
pub fn load(
    dir: Option<&Path>,
    opts: FolderOptions,
    cache_dir: Option<&Path>,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<(ImageSet, Option<FolderReport>)> {
    if let Some(d) = dir.filter(|d| is_image_folder(d)) {
        let (set, report) = read_folder(d, opts, cache_dir, progress)?;
        return Ok((set, Some(report)));
    }
    opts.validate()?;
    let set = crate::io::data::load(dir)?;
    if let Some(s) = opts.image_size.filter(|&s| (s, s) != (set.height, set.width)) {
        return Err(GanError::Flag {
            flag: "--image-size",
            why: format!(
                "{s}: {} holds IDX images of {}x{}; --image-size resizes image folders only",
                set.source, set.height, set.width
            ),
        });
    }
    if let Some(c) = opts.channels.filter(|&c| c != set.channels) {
        return Err(GanError::Flag {
            flag: "--channels",
            why: format!("{c}: {} holds grey IDX images; --channels converts image folders only", set.source),
        });
    }
    Ok((set, None))
}
