"""Kernels on GGUF weights kept in their block formats (see decoders.py for the layout): a matrix-vector product
(decode), a tiled matrix product (prefill) and a row gather (token embeddings). One skeleton each, the block
decoder a template of functions: instance `matvec_decode_q4_1` and so on.

`Weights` gives the shape: a row is `row_words` words of whole blocks, each `block_words` words holding
2^`qk_shift` values; element e of row r is value e % qk of block e // qk, at word r * row_words + (e // qk) *
block_words.
"""

from khal_runtime.lang import (
    Array,
    Buf,
    Const,
    MutBuf,
    array,
    barrier,
    exp,
    f32,
    fma,
    global_id,
    kernel,
    local_id,
    num_subgroups,
    num_workgroups,
    require,
    rsqrt,
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

THREADS = 64            # matvec: invocations of a workgroup
LANES = template(64, 1)  # matvec: invocations per row. 64 on a GPU (a workgroup per row, striding over its groups
                        # of 8 values); 1 on a CPU (lavapipe), where each workgroup costs microseconds of its own:
                        # an invocation per row, a workgroup per 64 rows
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


@struct
class Out:
    """Where a product goes and what comes with it: columns at .. at + rows of an output whose rows hold `stride`
    values (a slice of a fused projection's output, q | k | v), added to it or not; for matvec, x normalised
    first (RMS norm with the factors g) and, `gated`, SwiGLU's silu(gate) * up of a W that stacks gate over up."""
    at: u32
    stride: u32
    add: u32
    norm: u32
    gated: u32
    eps: f32


def group_word(s: Weights, r: u32, e: u32) -> u32:
    """The word where the block holding element e (a multiple of GROUP) of row r begins."""
    return r * s.row_words + (e >> s.qk_shift) * s.block_words


def x_at(x: Buf[f32], base: u32, e: u32, cols: u32) -> f32:
    """x[base + e], or 0 past the row (the zero padding of an F32/F16/BF16 row's last group)."""
    return x[base + e] if e < cols else 0.0


def workgroup_total(partial: Array[f32], value: f32) -> f32:
    """The sum of `value` over the workgroup, for every invocation: a subgroup sum, then one barrier to add the
    subgroups' sums (subgroups hold 4 to 64 invocations; on lavapipe this beats a shared-memory tree by 1.6x)."""
    value = subgroup_add(value)
    if subgroup_invocation_id() == 0:
        partial[subgroup_id()] = value
    barrier()
    total = f32(0)
    for g in range(num_subgroups()):
        total += partial[g]
    barrier()                   # read by all before the array is used again
    return total


def silu(x: f32) -> f32:
    return x / (1.0 + exp(-x))


def row_dot(w: Buf[u32], x: Buf[f32], g: Buf[f32], s: Weights, row: u32, lane: u32, scaled: Const[bool]) -> f32:
    """This invocation's share of row `row` of W times x (times g, elementwise, when `scaled`)."""
    mask = (u32(1) << s.qk_shift) - 1
    acc = f32(0)
    for e in range(lane * GROUP, s.cols, LANES * GROUP):
        wb = group_word(s, row, e)
        for i in static_range(GROUP):
            h = x_at(x, 0, e + i, s.cols)
            if scaled:
                h *= x_at(g, 0, e + i, s.cols)
            acc = fma(DECODE(w, wb, e & mask, i), h, acc)
    return acc


@kernel(workgroup_size=(THREADS,))
def matvec(y: MutBuf[f32], w: Buf[u32], x: Buf[f32], g: Buf[f32], s: Weights, o: Out):
    """y[o.at + r] (+)= row r of W times x, or of rms_norm(x) * g; gated: silu(gate r) * (up r), r < rows / 2."""
    require(len(x) >= s.cols)
    require(len(w) >= s.rows * s.row_words)
    require(o.norm == 0 or len(g) >= s.cols)
    require(o.gated <= 1)
    require(o.gated == 0 or o.norm == 1)    # SwiGLU follows a norm in every model, so the gated loop applies g
    require(len(y) >= o.at + s.rows - o.gated * (s.rows // 2))
    partial = shared(f32, THREADS)
    lid = local_id().x
    lane = lid % LANES
    out_rows = s.rows >> o.gated
    # a grid holds 65,535 workgroups a side
    row = (workgroup_id().y * num_workgroups().x + workgroup_id().x) * (THREADS // LANES) + lid // LANES
    inv_rms = f32(1)
    if o.norm == 1:             # each workgroup normalises x itself: one token's activations, read anyway
        squares = f32(0)
        for e in range(lid, s.cols, THREADS):
            squares = fma(x[e], x[e], squares)
        inv_rms = rsqrt(workgroup_total(partial, squares) / f32(s.cols) + o.eps)
    acc = f32(0)
    acc_up = f32(0)
    if row < out_rows:          # a branch on parameters: the same for every invocation, the loops free of it
        if o.gated == 1:        # both rows in one loop, their loads in flight together
            mask = (u32(1) << s.qk_shift) - 1
            for e in range(lane * GROUP, s.cols, LANES * GROUP):
                wb = group_word(s, row, e)
                up = group_word(s, row + out_rows, e)
                for i in static_range(GROUP):
                    h = x_at(x, 0, e + i, s.cols) * x_at(g, 0, e + i, s.cols)
                    acc = fma(DECODE(w, wb, e & mask, i), h, acc)
                    acc_up = fma(DECODE(w, up, e & mask, i), h, acc_up)
        elif o.norm == 1:
            acc = row_dot(w, x, g, s, row, lane, True)
        else:
            acc = row_dot(w, x, g, s, row, lane, False)
    if LANES > 1:
        acc = workgroup_total(partial, acc)
        if o.gated == 1:
            acc_up = workgroup_total(partial, acc_up)
    if lane == 0 and row < out_rows:
        value = acc * inv_rms
        if o.gated == 1:
            value = silu(value) * (acc_up * inv_rms)
        y[o.at + row] = value + y[o.at + row] if o.add == 1 else value


CPU_ROWS = 8             # matvec_cpu: rows an invocation computes, sharing each load of x


@kernel(workgroup_size=(THREADS,))
def matvec_cpu(y: MutBuf[f32], w: Buf[u32], x: Buf[f32], s: Weights, o: Out, n: u32):
    """matvec and matmul for CPU devices (lavapipe), plain or added, without norm or gate: for token z of the grid
    (x's row z, y's row z of o.stride values), an invocation per CPU_ROWS rows, strided over the grid so that every
    workgroup gets a share of a small matrix, each value of x loaded once for its CPU_ROWS rows. On lavapipe 2x
    faster than an invocation per row for decode, and 2.5x faster than the tiled matmul for prefill."""
    require(len(x) >= n * s.cols)
    require(len(w) >= s.rows * s.row_words)
    require(o.at + s.rows <= o.stride)
    require(n == 0 or len(y) >= (n - 1) * o.stride + o.at + s.rows)
    token = workgroup_id().z
    first = (workgroup_id().y * num_workgroups().x + workgroup_id().x) * THREADS + local_id().x
    stride = num_workgroups().x * num_workgroups().y * THREADS
    acc = array(f32, CPU_ROWS)
    wb = array(u32, CPU_ROWS)
    mask = (u32(1) << s.qk_shift) - 1
    if token < n:
        for e in range(0, s.cols, GROUP):
            for k in static_range(CPU_ROWS):
                wb[k] = group_word(s, min(first + k * stride, s.rows - 1), e)   # past the end: the last row
            for i in static_range(GROUP):
                h = x_at(x, token * s.cols, e + i, s.cols)
                for k in static_range(CPU_ROWS):
                    acc[k] = fma(DECODE(w, wb[k], e & mask, i), h, acc[k])
        for k in static_range(CPU_ROWS):
            row = first + k * stride
            if row < s.rows:
                at = token * o.stride + o.at + row
                y[at] = acc[k] + y[at] if o.add == 1 else acc[k]


@kernel(workgroup_size=(TILE_R, TILE_N // 2))
def matmul(y: MutBuf[f32], w: Buf[u32], x: Buf[f32], s: Weights, n: u32, o: Out):
    """y[:, o.at .. o.at + rows] (n rows of o.stride) (+)= x (n, cols) @ W^T: each slice of W's block values is
    decoded once for TILE_N rows of x (o.norm and o.gated are matvec's: prefill runs those as kernels of their
    own)."""
    require(o.at + s.rows <= o.stride)
    require(n == 0 or len(y) >= (n - 1) * o.stride + o.at + s.rows)
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
            at = (n0 + tn) * o.stride + o.at + row0 + tr
            y[at] = acc0 + y[at] if o.add == 1 else acc0
        if n0 + tn + TILE_N // 2 < n:
            at = (n0 + tn + TILE_N // 2) * o.stride + o.at + row0 + tr
            y[at] = acc1 + y[at] if o.add == 1 else acc1


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
