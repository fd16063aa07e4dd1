//! The matmul variant choice: the cache format (no GPU needed) and a real
//! measurement on small shapes with a cache in a temporary folder.

mod common;

use gan_wgpu::autotune::{self, Trial};
use gan_wgpu::kernels::matmul::{Form, Variant};

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
    let key = autotune::adapter_key(&ctx.info);
    assert!(!key.contains('\t') && !key.contains('\n'), "{key}");
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("sub").join(autotune::CACHE_FILE);
    // Small products that divide no tile; the subgroup kernel needs k % 4 == 0.
    let shapes = [(Form::NT, 33, 20, 12), (Form::NN, 9, 16, 8), (Form::TN, 16, 12, 8)];
    let first = autotune::tune(ctx, &shapes, Some(&cache)).unwrap();
    let trials = first.trials.as_ref().expect("the first call measures");
    let expected = if Variant::subgroups_usable(ctx) { 4 } else { 3 };
    assert_eq!(trials.len(), expected, "{trials:?}");
    assert!(trials.iter().all(|t| t.matches_reference && t.total_us > 0.0), "{trials:?}");
    assert_eq!(Some(first.variant), autotune::fastest(trials));
    assert!(first.how.contains("autotuned on this adapter:") && first.how.contains("cached in"), "{}", first.how);
    let text = std::fs::read_to_string(&cache).unwrap();
    assert_eq!(autotune::cached_variant(&text, &key), Some(first.variant), "{text}");

    let second = autotune::tune(ctx, &shapes, Some(&cache)).unwrap();
    assert!(second.trials.is_none(), "the second call reads the cache");
    assert_eq!(second.variant, first.variant);
    assert!(second.how.contains("earlier"), "{}", second.how);

    // Without a cache every call measures; an unwritable cache is not fatal.
    let blocked = dir.path().join("a file").join(autotune::CACHE_FILE);
    std::fs::write(dir.path().join("a file"), b"not a folder").unwrap();
    let third = autotune::tune(ctx, &shapes, Some(&blocked)).unwrap();
    assert!(third.trials.is_some() && !third.how.contains("cached in"), "{}", third.how);
}

#[test]
fn cpu_adapters_use_the_measured_table_without_compiling_every_variant() {
    let Some(ctx) = common::ctx() else { return };
    if !ctx.is_cpu_adapter()
        || std::env::var_os("GAN_WGPU_MATMUL").is_some()
        || std::env::var_os("GAN_WGPU_AUTOTUNE").is_some()
    {
        return;
    }
    let choice = ctx.matmul_choice();
    assert!(choice.trials.is_none() && choice.how.contains("table"), "{}", choice.describe());
    let want = if Variant::subgroups_usable(ctx) { Variant::Subgroup } else { Variant::Reg };
    assert_eq!(choice.variant, want);
    assert_eq!(Variant::for_adapter(ctx), want);
}

#[test]
fn bench_json_keeps_the_choice_text_verbatim() {
    // A failed autotune puts the error message, newlines and quotes
    // included, into the choice's text; the JSON must still parse.
    let how = "the table: the autotune failed (GPU error during \"matmul autotune\":\nline two\ttab \\ \u{1})";
    let choice = autotune::Choice { variant: Variant::Tiled, how: how.into(), trials: None };
    let json = gan_wgpu::bench::to_json(None, &[], "gpu \"x\"", &choice, "wall clock");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["matmul_choice"]["how"], how);
    assert_eq!(v["matmul_choice"]["variant"], "tiled");
    assert_eq!(v["adapter"], "gpu \"x\"");
    assert!(v["step"].is_null() && v["kernels"].as_array().is_some_and(|k| k.is_empty()), "{v}");
}
