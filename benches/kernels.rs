//! `cargo bench`: criterion timings of the matmul variants at the model's
//! largest shapes, the other kernel families, and the full training step, on
//! the adapter GAN_WGPU_DEVICE (or auto) picks. `gan-wgpu bench` prints the
//! same families with GFLOP/s and the CPU sgemm column.

use criterion::{criterion_group, criterion_main, Criterion};
use gan_wgpu::engine::kernels::{self, adam, matmul, Dispatch};
use gan_wgpu::train::{Gan, GanConfig};
use gan_wgpu::{GpuContext, GpuTensor, Requirements, Settings};
use rand::{Rng, SeedableRng};

fn context() -> GpuContext {
    let settings = Settings::from_env().expect("GAN_WGPU_* settings");
    let choice = settings.device_choice(None).expect("GAN_WGPU_DEVICE");
    match gan_wgpu::engine::autotune::open(&choice, &Requirements::default(), &settings) {
        Ok(c) => c,
        Err(e) => panic!("cargo bench needs an adapter: {e}"),
    }
}

fn submit(ctx: &GpuContext, d: &Dispatch) {
    kernels::run(ctx, &[d]).expect("dispatch");
}

fn benches(c: &mut Criterion) {
    let ctx = context();
    eprintln!("adapter: {}", ctx.describe());
    let mut group = c.benchmark_group("matmul");
    group.sample_size(10);
    for (m, n, k, form) in
        [(128, 784, 1024, matmul::Form::NT), (128, 1024, 784, matmul::Form::NN), (784, 1024, 128, matmul::Form::TN)]
    {
        let (sa, sb) = form.operand_shapes(m, n, k);
        let (a, b, out) =
            (GpuTensor::zeros(&ctx, &sa, "a"), GpuTensor::zeros(&ctx, &sb, "b"), GpuTensor::zeros(&ctx, &[m, n], "c"));
        for variant in [matmul::Variant::Tiled, matmul::Variant::Reg, matmul::Variant::Subgroup] {
            let mm = matmul::Matmul::new(&ctx, form, variant, &a, &b, &out).expect("matmul");
            group.bench_function(format!("{m}x{n}x{k} {} {}", form.name(), variant.name()), |bch| {
                bch.iter(|| submit(&ctx, &mm.dispatch))
            });
        }
    }
    group.finish();

    let mut group = c.benchmark_group("elementwise");
    group.sample_size(20);
    let counters = GpuTensor::zeros(&ctx, &[4], "counters");
    let n = gan_wgpu::models::GanArchitecture::tutorial(100, 784).generator.layout().len;
    let t = |s: &str| GpuTensor::zeros(&ctx, &[n], s);
    let (p, g, m, v) = (t("p"), t("g"), t("m"), t("v"));
    let a = adam::Adam::new(&ctx, adam::AdamConfig::default(), &p, &g, &m, &v, &counters).expect("adam");
    group.bench_function("adam generator", |bch| bch.iter(|| submit(&ctx, &a.dispatch)));
    let x = GpuTensor::zeros(&ctx, &[128, 784], "x");
    let bias = GpuTensor::zeros(&ctx, &[784], "bias");
    let f = kernels::bias_act::forward(&ctx, kernels::bias_act::Act::Tanh, &x, Some(&bias)).expect("bias_act");
    group.bench_function("bias+tanh 128x784", |bch| bch.iter(|| submit(&ctx, &f)));
    group.finish();

    // The trainer's forward of the last generator layer: the product with
    // bias and tanh in its epilogue, against the product alone above plus
    // the separate bias+tanh pass.
    let mut group = c.benchmark_group("fused forward");
    group.sample_size(10);
    let (input, w) = (GpuTensor::zeros(&ctx, &[128, 1024], "input"), GpuTensor::zeros(&ctx, &[784, 1024], "w"));
    let epilogue = matmul::Epilogue { bias: Some(&bias), act: kernels::bias_act::Act::Tanh };
    let variant = matmul::Variant::for_adapter(&ctx);
    let fused =
        matmul::Matmul::with_epilogue(&ctx, matmul::Form::NT, variant, &input, &w, &x, epilogue).expect("fused matmul");
    group.bench_function(format!("128x784x1024 A*B^T +bias+tanh {}", fused.variant.name()), |bch| {
        bch.iter(|| submit(&ctx, &fused.dispatch))
    });
    group.finish();

    // The batch gather from one buffer, and from three shards (a dispatch
    // each), at batch 128 on MNIST-shaped data.
    let mut group = c.benchmark_group("gather");
    group.sample_size(20);
    let mut rg = rand::rngs::StdRng::seed_from_u64(2);
    let pixels: Vec<u8> = (0..1200 * 784).map(|_| rg.random::<u8>()).collect();
    let perm_host: Vec<u32> = (0..1200u32).map(|i| (i * 7) % 1200).collect();
    let perm = GpuTensor::from_u32(&ctx, &[1200], "perm", &perm_host).expect("perm");
    let counters = GpuTensor::from_u32(&ctx, &[4], "counters", &[0, 1, 0, 0]).expect("counters");
    let out = GpuTensor::zeros(&ctx, &[128, 784], "batch");
    let whole = GpuTensor::from_u32(&ctx, &[pixels.len() / 4], "pixels", &kernels::gather::pack_pixels(&pixels))
        .expect("pixels");
    let one = kernels::gather::gather_batch(&ctx, &whole, &perm, &out, 0, 128, &counters).expect("gather");
    group.bench_function("batch 128 from one buffer", |bch| bch.iter(|| submit(&ctx, &one)));
    let parts: Vec<GpuTensor> = pixels
        .chunks(400 * 784)
        .map(|c| GpuTensor::from_u32(&ctx, &[c.len() / 4], "shard", &kernels::gather::pack_pixels(c)).expect("shard"))
        .collect();
    let three: Vec<kernels::Dispatch> = parts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let shard = kernels::gather::DataShard { pixels: t, first: i * 400, count: 400 };
            kernels::gather::gather_batch_shard(&ctx, shard, &perm, &out, (0, 128), &counters).expect("gather")
        })
        .collect();
    group.bench_function("batch 128 from three buffers", |bch| {
        bch.iter(|| kernels::run(&ctx, &three.iter().collect::<Vec<_>>()).expect("gather"))
    });
    group.finish();

    let mut group = c.benchmark_group("train step");
    group.sample_size(10);
    let mut r = rand::rngs::StdRng::seed_from_u64(1);
    let data = gan_wgpu::io::data::ImageSet {
        count: 1024,
        height: 28,
        width: 28,
        pixels: (0..1024 * 784).map(|_| r.random::<u8>()).collect(),
        labels: None,
        channels: 1,
        class_names: Vec::new(),
        source: "random".into(),
    };
    let gp = gan_wgpu::models::GanArchitecture::tutorial(100, 784).generator.init_params(&mut r);
    let dp = gan_wgpu::models::GanArchitecture::tutorial(100, 784).discriminator.init_params(&mut r);
    // The data set in one buffer, and in three (as a set larger than the
    // device's largest storage binding is held): the gather's extra
    // dispatches are the whole difference.
    for (name, shard_bytes) in [("batch 128", None), ("batch 128, data in 3 buffers", Some(400 * 784))] {
        let cfg = GanConfig { batch: 128, seed: 1, data_shard_bytes: shard_bytes, ..GanConfig::default() };
        let gan = Gan::new(&ctx, cfg, &data, &gp, &dp).expect("gan");
        gan.start_epoch(&ctx, 0, 0, 0).expect("epoch");
        group.bench_function(name, |bch| {
            bch.iter(|| {
                // Stay inside the epoch's 8 batches.
                gan.counters.write_u32(&ctx, &[0, 0, 0, 0]).expect("counters");
                let mut enc = ctx.device.create_command_encoder(&Default::default());
                gan.record_step(&mut enc);
                ctx.queue.submit([enc.finish()]);
                ctx.wait("step").expect("step");
            })
        });
    }
    group.finish();
}

criterion_group!(kernel_benches, benches);
criterion_main!(kernel_benches);
