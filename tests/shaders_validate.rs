//! Every WGSL file in shaders/ parses and validates with naga; no GPU needed.

use gan_wgpu::kernels::SHADERS;

fn validate(name: &str, source: &str) -> Result<(), String> {
    let module =
        naga::front::wgsl::parse_str(source).map_err(|e| format!("{name}: parse: {}", e.emit_to_string(source)))?;
    naga::valid::Validator::new(naga::valid::ValidationFlags::all(), naga::valid::Capabilities::all())
        .validate(&module)
        .map_err(|e| format!("{name}: validation: {}", e.emit_to_string(source)))?;
    Ok(())
}

#[test]
fn every_shader_file_is_embedded_and_valid() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wgsl"))
        .collect();
    on_disk.sort();
    let mut embedded: Vec<String> = SHADERS.iter().map(|(n, _, _)| n.to_string()).collect();
    embedded.sort();
    assert_eq!(on_disk, embedded, "shaders/ and kernels::SHADERS disagree");
    for (name, file, source) in SHADERS {
        let disk = std::fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(&disk, file, "{name}: embedded text differs from the file");
        assert!(source.ends_with(file), "{name}: the compiled source should end with the file");
        // What the launchers compile (the file with any prelude) validates.
        validate(name, source).unwrap();
    }
}

#[test]
fn each_shader_starts_with_its_math_shapes_and_bindings() {
    for (name, source, _) in SHADERS {
        let header: String = source.lines().take_while(|l| l.starts_with("//")).collect::<Vec<_>>().join("\n");
        assert!(header.starts_with(&format!("// {name}")), "{name}: header should start with its name");
        assert!(header.contains("Bindings"), "{name}: header lacks the binding table");
    }
}

#[test]
fn a_broken_shader_is_rejected() {
    let broken = "@compute @workgroup_size(1) fn main() { let x: f32 = 1u; }";
    assert!(validate("broken.wgsl", broken).is_err());
}
