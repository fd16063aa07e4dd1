// conv.wgsl: the two data movements that make convolutions matmuls
// (Conv2d and ConvTranspose2d as im2col / col2im around the matmul
// kernels), on images in NHWC layout.
//
// A geometry pairs an image [N, H, W, C] with a grid of kernel positions
// [N, OH, OW]: position (oh, ow) covers image rows oh*S - P + kh and
// columns ow*S - P + kw for kh, kw < K (outside the image: zero).
// A column row holds one position's patch, K*K*C wide, in (kh, kw, c)
// order: the image's own NHWC order, so a patch row is K runs of K*C
// contiguous values, and the engine stores convolution weights to match:
// Conv2d [OC, K, K, C], ConvTranspose2d [C_in, K, K, OC] (PyTorch's
// [OC, C, K, K] and [C_in, OC, K, K] with the channel moved last;
// checkpoints are converted on the way in and out).
//
// im2col:  cols[(n, oh, ow), (kh, kw, c)] = x[n, oh*S - P + kh, ow*S - P + kw, c]
//          (0 outside the image)
//   Conv2d forward: y [N*OH*OW, OC] = cols x W^T; its weight gradient
//   dW = dy^T x cols; ConvTranspose2d's input gradient starts here too.
// col2im:  x[n, ih, iw, c] = sum over kh, kw (in that order) with
//          oh = (ih + P - kh) / S and ow = (iw + P - kw) / S whole and
//          inside the grid of cols[(n, oh, ow), (kh, kw, c)]
//   Conv2d's input gradient (dcols = dy x W); ConvTranspose2d's forward
//   (cols = x W). One invocation per image element sums its own terms in a
//   fixed order: no atomics, deterministic, equal to the CPU reference.
// Shapes: x [N, H, W, C] (flat [N*H*W, C]), cols [N*OH*OW, K*K*C].
// When the kernel covers the whole image at one position (K = H = W, no
// padding, a 1x1 grid) the columns are the image's bytes: the launcher
// then runs neither kernel (kernels/conv.rs, `ConvGeometry::is_whole`).
//
// Bindings, group 0:
//   0  uniform  g: Geometry {n, h, w, c, oh, ow, k, stride, pad} (the
//               kernels read n; the rest, as constants C, H, W, OH, OW, K,
//               STRIDE, PAD, must equal it)
//   1  storage  src  read        im2col: x; col2im: cols
//   2  storage  dst  read_write  im2col: cols; col2im: x
// 256 invocations a group; im2col: one per (position, channel), writing
// its k*k values (neighbouring invocations write neighbouring channels);
// col2im: one per image element. 2-D grid past 65535 groups.

struct Geometry {
    n: u32,
    h: u32,
    w: u32,
    c: u32,
    oh: u32,
    ow: u32,
    k: u32,
    stride: u32,
    pad: u32,
    _pad0: u32,
    _pad1: u32,
    _pad2: u32,
}

// The geometry but n, as pipeline constants: the index arithmetic's
// divisions are then by constants, which compilers turn into multiplies
// (a CPU adapter divides lane by lane otherwise). One pipeline a geometry.
override C: u32 = 1u;
override H: u32 = 1u;
override W: u32 = 1u;
override OH: u32 = 1u;
override OW: u32 = 1u;
override K: u32 = 1u;
override STRIDE: u32 = 1u;
override PAD: u32 = 0u;

@group(0) @binding(0) var<uniform> g: Geometry;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

fn flat_index(gid: vec3<u32>) -> u32 {
    return gid.x + gid.y * 65535u * 256u;
}

// One invocation per (kernel position, channel): it writes that channel's
// k*k values of the patch, so the index arithmetic is paid once per k*k
// values, not per value; neighbouring invocations read and write
// neighbouring addresses.
@compute @workgroup_size(256)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid);
    if (i >= g.n * OH * OW * C) {
        return;
    }
    let c = i % C;
    let row = i / C;
    let ow = row % OW;
    let oh = (row / OW) % OH;
    let n = row / (OW * OH);
    let base = row * K * K * C + c;
    // Signed: positions past the top or left edge read the zero padding.
    let top = i32(oh * STRIDE) - i32(PAD);
    let left = i32(ow * STRIDE) - i32(PAD);
    for (var kh = 0u; kh < K; kh++) {
        let ih = top + i32(kh);
        let row_inside = ih >= 0 && u32(ih) < H;
        for (var kw = 0u; kw < K; kw++) {
            let iw = left + i32(kw);
            var v = 0.0;
            if (row_inside && iw >= 0 && u32(iw) < W) {
                v = src[((n * H + u32(ih)) * W + u32(iw)) * C + c];
            }
            dst[base + (kh * K + kw) * C] = v;
        }
    }
}

// The grid positions o whose kernel covers image coordinate i along one
// axis: o*S - P + t = i for a tap t < K, i.e. o in [lo, hi] (as i32; lo >
// hi when none). Two divisions, whatever K.
fn covering(i: u32, grid: u32) -> vec2<i32> {
    let shifted = i32(i + PAD);
    // Smallest o with o*S >= shifted - (K - 1); largest with o*S <= shifted.
    let lo = max(0, (shifted - i32(K) + i32(STRIDE)) / i32(STRIDE));
    let hi = min(i32(grid) - 1, shifted / i32(STRIDE));
    return vec2(lo, hi);
}

// One invocation per image element: it sums the column entries that cover
// it, visiting only the covering positions, kh then kw ascending (the CPU
// reference's order: o from hi down to lo).
@compute @workgroup_size(256)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid);
    if (i >= g.n * H * W * C) {
        return;
    }
    let c = i % C;
    let pixel = i / C;
    let iw = pixel % W;
    let ih = (pixel / W) % H;
    let n = pixel / (W * H);
    let width = K * K * C;
    let rows = covering(ih, OH);
    let cols = covering(iw, OW);
    var sum = 0.0;
    for (var oh = rows.y; oh >= rows.x; oh--) {
        let kh = u32(i32(ih + PAD) - oh * i32(STRIDE));
        for (var ow = cols.y; ow >= cols.x; ow--) {
            let kw = u32(i32(iw + PAD) - ow * i32(STRIDE));
            sum += src[((n * OH + u32(oh)) * OW + u32(ow)) * width + (kh * K + kw) * C + c];
        }
    }
    dst[i] = sum;
}
