// rng.wgsl: counter-based standard normal numbers. out[i] depends only on the
// seed (key), the stream, the draw number and i, never on workgroup layout.
// Philox4x32-10 (Salmon et al., 2011) maps counter (i / 4, draw, stream, 0)
// under key (key_lo, key_hi) to four u32; each pair becomes two normals by
// Box-Muller:  u1 = (x >> 8 + 1) 2^-24 in (0, 1],  u2 = (y >> 8) 2^-24 - 1/2
// in [-1/2, 1/2),  z0 = sqrt(-2 ln u1) cos(2 pi u2),  z1 = sqrt(-2 ln u1) sin(2 pi u2).
// The angle stays in [-pi, pi), where WGSL bounds cos and sin (absolute
// error 2^-11); outside it they have no bound.
// draw = draw_base + counters[0]: the trainer's step counter advances it on
// the GPU, so each step draws new latent codes with no host write.
// rng_labels: labels[i] = floor(x * classes / 2^32) for the i-th u32 x of the
// same sequence (x = bits[i % 4] of counter (i / 4, draw, stream, 0)):
// uniform in 0..classes (the high word of x * classes, so no modulo bias
// beyond 1 in 2^32 / classes).
//
// Prepended with philox.wgsl (mulhilo, philox4x32_10).
//
// Bindings, group 0:
//   0  uniform  p: Params {n, key_lo, key_hi, stream, draw_base, classes}
//   1  storage  out      read_write  [n] f32            (rng_normal)
//   2  storage  counters read        array<u32>
//   3  storage  labels   read_write  [n] u32            (rng_labels)
// 64 invocations a group, four outputs each; 2-D grid past 65535 groups.

struct Params {
    n: u32,
    key_lo: u32,
    key_hi: u32,
    stream: u32,
    draw_base: u32,
    classes: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;
@group(0) @binding(2) var<storage, read> counters: array<u32>;
@group(0) @binding(3) var<storage, read_write> labels: array<u32>;

// The four u32 of counter (q, draw, stream, 0) of this step's draw.
fn draw_bits(q: u32) -> vec4<u32> {
    let draw = p.draw_base + counters[0];
    return philox4x32_10(vec4<u32>(q, draw, p.stream, 0u), vec2<u32>(p.key_lo, p.key_hi));
}

const TWO_PI: f32 = 6.283185307179586;

fn box_muller(x: u32, y: u32) -> vec2<f32> {
    let u1 = f32((x >> 8u) + 1u) * (1.0 / 16777216.0);
    let u2 = f32(y >> 8u) * (1.0 / 16777216.0) - 0.5;
    let r = sqrt(-2.0 * log(u1));
    let theta = TWO_PI * u2;
    return vec2<f32>(r * cos(theta), r * sin(theta));
}

@compute @workgroup_size(64)
fn rng_normal(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.x + gid.y * 65535u * 64u;
    let base = q * 4u;
    if (base >= p.n) {
        return;
    }
    let bits = draw_bits(q);
    let z01 = box_muller(bits.x, bits.y);
    let z23 = box_muller(bits.z, bits.w);
    let z = vec4<f32>(z01, z23);
    for (var j = 0u; j < 4u; j++) {
        if (base + j < p.n) {
            out[base + j] = z[j];
        }
    }
}

@compute @workgroup_size(64)
fn rng_labels(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.x + gid.y * 65535u * 64u;
    let base = q * 4u;
    if (base >= p.n) {
        return;
    }
    let bits = draw_bits(q);
    for (var j = 0u; j < 4u; j++) {
        if (base + j < p.n) {
            labels[base + j] = mulhilo(bits[j], p.classes).x;
        }
    }
}
