// ema.wgsl: an exponential moving average of a tensor over training steps,
// with a horizon that grows with the run (TensorFlow's
// ExponentialMovingAverage with num_updates):
//   t = (counters[0] + 1) / every - 1       (updates done before this one)
//   w = max(1 - decay, 9 / (10 + t))
//   average = average + w (value - average)
// The average spans about (10 + t) / 9 steps, the last ~11% of the run,
// until that reaches 1 / (1 - decay) (t near 9,000 at decay 0.999): a fixed
// horizon would drag the fast-moving early weights along for a long time
// (docs/quality.md). The first step (t = 0) and decay = 0 copy
// the value, whatever the buffer held (a NaN too, which a w = 1 lerp would
// keep). w's only rounding is the division's (WGSL: 2.5 ulp).
// Used for the generator's averaged weights and batch-norm running
// statistics (`train --ema-decay`); with --n-critic N the generator updates
// every N-th step, and every = N makes t count its updates (every = 1: t =
// counters[0], the steps done).
// Shapes: average [n], value [n] (any tensor, flat).
//
// Bindings, group 0:
//   0  uniform  p: Params {n, copy (1: decay = 0), one_minus_decay, every}
//   1  storage  average   read_write  [n] f32         (ema_update)
//   1  storage  average4  read_write  [n/4] vec4<f32> (ema_update_vec4)
//   2  storage  value     read        [n] f32         (ema_update)
//   2  storage  value4    read        [n/4] vec4<f32> (ema_update_vec4)
//   3  storage  counters read        array<u32>: [0] steps done
// 256 invocations a group, one element each (ema_update, any n) or four
// (ema_update_vec4, n % 4 == 0: a network's flat parameters; on lavapipe a
// storage access costs a bounds-checked load per lane, which vec4 shares);
// 2-D grid past 65535 groups.

struct Params {
    n: u32,
    copy: u32,
    one_minus_decay: f32,
    every: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> average: array<f32>;
@group(0) @binding(2) var<storage, read> value: array<f32>;
@group(0) @binding(1) var<storage, read_write> average4: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> value4: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read> counters: array<u32>;

// The updates done before this one.
fn updates_before() -> u32 {
    return (counters[0] + 1u) / max(p.every, 1u) - 1u;
}

// Whether this step copies the value (the first update, or decay = 0).
fn copies() -> bool {
    return updates_before() == 0u || p.copy != 0u;
}

// The weight of this step's value otherwise.
fn weight() -> f32 {
    return max(p.one_minus_decay, 9.0 / (10.0 + f32(updates_before())));
}

@compute @workgroup_size(256)
fn ema_update(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 256u;
    if (i >= p.n) {
        return;
    }
    let a = average[i];
    average[i] = select(a + weight() * (value[i] - a), value[i], copies());
}

@compute @workgroup_size(256)
fn ema_update_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 256u;
    if (i >= p.n / 4u) {
        return;
    }
    let a = average4[i];
    average4[i] = select(a + weight() * (value4[i] - a), value4[i], copies());
}
