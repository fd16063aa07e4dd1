// batchnorm.wgsl: BatchNorm1d over x: [rows = batch, cols = features], fused
// with the activation that follows it (ACT, activation.wgsl's codes) and, in
// backward, with the bias gradient of the layer before it. BatchNorm2d on
// NHWC images is the same with rows = N*H*W (conv.wgsl's layout).
// ACCUMULATE (backward): dgamma, dbeta and dbias are added to, not
// overwritten: the second of two row groups normalised apart (a
// discriminator's real and fake halves) adds its sums to the first's.
//
// train forward, per feature c (B = rows):
//   mean = sum_r x / B;  var = sum_r (x - mean)^2 / B      (biased)
//   invstd = 1 / sqrt(var + eps)
//   xhat = (x - mean) * invstd;  y = act(gamma * xhat + beta)
//   running_mean = (1 - momentum) running_mean + momentum mean
//   running_var  = (1 - momentum) running_var  + momentum var B / (B - 1)
//   x is overwritten with xhat (kept for backward); invstd is saved.
// eval forward: y = act(gamma (x - running_mean) / sqrt(running_var + eps) + beta)
// backward, per feature, with g = dy * act'(y):
//   dbeta = sum_r g;  dgamma = sum_r g xhat
//   dx = gamma invstd / B * (B g - dbeta - xhat dgamma)   (written over dy)
//   dbias = sum_r dx       (bias of the dense layer feeding the batch norm)
//
// Bindings, group 0:
//   0  uniform  p: Params {rows, cols, momentum, eps, first_row}
//   1  storage  gamma        read        [cols]
//   2  storage  beta         read        [cols]
//   3  storage  x            read_write  [rows, cols]  train: x -> xhat; eval: x;
//                                                      backward: xhat
//   4  storage  y            read_write  [rows, cols]  act output (backward reads it)
//   5  storage  running_mean read_write  [cols]
//   6  storage  running_var  read_write  [cols]
//   7  storage  invstd       read_write  [cols]  saved by train forward
//   8  storage  dy           read_write  [rows, cols]  backward: dy -> dx
//   9  storage  dgamma       read_write  [cols]
//  10  storage  dbeta        read_write  [cols]
//  11  storage  dbias        read_write  [cols]
// Entry points: bn_forward_train (0-7), bn_forward_eval (0-6),
// bn_backward (0, 1, 3, 4, 7-11), and the same sums shaped for GPUs:
// bn_forward_train_tree, bn_backward_tree (same bindings).
// bn_forward_train, bn_backward ("column"): 64 invocations a group, one
// feature each, the invocation owns its column's sums: no barriers, which
// is what lavapipe (a coroutine switch per barrier) wants.
// The _tree entry points: 8 features x 32 row lanes a group, the sums by
// tree_sum2 (tree_reduce.wgsl, prepended): cols / 8 groups, what a GPU wants.
// bn_forward_eval: 64 invocations a group, one element each.

override ACT: u32 = 1u;
override ACCUMULATE: bool = false;

struct Params {
    rows: u32,
    cols: u32,
    momentum: f32,
    eps: f32,
    // The rows normalised are first_row .. first_row + rows of the buffers
    // (a row group; 0 for a whole batch).
    first_row: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> gamma: array<f32>;
@group(0) @binding(2) var<storage, read> beta: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
@group(0) @binding(5) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(6) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(7) var<storage, read_write> invstd: array<f32>;
@group(0) @binding(8) var<storage, read_write> dy: array<f32>;
@group(0) @binding(9) var<storage, read_write> dgamma: array<f32>;
@group(0) @binding(10) var<storage, read_write> dbeta: array<f32>;
@group(0) @binding(11) var<storage, read_write> dbias: array<f32>;

// Flat index of row r (of the group) and column c.
fn at(r: u32, c: u32) -> u32 {
    return (p.first_row + r) * p.cols + c;
}

fn act(v: f32) -> f32 {
    return act_apply(ACT, v);
}

fn bn_act_grad(out: f32) -> f32 {
    return act_grad_from_output(ACT, out);
}

// The sums of one column, written or (ACCUMULATE) added.
fn store_grads(c: u32, sum_g: f32, sum_gx: f32) {
    if (ACCUMULATE) {
        dbeta[c] += sum_g;
        dgamma[c] += sum_gx;
    } else {
        dbeta[c] = sum_g;
        dgamma[c] = sum_gx;
    }
}

fn store_dbias(c: u32, sum_dx: f32) {
    if (ACCUMULATE) {
        dbias[c] += sum_dx;
    } else {
        dbias[c] = sum_dx;
    }
}

@compute @workgroup_size(64)
fn bn_forward_train(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.cols) {
        return;
    }
    let n = f32(p.rows);
    var sum = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        sum += x[at(r, c)];
    }
    let mean = sum / n;
    var sq = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        let d = x[at(r, c)] - mean;
        sq += d * d;
    }
    let variance = sq / n;
    let inv = 1.0 / sqrt(variance + p.eps);
    invstd[c] = inv;
    let unbiased = variance * n / max(n - 1.0, 1.0);
    running_mean[c] = (1.0 - p.momentum) * running_mean[c] + p.momentum * mean;
    running_var[c] = (1.0 - p.momentum) * running_var[c] + p.momentum * unbiased;
    let g = gamma[c];
    let b = beta[c];
    for (var r = 0u; r < p.rows; r++) {
        let i = at(r, c);
        let xh = (x[i] - mean) * inv;
        x[i] = xh;
        y[i] = act(g * xh + b);
    }
}

@compute @workgroup_size(64)
fn bn_forward_eval(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 64u;
    if (i >= p.rows * p.cols) {
        return;
    }
    let c = i % p.cols;
    let xh = (x[i] - running_mean[c]) / sqrt(running_var[c] + p.eps);
    y[i] = act(gamma[c] * xh + beta[c]);
}

@compute @workgroup_size(64)
fn bn_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let c = gid.x;
    if (c >= p.cols) {
        return;
    }
    var sum_g = 0.0;
    var sum_gx = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        let i = at(r, c);
        let g = dy[i] * bn_act_grad(y[i]);
        sum_g += g;
        sum_gx += g * x[i];
    }
    store_grads(c, sum_g, sum_gx);
    let n = f32(p.rows);
    let scale = gamma[c] * invstd[c] / n;
    var sum_dx = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        let i = at(r, c);
        let g = dy[i] * bn_act_grad(y[i]);
        let dx = scale * (n * g - sum_g - x[i] * sum_gx);
        dy[i] = dx;
        sum_dx += dx;
    }
    store_dbias(c, sum_dx);
}

// The train forward with the batch sums shaped for GPUs (see the header).
@compute @workgroup_size(8, 32)
fn bn_forward_train_tree(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let col = lid.x;
    let lane = lid.y;
    let c = wid.x * TREE_COLS + col;
    let valid = c < p.cols;
    let n = f32(p.rows);
    var sum = 0.0;
    if (valid) {
        for (var r = lane; r < p.rows; r += TREE_LANES) {
            sum += x[at(r, c)];
        }
    }
    let mean = tree_sum2(col, lane, vec2(sum, 0.0)).x / n;
    var sq = 0.0;
    if (valid) {
        for (var r = lane; r < p.rows; r += TREE_LANES) {
            let d = x[at(r, c)] - mean;
            sq += d * d;
        }
    }
    let variance = tree_sum2(col, lane, vec2(sq, 0.0)).x / n;
    if (!valid) {
        return;
    }
    let inv = 1.0 / sqrt(variance + p.eps);
    if (lane == 0u) {
        invstd[c] = inv;
        let unbiased = variance * n / max(n - 1.0, 1.0);
        running_mean[c] = (1.0 - p.momentum) * running_mean[c] + p.momentum * mean;
        running_var[c] = (1.0 - p.momentum) * running_var[c] + p.momentum * unbiased;
    }
    let g = gamma[c];
    let b = beta[c];
    // Each lane rewrites only the rows it read.
    for (var r = lane; r < p.rows; r += TREE_LANES) {
        let i = at(r, c);
        let xh = (x[i] - mean) * inv;
        x[i] = xh;
        y[i] = act(g * xh + b);
    }
}

// The backward with the batch sums shaped for GPUs (see the header).
@compute @workgroup_size(8, 32)
fn bn_backward_tree(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let col = lid.x;
    let lane = lid.y;
    let c = wid.x * TREE_COLS + col;
    let valid = c < p.cols;
    var sums = vec2(0.0);
    if (valid) {
        for (var r = lane; r < p.rows; r += TREE_LANES) {
            let i = at(r, c);
            let g = dy[i] * bn_act_grad(y[i]);
            sums += vec2(g, g * x[i]);
        }
    }
    let total = tree_sum2(col, lane, sums);
    let sum_g = total.x;
    let sum_gx = total.y;
    var sum_dx = 0.0;
    if (valid) {
        if (lane == 0u) {
            store_grads(c, sum_g, sum_gx);
        }
        let n = f32(p.rows);
        let scale = gamma[c] * invstd[c] / n;
        for (var r = lane; r < p.rows; r += TREE_LANES) {
            let i = at(r, c);
            let g = dy[i] * bn_act_grad(y[i]);
            let dx = scale * (n * g - sum_g - x[i] * sum_gx);
            dy[i] = dx;
            sum_dx += dx;
        }
    }
    let dbias_sum = tree_sum2(col, lane, vec2(sum_dx, 0.0)).x;
    if (valid && lane == 0u) {
        store_dbias(c, dbias_sum);
    }
}
