//! Adapter choice and the missing-limit error, with no GPU.

use gan_wgpu::engine::context::{check_limits, choose_adapter, DeviceChoice, Requirements};

fn info(name: &str, t: wgpu::DeviceType, backend: wgpu::Backend) -> wgpu::AdapterInfo {
    wgpu::AdapterInfo {
        name: name.into(),
        vendor: 0,
        device: 0,
        device_type: t,
        device_pci_bus_id: String::new(),
        driver: String::new(),
        driver_info: String::new(),
        backend,
        subgroup_min_size: 8,
        subgroup_max_size: 8,
        transient_saves_memory: None,
        limit_bucket: None,
    }
}

#[test]
fn auto_prefers_discrete_then_integrated_then_cpu() {
    use wgpu::{Backend::*, DeviceType::*};
    let all =
        vec![info("lavapipe", Cpu, Vulkan), info("igpu", IntegratedGpu, Vulkan), info("dgpu", DiscreteGpu, Vulkan)];
    assert_eq!(choose_adapter(&all, &DeviceChoice::Auto).unwrap(), 2);
    assert_eq!(choose_adapter(&all[..2], &DeviceChoice::Auto).unwrap(), 1);
    assert_eq!(choose_adapter(&all[..1], &DeviceChoice::Auto).unwrap(), 0);
    // Vulkan before GL for the same device type.
    let gl_first = vec![info("lavapipe-gl", Cpu, Gl), info("lavapipe-vk", Cpu, Vulkan)];
    assert_eq!(choose_adapter(&gl_first, &DeviceChoice::Auto).unwrap(), 1);
    assert_eq!(choose_adapter(&all, &DeviceChoice::Cpu).unwrap(), 0);
    assert_eq!(choose_adapter(&all, &DeviceChoice::Index(1)).unwrap(), 1);
    let err = choose_adapter(&all[..1], &DeviceChoice::Discrete).unwrap_err().to_string();
    assert!(err.contains("no discrete adapter"), "{err}");
    let err = choose_adapter(&all, &DeviceChoice::Index(3)).unwrap_err().to_string();
    assert!(err.contains("--device 3") && err.contains("numbered 0 to 2"), "{err}");
}

#[test]
fn device_flag_parses() {
    assert_eq!("discrete".parse::<DeviceChoice>().unwrap(), DeviceChoice::Discrete);
    assert_eq!("2".parse::<DeviceChoice>().unwrap(), DeviceChoice::Index(2));
    assert!("-1".parse::<DeviceChoice>().is_err());
}

#[test]
fn missing_limit_names_limit_needed_and_available() {
    let has = wgpu::Limits { max_storage_buffer_binding_size: 64 << 20, ..wgpu::Limits::default() };
    let need = Requirements { max_storage_buffer_binding_size: 100 << 20, ..Requirements::default() };
    let err = check_limits("tiny gpu", &has, &need).unwrap_err().to_string();
    assert!(err.contains("tiny gpu"), "{err}");
    assert!(err.contains("max_storage_buffer_binding_size"), "{err}");
    assert!(err.contains(&(100u64 << 20).to_string()) && err.contains(&(64u64 << 20).to_string()), "{err}");
    let small_wg = wgpu::Limits { max_compute_workgroup_storage_size: 4096, ..wgpu::Limits::default() };
    let err = check_limits("gpu", &small_wg, &Requirements::default()).unwrap_err().to_string();
    assert!(err.contains("max_compute_workgroup_storage_size is 4096, 8192 is needed"), "{err}");
    assert!(check_limits(
        "gpu",
        &wgpu::Limits::default(),
        &Requirements { max_storage_buffer_binding_size: 1, max_buffer_size: 1, ..Requirements::default() }
    )
    .is_ok());
}
