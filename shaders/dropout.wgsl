// dropout.wgsl: inverted dropout, in place:  x[i] *= mask[i],
//   mask[i] = keep(i) / (1 - p),  keep(i) = (bits_i >= threshold),
//   threshold = round(p 2^32),
// bits_i = the (i % 4)-th u32 of Philox4x32-10 at counter (i / 4, draw,
// stream, 0) under key (key_lo, key_hi), draw = counters[0] (the trainer's
// step counter, advanced on the GPU). The mask depends only on the seed,
// the stream, the step and i, so the backward pass multiplies the gradient
// by the same mask with the same dispatch: for an activation y = f(v) with
// f(c v) = c f(v) for c >= 0 (identity, ReLU, LeakyReLU), f'(v) is read
// from the sign of y, which dropout keeps or zeroes with its gradient.
// A dropped element is 0 whatever x holds (select, not x * 0).
// Shapes: x [n] (any rows x cols, flat).
// Prepended with philox.wgsl (mulhilo, philox4x32_10).
//
// Bindings, group 0:
//   0  uniform  p: Params {n, key_lo, key_hi, stream, threshold, scale}
//   1  storage  x        read_write  [n] f32
//   2  storage  counters read        array<u32>
// 64 invocations a group, four elements each; 2-D grid past 65535 groups.

struct Params {
    n: u32,
    key_lo: u32,
    key_hi: u32,
    stream: u32,
    threshold: u32,
    scale: f32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> counters: array<u32>;

@compute @workgroup_size(64)
fn dropout_apply(@builtin(global_invocation_id) gid: vec3<u32>) {
    let q = gid.x + gid.y * 65535u * 64u;
    let base = q * 4u;
    if (base >= p.n) {
        return;
    }
    let bits = philox4x32_10(vec4<u32>(q, counters[0], p.stream, 0u), vec2<u32>(p.key_lo, p.key_hi));
    for (var j = 0u; j < 4u; j++) {
        let i = base + j;
        if (i < p.n) {
            x[i] = select(0.0, x[i] * p.scale, bits[j] >= p.threshold);
        }
    }
}
