// softmax_ce.wgsl: softmax cross-entropy over logits with integer labels, as
// PyTorch's CrossEntropyLoss (mean over the rows), for the classifier that
// scores samples. z: [rows, classes], per row r:
//   y_r  = labels[perm[counters[1] * rows + r]]   (u8 labels, four to a u32)
//   m_r  = max_c z_rc;  s_r = sum_c exp(z_rc - m_r);  p_rc = exp(z_rc - m_r) / s_r
//   loss = mean_r (log s_r - (z_r,y_r - m_r))
//   dz_rc = (p_rc - [c == y_r]) / rows                (written to dz)
//   metrics[0] = loss, metrics[1] = rows whose first arg-max is y_r
// The labels go through the epoch's index list like the images (gather.wgsl),
// so a step needs no label upload.
//
// Bindings, group 0:
//   0  uniform  p: Params {rows, classes, perm_len, _pad}
//   1  storage  z        read        [rows, classes] logits
//   2  storage  dz       read_write  [rows, classes] gradient
//   3  storage  labels   read        array<u32>  packed u8 labels
//   4  storage  perm     read        array<u32>  [perm_len]
//   5  storage  counters read        array<u32>  [1] batch within the epoch
//   6  storage  metrics  read_write  [2] (loss, correct)
// One workgroup of 64 invocations, each striding over the rows (classes is
// small: one row is one invocation's loop), then the sums are reduced in
// workgroup memory (one barrier).

struct Params {
    rows: u32,
    classes: u32,
    perm_len: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> z: array<f32>;
@group(0) @binding(2) var<storage, read_write> dz: array<f32>;
@group(0) @binding(3) var<storage, read> labels: array<u32>;
@group(0) @binding(4) var<storage, read> perm: array<u32>;
@group(0) @binding(5) var<storage, read> counters: array<u32>;
@group(0) @binding(6) var<storage, read_write> metrics: array<f32>;

var<workgroup> partial: array<vec2<f32>, 64>;

fn label_of(r: u32) -> u32 {
    let index = perm[min(counters[1] * p.rows + r, p.perm_len - 1u)];
    return (labels[index / 4u] >> (8u * (index % 4u))) & 0xffu;
}

@compute @workgroup_size(64)
fn softmax_ce(@builtin(local_invocation_id) lid: vec3<u32>) {
    var acc = vec2<f32>(0.0);
    for (var r = lid.x; r < p.rows; r += 64u) {
        let base = r * p.classes;
        let y = label_of(r);
        var m = z[base];
        var arg = 0u;
        for (var c = 1u; c < p.classes; c++) {
            if (z[base + c] > m) {
                m = z[base + c];
                arg = c;
            }
        }
        var s = 0.0;
        for (var c = 0u; c < p.classes; c++) {
            s += exp(z[base + c] - m);
        }
        let inv_rows = 1.0 / f32(p.rows);
        for (var c = 0u; c < p.classes; c++) {
            let prob = exp(z[base + c] - m) / s;
            dz[base + c] = (prob - select(0.0, 1.0, c == y)) * inv_rows;
        }
        acc += vec2(log(s) - (z[base + min(y, p.classes - 1u)] - m), select(0.0, 1.0, arg == y));
    }
    partial[lid.x] = acc;
    workgroupBarrier();
    if (lid.x == 0u) {
        var total = vec2<f32>(0.0);
        for (var j = 0u; j < 64u; j++) {
            total += partial[j];
        }
        metrics[0] = total.x / f32(p.rows);
        metrics[1] = total.y;
    }
}
