// gradient_penalty.wgsl: WGAN-GP's gradient penalty (Gulrajani et al. 2017)
// around the critic's double backward (nn/penalty.rs records the passes
// through the critic; these are the pieces between them):
//   gp_mix:    x_hat[r] = eps_r x[r] + (1 - eps_r) G(z)[r], eps_r ~ U[0, 1) per
//              sample: bits r % 4 of Philox counter (r / 4, t, stream, 0),
//              t = counters[0] (steps done), eps = (bits >> 8) * 2^-24.
//              The input is D's [G(z); x]: fakes in rows [0, B), reals in [B, 2B).
//   gp_norms:  for g = grad_x D(x_hat) [B, dim], per row
//              n_r = ||g_r||_2 and, in place, g_r <- c_r g_r with
//              c_r = (2 lambda / B) (n_r - 1) / n_r (0 where n_r = 0):
//              the gradient of P = (lambda / B) sum_r (n_r - 1)^2 w.r.t. g.
//   gp_total:  P and the mean n_r into metrics[out], metrics[out + 1]; P added
//              to metrics[loss_at] (the critic's loss); a non-finite P raises
//              the divergence flag as hinge.wgsl does.
//   gp_add:    grads[i] += extra[i], i < n (the penalty's weight gradients
//              onto the Wasserstein loss's).
//
// Shapes: d_input [2B, dim], x_hat [B, dim], per_row [B] (eps or n_r), g [B, dim].
// Bindings, group 0:
//   0  uniform  p: Params {rows, dim, key_lo, key_hi, stream, out, loss_at, lambda}
//   1  storage  src      read        gp_mix: d_input; gp_add: extra [n]
//   2  storage  dst      read_write  gp_mix: x_hat; gp_norms: g (in place); gp_add: grads [n] (n = rows)
//   3  storage  per_row  read_write  gp_mix: eps [B]; gp_norms, gp_total: n_r [B]
//   4  storage  metrics  read_write  gp_total
//   5  storage  counters read_write  array<atomic<u32>> [4]: [0] steps done, [2] non-finite flag
// gp_mix: one invocation per 4 pixels of a row (64 a group, grid (dim/4, B)).
// gp_norms: one workgroup of 64 per row; lanes stride over the row, their
// sums are added by lane 0 in a fixed order. gp_total: one workgroup.
// gp_add: one invocation per element.

struct Params {
    rows: u32,
    dim: u32,
    key_lo: u32,
    key_hi: u32,
    stream: u32,
    out: u32,
    loss_at: u32,
    lambda: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;
@group(0) @binding(3) var<storage, read_write> per_row: array<f32>;
@group(0) @binding(4) var<storage, read_write> metrics: array<f32>;
@group(0) @binding(5) var<storage, read_write> counters: array<atomic<u32>>;

var<workgroup> partial: array<f32, 64>;

fn eps_of(r: u32) -> f32 {
    let bits = philox4x32_10(vec4<u32>(r / 4u, atomicLoad(&counters[0]), p.stream, 0u), vec2<u32>(p.key_lo, p.key_hi));
    return f32(bits[r % 4u] >> 8u) * (1.0 / 16777216.0);
}

@compute @workgroup_size(64)
fn gp_mix(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.y;
    let eps = eps_of(r);
    if (gid.x == 0u) {
        per_row[r] = eps;
    }
    for (var k = 0u; k < 4u; k++) {
        let j = gid.x * 4u + k;
        if (j < p.dim) {
            let fake = src[r * p.dim + j];
            let real = src[(p.rows + r) * p.dim + j];
            dst[r * p.dim + j] = eps * real + (1.0 - eps) * fake;
        }
    }
}

@compute @workgroup_size(64)
fn gp_norms(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let base = wid.x * p.dim;
    var acc = 0.0;
    for (var j = lid.x; j < p.dim; j += 64u) {
        acc += dst[base + j] * dst[base + j];
    }
    partial[lid.x] = acc;
    workgroupBarrier();
    if (lid.x == 0u) {
        var total = 0.0;
        for (var k = 0u; k < 64u; k++) {
            total += partial[k];
        }
        let norm = sqrt(total);
        per_row[wid.x] = norm;
        partial[0] = select(0.0, 2.0 * p.lambda / f32(p.rows) * (norm - 1.0) / norm, norm > 0.0);
    }
    workgroupBarrier();
    let c = partial[0];
    for (var j = lid.x; j < p.dim; j += 64u) {
        dst[base + j] = c * dst[base + j];
    }
}

@compute @workgroup_size(64)
fn gp_total(@builtin(local_invocation_id) lid: vec3<u32>) {
    var acc = vec2<f32>(0.0);
    for (var r = lid.x; r < p.rows; r += 64u) {
        let n = per_row[r];
        acc += vec2<f32>((n - 1.0) * (n - 1.0), n);
    }
    partial[lid.x] = acc.x;
    workgroupBarrier();
    var penalty = 0.0;
    if (lid.x == 0u) {
        for (var k = 0u; k < 64u; k++) {
            penalty += partial[k];
        }
    }
    workgroupBarrier();
    partial[lid.x] = acc.y;
    workgroupBarrier();
    if (lid.x == 0u) {
        var norms = 0.0;
        for (var k = 0u; k < 64u; k++) {
            norms += partial[k];
        }
        let w = 1.0 / f32(p.rows);
        let gp = p.lambda * penalty * w;
        metrics[p.out] = gp;
        metrics[p.out + 1u] = norms * w;
        metrics[p.loss_at] = metrics[p.loss_at] + gp;
        if ((bitcast<u32>(gp) & 0x7f800000u) == 0x7f800000u) {
            atomicMax(&counters[2], 0xffffffffu - (atomicLoad(&counters[0]) + 1u));
        }
    }
}

@compute @workgroup_size(64)
fn gp_add(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    if (i < p.rows) {
        dst[i] = dst[i] + src[i];
    }
}
