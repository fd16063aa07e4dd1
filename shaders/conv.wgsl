// conv.wgsl: the two data movements that make convolutions matmuls
// (Conv2d and ConvTranspose2d as im2col / col2im around the matmul
// kernels), on images in NHWC layout.
//
// A geometry pairs an image [N, H, W, C] with a grid of kernel positions
// [N, OH, OW]: position (oh, ow) covers image rows oh*S - P + kh and
// columns ow*S - P + kw for kh, kw < K (outside the image: zero).
// A column row holds one position's patch, C*K*K wide, in (c, kh, kw) order:
// the order of PyTorch's weight [OC, C, K, K] (Conv2d) and [C, OC, K, K]
// (ConvTranspose2d) flattened per output or input channel.
//
// im2col:  cols[(n, oh, ow), (c, kh, kw)] = x[n, oh*S - P + kh, ow*S - P + kw, c]
//          (0 outside the image)
//   Conv2d forward: y [N*OH*OW, OC] = cols x W^T; its weight gradient
//   dW = dy^T x cols; ConvTranspose2d's input gradient starts here too.
// col2im:  x[n, ih, iw, c] = sum over kh, kw (in that order) with
//          oh = (ih + P - kh) / S and ow = (iw + P - kw) / S whole and
//          inside the grid of cols[(n, oh, ow), (c, kh, kw)]
//   Conv2d's input gradient (dcols = dy x W); ConvTranspose2d's forward
//   (cols = x W). One invocation per image element sums its own terms in a
//   fixed order: no atomics, deterministic, equal to the CPU reference.
// Shapes: x [N, H, W, C] (flat [N*H*W, C]), cols [N*OH*OW, C*K*K].
//
// Bindings, group 0:
//   0  uniform  g: Geometry {n, h, w, c, oh, ow, k, stride, pad}
//   1  storage  src  read        im2col: x; col2im: cols
//   2  storage  dst  read_write  im2col: cols; col2im: x
// 256 invocations a group, one output element each; 2-D grid past 65535 groups.

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

@group(0) @binding(0) var<uniform> g: Geometry;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

fn flat_index(gid: vec3<u32>) -> u32 {
    return gid.x + gid.y * 65535u * 256u;
}

@compute @workgroup_size(256)
fn im2col(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid);
    let kk = g.k * g.k;
    let width = g.c * kk;
    if (i >= g.n * g.oh * g.ow * width) {
        return;
    }
    let row = i / width;
    let col = i % width;
    let c = col / kk;
    let kh = (col % kk) / g.k;
    let kw = col % g.k;
    let ow = row % g.ow;
    let oh = (row / g.ow) % g.oh;
    let n = row / (g.ow * g.oh);
    // Signed: positions past the top or left edge read the zero padding.
    let ih = i32(oh * g.stride + kh) - i32(g.pad);
    let iw = i32(ow * g.stride + kw) - i32(g.pad);
    var v = 0.0;
    if (ih >= 0 && iw >= 0 && u32(ih) < g.h && u32(iw) < g.w) {
        v = src[((n * g.h + u32(ih)) * g.w + u32(iw)) * g.c + c];
    }
    dst[i] = v;
}

@compute @workgroup_size(256)
fn col2im(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = flat_index(gid);
    if (i >= g.n * g.h * g.w * g.c) {
        return;
    }
    let c = i % g.c;
    let iw = (i / g.c) % g.w;
    let ih = (i / (g.c * g.w)) % g.h;
    let n = i / (g.c * g.w * g.h);
    let kk = g.k * g.k;
    let width = g.c * kk;
    var sum = 0.0;
    for (var kh = 0u; kh < g.k; kh++) {
        let th = i32(ih + g.pad) - i32(kh);
        if (th < 0 || u32(th) % g.stride != 0u || u32(th) / g.stride >= g.oh) {
            continue;
        }
        let oh = u32(th) / g.stride;
        for (var kw = 0u; kw < g.k; kw++) {
            let tw = i32(iw + g.pad) - i32(kw);
            if (tw < 0 || u32(tw) % g.stride != 0u || u32(tw) / g.stride >= g.ow) {
                continue;
            }
            let ow = u32(tw) / g.stride;
            sum += src[((n * g.oh + oh) * g.ow + ow) * width + c * kk + kh * g.k + kw];
        }
    }
    dst[i] = sum;
}
