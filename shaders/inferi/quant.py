"""Kernels on GGUF weights kept in their block formats (see decoders.py for the layout): a matrix-vector product
(decode), a tiled matrix product (prefill) and a row gather (token embeddings). One skeleton each, the block
decoder a template of functions: instance `matvec_decode_q4_1` and so on.

`Weights` gives the shape: a row is `row_words` words of whole blocks, each `block_words` words holding
2^`qk_shift` values; element e of row r is value e % qk of block e // qk, at word r * row_words + (e // qk) *
block_words.
"""

from khal_runtime.lang import (
    Buf,
    MutBuf,
    barrier,
    f32,
    fma,
    global_id,
    kernel,
    local_id,
    num_subgroups,
    num_workgroups,
    require,
    shared,
    static_range,
    struct,
    subgroup_add,
    subgroup_id,
    subgroup_invocation_id,
    template,
    u32,
    workgroup_id,
)

from .decoders import (
    decode_bf16,
    decode_f16,
    decode_f32,
    decode_q2_k,
    decode_q3_k,
    decode_q4_0,
    decode_q4_1,
    decode_q4_k,
    decode_q5_0,
    decode_q5_1,
    decode_q5_k,
    decode_q6_k,
    decode_q8_0,
)

DECODE = template(decode_f32, decode_f16, decode_bf16, decode_q4_0, decode_q4_1, decode_q5_0, decode_q5_1,
                  decode_q8_0, decode_q2_k, decode_q3_k, decode_q4_k, decode_q5_k, decode_q6_k)

THREADS = 64            # matvec: a workgroup per row, its invocations striding over the row (a subgroup sum,
                        # then one barrier: on lavapipe up to 1.6x faster than a 6-barrier shared-memory tree)
TILE_R = 32             # matmul: a workgroup computes TILE_N rows of x times TILE_R rows of W
TILE_N = 16
BK = 32                 # matmul: the columns of a slice staged in shared memory


@struct
class Weights:
    rows: u32
    cols: u32
    row_words: u32
    block_words: u32
    qk_shift: u32


def weight(w: Buf[u32], s: Weights, r: u32, e: u32) -> u32:
    """The word where element e of row r's block begins."""
    return r * s.row_words + (e >> s.qk_shift) * s.block_words


@kernel(workgroup_size=(THREADS,))
def matvec(y: MutBuf[f32], w: Buf[u32], x: Buf[f32], s: Weights):
    require(len(y) >= s.rows)
    require(len(x) >= s.cols)
    require(len(w) >= s.rows * s.row_words)
    partial = shared(f32, THREADS)
    row = workgroup_id().y * num_workgroups().x + workgroup_id().x     # a grid holds 65,535 workgroups a side
    lid = local_id().x
    mask = (u32(1) << s.qk_shift) - 1
    acc = f32(0)
    if row < s.rows:
        for e in range(lid, s.cols, THREADS):
            acc = fma(DECODE(w, weight(w, s, row, e), e & mask), x[e], acc)
    # a subgroup sum, then one barrier to add the subgroups' sums (subgroups hold 4 to 64 invocations)
    acc = subgroup_add(acc)
    if subgroup_invocation_id() == 0:
        partial[subgroup_id()] = acc
    barrier()
    if lid == 0 and row < s.rows:
        total = f32(0)
        for g in range(num_subgroups()):
            total += partial[g]
        y[row] = total


@kernel(workgroup_size=(TILE_R, TILE_N // 2))
def matmul(y: MutBuf[f32], w: Buf[u32], x: Buf[f32], s: Weights, n: u32):
    """y (n, rows) = x (n, cols) @ W^T: each slice of W's block values is decoded once for TILE_N rows of x."""
    require(len(y) >= n * s.rows)
    require(len(x) >= n * s.cols)
    require(len(w) >= s.rows * s.row_words)
    w_tile = shared(f32, TILE_R, BK + 1)
    x_tile = shared(f32, TILE_N, BK + 1)
    tr = local_id().x
    tn = local_id().y
    row0 = workgroup_id().x * TILE_R
    n0 = workgroup_id().y * TILE_N
    mask = (u32(1) << s.qk_shift) - 1
    acc0 = f32(0)
    acc1 = f32(0)
    for k0 in range(0, s.cols, BK):
        # TILE_R x BK values of W and TILE_N x BK of x, by TILE_R x TILE_N / 2 invocations
        for p in static_range(2 * BK // TILE_N):
            t = (tn + u32(p) * (TILE_N // 2)) * TILE_R + tr      # 0 .. TILE_R * BK
            r = t // BK
            c = t % BK
            e = k0 + c
            ok = row0 + r < s.rows and e < s.cols
            w_tile[r, c] = DECODE(w, weight(w, s, row0 + r, e), e & mask) if ok else 0.0
        for p in static_range(2):
            t = (tn + u32(p) * (TILE_N // 2)) * TILE_R + tr      # 0 .. TILE_N * BK
            i = t // BK
            c = t % BK
            x_tile[i, c] = x[(n0 + i) * s.cols + k0 + c] if n0 + i < n and k0 + c < s.cols else 0.0
        barrier()
        for c in static_range(BK):
            wv = w_tile[tr, c]
            acc0 = fma(wv, x_tile[tn, c], acc0)
            acc1 = fma(wv, x_tile[tn + TILE_N // 2, c], acc1)
        barrier()
    if row0 + tr < s.rows:
        if n0 + tn < n:
            y[(n0 + tn) * s.rows + row0 + tr] = acc0
        if n0 + tn + TILE_N // 2 < n:
            y[(n0 + tn + TILE_N // 2) * s.rows + row0 + tr] = acc1


@kernel(workgroup_size=(256,))
def rows_of(out: MutBuf[f32], w: Buf[u32], ids: Buf[u32], s: Weights, n: u32):
    """out (n, cols): the rows ids of W, dequantized (an id past the last row gives zeros)."""
    require(len(out) >= n * s.cols)
    require(len(ids) >= n)
    require(len(w) >= s.rows * s.row_words)
    t = global_id().x
    if t < n * s.cols:
        i = t // s.cols
        e = t % s.cols
        r = ids[i]
        mask = (u32(1) << s.qk_shift) - 1
        out[t] = DECODE(w, weight(w, s, r, e), e & mask) if r < s.rows else 0.0
