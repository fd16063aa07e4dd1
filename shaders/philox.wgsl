// philox.wgsl: Philox4x32-10 (Salmon et al., 2011), the counter-based bit
// generator rng.wgsl and dropout.wgsl are prepended with (kernels/rng.rs
// and kernels/dropout.rs concatenate the sources; WGSL has no include):
//   philox4x32_10(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32>,
//   ten rounds of (c0, c1, c2, c3) = (hi(M1 c2) ^ c1 ^ k0, lo(M1 c2),
//   hi(M0 c0) ^ c3 ^ k1, lo(M0 c0)), M0 = 0xD2511F53, M1 = 0xCD9E8D57,
//   key += (0x9E3779B9, 0xBB67AE85) after each round.
// rng::philox4x32_10 is its CPU reference (known answers tested).
//
// Bindings: none (functions only).

// (hi, lo) 32-bit halves of the 64-bit product a * b, from 16-bit pieces
// (WGSL has no 64-bit integers).
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let ll = a_lo * b_lo;
    let lh = a_lo * b_hi;
    let hl = a_hi * b_lo;
    let hh = a_hi * b_hi;
    let mid = (ll >> 16u) + (lh & 0xffffu) + (hl & 0xffffu);
    let hi = hh + (lh >> 16u) + (hl >> 16u) + (mid >> 16u);
    return vec2<u32>(hi, a * b);
}

fn philox4x32_10(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = counter;
    var k = key;
    for (var round = 0u; round < 10u; round++) {
        let p0 = mulhilo(0xD2511F53u, c.x);
        let p1 = mulhilo(0xCD9E8D57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
        k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}
