// ceiling.wgsl: what an adapter can do at most, for the benchmark's
// ceilings (the matmuls' and the memory-bound kernels' figures are read
// against them). No training step uses these kernels.
//
// fma_peak: for i < n invocations, 8 independent vec4 accumulators
//   acc_j (start: j / 8 + i / n, in every component), iters times
//   acc_j = fma(acc_j, a, b) with a = p.a, b = p.b (uniform, so nothing is
//   loaded in the loop); out[i] = sum over j and components of acc_j.
//   FLOPs: n * iters * 8 * 4 * 2. Each accumulator is loop-carried once
//   per multiply-add, as a naive matmul's is, and 8 vec4 (32 values a lane)
//   outgrow a CPU adapter's registers: this is the limit of that loop shape.
// fma_chunked: the arithmetic limit as a kernel can reach it. 4 independent
//   vec4 accumulators (16 values a lane: they stay in registers), each
//   updated once per iteration by a chain of FMA_CHAIN = 8 dependent
//   acc = fma(acc, a, b); no early return (uniform control flow); out[i]
//   for i < n is the sum of the accumulators' components.
//   FLOPs: n * iters * 4 * 4 * 8 * 2.
// stream_copy: dst[i] = src[i] for i < n vec4s. Bytes: n * 16 * 2.
//
// Bindings, group 0:
//   0  uniform  p: Params {n, iters, a, b}
//   1  storage  src  read        array<vec4<f32>>  [n] (stream_copy)
//   2  storage  dst  read_write  array<vec4<f32>>  [n] (stream_copy)
//   3  storage  out  read_write  array<f32>        [n] (fma_peak)
// 64 invocations a group, one element each; 2-D grid past 65535 groups.

struct Params {
    n: u32,
    iters: u32,
    a: f32,
    b: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(64)
fn fma_peak(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    if (i >= p.n) {
        return;
    }
    let start = f32(i) / f32(p.n);
    var acc: array<vec4<f32>, 8>;
    for (var j = 0u; j < 8u; j++) {
        acc[j] = vec4(f32(j) / 8.0 + start);
    }
    let a = vec4(p.a);
    let b = vec4(p.b);
    for (var t = 0u; t < p.iters; t++) {
        acc[0] = fma(acc[0], a, b);
        acc[1] = fma(acc[1], a, b);
        acc[2] = fma(acc[2], a, b);
        acc[3] = fma(acc[3], a, b);
        acc[4] = fma(acc[4], a, b);
        acc[5] = fma(acc[5], a, b);
        acc[6] = fma(acc[6], a, b);
        acc[7] = fma(acc[7], a, b);
    }
    var s = vec4(0.0);
    for (var j = 0u; j < 8u; j++) {
        s += acc[j];
    }
    out[i] = s.x + s.y + s.z + s.w;
}

const FMA_CHAIN: u32 = 8u;

// acc after FMA_CHAIN dependent multiply-adds: one loop-carried update.
fn fma_chain(acc: vec4<f32>, a: vec4<f32>, b: vec4<f32>) -> vec4<f32> {
    return fma(fma(fma(fma(fma(fma(fma(fma(acc, a, b), a, b), a, b), a, b), a, b), a, b), a, b), a, b);
}

@compute @workgroup_size(64)
fn fma_chunked(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    let start = f32(i) / f32(p.n);
    var acc0 = vec4(start);
    var acc1 = vec4(0.25 + start);
    var acc2 = vec4(0.5 + start);
    var acc3 = vec4(0.75 + start);
    let a = vec4(p.a);
    let b = vec4(p.b);
    for (var t = 0u; t < p.iters; t++) {
        acc0 = fma_chain(acc0, a, b);
        acc1 = fma_chain(acc1, a, b);
        acc2 = fma_chain(acc2, a, b);
        acc3 = fma_chain(acc3, a, b);
    }
    let s = acc0 + acc1 + acc2 + acc3;
    if (i < p.n) {
        out[i] = s.x + s.y + s.z + s.w;
    }
}

@compute @workgroup_size(64)
fn stream_copy(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    if (i >= p.n) {
        return;
    }
    dst[i] = src[i];
}
