// matmul_sg.wgsl: C = op(A) * op(B) as matmul.wgsl computes it, in the same
// three forms (C[M,N]; NN: A[M,K] B[K,N]; NT: A[M,K] B[N,K]^T, with the
// forward's epilogue act(C + bias); TN: A[K,M]^T B[K,N]), by one subgroup
// per 32x32 tile of C. Needs the SUBGROUP feature (subgroupBroadcast,
// subgroup_invocation_id), so it is a module of its own: a device without
// subgroups never creates it, and every other kernel validates without.
//
// Bindings: those of matmul_common.wgsl (prepended, with activation.wgsl);
// this entry point uses 0 (p), 3 (c), 4 (a4), 5 (b4) and 6 (bias).
//
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

// acc[8s + l] += a[s] of lane l (broadcast) times b, for the 32 rows of
// the tile: one 4-step of k. subgroupBroadcast needs constant lanes, hence
// the written-out rows.
fn tile_fma(acc: ptr<function, array<vec4<f32>, 32>>, a: array<vec4<f32>, 4>, b: array<vec4<f32>, 4>) {
    (*acc)[0] = fma_k4((*acc)[0], subgroupBroadcast(a[0], 0u), b);
    (*acc)[1] = fma_k4((*acc)[1], subgroupBroadcast(a[0], 1u), b);
    (*acc)[2] = fma_k4((*acc)[2], subgroupBroadcast(a[0], 2u), b);
    (*acc)[3] = fma_k4((*acc)[3], subgroupBroadcast(a[0], 3u), b);
    (*acc)[4] = fma_k4((*acc)[4], subgroupBroadcast(a[0], 4u), b);
    (*acc)[5] = fma_k4((*acc)[5], subgroupBroadcast(a[0], 5u), b);
    (*acc)[6] = fma_k4((*acc)[6], subgroupBroadcast(a[0], 6u), b);
    (*acc)[7] = fma_k4((*acc)[7], subgroupBroadcast(a[0], 7u), b);
    (*acc)[8] = fma_k4((*acc)[8], subgroupBroadcast(a[1], 0u), b);
    (*acc)[9] = fma_k4((*acc)[9], subgroupBroadcast(a[1], 1u), b);
    (*acc)[10] = fma_k4((*acc)[10], subgroupBroadcast(a[1], 2u), b);
    (*acc)[11] = fma_k4((*acc)[11], subgroupBroadcast(a[1], 3u), b);
    (*acc)[12] = fma_k4((*acc)[12], subgroupBroadcast(a[1], 4u), b);
    (*acc)[13] = fma_k4((*acc)[13], subgroupBroadcast(a[1], 5u), b);
    (*acc)[14] = fma_k4((*acc)[14], subgroupBroadcast(a[1], 6u), b);
    (*acc)[15] = fma_k4((*acc)[15], subgroupBroadcast(a[1], 7u), b);
    (*acc)[16] = fma_k4((*acc)[16], subgroupBroadcast(a[2], 0u), b);
    (*acc)[17] = fma_k4((*acc)[17], subgroupBroadcast(a[2], 1u), b);
    (*acc)[18] = fma_k4((*acc)[18], subgroupBroadcast(a[2], 2u), b);
    (*acc)[19] = fma_k4((*acc)[19], subgroupBroadcast(a[2], 3u), b);
    (*acc)[20] = fma_k4((*acc)[20], subgroupBroadcast(a[2], 4u), b);
    (*acc)[21] = fma_k4((*acc)[21], subgroupBroadcast(a[2], 5u), b);
    (*acc)[22] = fma_k4((*acc)[22], subgroupBroadcast(a[2], 6u), b);
    (*acc)[23] = fma_k4((*acc)[23], subgroupBroadcast(a[2], 7u), b);
    (*acc)[24] = fma_k4((*acc)[24], subgroupBroadcast(a[3], 0u), b);
    (*acc)[25] = fma_k4((*acc)[25], subgroupBroadcast(a[3], 1u), b);
    (*acc)[26] = fma_k4((*acc)[26], subgroupBroadcast(a[3], 2u), b);
    (*acc)[27] = fma_k4((*acc)[27], subgroupBroadcast(a[3], 3u), b);
    (*acc)[28] = fma_k4((*acc)[28], subgroupBroadcast(a[3], 4u), b);
    (*acc)[29] = fma_k4((*acc)[29], subgroupBroadcast(a[3], 5u), b);
    (*acc)[30] = fma_k4((*acc)[30], subgroupBroadcast(a[3], 6u), b);
    (*acc)[31] = fma_k4((*acc)[31], subgroupBroadcast(a[3], 7u), b);
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
        // Tile row 8s + l is lane l of a[s].
        tile_fma(&acc, a, b);
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
