//! The command line: error messages read as documented, exit codes, no panics.

use std::process::Command;

fn gan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_gan-wgpu"))
}

#[test]
fn no_adapter_error_says_how_to_get_one() {
    // No Metal adapter exists on Linux: this is the no-adapter path for real.
    let out = gan()
        .arg("devices")
        .env("WGPU_BACKEND", "metal")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    if cfg!(target_os = "macos") {
        return;
    }
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    assert!(stderr.contains("no GPU adapter found"), "{stderr}");
    assert!(
        stderr.contains("apt-get install -t bookworm-backports mesa-vulkan-drivers"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
}

#[test]
fn devices_lists_adapters_with_limits() {
    let out = gan().arg("devices").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() && std::env::var("GAN_WGPU_REQUIRE_GPU").as_deref() != Ok("1") {
        return;
    }
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for needle in [
        "[0]",
        "type ",
        "backend ",
        "driver ",
        "max storage buffer binding",
        "workgroup storage",
        "subgroup size",
        "SHADER_F16",
        "TIMESTAMP_QUERY",
        "<- auto",
    ] {
        assert!(stdout.contains(needle), "missing '{needle}' in:\n{stdout}");
    }
}

#[test]
fn bad_device_index_names_the_flag_and_the_count() {
    let out = gan()
        .args(["bench", "--quick", "--device", "99"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("--device 99") && stderr.contains("gan-wgpu devices"),
        "{stderr}"
    );
    let out = gan()
        .args(["bench", "--device", "fastest"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("--device fastest") && stderr.contains("expected auto, discrete"),
        "{stderr}"
    );
}
