//! Image folders as data, as a user meets them: a flat folder of MNIST
//! PNGs trains bit for bit like the IDX file; class folders give cgan its
//! labels; a mixed colour folder (PNG RGB, RGBA, palette, 16-bit, grey +
//! alpha, JPEG, WebP, BMP, GIF, a corrupt file, a text file) trains a 64x64
//! dcgan whose every output is in colour; the decoded set is cached; a set
//! held in several GPU buffers trains as one held in one.

mod common;
use gan_wgpu::io::data::ImageSet;
use gan_wgpu::io::folder::{self, FolderOptions};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn gan(cache: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gan-wgpu"));
    c.env("GAN_WGPU_CACHE_DIR", cache);
    c
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "stdout:\n{}\nstderr:\n{}", text(&o.stdout), text(&o.stderr));
    text(&o.stdout)
}

/// The first `n` images (and labels) of the embedded MNIST.
fn mnist(n: usize) -> ImageSet {
    let all = gan_wgpu::io::data::embedded_mnist().unwrap();
    ImageSet {
        count: n,
        pixels: all.pixels[..n * 784].to_vec(),
        labels: all.labels.as_ref().map(|l| l[..n].to_vec()),
        ..all.clone_header()
    }
}

fn save_grey(path: &Path, pixels: &[u8], w: u32, h: u32) {
    image::GrayImage::from_raw(w, h, pixels.to_vec()).unwrap().save(path).unwrap();
}

/// The tensors of a safetensors file by name (bytes), without the metadata.
fn tensors(path: &Path) -> Vec<(String, Vec<u8>)> {
    let bytes = std::fs::read(path).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut v: Vec<(String, Vec<u8>)> = st.tensors().into_iter().map(|(n, t)| (n, t.data().to_vec())).collect();
    v.sort();
    v
}

fn metadata(path: &Path) -> std::collections::HashMap<String, String> {
    gan_wgpu::io::checkpoint::metadata_of(path).unwrap()
}

fn train_small(cache: &Path, data: &Path, out: &Path, extra: &[&str]) -> Output {
    gan(cache)
        .args(["train", "--epochs", "1", "--log-every", "2", "--eval-every", "0"])
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// 256 MNIST digits as 00000.png ... in IDX order train exactly as the
/// IDX file of the same images: the same losses and checkpoint tensors.
#[test]
fn flat_folder_of_mnist_pngs_trains_bit_for_bit_like_the_idx_file() {
    if common::ctx().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let set = mnist(256);
    let (idx, flat) = (dir.path().join("idx"), dir.path().join("flat"));
    std::fs::create_dir_all(idx.join("train")).unwrap();
    std::fs::create_dir_all(&flat).unwrap();
    std::fs::write(idx.join("train/train-images-idx3-ubyte"), gan_wgpu::io::data::idx_bytes(256, 28, 28, &set.pixels))
        .unwrap();
    for i in 0..256 {
        save_grey(&flat.join(format!("{i:05}.png")), set.image(i), 28, 28);
    }
    let cache = dir.path().join("cache");
    ok(&train_small(&cache, &idx, &dir.path().join("a"), &["--batch-size", "32"]));
    let log = ok(&train_small(&cache, &flat, &dir.path().join("b"), &["--batch-size", "32"]));
    assert!(log.contains("read 256 images (28x28 grey, unlabelled)"), "{log}");
    // losses.csv without its last column (seconds).
    let losses = |p: &str| -> Vec<String> {
        let t = std::fs::read_to_string(dir.path().join(p)).unwrap();
        t.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
    };
    assert_eq!(losses("a/losses.csv").len(), 5);
    assert_eq!(losses("a/losses.csv"), losses("b/losses.csv"));
    for net in ["generator_0", "discriminator_0"] {
        let f = format!("checkpoints/{net}.safetensors");
        assert_eq!(tensors(&dir.path().join("a").join(&f)), tensors(&dir.path().join("b").join(&f)), "{net}");
    }
}

/// Class folders (sorted names) label the images: cgan trains on three
/// named classes, records their names, and samples a row per class.
#[test]
fn class_folders_give_cgan_its_labels() {
    if common::ctx().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("shapes");
    let mut r = common::rng(3);
    for (k, name) in ["circle", "square", "star"].iter().enumerate() {
        std::fs::create_dir_all(data.join(name)).unwrap();
        for i in 0..24 {
            let px: Vec<u8> = (0..12 * 12 * 3)
                .map(|j| ((j * (k + 1) + i) % 256) as u8 ^ rand::Rng::random::<u8>(&mut r) & 7)
                .collect();
            image::RgbImage::from_raw(12, 12, px).unwrap().save(data.join(name).join(format!("{i}.png"))).unwrap();
        }
    }
    let (set, _) = folder::read_folder(&data, FolderOptions::default(), None, &|_, _| {}).unwrap();
    assert_eq!((set.count, set.height, set.width, set.channels), (72, 12, 12, 3));
    assert_eq!(set.class_names(), ["circle", "square", "star"]);
    let labels = set.labels.as_ref().unwrap();
    assert_eq!((labels[0], labels[24], labels[71]), (0, 1, 2));
    let cache = dir.path().join("cache");
    let out = dir.path().join("run");
    ok(&train_small(&cache, &data, &out, &["--model", "cgan", "--batch-size", "8"]));
    let g = out.join("checkpoints/generator_0.safetensors");
    let meta = metadata(&g);
    assert_eq!(meta["data_classes"], "circle,square,star");
    assert_eq!((meta["image_channels"].as_str(), meta["data_channels"].as_str()), ("3", "3"));
    let grid = dir.path().join("rows.png");
    let said = ok(&gan(&cache)
        .args(["sample", "--count", "4", "--checkpoint"])
        .arg(&g)
        .arg("--out")
        .arg(&grid)
        .output()
        .unwrap());
    assert!(said.contains("12 samples, classes 0,1,2"), "{said}");
    assert_eq!(image::open(&grid).unwrap().color(), image::ColorType::Rgb8);
}

/// A folder of every kind of file a user has: colour and grey PNGs of other
/// sizes, palette, 16-bit, grey + alpha, JPEG, WebP, BMP, GIF, a corrupt
/// PNG and a text file.
fn mixed_folder(dir: &Path) -> PathBuf {
    use image::{ImageBuffer, Luma, LumaA, Rgb, Rgba};
    let d = dir.join("mixed");
    std::fs::create_dir_all(&d).unwrap();
    let rgb = ImageBuffer::from_fn(80, 70, |x, y| Rgb([x as u8 * 3, y as u8 * 3, 128]));
    rgb.save(d.join("a_rgb.png")).unwrap();
    ImageBuffer::from_fn(64, 64, |x, y| Rgba([200, x as u8 * 4, y as u8 * 4, (x * 4) as u8]))
        .save(d.join("b_rgba.png"))
        .unwrap();
    ImageBuffer::from_fn(66, 90, |x, _| Rgb([x as u16 * 900, 30000u16, 65535u16])).save(d.join("c_16bit.png")).unwrap();
    ImageBuffer::from_fn(64, 64, |x, y| LumaA([(x + y) as u8, 255 - y as u8]))
        .save(d.join("d_grey_alpha.png"))
        .unwrap();
    rgb.save(d.join("e_photo.jpg")).unwrap();
    image::DynamicImage::ImageRgba8(ImageBuffer::from_fn(64, 64, |x, _| Rgba([x as u8, 50, 90, 255])))
        .save(d.join("f_lossless.webp"))
        .unwrap();
    rgb.save(d.join("g_bitmap.bmp")).unwrap();
    ImageBuffer::from_fn(64, 64, |x, _| Rgba([x as u8 * 2, 0, 255, 255])).save(d.join("h_anim.gif")).unwrap();
    std::fs::write(d.join("i_palette.png"), palette_png()).unwrap();
    ImageBuffer::from_fn(64, 64, |x, y| Luma([(x * y) as u8])).save(d.join("j_grey.png")).unwrap();
    std::fs::write(d.join("k_bad.png"), b"\x89PNG\r\n\x1a\nthis is no image").unwrap();
    std::fs::write(d.join("notes.txt"), "drawn by hand").unwrap();
    d
}

/// An 8x8 palette PNG (colour type 3, four colours), written chunk by chunk.
fn palette_png() -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&8u32.to_be_bytes());
    ihdr.extend_from_slice(&8u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 3, 0, 0, 0]);
    chunk(&mut out, b"IHDR", &ihdr);
    chunk(&mut out, b"PLTE", &[255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 0]);
    let rows: Vec<u8> = (0..8u8).flat_map(|y| std::iter::once(0).chain((0..8u8).map(move |x| (x + y) % 4))).collect();
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut z, &rows).unwrap();
    chunk(&mut out, b"IDAT", &z.finish().unwrap());
    chunk(&mut out, b"IEND", &[]);
    out
}

/// `train --model dcgan --image-size 64 --channels 3` on the mixed folder:
/// one warning naming the corrupt file, every output in colour (grid, GIF,
/// checkpoints, `sample --idx` as (n, 64, 64, 3), `sample --out-dir`).
#[test]
fn dcgan_64_trains_in_colour_on_a_mixed_folder() {
    if common::ctx().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = mixed_folder(dir.path());
    let cache = dir.path().join("cache");
    let out = dir.path().join("run");
    let args = ["--model", "dcgan", "--image-size", "64", "--channels", "3", "--width", "4", "--batch-size", "4"];
    let o = train_small(&cache, &data, &out, &args);
    let log = ok(&o);
    let err = text(&o.stderr);
    let warnings: Vec<&str> = err.lines().filter(|l| l.starts_with("warning:")).collect();
    assert_eq!(warnings.len(), 1, "{err}");
    assert!(warnings[0].contains("k_bad.png") && warnings[0].contains("skipped 2 files"), "{err}");
    assert!(log.contains("read 10 images (64x64 RGB, unlabelled)"), "{log}");
    let grid = image::open(out.join("images/test_0.png")).unwrap();
    assert_eq!(grid.color(), image::ColorType::Rgb8);
    assert!(out.join("progress.gif").is_file());
    let g = out.join("checkpoints/generator_0.safetensors");
    let meta = metadata(&g);
    assert_eq!((meta["image_height"].as_str(), meta["image_channels"].as_str()), ("64", "3"));
    let last = tensors(&g).into_iter().find(|(n, _)| n == "main.12.weight").unwrap();
    assert_eq!(last.1.len(), 4 * 3 * 4 * 4 * 4, "ConvTranspose2d(W=4, nc=3, 4, 2, 1)");
    let (idx, pngs) = (dir.path().join("s.idx"), dir.path().join("pngs"));
    let said = ok(&gan(&cache)
        .args(["sample", "--count", "3", "--checkpoint"])
        .arg(&g)
        .arg("--idx")
        .arg(&idx)
        .arg("--out-dir")
        .arg(&pngs)
        .output()
        .unwrap());
    assert!(said.contains("IDX uint8 3x64x64x3"), "{said}");
    let bytes = std::fs::read(&idx).unwrap();
    assert_eq!(&bytes[..4], &[0, 0, 8, 4]);
    assert_eq!(bytes.len(), 4 + 16 + 3 * 64 * 64 * 3);
    let one = image::open(pngs.join("sample_00002.png")).unwrap();
    assert_eq!((one.width(), one.height(), one.color()), (64, 64, image::ColorType::Rgb8));
}

/// Decoding: alpha over white, 16-bit and palette converted, the shorter
/// side resized and the centre cropped; channels 3 when any image has
/// colour; different sizes without --image-size, and a folder with no
/// image, are one-line errors.
#[test]
fn folder_decoding_converts_resizes_and_refuses_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = mixed_folder(dir.path());
    let opts = FolderOptions { image_size: Some(32), channels: None };
    let (set, report) = folder::read_folder(&data, opts, None, &|_, _| {}).unwrap();
    assert_eq!((set.count, set.height, set.width, set.channels), (10, 32, 32, 3));
    let skipped: Vec<String> =
        report.skipped.iter().map(|(p, _)| p.file_name().unwrap().to_string_lossy().into()).collect();
    assert_eq!(skipped, ["k_bad.png", "notes.txt"]);
    // b_rgba: its left column has alpha 0 (and the next 4), so it is white.
    assert!(set.image(1)[..3].iter().all(|&v| v >= 250), "{:?}", &set.image(1)[..3]);
    // j_grey in RGB: equal channels.
    let grey = set.image(9);
    assert!(grey.chunks(3).all(|p| p[0] == p[1] && p[1] == p[2]));
    let (grey_set, _) =
        folder::read_folder(&data, FolderOptions { image_size: Some(16), channels: Some(1) }, None, &|_, _| {})
            .unwrap();
    assert_eq!((grey_set.channels, grey_set.dim()), (1, 256));
    let err = folder::read_folder(&data, FolderOptions::default(), None, &|_, _| {}).unwrap_err().to_string();
    assert!(err.contains("different sizes") && err.contains("--image-size") && !err.contains('\n'), "{err}");
    let empty = dir.path().join("junk");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::write(empty.join("a.png"), b"not a png").unwrap();
    let err = folder::read_folder(&empty, FolderOptions::default(), None, &|_, _| {}).unwrap_err().to_string();
    assert!(err.contains("no readable image") && !err.contains('\n'), "{err}");
}

/// The second read of a folder comes from the cache, equal to the first;
/// a changed file is decoded again.
#[test]
fn decoded_folders_are_cached_by_file_list_and_options() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("digits");
    std::fs::create_dir_all(&data).unwrap();
    let set = mnist(40);
    for i in 0..40 {
        save_grey(&data.join(format!("{i:03}.png")), set.image(i), 28, 28);
    }
    let cache = dir.path().join("cache");
    let read = || folder::read_folder(&data, FolderOptions::default(), Some(&cache), &|_, _| {}).unwrap();
    let (first, r1) = read();
    let (second, r2) = read();
    assert!(!r1.from_cache && r2.from_cache, "{r1:?} {r2:?}");
    assert_eq!((&first.pixels, first.content_hash()), (&second.pixels, second.content_hash()));
    assert_eq!(second.pixels, set.pixels);
    save_grey(&data.join("000.png"), &[0u8; 784], 28, 28);
    let (third, r3) = read();
    assert!(!r3.from_cache);
    assert_eq!(third.image(0), &[0u8; 784][..]);
}

/// A data set held in several GPU buffers (here capped at 50 images, six
/// buffers for 256 images, as one larger than the device's largest storage
/// binding is held) trains with the same losses and checkpoints as the
/// one-buffer set, and the log says how the data is held.
#[test]
fn data_in_several_buffers_trains_bit_for_bit_like_one_buffer() {
    if common::ctx().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let run = |name: &str, extra: &[&str]| {
        ok(&gan(&cache)
            .args(["train", "--model", "cgan", "--limit", "256", "--batch-size", "32", "--epochs", "2"])
            .args(["--log-every", "4", "--eval-every", "0", "--out"])
            .arg(dir.path().join(name))
            .args(extra)
            .output()
            .unwrap())
    };
    let one = run("one", &[]);
    let six = run("six", &["--data-shard-bytes", &(50 * 784).to_string()]);
    assert!(one.contains("data held in one GPU buffer"), "{one}");
    assert!(six.contains("data held in 6 GPU buffers of up to 50 images"), "{six}");
    let losses = |p: &str| -> Vec<String> {
        let t = std::fs::read_to_string(dir.path().join(p).join("losses.csv")).unwrap();
        t.lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect()
    };
    assert_eq!(losses("one").len(), 5);
    assert_eq!(losses("one"), losses("six"));
    let f = "checkpoints/generator_1.safetensors";
    assert_eq!(tensors(&dir.path().join("one").join(f)), tensors(&dir.path().join("six").join(f)));
}

/// `eval` on a class folder trains its classifier on the folder (images
/// held out as the reference) and says the scores are relative to it;
/// `sample --idx`'s colour IDX scores as `--samples`; an unlabelled folder
/// cannot be scored, said in one line.
#[test]
fn eval_scores_on_a_class_folder_and_refuses_an_unlabelled_one() {
    if common::ctx().is_none() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("colours");
    let flat = dir.path().join("flat");
    std::fs::create_dir_all(&flat).unwrap();
    let mut r = common::rng(9);
    for (k, (name, rgb)) in
        [("blue", [20u8, 40, 220]), ("green", [30, 200, 40]), ("red", [210, 30, 30])].iter().enumerate()
    {
        std::fs::create_dir_all(data.join(name)).unwrap();
        for i in 0..64 {
            let img = image::RgbImage::from_fn(8, 8, |_, _| {
                image::Rgb(rgb.map(|c| c.saturating_add(rand::Rng::random::<u8>(&mut r) % 30)))
            });
            img.save(data.join(name).join(format!("{i:02}.png"))).unwrap();
            img.save(flat.join(format!("{k}_{i:02}.png"))).unwrap();
        }
    }
    let cache = dir.path().join("cache");
    let out = dir.path().join("run");
    ok(&train_small(&cache, &data, &out, &["--model", "cgan", "--batch-size", "32"]));
    let g = out.join("checkpoints/generator_0.safetensors");
    let eval = |data: &Path, extra: &[&str]| {
        gan(&cache).args(["eval", "--count", "300", "--data"]).arg(data).args(extra).output().unwrap()
    };
    let said = ok(&eval(&data, &["--checkpoint", g.to_str().unwrap()]));
    for needle in ["FID", "held out", "the classifier is this data set's own (3 classes: blue, green, red)"] {
        assert!(said.contains(needle), "missing '{needle}' in:\n{said}");
    }
    let idx = dir.path().join("s.idx");
    ok(&gan(&cache).args(["sample", "--count", "40", "--checkpoint"]).arg(&g).arg("--idx").arg(&idx).output().unwrap());
    let said = ok(&eval(&data, &["--samples", idx.to_str().unwrap(), "--image-size", "8"]));
    assert!(said.contains("samples") && said.contains("FID"), "{said}");
    let refused = eval(&flat, &["--checkpoint", g.to_str().unwrap()]);
    let err = text(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().filter(|l| !l.starts_with("warning")).count(), 1, "{err}");
    assert!(err.contains("unlabelled data cannot be scored"), "{err}");
}
