"""Q8_0-style matrix-vector products: `y = W x` with W and x quantized to int8 in blocks of 32 values (each block
with an f32 scale), as ggml's Q8_0 weights times Q8 activations, the int8 x int8 product that llama.cpp runs with
`__dp4a`. One template, four instances: the words loaded one at a time or as `load_u32x4` vectors, and the byte
products computed with shifts or with `dot4_i8`.

Layout: `qw` holds row r's block b as the 8 words `qw[8 (r blocks + b) ..]` (4 bytes each, byte k in bits
8k .. 8k+7), `dw[r blocks + b]` its scale; `qx` and `dx` the same for the one row of x. One workgroup computes one
row: its 64 invocations stride over the row's blocks, and a shared-memory tree sums their partial sums.
"""

from khal_runtime.lang import (
    Buf,
    MutBuf,
    barrier,
    dot4_i8,
    extract_bits,
    f32,
    i32,
    kernel,
    load_u32x4,
    local_id,
    require,
    shared,
    static_range,
    template,
    u32,
    workgroup_id,
)

LOAD = template("scalar", "vector")
DOT = template("shifts", "dp4a")

THREADS = 64
BLOCK_WORDS = 8                 # 32 int8 values


def dot_bytes(a: u32, b: u32, acc: i32) -> i32:
    """acc + the products of the four signed bytes of a and b, the way a kernel without dot4_i8 writes it."""
    x = i32(a)
    y = i32(b)
    for k in static_range(4):
        acc += extract_bits(x, u32(8 * k), u32(8)) * extract_bits(y, u32(8 * k), u32(8))
    return acc


@kernel(workgroup_size=(THREADS,))
def matvec_q8(y: MutBuf[f32], qw: Buf[u32], dw: Buf[f32], qx: Buf[u32], dx: Buf[f32], rows: u32, blocks: u32):
    require(len(y) >= rows)
    require(len(qw) >= rows * blocks * BLOCK_WORDS)
    require(len(dw) >= rows * blocks)
    require(len(qx) >= blocks * BLOCK_WORDS)
    require(len(dx) >= blocks)
    partial = shared(f32, THREADS)
    row = workgroup_id().x
    lid = local_id().x
    acc = f32(0)
    if row < rows:
        for b in range(lid, blocks, THREADS):
            wb = row * blocks + b
            sumi = i32(0)
            for h in static_range(2):           # the block's two halves of four words
                if LOAD == "vector":
                    w0, w1, w2, w3 = load_u32x4(qw, 2 * wb + h)
                    x0, x1, x2, x3 = load_u32x4(qx, 2 * b + h)
                else:
                    w0 = qw[8 * wb + 4 * h]
                    w1 = qw[8 * wb + 4 * h + 1]
                    w2 = qw[8 * wb + 4 * h + 2]
                    w3 = qw[8 * wb + 4 * h + 3]
                    x0 = qx[8 * b + 4 * h]
                    x1 = qx[8 * b + 4 * h + 1]
                    x2 = qx[8 * b + 4 * h + 2]
                    x3 = qx[8 * b + 4 * h + 3]
                if DOT == "dp4a":
                    sumi = dot4_i8(w3, x3, dot4_i8(w2, x2, dot4_i8(w1, x1, dot4_i8(w0, x0, sumi))))
                else:
                    sumi = dot_bytes(w3, x3, dot_bytes(w2, x2, dot_bytes(w1, x1, dot_bytes(w0, x0, sumi))))
            acc += f32(sumi) * (dw[wb] * dx[b])
    partial[lid] = acc
    barrier()
    for s in static_range(6):
        step = u32((THREADS // 2) >> s)
        if lid < step:
            partial[lid] += partial[lid + step]
        barrier()
    if lid == 0 and row < rows:
        y[row] = partial[0]
