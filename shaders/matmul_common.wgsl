// matmul_common.wgsl: what matmul.wgsl and matmul_sg.wgsl share, prepended
// to both (WGSL has no include): the parameters and the bindings of
//   C[M,N] = op(A) * op(B), f32, row-major, op per FORM (see matmul.wgsl):
//   FORM 0 NN: A[M,K], B[K,N]; FORM 1 NT: A[M,K], B[N,K]; FORM 2 TN: A[K,M], B[K,N]
//   epilogue (NT): C[r,c] = act(C[r,c] + bias[c]) when has_bias / act ask.
//
// Bindings, group 0:
//   0  uniform  p: Params {m, n, k, act, has_bias, form, _pad x2}
//   1  storage  a   : array<f32>        read
//   2  storage  b   : array<f32>        read
//   3  storage  c   : array<f32>        read_write   (M*N)
//   4  storage  a4  : array<vec4<f32>>  read   same buffer as a (vec4 view)
//   5  storage  b4  : array<vec4<f32>>  read   same buffer as b (vec4 view)
//   6  storage  bias: array<f32>        read   [N]; any buffer when unused
// An entry point's layout holds only the bindings it uses (matmul_sg: 0, 3,
// 4, 5, 6).

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
