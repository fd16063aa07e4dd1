// activation.wgsl: the activations shared by bias_act.wgsl and the matmul
// epilogue (matmul.wgsl). Not a kernel: the launchers prepend it to those
// two files (WGSL has no include), so both compute act() the same way.
//
// code: 0 identity, 1 ReLU, 2 LeakyReLU(0.2), 3 tanh, 4 sigmoid.
// act' is written in terms of the output y, so the pre-activation need not
// be kept: relu' = y > 0; leaky' = y > 0 ? 1 : 0.2; tanh' = 1 - y^2;
// sigmoid' = y (1 - y).
//
// Bindings: none (functions only).

fn sigmoid(v: f32) -> f32 {
    // Stable for either sign: exp never overflows to a NaN result.
    if (v >= 0.0) {
        return 1.0 / (1.0 + exp(-v));
    }
    let e = exp(v);
    return e / (1.0 + e);
}

fn act_apply(code: u32, v: f32) -> f32 {
    switch code {
        case 1u: { return max(v, 0.0); }
        case 2u: { return select(0.2 * v, v, v > 0.0); }
        case 3u: { return tanh(v); }
        case 4u: { return sigmoid(v); }
        default: { return v; }
    }
}

// act_apply on four values at once: one copy of the switch where a kernel
// would otherwise inline four (matmul_sg's epilogue; LLVM compile time).
fn act_apply4(code: u32, v: vec4<f32>) -> vec4<f32> {
    switch code {
        case 1u: { return max(v, vec4(0.0)); }
        case 2u: { return select(0.2 * v, v, v > vec4(0.0)); }
        case 3u: { return tanh(v); }
        case 4u: {
            let e = exp(-abs(v));
            return select(e / (1.0 + e), 1.0 / (1.0 + e), v >= vec4(0.0));
        }
        default: { return v; }
    }
}

fn act_grad_from_output(code: u32, out: f32) -> f32 {
    switch code {
        case 1u: { return select(0.0, 1.0, out > 0.0); }
        case 2u: { return select(0.2, 1.0, out > 0.0); }
        case 3u: { return 1.0 - out * out; }
        case 4u: { return out * (1.0 - out); }
        default: { return 1.0; }
    }
}

