// matmul.wgsl: C = op(A) * op(B), f32, row-major, in the three forms that
// training a dense layer y = x W^T + b needs (no transpose kernels):
//   FORM 0 "NN": C[M,N] = A[M,K]   * B[K,N]     backward  dX = dY * W
//   FORM 1 "NT": C[M,N] = A[M,K]   * B[N,K]^T   forward   Y  = X * W^T
//   FORM 2 "TN": C[M,N] = A[K,M]^T * B[K,N]     backward  dW = dY^T * X
// Epilogue (NT only, the forward): C[r,c] = act(C[r,c] + bias[c]) when
// params.has_bias / params.act ask for it, so a dense layer's forward is one
// dispatch (act() from activation.wgsl, which the launcher prepends).
//
// Bindings, group 0:
//   0  uniform  p: Params {m, n, k, act, has_bias, form, _pad x2}
//   1  storage  a   : array<f32>        read
//   2  storage  b   : array<f32>        read
//   3  storage  c   : array<f32>        read_write   (M*N)
//   4  storage  a4  : array<vec4<f32>>  read   same buffer as a (vec4 view)
//   5  storage  b4  : array<vec4<f32>>  read   same buffer as b (vec4 view)
//   6  storage  bias: array<f32>        read   [N]; any buffer when unused
//
// Entry points (the launcher picks one per adapter, see src/kernels/matmul.rs):
//   matmul_naive  8x8 invocations, one output each: the GPU reference.
//   matmul_tiled  16x16 invocations, a 64x64 tile of C per workgroup, 4x4
//                 outputs per invocation, A and B staged in workgroup memory
//                 16 k-steps at a time. Wins on GPUs.
//   matmul_reg    8x8 invocations, 4x4 outputs per invocation, no workgroup
//                 memory and no barriers; vec4 loads along the contiguous
//                 axis when ALIGNED. The fallback on CPU adapters, where
//                 every barrier costs a coroutine switch.
//   matmul_sg     8 invocations = one subgroup, a 32x32 tile of C, op(A)
//                 shared by subgroupBroadcast; binds only 0, 3, 4, 5, 6. Wins
//                 on lavapipe (see its section below).
// Shapes that do not divide the tiles are handled: loads are clamped or
// zeroed, stores are masked.

// matmul_sg reads the form from params.form instead (one pipeline for all).
override FORM: u32 = 0u;
// True when the contiguous axes used by vec4 loads are multiples of 4:
// NT: K % 4 == 0; NN: N % 4 == 0; TN: M % 4 == 0 and N % 4 == 0.
override ALIGNED: bool = false;

struct Params {
    m: u32,
    n: u32,
    k: u32,
    act: u32,
    has_bias: u32,
    // The FORM code again, for matmul_sg (one pipeline for all forms).
    form: u32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
@group(0) @binding(4) var<storage, read> a4: array<vec4<f32>>;
@group(0) @binding(5) var<storage, read> b4: array<vec4<f32>>;
@group(0) @binding(6) var<storage, read> bias: array<f32>;

// The value stored at C[., col]: the forward's bias and activation applied
// (NT only; the backward forms store the product as it is).
fn epilogue(col: u32, v: f32) -> f32 {
    if (FORM != 1u) {
        return v;
    }
    var r = v;
    if (p.has_bias != 0u) {
        r += bias[col];
    }
    return act_apply(p.act, r);
}

// Index of op(A)[row, kk] in a.
fn a_index(row: u32, kk: u32) -> u32 {
    if (FORM == 2u) {
        return kk * p.m + row;
    }
    return row * p.k + kk;
}

// Index of op(B)[kk, col] in b.
fn b_index(kk: u32, col: u32) -> u32 {
    if (FORM == 1u) {
        return col * p.k + kk;
    }
    return kk * p.n + col;
}

@compute @workgroup_size(8, 8)
fn matmul_naive(@builtin(global_invocation_id) gid: vec3<u32>) {
    let col = gid.x;
    let row = gid.y;
    if (row >= p.m || col >= p.n) {
        return;
    }
    var acc = 0.0;
    for (var kk = 0u; kk < p.k; kk++) {
        acc = fma(a[a_index(row, kk)], b[b_index(kk, col)], acc);
    }
    c[row * p.n + col] = epilogue(col, acc);
}

const TILE: u32 = 64u;
const TK: u32 = 16u;
var<workgroup> a_tile: array<f32, 1024>; // [TK][TILE]: a_tile[kk * TILE + r]
var<workgroup> b_tile: array<f32, 1024>; // [TK][TILE]: b_tile[kk * TILE + c]

@compute @workgroup_size(16, 16)
fn matmul_tiled(@builtin(local_invocation_id) lid: vec3<u32>,
                @builtin(workgroup_id) wid: vec3<u32>) {
    let row0 = wid.y * TILE;
    let col0 = wid.x * TILE;
    let t = lid.y * 16u + lid.x;
    var acc: array<array<f32, 4>, 4>;
    for (var k0 = 0u; k0 < p.k; k0 += TK) {
        // Stage a TILE x TK block of op(A) and a TK x TILE block of op(B);
        // the element order follows the contiguous axis of each form so that
        // neighbouring invocations read neighbouring addresses.
        for (var i = 0u; i < 4u; i++) {
            let e = t + i * 256u;
            var r = e / TK;
            var ka = e % TK;
            if (FORM == 2u) {
                r = e % TILE;
                ka = e / TILE;
            }
            var av = 0.0;
            if (row0 + r < p.m && k0 + ka < p.k) {
                av = a[a_index(row0 + r, k0 + ka)];
            }
            a_tile[ka * TILE + r] = av;

            var cc = e % TILE;
            var kb = e / TILE;
            if (FORM == 1u) {
                cc = e / TK;
                kb = e % TK;
            }
            var bv = 0.0;
            if (col0 + cc < p.n && k0 + kb < p.k) {
                bv = b[b_index(k0 + kb, col0 + cc)];
            }
            b_tile[kb * TILE + cc] = bv;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < TK; kk++) {
            var ar: array<f32, 4>;
            var br: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                ar[i] = a_tile[kk * TILE + lid.y + 16u * i];
                br[i] = b_tile[kk * TILE + lid.x + 16u * i];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) {
                    acc[i][j] = fma(ar[i], br[j], acc[i][j]);
                }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + lid.y + 16u * i;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lid.x + 16u * j;
            if (row < p.m && col < p.n) {
                c[row * p.n + col] = epilogue(col, acc[i][j]);
            }
        }
    }
}

// Four consecutive elements of a starting at idx, zero past `end`.
fn a_run4(idx: u32, end: u32) -> vec4<f32> {
    if (ALIGNED) {
        return a4[idx / 4u];
    }
    var v = vec4<f32>(0.0);
    for (var t = 0u; t < 4u; t++) {
        if (idx + t < end) {
            v[t] = a[idx + t];
        }
    }
    return v;
}

fn b_run4(idx: u32, end: u32) -> vec4<f32> {
    if (ALIGNED) {
        return b4[idx / 4u];
    }
    var v = vec4<f32>(0.0);
    for (var t = 0u; t < 4u; t++) {
        if (idx + t < end) {
            v[t] = b[idx + t];
        }
    }
    return v;
}

@compute @workgroup_size(8, 8)
fn matmul_reg(@builtin(global_invocation_id) gid: vec3<u32>) {
    let row0 = gid.y * 4u;
    let col0 = gid.x * 4u;
    if (row0 >= p.m || col0 >= p.n) {
        return;
    }
    // Rows and columns past the edge are clamped for loading; their results
    // are never stored.
    let r = min(vec4<u32>(row0, row0 + 1u, row0 + 2u, row0 + 3u), vec4<u32>(p.m - 1u));
    let cl = min(vec4<u32>(col0, col0 + 1u, col0 + 2u, col0 + 3u), vec4<u32>(p.n - 1u));
    var acc: array<vec4<f32>, 4>;
    if (FORM == 1u) {
        // NT: both operands run along k; 8 vec4 loads feed 16 dot products.
        for (var kk = 0u; kk < p.k; kk += 4u) {
            var ar: array<vec4<f32>, 4>;
            var br: array<vec4<f32>, 4>;
            for (var i = 0u; i < 4u; i++) {
                ar[i] = a_run4(r[i] * p.k + kk, r[i] * p.k + p.k);
                br[i] = b_run4(cl[i] * p.k + kk, cl[i] * p.k + p.k);
            }
            for (var i = 0u; i < 4u; i++) {
                acc[i] += vec4<f32>(dot(ar[i], br[0]), dot(ar[i], br[1]),
                                    dot(ar[i], br[2]), dot(ar[i], br[3]));
            }
        }
    } else {
        // NN and TN: op(B) rows run along n; rank-1 update per k.
        let b_end_in_row = p.n;
        for (var kk = 0u; kk < p.k; kk++) {
            let bv = b_run4(kk * p.n + col0, kk * p.n + b_end_in_row);
            var av: vec4<f32>;
            if (FORM == 2u) {
                av = a_run4(kk * p.m + row0, kk * p.m + p.m);
                // Clamped rows past m read zero here; they are not stored.
            } else {
                av = vec4<f32>(a[r.x * p.k + kk], a[r.y * p.k + kk],
                               a[r.z * p.k + kk], a[r.w * p.k + kk]);
            }
            acc[0] = fma(vec4<f32>(av.x), bv, acc[0]);
            acc[1] = fma(vec4<f32>(av.y), bv, acc[1]);
            acc[2] = fma(vec4<f32>(av.z), bv, acc[2]);
            acc[3] = fma(vec4<f32>(av.w), bv, acc[3]);
        }
    }
    for (var i = 0u; i < 4u; i++) {
        let row = row0 + i;
        if (row < p.m) {
            for (var j = 0u; j < 4u; j++) {
                if (col0 + j < p.n) {
                    c[row * p.n + col0 + j] = epilogue(col0 + j, acc[i][j]);
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// matmul_sg: subgroup-cooperative kernel for CPU adapters.
//
// lavapipe runs 8 invocations of a subgroup as one 8-wide SIMD batch, and a
// storage load there costs a bounds-checked scalar load per lane and
// component, while subgroupBroadcast with a constant lane is one register
// shuffle. So each workgroup is exactly one subgroup of 8, computing a
// 32 x 32 tile of C: every lane owns 4 columns (NT: lane + 8j; NN and TN:
// 4 consecutive ones) and 32 rows. Per 4-step of k a lane loads four vec4
// of op(A), which the subgroup shares by broadcast, and four vec4 of op(B)
// of its own: 8 vector loads per 512 FMAs (matmul_reg: 8 per 64).
//
// One pipeline serves all three forms: the form is read from params.form
// (uniform), not from the FORM override, because LLVM spends 0.4-0.8 s on
// each copy of this body and a first launch on lavapipe waits for that.
// The forms differ only in where the four vec4 loads of each operand start
// and how far they step per k-block, and in two 4x4 transposes (on lavapipe,
// where each vec4 component is one SIMD register across the 8 lanes, a
// transpose renames registers; choosing it by form costs little: per 512
// FMAs, 8 vec4 selects):
//   op(A): NT/NN load rows row0 + lane + 8s along k: a[s] is row 8s + lane.
//          TN loads k = 4kb + t along rows 4 lane..4 lane + 4; transposed,
//          a[s] is row 4 lane + s, so tile row r = 8s + l holds C row
//          4l + s, which the store undoes.
//   op(B): NN/TN load k = 4kb + kk along the lane's 4 columns: b[kk].
//          NT loads columns lane + 8j along k; transposed, that is b[kk].
//
// Requires subgroups of at least 8 invocations (lane ids 0..7 all in the
// workgroup's one subgroup) and aligned shapes: K % 4 == 0, and for NN
// N % 4 == 0, for TN M % 4 == 0 and N % 4 == 0. The launcher checks both and
// uses matmul_reg otherwise (matmul_naive for tiny products, which compiles
// in a tenth of the time). Rows and columns past the edge are clamped for
// loading and masked for storing.
const SG_ROWS: u32 = 32u;
const SG_COLS: u32 = 32u;

// acc += a.x * b[0] + a.y * b[1] + a.z * b[2] + a.w * b[3]: one row of the
// tile over a 4-step of k; a holds op(A)[row, k0..k0+4], b[kk] holds
// op(B)[k0 + kk, the lane's 4 columns].
fn fma_k4(acc: vec4<f32>, a: vec4<f32>, b: array<vec4<f32>, 4>) -> vec4<f32> {
    return fma(vec4(a.w), b[3], fma(vec4(a.z), b[2], fma(vec4(a.y), b[1], fma(vec4(a.x), b[0], acc))));
}

// x transposed as a 4x4 matrix when `flip`, else x. select() rather than
// an if: measured on lavapipe, the if-version of the k-loop ran 5-10%
// slower than per-form pipelines, the select-version as fast.
fn transpose4_if(x: array<vec4<f32>, 4>, flip: bool) -> array<vec4<f32>, 4> {
    return array(select(x[0], vec4(x[0].x, x[1].x, x[2].x, x[3].x), flip),
                 select(x[1], vec4(x[0].y, x[1].y, x[2].y, x[3].y), flip),
                 select(x[2], vec4(x[0].z, x[1].z, x[2].z, x[3].z), flip),
                 select(x[3], vec4(x[0].w, x[1].w, x[2].w, x[3].w), flip));
}

@compute @workgroup_size(8)
fn matmul_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let form = p.form;
    let row0 = wid.y * SG_ROWS;
    let col0 = wid.x * SG_COLS;
    let k4 = p.k / 4u;
    let n4 = p.n / 4u;
    let m4 = p.m / 4u;
    // vec4 indices of the lane's four loads of each operand for k-block 0,
    // and how far they move per k-block.
    var a_at: vec4<u32>;
    var a_step: u32;
    if (form == 2u) {
        a_at = vec4(0u, 1u, 2u, 3u) * m4 + min(row0 / 4u + lane, m4 - 1u);
        a_step = 4u * m4;
    } else {
        a_at = min(vec4(row0 + lane) + vec4(0u, 8u, 16u, 24u), vec4(p.m - 1u)) * k4;
        a_step = 1u;
    }
    var b_at: vec4<u32>;
    var b_step: u32;
    if (form == 1u) {
        b_at = min(vec4(col0 + lane) + vec4(0u, 8u, 16u, 24u), vec4(p.n - 1u)) * k4;
        b_step = 1u;
    } else {
        b_at = vec4(0u, 1u, 2u, 3u) * n4 + min(col0 / 4u + lane, n4 - 1u);
        b_step = 4u * n4;
    }
    var acc: array<vec4<f32>, 32>;
    for (var kb = 0u; kb < k4; kb++) {
        let a = transpose4_if(array(a4[a_at.x], a4[a_at.y], a4[a_at.z], a4[a_at.w]), form == 2u);
        let b = transpose4_if(array(b4[b_at.x], b4[b_at.y], b4[b_at.z], b4[b_at.w]), form == 1u);
        a_at += vec4(a_step);
        b_at += vec4(b_step);
        // Tile row 8s + l is lane l of a[s]; subgroupBroadcast needs
        // constant lanes, hence the written-out rows.
        acc[0] = fma_k4(acc[0], subgroupBroadcast(a[0], 0u), b);
        acc[1] = fma_k4(acc[1], subgroupBroadcast(a[0], 1u), b);
        acc[2] = fma_k4(acc[2], subgroupBroadcast(a[0], 2u), b);
        acc[3] = fma_k4(acc[3], subgroupBroadcast(a[0], 3u), b);
        acc[4] = fma_k4(acc[4], subgroupBroadcast(a[0], 4u), b);
        acc[5] = fma_k4(acc[5], subgroupBroadcast(a[0], 5u), b);
        acc[6] = fma_k4(acc[6], subgroupBroadcast(a[0], 6u), b);
        acc[7] = fma_k4(acc[7], subgroupBroadcast(a[0], 7u), b);
        acc[8] = fma_k4(acc[8], subgroupBroadcast(a[1], 0u), b);
        acc[9] = fma_k4(acc[9], subgroupBroadcast(a[1], 1u), b);
        acc[10] = fma_k4(acc[10], subgroupBroadcast(a[1], 2u), b);
        acc[11] = fma_k4(acc[11], subgroupBroadcast(a[1], 3u), b);
        acc[12] = fma_k4(acc[12], subgroupBroadcast(a[1], 4u), b);
        acc[13] = fma_k4(acc[13], subgroupBroadcast(a[1], 5u), b);
        acc[14] = fma_k4(acc[14], subgroupBroadcast(a[1], 6u), b);
        acc[15] = fma_k4(acc[15], subgroupBroadcast(a[1], 7u), b);
        acc[16] = fma_k4(acc[16], subgroupBroadcast(a[2], 0u), b);
        acc[17] = fma_k4(acc[17], subgroupBroadcast(a[2], 1u), b);
        acc[18] = fma_k4(acc[18], subgroupBroadcast(a[2], 2u), b);
        acc[19] = fma_k4(acc[19], subgroupBroadcast(a[2], 3u), b);
        acc[20] = fma_k4(acc[20], subgroupBroadcast(a[2], 4u), b);
        acc[21] = fma_k4(acc[21], subgroupBroadcast(a[2], 5u), b);
        acc[22] = fma_k4(acc[22], subgroupBroadcast(a[2], 6u), b);
        acc[23] = fma_k4(acc[23], subgroupBroadcast(a[2], 7u), b);
        acc[24] = fma_k4(acc[24], subgroupBroadcast(a[3], 0u), b);
        acc[25] = fma_k4(acc[25], subgroupBroadcast(a[3], 1u), b);
        acc[26] = fma_k4(acc[26], subgroupBroadcast(a[3], 2u), b);
        acc[27] = fma_k4(acc[27], subgroupBroadcast(a[3], 3u), b);
        acc[28] = fma_k4(acc[28], subgroupBroadcast(a[3], 4u), b);
        acc[29] = fma_k4(acc[29], subgroupBroadcast(a[3], 5u), b);
        acc[30] = fma_k4(acc[30], subgroupBroadcast(a[3], 6u), b);
        acc[31] = fma_k4(acc[31], subgroupBroadcast(a[3], 7u), b);
    }
    // NT's epilogue on whole rows of the lane's 4 columns (lane + 8j).
    var bias4 = vec4(0.0);
    if (form == 1u && p.has_bias != 0u) {
        bias4 = vec4(bias[min(col0 + lane, p.n - 1u)], bias[min(col0 + lane + 8u, p.n - 1u)],
                     bias[min(col0 + lane + 16u, p.n - 1u)], bias[min(col0 + lane + 24u, p.n - 1u)]);
    }
    for (var r = 0u; r < SG_ROWS; r++) {
        var row = row0 + r;
        if (form == 2u) {
            row = row0 + 4u * (r % 8u) + r / 8u;
        }
        var v = acc[r];
        if (form == 1u) {
            v = act_apply4(p.act, v + bias4);
        }
        for (var j = 0u; j < 4u; j++) {
            var col = col0 + lane * 4u + j;
            if (form == 1u) {
                col = col0 + lane + 8u * j;
            }
            if (row < p.m && col < p.n) {
                c[row * p.n + col] = v[j];
            }
        }
    }
}
