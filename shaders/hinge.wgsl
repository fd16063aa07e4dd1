// hinge.wgsl: the hinge loss on raw discriminator scores s (no sigmoid), as
// Lim & Ye 2017 and Miyato et al. 2018 train with it; the batch split in two
// segments, each averaged on its own:
//   discriminator (mode 0): rows [0, n_zero) are fakes, rows [n_zero, n) reals,
//     loss = mean_{fake} relu(1 + s) + mean_{real} relu(1 - s)
//     ds   = w_fake [1 + s > 0]  on a fake row,  -w_real [1 - s > 0]  on a real row
//   generator (mode 1): every row a fake (n_zero = 0),
//     loss = -mean s,  ds = -1 / n
//   critic (mode 2, WGAN's, Arjovsky et al. 2017, no margin): rows as mode 0,
//     loss = mean_{fake} s - mean_{real} s
//     ds   = w_fake on a fake row,  -w_real on a real row
// with w = 1 / (rows in the segment) (one mean when a segment is empty).
// At a kink (s = 1 on a real row, s = -1 on a fake one) the gradient is 0, as
// PyTorch's relu'(0) = 0.
// Also written: the mean of s over each segment (D(x) and D(G(z)) as raw
// scores). Divergence watch: where the loss or a mean is not finite (tested
// on the bits), counters[2] = max(counters[2], 0xffffffff - t), t =
// counters[0] + 1 the 1-based step: the flag adam.wgsl and bce.wgsl raise.
//
// Shapes: score [n] (or [n, 1]), dscore [n]; n = 2B for the D step, B for the G step.
// Bindings, group 0:
//   0  uniform  p: Params {n, n_zero, out, mode (0 D, 1 G, 2 critic)}
//   1  storage  score   read        [n]
//   2  storage  dscore  read_write  [n]
//   3  storage  metrics read_write  metrics[out] = loss,
//                                   metrics[out + 1] = mean s over rows [n_zero, n),
//                                   metrics[out + 2] = mean s over rows [0, n_zero)
//   4  storage  counters read_write  array<atomic<u32>> [4]: [0] steps done,
//                                   [2] non-finite flag (atomicMax)
// hinge_forward_backward: one workgroup of 64 invocations; each strides over
// the rows, then the lanes' sums are added in workgroup memory (one barrier)
// in a fixed order. n is a batch (a few hundred rows): one group suits every
// adapter.

struct Params {
    n: u32,
    n_zero: u32,
    out: u32,
    mode: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> score: array<f32>;
@group(0) @binding(2) var<storage, read_write> dscore: array<f32>;
@group(0) @binding(3) var<storage, read_write> metrics: array<f32>;
@group(0) @binding(4) var<storage, read_write> counters: array<atomic<u32>>;

var<workgroup> partial: array<vec4<f32>, 64>;

// ds for row i, and its share of the sums:
// (loss over rows [0, n_zero), loss over rows [n_zero, n), sum s there, sum s over [0, n_zero)).
fn hinge_row(i: u32, w_zero: f32, w_one: f32) -> vec4<f32> {
    let s = score[i];
    if (p.mode == 1u) {
        dscore[i] = -w_one;
        return vec4(0.0, -s, s, 0.0);
    }
    if (p.mode == 2u) {
        if (i >= p.n_zero) {
            dscore[i] = -w_one;
            return vec4(0.0, -s, s, 0.0);
        }
        dscore[i] = w_zero;
        return vec4(s, 0.0, 0.0, s);
    }
    if (i >= p.n_zero) {
        let margin = 1.0 - s;
        dscore[i] = select(0.0, -w_one, margin > 0.0);
        return vec4(0.0, max(margin, 0.0), s, 0.0);
    }
    let margin = 1.0 + s;
    dscore[i] = select(0.0, w_zero, margin > 0.0);
    return vec4(max(margin, 0.0), 0.0, 0.0, s);
}

@compute @workgroup_size(64)
fn hinge_forward_backward(@builtin(local_invocation_id) lid: vec3<u32>) {
    let w_zero = 1.0 / f32(max(p.n_zero, 1u));
    let w_one = 1.0 / f32(max(p.n - p.n_zero, 1u));
    var acc = vec4<f32>(0.0);
    for (var i = lid.x; i < p.n; i += 64u) {
        acc += hinge_row(i, w_zero, w_one);
    }
    partial[lid.x] = acc;
    workgroupBarrier();
    if (lid.x == 0u) {
        var total = vec4<f32>(0.0);
        for (var j = 0u; j < 64u; j++) {
            total += partial[j];
        }
        let loss = total.x * w_zero + total.y * w_one;
        metrics[p.out] = loss;
        metrics[p.out + 1u] = total.z * w_one;
        metrics[p.out + 2u] = total.w * w_zero;
        let exponent = bitcast<vec3<u32>>(vec3<f32>(loss, total.z, total.w)) & vec3<u32>(0x7f800000u);
        if (any(exponent == vec3<u32>(0x7f800000u))) {
            atomicMax(&counters[2], 0xffffffffu - (atomicLoad(&counters[0]) + 1u));
        }
    }
}
