// bias_act.wgsl: fused bias + activation for a dense layer's output.
//   forward (in place):  x[r,c] = act(x[r,c] + bias[c])         x: [rows, cols]
//   backward (in place): dz[r,c] = dy[r,c] * act'(y[r,c])        y = act output
//                        dbias[c] = sum_r dz[r,c]                 dbias: [cols]
// act() and act' (from the output y) come from activation.wgsl, which the
// launcher prepends (with tree_reduce.wgsl). The trainer fuses the forward into the matmul epilogue
// (matmul.wgsl); bias_act_forward stays as the unfused reference.
//
// act: 0 identity, 1 ReLU, 2 LeakyReLU(0.2), 3 tanh, 4 sigmoid.
// has_bias: 0 skips the bias add (forward) and dbias (backward).
// Both are uniforms, not pipeline constants: one pipeline per entry point
// serves every layer. On lavapipe each pipeline costs about 50 ms of LLVM
// compile at its first dispatch, and a uniform switch costs next to nothing
// next to the loads.
//
// Bindings, group 0 (each entry point uses a prefix of this table):
//   0  uniform  p: Params {rows, cols, act, has_bias}
//   1  storage  bias  : array<f32>  read        [cols]
//   2  storage  x     : array<f32>  read_write  forward: x; backward: dy -> dz
//   3  storage  y     : array<f32>  read        backward only: act output
//   4  storage  dbias : array<f32>  read_write  backward only [cols]
//
// bias_act_forward: 256 invocations a group, one element each.
// bias_act_backward ("column"): 64 invocations a group, one column each (it
// owns the column's sum: no atomics and no barriers; what lavapipe wants).
// bias_act_backward_tree: 8 columns x 32 row lanes a group, the column sums
// by tree_sum2 (tree_reduce.wgsl, prepended): cols / 8 groups, for GPUs.

struct Params {
    rows: u32,
    cols: u32,
    act: u32,
    has_bias: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> bias: array<f32>;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;
@group(0) @binding(3) var<storage, read> y: array<f32>;
@group(0) @binding(4) var<storage, read_write> dbias: array<f32>;

@compute @workgroup_size(256)
fn bias_act_forward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 256u;
    if (i >= p.rows * p.cols) {
        return;
    }
    var v = x[i];
    if (p.has_bias != 0u) {
        v += bias[i % p.cols];
    }
    x[i] = act_apply(p.act, v);
}

@compute @workgroup_size(64)
fn bias_act_backward(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    if (col >= p.cols) {
        return;
    }
    var sum = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        let i = r * p.cols + col;
        let dz = x[i] * act_grad_from_output(p.act, y[i]);
        x[i] = dz;
        sum += dz;
    }
    if (p.has_bias != 0u) {
        dbias[col] = sum;
    }
}

// The backward with the column sums shaped for GPUs (see the header).
@compute @workgroup_size(8, 32)
fn bias_act_backward_tree(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let col = lid.x;
    let lane = lid.y;
    let c = wid.x * TREE_COLS + col;
    let valid = c < p.cols;
    var sum = 0.0;
    if (valid) {
        for (var r = lane; r < p.rows; r += TREE_LANES) {
            let i = r * p.cols + c;
            let dz = x[i] * act_grad_from_output(p.act, y[i]);
            x[i] = dz;
            sum += dz;
        }
    }
    let total = tree_sum2(col, lane, vec2(sum, 0.0)).x;
    if (valid && lane == 0u && p.has_bias != 0u) {
        dbias[c] = total;
    }
}
