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

// (hi, lo) 32-bit halves of the 64-bit product a * b, from 16-bit pieces
// (WGSL has no 64-bit integers).
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let ll = a_lo * b_lo;
    let lh = a_lo * b_hi;
    let hl = a_hi * b_lo;
    let hh = a_hi * b_hi;
    let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
    let hi = hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

fn philox4x32_10(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    for (var round = 0u; round < 10u; round++) {
        let p0 = mulhilo(0xD2511F53u, c.x);
        let p1 = mulhilo(0xCD9E8D57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
        k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

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
