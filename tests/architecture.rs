//! The architecture written into every network checkpoint: it round-trips,
//! a malformed one is refused with what is wrong, and `sample`/`eval`'s
//! loader rebuilds the generator from it (files without it still load).

mod common;
use gan_wgpu::eval::evaluate;
use gan_wgpu::io::checkpoint;
use gan_wgpu::nn::spec::BnStats;
use gan_wgpu::nn::spec::NetSpec;
use gan_wgpu::nn::spec_json::{self, METADATA_KEY};

fn specs() -> Vec<NetSpec> {
    vec![
        gan_wgpu::models::GanArchitecture::tutorial(100, 784).generator,
        gan_wgpu::models::GanArchitecture::tutorial(100, 784).discriminator,
        gan_wgpu::models::classifier_spec(30, 10),
        gan_wgpu::models::GanArchitecture::dcgan(100, gan_wgpu::nn::spec::ImageShape::grey(28, 28), 64)
            .unwrap()
            .generator,
        gan_wgpu::models::GanArchitecture::dcgan(100, gan_wgpu::nn::spec::ImageShape::grey(28, 28), 64)
            .unwrap()
            .discriminator,
        gan_wgpu::models::GanArchitecture::conditional(100, 784, 10).generator,
        gan_wgpu::models::GanArchitecture::conditional(100, 784, 10).discriminator,
    ]
}

/// The conditional D's dropout is part of its architecture: written, read
/// back, told apart from a D without it; a probability outside [0, 1), or
/// dropout where the backward cannot train it, is refused naming the layer.
#[test]
fn dropout_is_recorded_and_checked() {
    let d = gan_wgpu::models::GanArchitecture::conditional(100, 784, 10).discriminator;
    let p: Vec<Option<f32>> = d.layers.iter().map(|l| l.dropout).collect();
    assert_eq!(p, [Some(gan_wgpu::models::CGAN_DROPOUT), Some(gan_wgpu::models::CGAN_DROPOUT), None]);
    let text = spec_json::to_json(&d);
    assert!(text.contains("\"dropout\":0.5"), "{text}");
    let without = spec_json::from_json(&text.replace(",\"dropout\":0.5", "")).unwrap();
    let why = spec_json::difference(&without, &d).unwrap();
    assert!(
        why.contains("layer 0 is model.0 Linear(794, 512), leaky_relu_0.2;")
            && why.ends_with("Dropout(0.5) is expected"),
        "{why}"
    );
    for (bad, needle) in [
        (text.replacen("\"dropout\":0.5", "\"dropout\":1.0", 1), "layer 0: dropout probability 1 is not in [0, 1)"),
        (text.replacen("\"dropout\":0.5", "\"dropout\":\"half\"", 1), "layer 0: \"dropout\" is not a probability"),
        (
            text.replacen("\"activation\":\"leaky_relu_0.2\"", "\"activation\":\"tanh\"", 1),
            "layer 0: dropout after tanh",
        ),
    ] {
        let err = spec_json::from_json(&bad).unwrap_err();
        assert!(err.contains(needle), "{bad}: {err}");
    }
}

#[test]
fn architectures_round_trip_through_json() {
    for spec in specs() {
        let text = spec_json::to_json(&spec);
        let back = spec_json::from_json(&text).unwrap();
        assert_eq!(back.name, spec.name);
        assert_eq!(spec_json::to_json(&back), text);
        assert_eq!(back.param_entries(), spec.param_entries());
        assert_eq!(spec_json::difference(&back, &spec), None);
    }
    // A convolution's geometry is part of it: another kernel size differs.
    let d = gan_wgpu::models::GanArchitecture::dcgan(100, gan_wgpu::nn::spec::ImageShape::grey(28, 28), 64)
        .unwrap()
        .discriminator;
    let text = spec_json::to_json(&d).replace("\"k\":7", "\"k\":5");
    let other = spec_json::from_json(&text).unwrap();
    let why = spec_json::difference(&other, &d).unwrap();
    assert!(why.contains("main.5 Conv2d(128, 1, 5, 1, 0, bias=False) on 7x7"), "{why}");
}

/// A convolution whose positions do not follow from the layer before, or
/// an unknown kind: refused with the layer named.
#[test]
fn a_convolution_that_does_not_fit_is_refused() {
    let d = gan_wgpu::models::GanArchitecture::dcgan(100, gan_wgpu::nn::spec::ImageShape::grey(28, 28), 64)
        .unwrap()
        .discriminator;
    let text = spec_json::to_json(&d);
    let bad = text.replacen("\"h\":14", "\"h\":13", 1);
    let e = spec_json::from_json(&bad).unwrap_err();
    assert!(e.contains("layer 1") && e.contains("positions"), "{e}");
    let e = spec_json::from_json(&text.replacen("conv2d", "conv3d", 1)).unwrap_err();
    assert!(e.contains("conv3d"), "{e}");
}

#[test]
fn a_malformed_architecture_says_what_is_wrong() {
    let good = spec_json::to_json(&gan_wgpu::models::GanArchitecture::tutorial(100, 784).generator);
    let cases = [
        ("{", "not JSON"),
        (r#"{"layers": []}"#, "no \"network\""),
        (r#"{"network": "critic", "layers": []}"#, "none of generator, discriminator, classifier"),
        (r#"{"network": "generator", "layers": []}"#, "no \"layers\""),
        (&good.replacen("\"in\":128", "\"in\":129", 1), "layer 1 takes 129 inputs, the layer before gives 128"),
        (&good.replacen("\"out\":128", "\"out\":0", 1), "\"out\" is not a width"),
        (&good.replacen("\"out\":128", "\"out\":99999999999", 1), "\"out\" is not a width"),
        (&good.replacen("\"tanh\"", "\"gelu\"", 1), "activation \"gelu\" is none of"),
        (&good.replacen("\"model.2\"", "\"model.0\"", 1), "used twice"),
    ];
    for (text, needle) in cases {
        let err = spec_json::from_json(text).unwrap_err();
        assert!(err.contains(needle), "{text}: {err}");
    }
}

fn bn_of(spec: &NetSpec) -> Vec<Option<BnStats>> {
    spec.layers
        .iter()
        .map(|l| {
            l.bn.as_ref().map(|_| BnStats {
                running_mean: vec![0.0; l.out],
                running_var: vec![1.0; l.out],
                num_batches_tracked: 3,
            })
        })
        .collect()
}

/// A generator of another latent size and a non-square image loads from
/// its recorded architecture; the same tensors without it load through the
/// old guess; a tampered or mismatched one is refused naming the key.
#[test]
fn the_generator_is_rebuilt_from_its_recorded_architecture() {
    let Some(ctx) = common::ctx() else { return };
    let dir = tempfile::tempdir().unwrap();
    let spec = gan_wgpu::models::GanArchitecture::tutorial(64, 6 * 5).generator;
    let params = spec.init_params(&mut common::rng(3));
    let meta = vec![("image_height".to_string(), "6".to_string()), ("image_width".to_string(), "5".to_string())];
    let path = dir.path().join("g.safetensors");
    checkpoint::save_network(&path, &spec, &params, &bn_of(&spec), meta.clone()).unwrap();
    let file = checkpoint::Loaded::open(&path).unwrap();
    assert_eq!(file.metadata().unwrap()[METADATA_KEY], spec_json::to_json(&spec));
    let g = evaluate::load_generator(ctx, &path).unwrap();
    assert_eq!((g.latent, g.height, g.width), (64, 6, 5));
    assert_eq!(spec_json::to_json(&g.net.spec), spec_json::to_json(&spec));

    // The same file with the key's value swapped for a bad one: refused.
    // Same length ("tanh" for "gelu"), so the header's size stays right.
    let mut bytes = std::fs::read(&path).unwrap();
    let needle = b"\\\"tanh\\\"";
    let at = bytes.windows(needle.len()).position(|w| w == needle).expect("the header holds the escaped architecture");
    bytes[at..at + needle.len()].copy_from_slice(b"\\\"gelu\\\"");
    let bad = dir.path().join("bad.safetensors");
    std::fs::write(&bad, &bytes).unwrap();
    let err = evaluate::load_generator(ctx, &bad).err().expect("a tampered architecture is refused").to_string();
    assert!(err.contains("metadata 'architecture'") && err.contains("gelu"), "{err}");

    // Loaded as a network with the same tensors but another activation,
    // the recorded architecture disagrees, naming the layer.
    let mut relu_out = spec.clone();
    relu_out.layers.last_mut().unwrap().act = gan_wgpu::engine::kernels::bias_act::Act::Sigmoid;
    let err = checkpoint::load_network(&path, &relu_out).err().unwrap().to_string();
    assert!(
        err.contains("the file's architecture differs: layer 4 is model.11 Linear(1024, 30), tanh; model.11 Linear(1024, 30), sigmoid is expected"),
        "{err}"
    );
    // A discriminator's file is not a generator.
    let d = gan_wgpu::models::GanArchitecture::tutorial(100, 30).discriminator;
    let dpath = dir.path().join("d.safetensors");
    checkpoint::save_network(&dpath, &d, &d.init_params(&mut common::rng(4)), &bn_of(&d), meta).unwrap();
    let err = evaluate::load_generator(ctx, &dpath).err().unwrap().to_string();
    assert!(err.contains("discriminator checkpoint, a generator checkpoint is expected"), "{err}");
}

/// Convolution weights live in the engine in (kh, kw, c) order (the
/// columns'), in checkpoints in PyTorch's (c, kh, kw): the conversion moves
/// each element where PyTorch's indexing says, and a file written and read
/// back gives the same flat parameters.
#[test]
fn convolution_weights_are_in_pytorch_order_in_checkpoints() {
    use gan_wgpu::engine::kernels::conv;
    // [lead 1, c 2, k 2]: PyTorch a b c d | e f g h (channel-major).
    let pytorch: Vec<f32> = (0..8).map(|i| i as f32).collect();
    let engine = conv::to_patch_order(&pytorch, 1, 2, 2);
    assert_eq!(engine, [0.0, 4.0, 1.0, 5.0, 2.0, 6.0, 3.0, 7.0]);
    assert_eq!(conv::to_pytorch_order(&engine, 1, 2, 2), pytorch);
    for spec in specs() {
        let params = spec.init_params(&mut common::rng(5));
        let bytes = checkpoint::network_bytes(&spec, &params, &bn_of(&spec), vec![]).unwrap();
        let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
        let layout = spec.layout();
        for l in &spec.layers {
            let name = format!("{}.weight", l.name);
            let (_, shape, off) = layout.find(&name).unwrap();
            let flat = &params[*off..off + shape.iter().product::<usize>()];
            let stored: Vec<f32> = bytemuck::pod_collect_to_vec(st.tensor(&name).unwrap().data());
            let want = match l.patch_order() {
                Some((lead, c, k)) => conv::to_pytorch_order(flat, lead, c, k),
                None => flat.to_vec(),
            };
            assert_eq!(stored, want, "{} {name}", spec.name);
        }
        let file = checkpoint::Loaded::from_bytes(bytes, std::path::Path::new("mem")).unwrap();
        assert_eq!(checkpoint::network_from(&file, &spec).unwrap().params, params, "{}", spec.name);
    }
}
