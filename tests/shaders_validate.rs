//! Every WGSL file in shaders/ parses and validates with naga, with the
//! capabilities of the devices that create it: none for the base modules (a
//! device opened with WebGPU's defaults and no optional features), SUBGROUP
//! only for the subgroup module. A capability a module leaks fails here; no
//! GPU needed.

use gan_wgpu::engine::kernels::{ShaderFile, SHADERS};

/// The validator a device with `features` would use for our modules.
fn validator(features: wgpu::Features) -> naga::valid::Validator {
    use naga::valid::{Capabilities, ShaderStages, SubgroupOperationSet, ValidationFlags, Validator};
    let mut caps = Capabilities::empty();
    if features.contains(wgpu::Features::SUBGROUP) {
        caps |= Capabilities::SUBGROUP;
    }
    let mut v = Validator::new(ValidationFlags::all(), caps);
    if features.contains(wgpu::Features::SUBGROUP) {
        v.subgroup_stages(ShaderStages::COMPUTE);
        v.subgroup_operations(SubgroupOperationSet::all());
    }
    v
}

fn validate(name: &str, source: &str, features: wgpu::Features) -> Result<(), String> {
    let module =
        naga::front::wgsl::parse_str(source).map_err(|e| format!("{name}: parse: {}", e.emit_to_string(source)))?;
    validator(features)
        .validate(&module)
        .map_err(|e| format!("{name}: validation with {features:?}: {}", e.emit_to_string(source)))?;
    Ok(())
}

#[test]
fn every_shader_file_is_embedded_and_valid_with_only_the_features_it_declares() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("shaders");
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wgsl"))
        .collect();
    on_disk.sort();
    let mut embedded: Vec<String> = SHADERS.iter().map(|s| s.name.to_string()).collect();
    embedded.sort();
    assert_eq!(on_disk, embedded, "shaders/ and kernels::SHADERS disagree");
    for ShaderFile { name, file, source, features, .. } in SHADERS {
        let disk = std::fs::read_to_string(dir.join(name)).unwrap();
        assert_eq!(&disk, file, "{name}: embedded text differs from the file");
        assert!(source.ends_with(file), "{name}: the compiled source should end with the file");
        // What the launchers compile (the file with its preludes) validates
        // with exactly the features its module is created with.
        validate(name, source, *features).unwrap();
        if !features.is_empty() {
            // And it really needs them: without, it is rejected.
            assert!(
                validate(name, source, wgpu::Features::empty()).is_err(),
                "{name} declares {features:?} but validates without"
            );
        }
    }
    assert!(SHADERS.iter().filter(|s| s.features.is_empty()).count() >= 8);
}

/// A binding declared in a shader: (binding, address space, access, name).
fn declared_bindings(source: &str) -> Vec<(u32, String, String, String)> {
    source
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("@group(0) @binding(")?;
            let (n, rest) = rest.split_once(')')?;
            let rest = rest.trim().strip_prefix("var<")?;
            let (space, rest) = rest.split_once('>')?;
            let name = rest.trim().split(':').next()?.trim().to_string();
            let mut parts = space.split(',').map(str::trim);
            let space_name = parts.next()?.to_string();
            let access = parts.next().unwrap_or(if space_name == "uniform" { "" } else { "read" }).to_string();
            Some((n.parse().ok()?, space_name, access, name))
        })
        .collect()
}

/// Every shader opens with a comment header: its name, then the math it
/// computes with the shapes, then a binding table that lists every binding
/// the file declares with its number, kind, name and access, as declared.
#[test]
fn each_shader_starts_with_its_math_shapes_and_bindings() {
    for ShaderFile { name, file: source, .. } in SHADERS {
        let header: Vec<&str> = source.lines().take_while(|l| l.starts_with("//")).collect();
        assert!(
            header.first().is_some_and(|l| l.starts_with(&format!("// {name}:"))),
            "{name}: header should start with '// {name}:'"
        );
        let text = header.join("\n");
        let table_at =
            header.iter().position(|l| l.contains("Bindings")).unwrap_or_else(|| panic!("{name}: no binding table"));
        // The math comes before the table: a few lines, with an equation or shapes.
        let math = &header[..table_at];
        assert!(math.len() >= 3, "{name}: the header needs the math before the binding table");
        assert!(
            math.iter().any(|l| l.contains('=') || l.contains('[')),
            "{name}: no equation or shape before the table:\n{text}"
        );
        let bindings = declared_bindings(source);
        if bindings.is_empty() {
            // Functions only, or bindings from a prelude the table names.
            let table = header[table_at];
            let named = SHADERS.iter().any(|p| table.contains(p.name) && !declared_bindings(p.file).is_empty());
            assert!(table.contains("none") || named, "{name}: no bindings and no prelude named: {table}");
        }
        for (n, space, access, var) in bindings {
            let listed = header[table_at..].iter().any(|l| {
                let words: Vec<&str> = l.trim_start_matches('/').split_whitespace().collect();
                words.first() == Some(&n.to_string().as_str())
                    && words.contains(&space.as_str())
                    && words.iter().any(|w| w.trim_end_matches(':') == var)
                    && (space == "uniform" || words.contains(&access.as_str()))
            });
            assert!(listed, "{name}: binding {n} ({space}, {access}, '{var}') is not in the header's table:\n{text}");
        }
    }
}

#[test]
fn a_broken_shader_is_rejected() {
    let broken = "@compute @workgroup_size(1) fn main() { let x: f32 = 1u; }";
    assert!(validate("broken.wgsl", broken, wgpu::Features::empty()).is_err());
}
