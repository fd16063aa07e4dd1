// gather.wgsl: builds a batch of images in [-1, 1] from the u8 dataset held
// on the GPU, and advances the trainer's step counters.
//
// gather_batch:  for r < rows, c < dim:
//   img = perm[counters[1] * rows + r]
//   if first_image <= img < first_image + images (the shard bound here):
//     out[(row_offset + r) * dim + c] = (pixel((img - first_image) * dim + c) - 127.5) / 127.5
// pixels are packed four to a u32, little-endian (byte i of the shard is
// bits 8 (i % 4) .. of word i / 4). A data set larger than one storage
// binding is held as shards of whole images, one dispatch each; rows of
// images in other shards are left to theirs. perm is the epoch's shuffled
// index list; counters[1] is the batch number within the epoch.
// gather_labels: the same rows' labels, as u32, from the u8 labels packed
// the same way (binding 1):
//   labels_out[row_offset + r] = label(perm[counters[1] * rows + r])
// advance_counters: counters[0] += 1 (steps done), counters[1] += 1 (batch in
// epoch); one invocation, recorded last in each training step.
//
// Bindings, group 0:
//   0  uniform  p: Params {rows, dim, row_offset, perm_len, first_image, images}
//   1  storage  pixels   read        array<u32>  packed u8 images of the shard
//   2  storage  perm     read        array<u32>  [perm_len]
//   3  storage  out      read_write  [(row_offset + rows), dim]
//   4  storage  counters read        array<u32>  (gather_batch)
//   5  storage  counters_rw read_write array<u32> (advance_counters; binding 5 only)
//   6  storage  labels_out read_write [(row_offset + rows)] u32 (gather_labels)
// gather_batch: 256 invocations a group, one element each; 2-D grid.

struct Params {
    rows: u32,
    dim: u32,
    row_offset: u32,
    perm_len: u32,
    first_image: u32,
    images: u32,
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> pixels: array<u32>;
@group(0) @binding(2) var<storage, read> perm: array<u32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> counters: array<u32>;
@group(0) @binding(5) var<storage, read_write> counters_rw: array<u32>;
@group(0) @binding(6) var<storage, read_write> labels_out: array<u32>;

@compute @workgroup_size(256)
fn gather_batch(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.x + gid.y * 65535u * 256u;
    if (i >= p.rows * p.dim) {
        return;
    }
    let r = i / p.dim;
    let c = i % p.dim;
    let slot = min(counters[1] * p.rows + r, p.perm_len - 1u);
    let img = perm[slot];
    // Unsigned: images below first_image wrap past `images` too.
    if (img - p.first_image >= p.images) {
        return;
    }
    let byte_index = (img - p.first_image) * p.dim + c;
    let word = pixels[byte_index / 4u];
    let pixel = (word >> (8u * (byte_index % 4u))) & 0xffu;
    out[(p.row_offset + r) * p.dim + c] = (f32(pixel) - 127.5) / 127.5;
}

@compute @workgroup_size(256)
fn gather_labels(@builtin(global_invocation_id) gid: vec3<u32>) {
    let r = gid.x;
    if (r >= p.rows) {
        return;
    }
    let slot = min(counters[1] * p.rows + r, p.perm_len - 1u);
    let byte_index = perm[slot];
    let word = pixels[byte_index / 4u];
    labels_out[p.row_offset + r] = (word >> (8u * (byte_index % 4u))) & 0xffu;
}

@compute @workgroup_size(1)
fn advance_counters() {
    counters_rw[0] = counters_rw[0] + 1u;
    counters_rw[1] = counters_rw[1] + 1u;
}
