//! `gan-wgpu bench`'s convolution table: every convolution of DCGAN's step
//! at the bench's batch (G on B images, D on 2B), forward and input
//! gradient, as the trainer runs it (im2col or col2im and the adapter's
//! matmul), against that matmul alone at the same GEMM shape (m, n, k): what
//! the explicit columns cost. A weight gradient is a matmul over columns
//! another row already made (the forward's, or the input gradient's for a
//! transposed convolution), so its row shows no column time; nor do layers
//! whose kernel covers the whole image (their image is their columns).
//! Where the implicit GEMM applies (conv_gemm: the patches read inside the
//! subgroup matmul, channels in multiples of 4), its time is listed beside.

use gan_wgpu::engine::context::GpuContext;
use gan_wgpu::engine::kernels::matmul::Epilogue;
use gan_wgpu::engine::kernels::matmul::{Form, Matmul, Variant};
use gan_wgpu::engine::kernels::{conv, conv_gemm, Dispatch};
use gan_wgpu::engine::tensor::GpuTensor;
use gan_wgpu::engine::timing::time_dispatch;
use gan_wgpu::error::{GanError, Result};
use gan_wgpu::models::GanArchitecture;
use gan_wgpu::nn::spec::LayerKind;
use std::fmt::Write as _;

pub struct ConvRow {
    /// "D main.2 Conv2d(64, 128, 4, 2, 1) forward".
    pub case: String,
    /// The GEMM: m x n x k in `form`.
    pub gemm: (usize, usize, usize, Form),
    pub matmul_us: f64,
    /// im2col or col2im (0 where the layer needs none).
    pub columns_us: f64,
    /// The implicit GEMM doing the whole (columns and matmul), where it applies.
    pub implicit_us: Option<f64>,
}

impl ConvRow {
    fn flops(&self) -> f64 {
        2.0 * (self.gemm.0 * self.gemm.1 * self.gemm.2) as f64
    }

    /// The convolution's rate, columns included.
    pub fn conv_gflops(&self) -> f64 {
        self.flops() / (self.matmul_us + self.columns_us) / 1e3
    }

    pub fn matmul_gflops(&self) -> f64 {
        self.flops() / self.matmul_us / 1e3
    }

    pub fn implicit_gflops(&self) -> Option<f64> {
        self.implicit_us.map(|us| self.flops() / us / 1e3)
    }
}

fn zeros(ctx: &GpuContext, shape: &[usize], label: &str) -> GpuTensor {
    GpuTensor::zeros(ctx, shape, label)
}

pub fn run_conv_bench(ctx: &GpuContext, batch: usize, quick: bool) -> Result<Vec<ConvRow>> {
    let (reps, trials) = if quick { (3, 3) } else { (10, 7) };
    let variant = Variant::for_adapter(ctx);
    let arch = GanArchitecture::dcgan(
        gan_wgpu::defaults::LATENT,
        gan_wgpu::nn::spec::ImageShape::grey(28, 28),
        gan_wgpu::defaults::DCGAN_WIDTH,
    )
    .map_err(|why| GanError::Flag { flag: "bench", why })?;
    let mut rows = Vec::new();
    let time = |d: &Dispatch| -> Result<f64> { Ok(time_dispatch(ctx, d, reps, trials)?.0) };
    for (net, tag, samples) in [(&arch.generator, "G", batch), (&arch.discriminator, "D", 2 * batch)] {
        for l in &net.layers {
            let Some(g) = l.geometry(samples) else { continue };
            let (m, p) = (g.positions(), g.patch());
            let image = zeros(ctx, &[g.n * g.h * g.w, g.c], "image");
            let cols = zeros(ctx, &[m, p], "cols");
            let [wr, wc] = l.weight_matrix();
            let w = zeros(ctx, &[wr, wc], "weight");
            let name = format!("{tag} {} {}", l.name, l.describe().replace(", bias=False", ""));
            let whole = g.is_whole();
            let implicit = !whole && conv_gemm::applies(ctx, &g);
            let lead = if matches!(l.kind, LayerKind::Conv { .. }) { l.out } else { l.inp };
            let implicit_dw = implicit && conv_gemm::applies_to_weight_grad(ctx, &g, lead);
            let mut push = |what: &str,
                            mm: Matmul,
                            columns: Option<Dispatch>,
                            gemm: (usize, usize, usize, Form),
                            implicit: Option<Dispatch>|
             -> Result<()> {
                rows.push(ConvRow {
                    case: format!("{name} {what}"),
                    gemm,
                    matmul_us: time(&mm.dispatch)?,
                    columns_us: match columns {
                        Some(c) if !whole => time(&c)?,
                        _ => 0.0,
                    },
                    implicit_us: implicit.as_ref().map(time).transpose()?,
                });
                Ok(())
            };
            match l.kind {
                LayerKind::Conv { .. } => {
                    // forward: y [m, out] = im2col(x) W^T; input gradient:
                    // dcols [m, p] = dy W, dx = col2im(dcols).
                    let y = zeros(ctx, &[m, l.out], "y");
                    let mm = Matmul::new(ctx, Form::NT, variant, &cols, &w, &y)?;
                    let imp = implicit
                        .then(|| conv_gemm::conv2d_forward(ctx, &image, &w, &y, &g, Epilogue::NONE))
                        .transpose()?;
                    push("forward", mm, Some(conv::im2col(ctx, &image, &cols, &g)?), (m, l.out, p, Form::NT), imp)?;
                    let mm = Matmul::new(ctx, Form::NN, variant, &y, &w, &cols)?;
                    push("input grad", mm, Some(conv::col2im(ctx, &cols, &image, &g)?), (m, p, l.out, Form::NN), None)?;
                    // dW [out, p] = dy^T cols.
                    let mm = Matmul::new(ctx, Form::TN, variant, &y, &cols, &w)?;
                    let imp = implicit_dw.then(|| conv_gemm::weight_grad(ctx, &y, &image, &w, &g)).transpose()?;
                    push("weight grad", mm, None, (l.out, p, m, Form::TN), imp)?;
                }
                LayerKind::ConvTranspose { .. } => {
                    // forward: cols = x W, y = col2im(cols); input gradient:
                    // dcols = im2col(dy), dx [m, inp] = dcols W^T.
                    let x = zeros(ctx, &[m, l.inp], "x");
                    let mm = Matmul::new(ctx, Form::NN, variant, &x, &w, &cols)?;
                    push("forward", mm, Some(conv::col2im(ctx, &cols, &image, &g)?), (m, p, l.inp, Form::NN), None)?;
                    let mm = Matmul::new(ctx, Form::NT, variant, &cols, &w, &x)?;
                    let imp = implicit
                        .then(|| conv_gemm::conv2d_forward(ctx, &image, &w, &x, &g, Epilogue::NONE))
                        .transpose()?;
                    push("input grad", mm, Some(conv::im2col(ctx, &image, &cols, &g)?), (m, l.inp, p, Form::NT), imp)?;
                    // dW [inp, p] = x^T dcols.
                    let mm = Matmul::new(ctx, Form::TN, variant, &x, &cols, &w)?;
                    let imp = implicit_dw.then(|| conv_gemm::weight_grad(ctx, &x, &image, &w, &g)).transpose()?;
                    push("weight grad", mm, None, (l.inp, p, m, Form::TN), imp)?;
                }
                LayerKind::Dense => {}
            }
        }
    }
    Ok(rows)
}

pub fn format_conv(rows: &[ConvRow]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{:<50} {:>20} {:>10} {:>10} {:>9} {:>9} {:>7} {:>11} {:>8}",
        "convolution",
        "GEMM m x n x k",
        "matmul us",
        "cols us",
        "conv GF/s",
        "mm GF/s",
        "conv/mm",
        "implicit us",
        "impl/mm"
    );
    for r in rows {
        let (m, n, k, form) = r.gemm;
        let _ = writeln!(
            s,
            "{:<50} {:>20} {:>10.1} {:>10.1} {:>9.2} {:>9.2} {:>6.1}% {:>11} {:>8}",
            r.case,
            format!("{m}x{n}x{k} {}", form.name()),
            r.matmul_us,
            r.columns_us,
            r.conv_gflops(),
            r.matmul_gflops(),
            100.0 * r.conv_gflops() / r.matmul_gflops(),
            r.implicit_us.map_or("-".into(), |us| format!("{us:.1}")),
            r.implicit_gflops().map_or("-".into(), |gf| format!("{:.1}%", 100.0 * gf / r.matmul_gflops()))
        );
    }
    s
}

pub fn conv_json(rows: &[ConvRow]) -> serde_json::Value {
    rows.iter()
        .map(|r| {
            let (m, n, k, form) = r.gemm;
            serde_json::json!({
                "case": r.case,
                "gemm": [m, n, k],
                "form": form.name(),
                "matmul_us": r.matmul_us,
                "columns_us": r.columns_us,
                "implicit_us": r.implicit_us,
                "conv_gflops": r.conv_gflops(),
                "matmul_gflops": r.matmul_gflops(),
            })
        })
        .collect()
}
