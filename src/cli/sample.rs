//! `gan-wgpu sample`: images from a generator checkpoint, a row per class
//! for a conditional one.

use super::{checkpoint, data, evaluate, images, positive, GanError, Requirements, SampleArgs, Settings};

pub(super) fn sample(a: SampleArgs, settings: &Settings) -> gan_wgpu::Result<()> {
    positive("--count", a.count as f64)?;
    if a.out.is_none() && a.idx.is_none() && a.out_dir.is_none() {
        return Err(GanError::Flag {
            flag: "--out",
            why: "give --out FILE.png, --out-dir DIR and/or --idx FILE".into(),
        });
    }
    // Read and check the files before opening a device.
    checkpoint::Loaded::open(&a.checkpoint)?;
    let latent_file = a.latent.as_ref().map(|p| checkpoint::read_npy_f32_2d(p).map(|l| (p, l))).transpose()?;
    if let Some((p, (_, cols, z))) = &latent_file {
        evaluate::check_latents(p, *cols, z)?;
    }
    let ctx = gan_wgpu::engine::autotune::open(
        &settings.device_choice(a.device.as_deref())?,
        &Requirements::default(),
        settings,
    )?;
    let g = evaluate::load_generator(&ctx, &a.checkpoint)?;
    println!("{}", trained_on(g.data.as_ref()));
    let dim = g.shape().dim();
    let (count, z) = match latent_file {
        Some((p, (rows, cols, z))) => {
            if cols != g.latent {
                return Err(GanError::data(
                    p,
                    format!("latent codes are {cols} wide, the generator takes {}", g.latent),
                ));
            }
            (rows, z)
        }
        None => (a.count, evaluate::sample_latents(a.count, g.latent, a.seed)),
    };
    let rows = class_rows(&a, &g.net.spec)?;
    let (z, labels, cols) = match &rows {
        None => (z, None, None),
        Some(rows) => {
            let labels: Vec<u32> = rows.iter().flat_map(|&k| std::iter::repeat_n(k, count)).collect();
            let z: Vec<f32> = rows.iter().flat_map(|_| z.iter().copied()).collect();
            (z, Some(labels), (rows.len() > 1).then_some(count))
        }
    };
    let total = labels.as_ref().map_or(count, Vec::len);
    // Run in batches: a dcgan's 10,000 samples at once would pass the
    // device's buffer limits.
    let pixels = pollster::block_on(evaluate::pixels_from_latents_async(&ctx, &g.net, &z, labels.as_deref()))?;
    let imgs: Vec<Vec<u8>> = pixels.chunks(dim).map(<[u8]>::to_vec).collect();
    let count = total;
    if let Some(p) = &a.out {
        match cols {
            Some(c) => images::save_grid_with_columns(p, &imgs, g.shape(), c)?,
            None => images::save_grid(p, &imgs, g.shape())?,
        }
        match &rows {
            Some(r) => println!(
                "{count} samples, classes {} -> {}",
                r.iter().map(u32::to_string).collect::<Vec<_>>().join(","),
                p.display()
            ),
            None => println!("{count} samples -> {}", p.display()),
        }
    }
    if let Some(dir) = &a.out_dir {
        std::fs::create_dir_all(dir).map_err(|e| GanError::io(dir, e))?;
        for (i, img) in imgs.iter().enumerate() {
            let one = images::grid(std::slice::from_ref(img), g.shape(), 1, 1, 0);
            checkpoint::atomic_write(&dir.join(format!("sample_{i:05}.png")), &images::png_bytes(&one)?)?;
        }
        println!("{count} samples, one PNG each -> {}", dir.display());
    }
    if let Some(p) = &a.idx {
        let dims: Vec<usize> =
            [count, g.height, g.width].into_iter().chain((g.channels != 1).then_some(g.channels)).collect();
        checkpoint::atomic_write(p, &data::idx_bytes_dims(&dims, &pixels))?;
        let dims: Vec<String> = dims.iter().map(usize::to_string).collect();
        println!("{count} samples (IDX uint8 {}) -> {}", dims.join("x"), p.display());
    }
    Ok(())
}

/// The line `sample` and `eval` print about the data a generator learnt.
pub(super) fn trained_on(data: Option<&data::DataIdentity>) -> String {
    match data {
        Some(d) => format!("trained on: {}", d.describe()),
        None => "trained on: not recorded (a checkpoint from before data identities were recorded)".to_string(),
    }
}

/// The classes of each row of a conditional generator's samples (`--class`,
/// `--classes`, else every class; every row has the same codes); None for
/// an unconditional one, which takes no class.
fn class_rows(a: &SampleArgs, spec: &gan_wgpu::nn::spec::NetSpec) -> gan_wgpu::Result<Option<Vec<u32>>> {
    Ok(match (spec.embedding.as_ref(), a.class, a.classes.clone()) {
        (None, None, None) => None,
        (None, ..) => {
            let flag = if a.class.is_some() { "--class" } else { "--classes" };
            return Err(GanError::Flag {
                flag,
                why: format!(
                    "{} is an unconditional generator (no label embedding): train with --model cgan to choose classes",
                    a.checkpoint.display()
                ),
            });
        }
        (Some(e), class, classes) => {
            let rows = match (class, classes) {
                (Some(k), _) => vec![k],
                (None, Some(ks)) => ks,
                (None, None) => (0..e.classes as u32).collect(),
            };
            if let Some(k) = rows.iter().find(|&&k| k as usize >= e.classes) {
                let flag = if a.class.is_some() { "--class" } else { "--classes" };
                return Err(GanError::Flag {
                    flag,
                    why: format!("{k} is not a class of this generator (0..{})", e.classes - 1),
                });
            }
            Some(rows)
        }
    })
}
