// conv_gemm_sg.wgsl: Conv2d's forward as an implicit GEMM, the patches
// gathered from the image inside matmul_sg's loop instead of written to
// columns first (conv.wgsl's im2col):
//
//   y [N*OH*OW, OC] = act(im2col(x) [N*OH*OW, K*K*C] W^T + bias)
//   x: NHWC image [N, H, W, C]; W: [OC, K, K, C] (the engine's weight order,
//   kernels/conv.rs); row (n, oh, ow) of im2col(x) at column (kh, kw, c) is
//   x[n, oh*S - P + kh, ow*S - P + kw, c], 0 outside the image.
//
// It is matmul_sg's NT form (prepended, with matmul_common.wgsl and
// activation.wgsl; same subgroup of 8 per 32x32 tile of y, same epilogue)
// with op(A)'s four vec4 loads per k-step read from the image: a k-step of 4
// is 4 channels of one tap (kh, kw), contiguous in NHWC when C % 4 == 0
// (the launcher checks), so a row's load stays one vec4 load; rows whose
// tap falls in the padding load 0. ConvTranspose2d's input gradient,
// im2col(dy) W^T, is the same product.
//
// Bindings: matmul_common.wgsl's. conv_gemm_sg: 0 (p: m = N*OH*OW, n = OC,
// k = K*K*C, act, has_bias), 3 (c: y), 4 (a4: the image x as vec4), 5 (b4:
// W as vec4), 6 (bias). conv_weight_grad_sg (below): 0 (p: m = OC,
// n = K*K*C, k = N*OH*OW), 3 (c: dW), 4 (a4: dy as vec4), 5 (b4: the image
// x as vec4). The geometry but n as pipeline constants (conv.wgsl's names),
// so the index arithmetic divides by constants. Needs SUBGROUP.

override C: u32 = 4u;
override H: u32 = 1u;
override W: u32 = 1u;
override OH: u32 = 1u;
override OW: u32 = 1u;
override K: u32 = 1u;
override STRIDE: u32 = 1u;
override PAD: u32 = 0u;

@compute @workgroup_size(8)
fn conv_gemm_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let row0 = wid.y * SG_ROWS;
    let col0 = wid.x * SG_COLS;
    let c4 = C / 4u;
    let k4 = p.k / 4u;
    // The lane's four rows (clamped: past the edge they load and are not
    // stored): their image's first vec4 and their patch's top-left corner.
    let rows = min(vec4(row0 + lane) + vec4(0u, 8u, 16u, 24u), vec4(p.m - 1u));
    let ow = rows % OW;
    let oh = (rows / OW) % OH;
    let image = (rows / (OW * OH)) * (H * W * c4);
    let top = vec4<i32>(oh * STRIDE) - i32(PAD);
    let left = vec4<i32>(ow * STRIDE) - i32(PAD);
    var b_at = min(vec4(col0 + lane) + vec4(0u, 8u, 16u, 24u), vec4(p.n - 1u)) * k4;
    var acc: array<vec4<f32>, 32>;
    for (var kh = 0u; kh < K; kh++) {
        let ih = top + i32(kh);
        let row_in = (ih >= vec4(0)) & (ih < vec4(i32(H)));
        for (var kw = 0u; kw < K; kw++) {
            let iw = left + i32(kw);
            let inside = row_in & (iw >= vec4(0)) & (iw < vec4(i32(W)));
            // vec4 index of channel 0 of tap (kh, kw) per row; 0 (any
            // valid index) for taps in the padding, whose values are zeroed.
            let at = select(vec4(0u), image + (vec4<u32>(ih) * W + vec4<u32>(iw)) * c4, inside);
            for (var cb = 0u; cb < c4; cb++) {
                let a = array(select(vec4(0.0), a4[at.x + cb], inside.x), select(vec4(0.0), a4[at.y + cb], inside.y),
                              select(vec4(0.0), a4[at.z + cb], inside.z), select(vec4(0.0), a4[at.w + cb], inside.w));
                let b = transpose4_if(array(b4[b_at.x], b4[b_at.y], b4[b_at.z], b4[b_at.w]), true);
                b_at += vec4(1u);
                tile_fma(&acc, a, b);
            }
        }
    }
    // matmul_sg's NT epilogue and store: the lane's columns lane + 8j.
    var bias4 = vec4(0.0);
    if (p.has_bias != 0u) {
        bias4 = vec4(bias[min(col0 + lane, p.n - 1u)], bias[min(col0 + lane + 8u, p.n - 1u)],
                     bias[min(col0 + lane + 16u, p.n - 1u)], bias[min(col0 + lane + 24u, p.n - 1u)]);
    }
    for (var r = 0u; r < SG_ROWS; r++) {
        let row = row0 + r;
        let v = act_apply4(p.act, acc[r] + bias4);
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lane + 8u * j;
            if (row < p.m && col < p.n) {
                c[row * p.n + col] = v[j];
            }
        }
    }
}

// Conv2d's weight gradient over the same implicit patches:
//
//   dW [OC, K*K*C] = dy [P, OC]^T im2col(x) [P, K*K*C],  P = N*OH*OW
//
// matmul_sg's TN form (M = OC, N = K*K*C, K = P: p.m, p.n, p.k) with op(B)'s
// loads read from the image: a lane's four columns are 4 channels of one tap
// (kh, kw), fixed for the whole loop, and a k-step is 4 kernel positions.
// ConvTranspose2d's weight gradient x^T im2col(dy) is the same product. The
// launcher asks OC, C and P to be multiples of 4 (the TN form's vec4 loads).
@compute @workgroup_size(8)
fn conv_weight_grad_sg(@builtin(workgroup_id) wid: vec3<u32>, @builtin(subgroup_invocation_id) lane: u32) {
    let row0 = wid.y * SG_ROWS;
    let col0 = wid.x * SG_COLS;
    let c4 = C / 4u;
    let m4 = p.m / 4u;
    let n4 = p.n / 4u;
    let k4 = p.k / 4u;
    var a_at = vec4(0u, 1u, 2u, 3u) * m4 + min(row0 / 4u + lane, m4 - 1u);
    // The lane's tap and channel group (clamped like matmul_sg's columns).
    let column = min(col0 / 4u + lane, n4 - 1u);
    let channel = column % c4;
    let tap = column / c4;
    let kh = i32(tap / K);
    let kw = i32(tap % K);
    var acc: array<vec4<f32>, 32>;
    for (var kb = 0u; kb < k4; kb++) {
        let a = transpose4_if(array(a4[a_at.x], a4[a_at.y], a4[a_at.z], a4[a_at.w]), true);
        a_at += vec4(4u * m4);
        // Positions 4kb..4kb+3: (n, oh, ow), the image row and column the
        // lane's tap reads there.
        let pos = vec4(4u * kb) + vec4(0u, 1u, 2u, 3u);
        let ow = pos % OW;
        let oh = (pos / OW) % OH;
        let ih = vec4<i32>(oh * STRIDE) - i32(PAD) + kh;
        let iw = vec4<i32>(ow * STRIDE) - i32(PAD) + kw;
        let inside = (ih >= vec4(0)) & (ih < vec4(i32(H))) & (iw >= vec4(0)) & (iw < vec4(i32(W)));
        let at = select(vec4(0u), ((pos / (OW * OH)) * H + vec4<u32>(ih)) * W * c4 + vec4<u32>(iw) * c4 + channel, inside);
        let b = array(select(vec4(0.0), b4[at.x], inside.x), select(vec4(0.0), b4[at.y], inside.y),
                      select(vec4(0.0), b4[at.z], inside.z), select(vec4(0.0), b4[at.w], inside.w));
        tile_fma(&acc, a, b);
    }
    // matmul_sg's TN store: tile row 8s + l holds dW row 4l + s.
    for (var r = 0u; r < SG_ROWS; r++) {
        let row = row0 + 4u * (r % 8u) + r / 8u;
        for (var j = 0u; j < 4u; j++) {
            let col = col0 + lane * 4u + j;
            if (row < p.m && col < p.n) {
                c[row * p.n + col] = acc[r][j];
            }
        }
    }
}
