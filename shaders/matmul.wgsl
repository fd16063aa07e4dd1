// matmul.wgsl: C = op(A) * op(B), f32, row-major, in the three forms that
// training a dense layer y = x W^T + b needs (no transpose kernels):
//   FORM 0 "NN": C[M,N] = A[M,K]   * B[K,N]     backward  dX = dY * W
//   FORM 1 "NT": C[M,N] = A[M,K]   * B[N,K]^T   forward   Y  = X * W^T
//   FORM 2 "TN": C[M,N] = A[K,M]^T * B[K,N]     backward  dW = dY^T * X
// Epilogue (NT only, the forward): C[r,c] = act(C[r,c] + bias[c]) when
// params.has_bias / params.act ask for it, so a dense layer's forward is one
// dispatch (act() from activation.wgsl, which the launcher prepends).
//
// Bindings: the table in matmul_common.wgsl, which the launcher prepends
// (with activation.wgsl) to this file and to matmul_sg.wgsl.
//
// Entry points (the launcher picks one per adapter, see src/engine/kernels/matmul.rs):
//   matmul_naive  8x8 invocations, one output each: the GPU reference.
//   matmul_tiled  16x16 invocations, a 64x64 tile of C per workgroup, 4x4
//                 outputs per invocation, A and B staged in workgroup memory
//                 16 k-steps at a time. Wins on GPUs.
//   matmul_reg    8x8 invocations, 4x4 outputs per invocation, no workgroup
//                 memory and no barriers; vec4 loads along the contiguous
//                 axis when ALIGNED. The fallback on CPU adapters, where
//                 every barrier costs a coroutine switch.
// (matmul_sg, the subgroup kernel, is in matmul_sg.wgsl: a module of its
// own, created only on devices with the SUBGROUP feature.)
// Shapes that do not divide the tiles are handled: loads are clamped or
// zeroed, stores are masked.

override FORM: u32 = 0u;
// True when the contiguous axes used by vec4 loads are multiples of 4:
// NT: K % 4 == 0; NN: N % 4 == 0; TN: M % 4 == 0 and N % 4 == 0.
override ALIGNED: bool = false;

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
