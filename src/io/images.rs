//! Pictures: image grids (PNG), the loss plot (PNG) and the training GIF.
//! Every file is encoded in memory and written atomically.

use crate::error::{GanError, Result};
use crate::io::checkpoint::atomic_write;
use crate::nn::spec::ImageShape;
use image::{ImageEncoder, RgbaImage};
use std::path::Path;

#[cfg(not(target_arch = "wasm32"))]
static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");

/// Pixel of a generator output g in [-1, 1]: round((g + 1) * 127.5), clamped.
pub fn to_pixel(g: f32) -> u8 {
    ((g + 1.0) * 127.5).round().clamp(0.0, 255.0) as u8
}

/// A grid's pixels: grey (1 byte a pixel) or RGB (3), row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Picture {
    pub width: u32,
    pub height: u32,
    pub channels: usize,
    pub bytes: Vec<u8>,
}

/// A cols x rows grid of images of `shape` (u8, HWC), scaled by `scale`,
/// separated by `pad` pixels of mid grey.
pub fn grid(images: &[Vec<u8>], shape: ImageShape, cols: usize, scale: usize, pad: usize) -> Picture {
    let ImageShape { height: h, width: w, channels: c } = shape;
    let rows = images.len().div_ceil(cols.max(1)).max(1);
    let (cell_w, cell_h) = (w * scale + pad, h * scale + pad);
    let (gw, gh) = (cols * cell_w + pad, rows * cell_h + pad);
    let mut bytes = vec![128u8; gw * gh * c];
    for (i, im) in images.iter().enumerate() {
        let (gx, gy) = (pad + (i % cols) * cell_w, pad + (i / cols) * cell_h);
        for y in 0..h * scale {
            for x in 0..w * scale {
                let src = ((y / scale) * w + x / scale) * c;
                let dst = ((gy + y) * gw + gx + x) * c;
                bytes[dst..dst + c].copy_from_slice(&im[src..src + c]);
            }
        }
    }
    Picture { width: gw as u32, height: gh as u32, channels: c, bytes }
}

/// A picture as PNG bytes (8-bit grey or RGB).
pub fn png_bytes(p: &Picture) -> Result<Vec<u8>> {
    let kind = match p.channels {
        1 => image::ExtendedColorType::L8,
        3 => image::ExtendedColorType::Rgb8,
        c => return Err(GanError::data("<png>", format!("{c} channels: pictures are grey (1) or RGB (3)"))),
    };
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(&p.bytes, p.width, p.height, kind)
        .map_err(|e| GanError::data("<png>", e.to_string()))?;
    Ok(out)
}

/// A square-ish grid of `images` (4x scale, 4-pixel gaps) as a PNG file.
pub fn save_grid(path: &Path, images: &[Vec<u8>], shape: ImageShape) -> Result<()> {
    let cols = (images.len() as f64).sqrt().ceil() as usize;
    save_grid_with_columns(path, images, shape, cols)
}

/// `save_grid` with `cols` images a row (a conditional sample: a row per class).
pub fn save_grid_with_columns(path: &Path, images: &[Vec<u8>], shape: ImageShape, cols: usize) -> Result<()> {
    let img = grid(images, shape, cols.max(1), grid_scale(shape), 4);
    atomic_write(path, &png_bytes(&img)?)
}

/// How much a grid enlarges its images: 4x up to 32x32 (MNIST's grids),
/// 2x at 64x64, none from 128 (a 64-image grid of 64x64 stays near 1,100
/// pixels a side).
pub fn grid_scale(shape: ImageShape) -> usize {
    (128 / shape.height.max(shape.width).max(1)).clamp(1, 4)
}

/// The plots' font, registered once per process.
pub(crate) fn register_font() {
    // In a browser page plotters draws with the browser's fonts.
    #[cfg(not(target_arch = "wasm32"))]
    static REGISTER: std::sync::Once = std::sync::Once::new();
    #[cfg(not(target_arch = "wasm32"))]
    REGISTER.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, FONT);
    });
}

/// Encodes an RGB buffer (w x h) as PNG and writes it atomically.
pub(crate) fn save_rgb_png(path: &Path, rgb: &[u8], w: u32, h: u32) -> Result<()> {
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(rgb, w, h, image::ExtendedColorType::Rgb8)
        .map_err(|e| GanError::data(path, format!("encoding the plot: {e}")))?;
    atomic_write(path, &out)
}

/// One row of losses.csv.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossRow {
    pub epoch: usize,
    pub step: u64,
    pub loss_d: f32,
    pub loss_g: f32,
    pub d_real: f32,
    pub d_fake: f32,
    pub seconds: f64,
}

/// "Generator and Discriminator Loss During Training": loss against iteration.
pub fn save_loss_plot(path: &Path, rows: &[LossRow]) -> Result<()> {
    use plotters::prelude::*;
    register_font();
    let (w, h) = (1000u32, 500u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let draw_err = |e: String| GanError::data(path, format!("drawing the loss plot: {e}"));
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(e.to_string()))?;
        let max_step = rows.iter().map(|r| r.step).max().unwrap_or(1).max(1) as f64;
        let finite = rows.iter().flat_map(|r| [r.loss_d, r.loss_g]).filter(|v| v.is_finite());
        let max_loss = finite.fold(0f32, f32::max).max(0.1) as f64 * 1.05;
        let mut chart = ChartBuilder::on(&root)
            .caption("Generator and Discriminator Loss During Training", ("sans-serif", 24))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(55)
            .build_cartesian_2d(0f64..max_step, 0f64..max_loss)
            .map_err(|e| draw_err(e.to_string()))?;
        chart
            .configure_mesh()
            .x_desc("iterations")
            .y_desc("Loss")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| draw_err(e.to_string()))?;
        let g_series = rows.iter().filter(|r| r.loss_g.is_finite()).map(|r| (r.step as f64, r.loss_g as f64));
        chart
            .draw_series(LineSeries::new(g_series, &BLUE))
            .map_err(|e| draw_err(e.to_string()))?
            .label("G")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLUE));
        let d_series = rows.iter().filter(|r| r.loss_d.is_finite()).map(|r| (r.step as f64, r.loss_d as f64));
        chart
            .draw_series(LineSeries::new(d_series, &RED))
            .map_err(|e| draw_err(e.to_string()))?
            .label("D")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RED));
        chart
            .configure_series_labels()
            .label_font(("sans-serif", 16))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| draw_err(e.to_string()))?;
        root.present().map_err(|e| draw_err(e.to_string()))?;
    }
    save_rgb_png(path, &buf, w, h)
}

/// An animated GIF of the given PNG grids, one frame a second, looping.
pub fn save_gif(path: &Path, frames: &[&Path]) -> Result<()> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new_with_speed(&mut out, 10);
        enc.set_repeat(image::codecs::gif::Repeat::Infinite).map_err(|e| GanError::data(path, e.to_string()))?;
        for f in frames {
            let img: RgbaImage = image::open(f).map_err(|e| GanError::data(f, e.to_string()))?.to_rgba8();
            let frame = image::Frame::from_parts(img, 0, 0, image::Delay::from_numer_denom_ms(1000, 1));
            enc.encode_frame(frame).map_err(|e| GanError::data(path, e.to_string()))?;
        }
    }
    atomic_write(path, &out)
}

/// "Sample quality during training": FID (top) and classes covered (bottom)
/// against training steps, from quality.csv's rows (step, FID, classes).
pub fn save_quality_plot(path: &Path, rows: &[(u64, f64, usize)], classes: usize) -> Result<()> {
    use plotters::prelude::*;
    register_font();
    let (w, h) = (1000u32, 600u32);
    let mut buf = vec![0u8; (w * h * 3) as usize];
    let draw_err = |e: String| GanError::data(path, format!("drawing the quality plot: {e}"));
    {
        let root = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| draw_err(e.to_string()))?;
        let (top, bottom) = root.split_vertically(360);
        let max_step = rows.iter().map(|r| r.0).max().unwrap_or(1).max(1) as f64;
        let max_fid = rows.iter().map(|r| r.1).filter(|v| v.is_finite()).fold(1.0f64, f64::max) * 1.1;
        let mut fid = ChartBuilder::on(&top)
            .caption("Sample quality during training", ("sans-serif", 24))
            .margin(15)
            .x_label_area_size(35)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..max_step, 0f64..max_fid)
            .map_err(|e| draw_err(e.to_string()))?;
        fid.configure_mesh()
            .y_desc("FID (classifier features)")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| draw_err(e.to_string()))?;
        let points: Vec<(f64, f64)> = rows.iter().filter(|r| r.1.is_finite()).map(|r| (r.0 as f64, r.1)).collect();
        fid.draw_series(LineSeries::new(points.clone(), &BLUE)).map_err(|e| draw_err(e.to_string()))?;
        fid.draw_series(points.iter().map(|&p| Circle::new(p, 4, BLUE.filled())))
            .map_err(|e| draw_err(e.to_string()))?;
        let mut cov = ChartBuilder::on(&bottom)
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(0f64..max_step, 0f64..(classes as f64 + 0.5))
            .map_err(|e| draw_err(e.to_string()))?;
        cov.configure_mesh()
            .x_desc("iterations")
            .y_desc("classes covered")
            .label_style(("sans-serif", 14))
            .draw()
            .map_err(|e| draw_err(e.to_string()))?;
        let points: Vec<(f64, f64)> = rows.iter().map(|r| (r.0 as f64, r.2 as f64)).collect();
        cov.draw_series(LineSeries::new(points.clone(), &RED)).map_err(|e| draw_err(e.to_string()))?;
        cov.draw_series(points.iter().map(|&p| Circle::new(p, 4, RED.filled())))
            .map_err(|e| draw_err(e.to_string()))?;
        root.present().map_err(|e| draw_err(e.to_string()))?;
    }
    save_rgb_png(path, &buf, w, h)
}
