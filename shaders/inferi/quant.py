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

THREADS = 64            # matvec: a workgroup per row, its invocations striding over the row's groups of 8 values (a
                        # subgroup sum, then one barrier: on lavapipe up to 1.6x faster than a shared-memory tree)
GROUP = 8               # values decoded together: one call of the decoder for each, the words shared
TILE_R = 32             # matmul: a workgroup computes TILE_N rows of x times TILE_R rows of W
TILE_N = 16
BK = 64                 # matmul: the columns of a slice staged in shared memory (a group of 8 an invocation)


@struct
class Weights:
    rows: u32
    cols: u32
    row_words: u32
    block_words: u32
    qk_shift: u32


def group_word(s: Weights, r: u32, e: u32) -> u32:
    """The word where the block holding element e (a multiple of GROUP) of row r begins."""
    return r * s.row_words + (e >> s.qk_shift) * s.block_words


def x_at(x: Buf[f32], base: u32, e: u32, cols: u32) -> f32:
    """x[base + e], or 0 past the row (the zero padding of an F32/F16/BF16 row's last group)."""
    return x[base + e] if e < cols else 0.0


@kernel(workgroup_size=(THREADS,))
def matvec(y: MutBuf[f32], w: Buf[u32], x: Buf[f32], s: Weights, add: u32):
    """y = W @ x, or y += W @ x when `add` is 1 (a residual connection, without a kernel of its own)."""
    require(len(y) >= s.rows)
    require(len(x) >= s.cols)
    require(len(w) >= s.rows * s.row_words)
    partial = shared(f32, THREADS)
    row = workgroup_id().y * num_workgroups().x + workgroup_id().x     # a grid holds 65,535 workgroups a side
    lid = local_id().x
    mask = (u32(1) << s.qk_shift) - 1
    acc = f32(0)
    if row < s.rows:
        for e in range(lid * GROUP, s.cols, THREADS * GROUP):
            wb = group_word(s, row, e)
            for i in static_range(GROUP):
                acc = fma(DECODE(w, wb, e & mask, i), x_at(x, 0, e + i, s.cols), acc)
    # a subgroup sum, then one barrier to add the subgroups' sums (subgroups hold 4 to 64 invocations)
    acc = subgroup_add(acc)
    if subgroup_invocation_id() == 0:
        partial[subgroup_id()] = acc
    barrier()
    if lid == 0 and row < s.rows:
        total = f32(0)
        for g in range(num_subgroups()):
            total += partial[g]
        y[row] = total + y[row] if add == 1 else total


@kernel(workgroup_size=(THREADS,))
def matvec_rows(y: MutBuf[f32], w: Buf[u32], x: Buf[f32], s: Weights, add: u32):
    """`matvec` for CPU devices (lavapipe), where each workgroup costs microseconds of its own: an invocation per
    row, a workgroup per THREADS rows, nothing shared."""
    require(len(y) >= s.rows)
    require(len(x) >= s.cols)
    require(len(w) >= s.rows * s.row_words)
    row = global_id().x
    mask = (u32(1) << s.qk_shift) - 1
    if row < s.rows:
        acc = f32(0)
        for e in range(0, s.cols, GROUP):
            wb = group_word(s, row, e)
            for i in static_range(GROUP):
                acc = fma(DECODE(w, wb, e & mask, i), x_at(x, 0, e + i, s.cols), acc)
        y[row] = acc + y[row] if add == 1 else acc


@kernel(workgroup_size=(TILE_R, TILE_N // 2))
def matmul(y: MutBuf[f32], w: Buf[u32], x: Buf[f32], s: Weights, n: u32, add: u32):
    """y (n, rows) = x (n, cols) @ W^T (+= when `add` is 1): each slice of W's block values is decoded once for
    TILE_N rows of x."""
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
    t = tn * TILE_R + tr                                    # 0 .. TILE_R * TILE_N / 2 = TILE_R * BK / GROUP
    r = t // (BK // GROUP)
    c = (t % (BK // GROUP)) * GROUP
    acc0 = f32(0)
    acc1 = f32(0)
    for k0 in range(0, s.cols, BK):
        # TILE_R x BK values of W, a group of 8 an invocation, and TILE_N x BK of x
        e = k0 + c
        ok = row0 + r < s.rows and e < s.cols
        wb = group_word(s, row0 + r if ok else 0, e if ok else 0)
        for i in static_range(GROUP):
            w_tile[r, c + i] = DECODE(w, wb, e & mask, i) if ok else 0.0
        for p in static_range(2 * BK // TILE_R):
            tx = t + u32(p) * (TILE_R * TILE_N // 2)          # 0 .. TILE_N * BK
            xi = tx // BK
            xc = tx % BK
            x_tile[xi, xc] = x_at(x, (n0 + xi) * s.cols, k0 + xc, s.cols) if n0 + xi < n else 0.0
        barrier()
        for k in static_range(BK):
            wv = w_tile[tr, k]
            acc0 = fma(wv, x_tile[tn, k], acc0)
            acc1 = fma(wv, x_tile[tn + TILE_N // 2, k], acc1)
        barrier()
    if row0 + tr < s.rows:
        if n0 + tn < n:
            at = (n0 + tn) * s.rows + row0 + tr
            y[at] = acc0 + y[at] if add == 1 else acc0
        if n0 + tn + TILE_N // 2 < n:
            at = (n0 + tn + TILE_N // 2) * s.rows + row0 + tr
            y[at] = acc1 + y[at] if add == 1 else acc1


@kernel(workgroup_size=(64,))
def rows_of(out: MutBuf[f32], w: Buf[u32], ids: Buf[u32], s: Weights, n: u32):
    """out (n, cols): the rows ids of W, dequantized (an id past the last row gives zeros); a group of 8 values
    an invocation."""
    require(len(out) >= n * s.cols)
    require(len(ids) >= n)
    require(len(w) >= s.rows * s.row_words)
    groups = (s.cols + GROUP - 1) // GROUP
    t = global_id().x
    if t < n * groups:
        i = t // groups
        e = (t % groups) * GROUP
        r = ids[i]
        mask = (u32(1) << s.qk_shift) - 1
        wb = group_word(s, r if r < s.rows else 0, e)
        for k in static_range(GROUP):
            if e + k < s.cols:
                out[i * s.cols + e + k] = DECODE(w, wb, e & mask, k) if r < s.rows else 0.0
