"""A copy that moves the unit stride: the view's elements are adjacent along axis `a` in the source, and the
contiguous output's last axis `b` is another axis. Read element by element in the output's order, consecutive
threads would touch addresses far apart; instead a workgroup copies a TILE x TILE tile through shared memory,
reading rows of the tile along `a` and writing them along `b`, so both sides coalesce. Up to two more axes (p, q)
are batched over. `vortx/ops.py` takes this path for same-type copies of 32-bit elements.
"""

from khal_runtime.lang import (
    Buf,
    MutBuf,
    barrier,
    f32,
    i32,
    kernel,
    local_id,
    require,
    shared,
    static_range,
    struct,
    template,
    u32,
    workgroup_id,
)

T = template(f32, i32, u32)

TILE = 32
ROWS = 8                    # threads along the second workgroup axis: each copies TILE / ROWS rows of a tile


@struct
class Tiles:
    n_a: u32        # the axis that has stride 1 in the source
    n_b: u32        # the output's last axis
    s_b: u32        # the source's stride along b
    d_a: u32        # the output's stride along a
    n_p: u32        # the batch axes: size, source stride, output stride
    s_p: u32
    d_p: u32
    n_q: u32
    s_q: u32
    d_q: u32
    offset: u32     # of the source view


@kernel(workgroup_size=(TILE, ROWS))
def transpose_tiles(out: MutBuf[T], x: Buf[T], v: Tiles):
    require(len(out) >= v.n_a * v.n_b * v.n_p * v.n_q)
    # TILE + 1 columns: the column reads of the second half fall in different shared-memory banks
    tile = shared(T, TILE, TILE + 1)
    tx = local_id().x
    ty = local_id().y
    tiles_a = (v.n_a + (TILE - 1)) // TILE
    tiles_b = (v.n_b + (TILE - 1)) // TILE
    wid = workgroup_id().x
    a0 = (wid % tiles_a) * TILE
    rest = wid // tiles_a
    b0 = (rest % tiles_b) * TILE
    rest = rest // tiles_b
    p = rest % v.n_p
    q = rest // v.n_p
    src = v.offset + p * v.s_p + q * v.s_q
    dst = p * v.d_p + q * v.d_q
    for k in static_range(TILE // ROWS):
        a = a0 + tx
        b = b0 + ty + k * ROWS
        if a < v.n_a and b < v.n_b:
            tile[ty + k * ROWS, tx] = x[src + a + b * v.s_b]
    barrier()
    for k in static_range(TILE // ROWS):
        a = a0 + ty + k * ROWS
        b = b0 + tx
        if a < v.n_a and b < v.n_b:
            out[dst + a * v.d_a + b] = tile[tx, ty + k * ROWS]
