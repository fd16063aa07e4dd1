// bce.wgsl: binary cross-entropy on probabilities, as PyTorch's BCELoss, with
// the batch split in two segments, each averaged on its own:
//   rows [0, n_zero) have target 0, rows [n_zero, n) target 1;
//   loss = mean_{target 0}(-max(log(1 - p), -100)) + mean_{target 1}(-max(log p, -100))
// (one mean when one segment is empty). This is loss_d = BCE(D(G(z)), 0) +
// BCE(D(x), 1) on the discriminator batch [fake; real], and loss_g =
// BCE(D(G(z)), 1) with n_zero = 0.
// Gradient, as PyTorch's BCELoss backward (zero where p saturates at 0 or 1):
//   dp = w (p - t) / max(p (1 - p), 1e-12),  w = 1 / (rows in the segment)
// The logs use p as stored in f32, as PyTorch does, so saturated outputs give
// the clamped -100 exactly as it does.
// Also written: the mean of p over each segment (D(G(z)) and D(x)).
// Divergence watch: where the loss or a mean is not finite (tested on the
// bits, as adam.wgsl does), counters[2] = max(counters[2], 0xffffffff - t),
// t = counters[0] + 1 the 1-based step: the flag adam.wgsl also raises.
//
// Bindings, group 0:
//   0  uniform  p: Params {n, n_zero, out, _pad}
//   1  storage  prob    read        [n]
//   2  storage  dprob   read_write  [n]
//   3  storage  metrics read_write  metrics[out] = loss,
//                                   metrics[out + 1] = mean p over target 1,
//                                   metrics[out + 2] = mean p over target 0
//   4  storage  counters read_write  array<atomic<u32>> [4]: [0] steps done,
//                                   [2] non-finite flag (atomicMax)
//   5  storage  partials read_write  array<vec4<f32>> [ceil(n / 8)]: the
//                                   two-pass form's per-group sums
// bce_forward_backward ("column", bindings 0-4): one workgroup of 64
// invocations; each strides over the rows, then the partial sums are reduced
// in workgroup memory (one barrier). For GPUs, two passes ("tree"):
// bce_partial (bindings 0-3 and 5; n / 8 groups of 8 rows) writes dprob and
// per-group sums, bce_finish (0, 3, 4, 5; one group) adds them up in a fixed
// order and writes the metrics and the flag.

struct Params {
    n: u32,
    n_zero: u32,
    out: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> prob: array<f32>;
@group(0) @binding(2) var<storage, read_write> dprob: array<f32>;
@group(0) @binding(3) var<storage, read_write> metrics: array<f32>;
@group(0) @binding(4) var<storage, read_write> counters: array<atomic<u32>>;
@group(0) @binding(5) var<storage, read_write> partials: array<vec4<f32>>;

var<workgroup> partial: array<vec4<f32>, 64>;

fn clamped_log(v: f32) -> f32 {
    // log(0) is -inf in PyTorch and then clamped; WGSL leaves log(0) undefined.
    if (v <= 0.0) {
        return -100.0;
    }
    return max(log(v), -100.0);
}

// dprob for row i, and its share of the sums:
// (loss over target 0, loss over target 1, sum p target 1, sum p target 0).
fn bce_row(i: u32, w_zero: f32, w_one: f32) -> vec4<f32> {
    let q = prob[i];
    let is_one = i >= p.n_zero;
    let t = select(0.0, 1.0, is_one);
    let w = select(w_zero, w_one, is_one);
    dprob[i] = w * (q - t) / max(q * (1.0 - q), 1e-12);
    if (is_one) {
        return vec4(0.0, -clamped_log(q), q, 0.0);
    }
    return vec4(-clamped_log(1.0 - q), 0.0, 0.0, q);
}

// The metrics from the summed row shares, and the divergence flag.
fn bce_write(total: vec4<f32>, w_zero: f32, w_one: f32) {
    let loss = total.x * w_zero + total.y * w_one;
    metrics[p.out] = loss;
    metrics[p.out + 1u] = total.z * w_one;
    metrics[p.out + 2u] = total.w * w_zero;
    let exponent = bitcast<vec3<u32>>(vec3<f32>(loss, total.z, total.w)) & vec3<u32>(0x7f800000u);
    if (any(exponent == vec3<u32>(0x7f800000u))) {
        atomicMax(&counters[2], 0xffffffffu - (atomicLoad(&counters[0]) + 1u));
    }
}

// Adds up the 64 lanes' sums in workgroup memory (one barrier; every lane
// must call it) and writes the metrics from lane 0.
fn write_lane_total(lane: u32, acc: vec4<f32>, w: vec2<f32>) {
    partial[lane] = acc;
    workgroupBarrier();
    if (lane == 0u) {
        var total = vec4<f32>(0.0);
        for (var j = 0u; j < 64u; j++) {
            total += partial[j];
        }
        bce_write(total, w.x, w.y);
    }
}

fn segment_weights() -> vec2<f32> {
    return vec2(1.0 / f32(max(p.n_zero, 1u)), 1.0 / f32(max(p.n - p.n_zero, 1u)));
}

@compute @workgroup_size(64)
fn bce_forward_backward(@builtin(local_invocation_id) lid: vec3<u32>) {
    let w = segment_weights();
    var acc = vec4<f32>(0.0);
    for (var i = lid.x; i < p.n; i += 64u) {
        acc += bce_row(i, w.x, w.y);
    }
    write_lane_total(lid.x, acc, w);
}

// Shaped for GPUs, two passes. bce_partial: 8 rows a group (n / 8 groups),
// dprob, and the group's sums in partials[group].
var<workgroup> row_part: array<vec4<f32>, 8>;

@compute @workgroup_size(8)
fn bce_partial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let w = segment_weights();
    let i = wid.x * 8u + lid.x;
    var acc = vec4<f32>(0.0);
    if (i < p.n) {
        acc = bce_row(i, w.x, w.y);
    }
    row_part[lid.x] = acc;
    workgroupBarrier();
    if (lid.x == 0u) {
        var total = vec4<f32>(0.0);
        for (var j = 0u; j < 8u; j++) {
            total += row_part[j];
        }
        partials[wid.x] = total;
    }
}

// bce_finish: one group sums the partials and writes the metrics.
@compute @workgroup_size(64)
fn bce_finish(@builtin(local_invocation_id) lid: vec3<u32>) {
    let w = segment_weights();
    let groups = (p.n + 7u) / 8u;
    var acc = vec4<f32>(0.0);
    for (var g = lid.x; g < groups; g += 64u) {
        acc += partials[g];
    }
    write_lane_total(lid.x, acc, w);
}
