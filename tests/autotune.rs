//! The matmul variant choice: the cache format (no GPU needed) and a real
//! measurement on small shapes with a cache in a temporary folder.

mod common;

use gan_wgpu::engine::autotune::{self, Trial};
use gan_wgpu::engine::kernels::matmul::{Form, Variant};

#[test]
fn cache_lines_round_trip_and_keep_other_adapters() {
    let text = "# header\nother gpu\ttiled\ttiled 10 us\nnot a valid line\nmine\tbogus-variant\tx\n";
    assert_eq!(autotune::cached_variant(text, "other gpu"), Some(Variant::Tiled));
    // An unknown variant name is no answer: the adapter is measured again.
    assert_eq!(autotune::cached_variant(text, "mine"), None);
    assert_eq!(autotune::cached_variant(text, "absent"), None);
    let updated = autotune::with_cached_variant(text, "mine", Variant::Reg, "reg4x4 5 us,\ttabs\tgone");
    assert_eq!(autotune::cached_variant(&updated, "mine"), Some(Variant::Reg));
    assert_eq!(autotune::cached_variant(&updated, "other gpu"), Some(Variant::Tiled));
    assert_eq!(updated.lines().filter(|l| l.starts_with("mine\t")).count(), 1, "{updated}");
    assert!(
        updated.lines().all(|l| l.starts_with('#') || l.split('\t').count() == 3 || l == "not a valid line"),
        "{updated}"
    );
}

#[test]
fn fastest_ignores_variants_that_disagree_with_the_reference() {
    let t = |variant, total_us, ok| Trial { variant, total_us, matches_reference: ok };
    let trials = [t(Variant::Naive, 900.0, true), t(Variant::Tiled, 100.0, false), t(Variant::Reg, 300.0, true)];
    assert_eq!(autotune::fastest(&trials), Some(Variant::Reg));
    assert_eq!(autotune::fastest(&[t(Variant::Tiled, 1.0, false)]), None);
}

#[test]
fn tune_measures_once_then_reads_the_cache() {
    let Some(ctx) = common::ctx() else { return };
    let cpu = "Test CPU (family 1 model 2), 2 logical CPUs";
    let key = autotune::tune_key(ctx, Some(cpu));
    assert!(!key.contains('\t') && !key.contains('\n'), "{key}");
    // CPU adapters keep a choice per host CPU; GPUs per adapter and driver.
    assert_eq!(key.contains(cpu), ctx.is_cpu_adapter(), "{key}");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("sub").join(autotune::CACHE_FILE);
    // Small products that divide no tile; the subgroup kernel needs k % 4 == 0.
    let shapes = [(Form::NT, 33, 20, 12), (Form::NN, 9, 16, 8), (Form::TN, 16, 12, 8)];
    let first = autotune::tune(ctx, &shapes, Some(&cache), Some(cpu)).unwrap();
    let trials = first.trials.as_ref().expect("the first call measures");
    let expected = if Variant::subgroups_usable(ctx) { 4 } else { 3 };
    assert_eq!(trials.len(), expected, "{trials:?}");
    assert!(trials.iter().all(|t| t.matches_reference && t.total_us > 0.0), "{trials:?}");
    assert!(trials.iter().any(|t| t.total_us.is_finite()), "a variant was timed: {trials:?}");
    assert_eq!(Some(first.variant), autotune::fastest(trials));
    assert!(first.how.contains("autotuned on this adapter:") && first.how.contains("cached in"), "{}", first.how);
    let text = std::fs::read_to_string(&cache).unwrap();
    assert_eq!(autotune::cached_variant(&text, &key), Some(first.variant), "{text}");

    let second = autotune::tune(ctx, &shapes, Some(&cache), Some(cpu)).unwrap();
    assert!(second.trials.is_none(), "the second call reads the cache");
    assert_eq!(second.variant, first.variant);
    assert!(second.how.contains("earlier"), "{}", second.how);

    // Without a cache every call measures; an unwritable cache is not fatal.
    let blocked = dir.path().join("a file").join(autotune::CACHE_FILE);
    std::fs::write(dir.path().join("a file"), b"not a folder").unwrap();
    let third = autotune::tune(ctx, &shapes, Some(&blocked), Some(cpu)).unwrap();
    assert!(third.trials.is_some() && !third.how.contains("cached in"), "{}", third.how);
}

/// Every adapter's choice is measured (CPU adapters included: the best
/// variant there depends on the CPU), and a measurement keeps the fastest
/// variant that agreed with the reference.
#[test]
fn the_choice_is_measured_on_every_adapter() {
    let Some(ctx) = common::ctx() else { return };
    if std::env::var_os("GAN_WGPU_MATMUL").is_some() || std::env::var_os("GAN_WGPU_AUTOTUNE").is_some() {
        return;
    }
    let choice = ctx.matmul_choice();
    assert!(choice.how.contains("autotuned on this adapter"), "{}", choice.describe());
    if let Some(trials) = &choice.trials {
        assert_eq!(autotune::fastest(trials), Some(choice.variant), "{trials:?}");
    }
}

/// With timing off, the table: on CPU adapters the subgroup kernel where
/// subgroups of 8 or more exist, else the register-blocked one.
#[test]
fn the_table_is_the_fallback_when_timing_is_off() {
    let Some(ctx) = common::ctx() else { return };
    let settings = gan_wgpu::Settings { autotune: Some(false), ..Default::default() };
    let choice = autotune::choose(ctx, &settings);
    assert!(choice.trials.is_none() && choice.how.contains("the table, GAN_WGPU_AUTOTUNE=0"), "{}", choice.describe());
    let want = match (ctx.is_cpu_adapter(), Variant::subgroups_usable(ctx)) {
        (false, _) => Variant::Tiled,
        (true, true) => Variant::Subgroup,
        (true, false) => Variant::Reg,
    };
    assert_eq!(choice.variant, want);
}

/// The chosen variant is checked against naive on small odd products of each
/// form on the adapter itself, once: the result is cached with the choice.
#[test]
fn the_chosen_variant_is_verified_on_the_adapter_once() {
    let Some(ctx) = common::ctx() else { return };
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join(autotune::VERIFIED_FILE);
    let variant = if Variant::subgroups_usable(ctx) { Variant::Subgroup } else { Variant::Reg };
    let choice = autotune::Choice { variant, how: "the table".into(), trials: None };
    let first = autotune::verified(ctx, choice.clone(), Some(&cache));
    assert_eq!(first.variant, variant, "{}", first.how);
    assert!(first.how.contains("verified against naive on 6 small products"), "{}", first.how);
    let line = std::fs::read_to_string(&cache).unwrap();
    assert!(line.contains(&autotune::adapter_key(&ctx.info)) && line.contains(variant.name()), "{line}");
    let second = autotune::verified(ctx, choice, Some(&cache));
    assert!(second.how.contains("verified against naive here earlier"), "{}", second.how);
    // The aligned shapes run the variant itself, not a fallback.
    for &(form, m, n, k) in &autotune::VERIFY_SHAPES[..3] {
        let (sa, sb) = form.operand_shapes(m, n, k);
        let (a, b, c) = (
            gan_wgpu::GpuTensor::zeros(ctx, &sa, "a"),
            gan_wgpu::GpuTensor::zeros(ctx, &sb, "b"),
            gan_wgpu::GpuTensor::zeros(ctx, &[m, n], "c"),
        );
        let mm = gan_wgpu::engine::kernels::matmul::Matmul::new(ctx, form, variant, &a, &b, &c).unwrap();
        assert_eq!(mm.variant, variant, "{}", form.name());
    }
    // Every variant usable here agrees with naive on them.
    for v in Variant::ALL {
        if v != Variant::Subgroup || Variant::subgroups_usable(ctx) {
            autotune::verify(ctx, v, &autotune::VERIFY_SHAPES).unwrap();
        }
    }
}

/// The autotune cache key hashes the kernel source with a hash that is the
/// same on every build (64-bit FNV-1a; std's DefaultHasher is not stable).
#[test]
fn the_cache_key_hash_is_stable() {
    assert_eq!(autotune::stable_hash(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(autotune::stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    assert_eq!(autotune::stable_hash(b"foobar"), 0x8594_4171_f739_67e8);
    assert_eq!(autotune::stable_hash_from(autotune::stable_hash(b"foo"), b"bar"), 0x8594_4171_f739_67e8);
}

/// The context makes no choice itself: a fresh one runs the reference
/// kernels until `choose_kernels` (or a page's choice) sets them, once.
#[test]
fn a_context_uses_the_reference_kernels_until_a_choice_is_set() {
    let Some(tuned) = common::ctx() else { return };
    let settings = gan_wgpu::Settings::from_env().unwrap();
    let fresh = gan_wgpu::GpuContext::new(
        &settings.device_choice(None).unwrap(),
        &gan_wgpu::Requirements::default(),
        settings.device_options,
    )
    .unwrap();
    assert!(!fresh.kernels_chosen());
    assert_eq!(Variant::for_adapter(&fresh), Variant::Naive);
    assert_eq!(
        gan_wgpu::engine::kernels::reduce::Reduce::for_adapter(&fresh),
        gan_wgpu::engine::kernels::reduce::Reduce::Column
    );
    autotune::choose_kernels(&fresh, &settings);
    assert!(fresh.kernels_chosen());
    assert_eq!(fresh.matmul_choice().variant, tuned.matmul_choice().variant);
    assert_eq!(fresh.reduce_choice().variant, tuned.reduce_choice().variant);
    let again = autotune::Choice { variant: Variant::Tiled, how: "a second choice".into(), trials: None };
    assert!(!fresh.set_kernel_choices(again, gan_wgpu::engine::kernels::choice::ReduceChoice::reference()));
    assert_eq!(fresh.matmul_choice().variant, tuned.matmul_choice().variant);
}
