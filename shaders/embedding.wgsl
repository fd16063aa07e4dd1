// embedding.wgsl: a label embedding (PyTorch's nn.Embedding(classes, E))
// joined to a network's input, as a conditional GAN feeds its networks.
//
// The joined rows are W >= X + E wide, W a multiple of 4, the columns past
// X + E zero: the next layer's matmuls then take their aligned (vec4)
// paths, with a copy of its weight padded to W columns (pad_weight) and its
// gradient cropped back (crop_grad). Zero columns add nothing to a product,
// and the padding's gradient is never read.
//
// join (forward):  for r < rows, c < W:
//   joined[r, c] = x[r, c]                           c < X
//                = table[label(r), c - X]             X <= c < X + E
//                = 0                                  X + E <= c < W
//   label(r) = min(labels[r], classes - 1)   (a corrupt label reads the last row)
// split (input gradient):  d_x[r, c] = d_joined[r, c]   for c < X
// table_grad (weight gradient):  for k < classes, j < E:
//   d_table[k, j] = sum over r < rows with label(r) == k of d_joined[r, X + j]
//   in row order, one invocation per (k, j): deterministic, no atomics.
// pad_weight:  dst[o, c] = src[o, c] for c < X + E, 0 for X + E <= c < W
//   (src [rows, X + E], dst [rows, W]; rows = the layer's outputs)
// crop_grad:   dst[o, c] = src[o, c] for c < X + E (src [rows, W], dst [rows, X + E])
// Shapes: x [rows, X], joined and d_joined [rows, W], table and d_table
// [classes, E], labels [rows] u32.
//
// Bindings, group 0:
//   0  uniform  p: Params {rows, x_cols, emb_cols, classes, width}
//   1  storage  x         read        [rows, X]           (join)
//   2  storage  table     read        [classes, E]        (join)
//   3  storage  labels    read        [rows] u32          (join, table_grad)
//   4  storage  joined    read_write  [rows, W]           (join)
//   5  storage  d_joined  read        [rows, W]           (split, table_grad)
//   6  storage  d_x       read_write  [rows, X]           (split)
//   7  storage  d_table   read_write  [classes, E]        (table_grad)
//   8  storage  src       read                            (pad_weight, crop_grad)
//   9  storage  dst       read_write                      (pad_weight, crop_grad)
// 256 invocations a group, one output element each; 2-D grid past 65535 groups.

struct Params {
    rows: u32,
    x_cols: u32,
    emb_cols: u32,
    classes: u32,
    width: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read_write> joined: array<f32>;
@group(0) @binding(5) var<storage, read> d_joined: array<f32>;
@group(0) @binding(6) var<storage, read_write> d_x: array<f32>;
@group(0) @binding(7) var<storage, read_write> d_table: array<f32>;
@group(0) @binding(8) var<storage, read> src: array<f32>;
@group(0) @binding(9) var<storage, read_write> dst: array<f32>;

fn label_of(r: u32) -> u32 {
    return min(labels[r], p.classes - 1u);
}

@compute @workgroup_size(256)
fn join(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 256u;
    if (i >= p.rows * p.width) {
        return;
    }
    let r = i / p.width;
    let c = i % p.width;
    if (c < p.x_cols) {
        joined[i] = x[r * p.x_cols + c];
    } else if (c < p.x_cols + p.emb_cols) {
        joined[i] = table[label_of(r) * p.emb_cols + (c - p.x_cols)];
    } else {
        joined[i] = 0.0;
    }
}

@compute @workgroup_size(256)
fn split(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 256u;
    if (i >= p.rows * p.x_cols) {
        return;
    }
    let r = i / p.x_cols;
    let c = i % p.x_cols;
    d_x[i] = d_joined[r * p.width + c];
}

@compute @workgroup_size(256)
fn table_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 256u;
    if (i >= p.classes * p.emb_cols) {
        return;
    }
    let k = i / p.emb_cols;
    let j = i % p.emb_cols;
    var acc = 0.0;
    for (var r = 0u; r < p.rows; r++) {
        if (label_of(r) == k) {
            acc += d_joined[r * p.width + p.x_cols + j];
        }
    }
    d_table[i] = acc;
}

@compute @workgroup_size(256)
fn pad_weight(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 256u;
    if (i >= p.rows * p.width) {
        return;
    }
    let o = i / p.width;
    let c = i % p.width;
    let cols = p.x_cols + p.emb_cols;
    if (c < cols) {
        dst[i] = src[o * cols + c];
    } else {
        dst[i] = 0.0;
    }
}

@compute @workgroup_size(256)
fn crop_grad(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 256u;
    let cols = p.x_cols + p.emb_cols;
    if (i >= p.rows * cols) {
        return;
    }
    let o = i / cols;
    let c = i % cols;
    dst[i] = src[o * p.width + c];
}
