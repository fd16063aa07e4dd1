// adam.wgsl: one dispatch updates every parameter of a network, held in flat
// buffers (parameters, gradients, first and second moments; all [n]).
// As torch.optim.Adam (no weight decay, no amsgrad), at step t:
//   m = beta1 m + (1 - beta1) g
//   v = beta2 v + (1 - beta2) g^2
//   p = p - (lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
// t is read from the GPU step counter (counters[0] = steps done): t =
// (counters[0] + 1) / every, where a network that updates every `every`-th
// step (the generator with --n-critic N: every = N) counts its own updates;
// every = 1 otherwise. The trainer never writes t per step. lr, beta1, beta2,
// eps and every are uniforms, written only when they change (no rebuild).
// Divergence watch: where a new parameter is not finite (exponent bits all
// ones: inf or NaN; WGSL has no isnan, and a float comparison may be folded
// away under the no-NaN assumption, so the test is on the bits),
//   counters[2] = max(counters[2], 0xffffffff - t)
// so counters[2] != 0 says the model went non-finite, and 0xffffffff minus
// it is the first (1-based, global) step at which it did. The host reads it
// with every loss readback and before writing any checkpoint.
//
// Bindings, group 0 (n % 4 == 0: flat layouts are padded to 64 elements;
// the launcher checks):
//   0  uniform  p: Params {n, lr, beta1, beta2, eps, every}
//   1  storage  param    read_write  [n/4] vec4
//   2  storage  grad     read        [n/4] vec4
//   3  storage  m        read_write  [n/4] vec4
//   4  storage  v        read_write  [n/4] vec4
//   5  storage  counters read_write  array<atomic<u32>> [4]: [0] steps done
//                                   (read), [2] non-finite flag (atomicMax)
// 256 invocations a group, four elements each (vec4 loads: on lavapipe a
// storage access costs a bounds-checked load per lane and component plus a
// per-lane overhead that vec4 shares); 2-D grid past 65535 groups.

struct Params {
    n: u32,
    lr: f32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    every: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> param: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> grad: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> m: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> v: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read_write> counters: array<atomic<u32>>;

@compute @workgroup_size(256)
fn adam_update(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 256u;
    if (i >= p.n / 4u) {
        return;
    }
    // The 1-based global step (the divergence flag's), and this network's t.
    let step = atomicLoad(&counters[0]) + 1u;
    let t = f32(step / max(p.every, 1u));
    let g = grad[i];
    let mi = p.beta1 * m[i] + (1.0 - p.beta1) * g;
    let vi = p.beta2 * v[i] + (1.0 - p.beta2) * g * g;
    m[i] = mi;
    v[i] = vi;
    let bias1 = 1.0 - pow(p.beta1, t);
    let bias2 = 1.0 - pow(p.beta2, t);
    let denom = sqrt(vi) / sqrt(bias2) + vec4(p.eps);
    let updated = param[i] - (p.lr / bias1) * mi / denom;
    param[i] = updated;
    if (!all_finite(updated)) {
        atomicMax(&counters[2], 0xffffffffu - step);
    }
}

// False where any component is inf or NaN (all exponent bits set).
fn all_finite(x: vec4<f32>) -> bool {
    let exponent = bitcast<vec4<u32>>(x) & vec4<u32>(0x7f800000u);
    return all(exponent != vec4<u32>(0x7f800000u));
}
