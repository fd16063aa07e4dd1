// tree_reduce.wgsl: column sums over the batch, shaped for GPUs; prepended
// to batchnorm.wgsl and bias_act.wgsl (WGSL has no include).
//   For a block of TREE_COLS = 8 columns, 32 row lanes each sum the rows
//   r = lane, lane + 32, ... of their column; then
//   tree_sum2(col, lane, v) = sum over the 32 lanes of v[lane][col]
//   in log2(32) = 5 halving steps in workgroup memory (one barrier each).
// A workgroup is TREE_COLS x TREE_LANES = 8 x 32 = 256 invocations (WebGPU's
// default limit), so a [rows, cols] reduction launches cols / 8 workgroups
// (128 for 1024 features, where one invocation per column launched 16).
// Every invocation of the workgroup must call tree_sum2 (barriers need
// uniform control flow); invocations past the last column pass zeros.
//
// Bindings: none (functions and workgroup memory only).

const TREE_COLS: u32 = 8u;
const TREE_LANES: u32 = 32u;

// [lane][col] partial sums, two per invocation.
var<workgroup> tree_part: array<vec2<f32>, 256>;

fn tree_sum2(col: u32, lane: u32, v: vec2<f32>) -> vec2<f32> {
    tree_part[lane * TREE_COLS + col] = v;
    workgroupBarrier();
    for (var half = TREE_LANES / 2u; half > 0u; half = half / 2u) {
        if (lane < half) {
            tree_part[lane * TREE_COLS + col] += tree_part[(lane + half) * TREE_COLS + col];
        }
        workgroupBarrier();
    }
    let total = tree_part[col];
    // Nobody writes tree_part again until every lane has read its total.
    workgroupBarrier();
    return total;
}
