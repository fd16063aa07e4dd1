//! `--data`, `--image-size` and `--channels`, shared by `train`, `eval`
//! and `show-data`: the flags, and the data set read with a progress bar
//! and one warning line for the files skipped.

use gan_wgpu::io::data::ImageSet;
use gan_wgpu::io::folder::{self, FolderOptions};
use gan_wgpu::Settings;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(clap::Args, Clone, Debug, Default)]
pub struct DataArgs {
    /// Training images: a folder of images (PNG, JPEG, WebP, BMP, GIF; sub-folders are classes, in sorted name order) or IDX files in the seed's layout (DIR/train/train-images-idx3-ubyte[.gz]); default: the bundled MNIST.
    #[arg(long, value_name = "DIR")]
    pub data: Option<PathBuf>,
    /// Image folders: resize each image's shorter side to S and crop its centre S x S (default: the images' own size, one for all).
    #[arg(long, value_name = "S")]
    pub image_size: Option<usize>,
    /// Image folders: 1 (grey) or 3 (RGB); alpha is composited on white (default: 3 if any image has colour, else 1).
    #[arg(long, value_name = "C")]
    pub channels: Option<usize>,
}

impl DataArgs {
    pub fn options(&self) -> FolderOptions {
        FolderOptions { image_size: self.image_size, channels: self.channels }
    }

    /// The data set; on a terminal a progress bar while an image folder
    /// decodes; a line saying where it came from, and one warning line
    /// (stderr) naming the files skipped.
    pub fn load(&self, settings: &Settings) -> gan_wgpu::Result<ImageSet> {
        let bar = (std::io::stderr().is_terminal() && self.data.is_some()).then(|| {
            let b = indicatif::ProgressBar::new(0);
            b.set_style(
                indicatif::ProgressStyle::with_template("decoding images [{bar:30}] {pos}/{len}, {per_sec}, eta {eta}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            b
        });
        let t0 = std::time::Instant::now();
        let progress = |done: usize, total: usize| {
            if let Some(b) = &bar {
                b.set_length(total as u64);
                b.set_position(done as u64);
            }
        };
        let loaded = folder::load(self.data.as_deref(), self.options(), settings.cache_dir.as_deref(), &progress);
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        let (set, report) = loaded?;
        if let Some(r) = report {
            let how = if r.from_cache {
                format!("from the cache {}", r.cache.as_ref().map_or(String::new(), |p| p.display().to_string()))
            } else {
                format!("decoded in {:.1} s", t0.elapsed().as_secs_f64())
            };
            let classes = match set.class_names().len() {
                0 => "unlabelled".to_string(),
                k => format!("{k} classes"),
            };
            say!("read {} images ({}, {classes}) from {}, {how}", set.count, set.shape().describe(), set.source);
            if let Some(line) = r.skipped_line() {
                eprintln!("warning: {line}");
            }
        }
        Ok(set)
    }
}
