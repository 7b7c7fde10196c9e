"""Reductions (sum, product, min, max, squared norm) of a strided view seen as (outer, n, inner): the `n` axis is
reduced, `outer` and `inner` are kept. One pass cuts `n` into `chunks` pieces of `piece` elements (the last may be
shorter) and writes one partial per piece, an (outer, chunks, inner) tensor in a contiguous buffer; the host
repeats passes over the partials until one piece is left (`vortx/reduce.py` plans them, and chooses the piece
length and the threads per piece at run time). The order of every combination is fixed, so float results are
deterministic: no float atomics.

- `reduce_rows` (inner == 1): 2^lane_bits threads share a piece of a row, and a workgroup holds WORKGROUP >>
  lane_bits pieces: one piece per workgroup for long runs (consecutive threads read consecutive elements), a few
  threads per row for short rows, a thread per row for rows of a few elements; shared memory combines a piece's
  threads in a tree of lane_bits halvings.
- `reduce_axis` (inner > 1): consecutive threads take consecutive inner indices, so the loads of a row of the
  view coalesce; LANES threads per inner index share a piece of rows and combine through shared memory.

Each thread walks its share of a piece in a run-time loop with LOADS independent accumulators, so that LOADS loads
are in flight per thread whatever the piece's length. No subgroup operation combines them: naga in wgpu-py 0.32
panics on a subgroup reduction of a value carried through a run-time loop (gfx-rs/wgpu#8389), and shared memory
gives the same order on every device whatever its subgroup size.

Later passes combine partials: a squared norm's partials are sums, so the host runs `sum` after the first pass.
"""

from khal_runtime.lang import (
    Buf,
    MutBuf,
    array,
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
OP = template("sum", "prod", "min", "max", "sqnorm")

WORKGROUP = 256                         # threads of a reduce_rows workgroup
MAX_LANE_BITS = 8                       # log2(WORKGROUP): at most a piece per workgroup
LOADS = 8                               # independent accumulators (loads in flight) per thread
TILE = 32                               # inner indices per workgroup of reduce_axis: 128 bytes of f32
LANES = 8                               # threads per inner index


@struct
class Axis:
    outer: u32
    n: u32              # the length of the reduced axis
    inner: u32
    offset: u32         # of the input view, and its strides, in elements
    s_outer: u32
    s_n: u32
    s_inner: u32
    chunks: u32         # pieces of `n` in this pass: the output holds outer * chunks * inner partials
    piece: u32          # elements of `n` per piece; chunks * piece >= n
    lane_bits: u32      # reduce_rows: log2 of the threads that share a piece (at most MAX_LANE_BITS)


def start(x: Buf[T], at: u32) -> T:
    """Where an accumulation starts: the identity of sums and products; for min and max the piece's first
    element, which needs no identity per type (lavapipe does not carry infinities through arithmetic; integers have
    none); the host never reduces an empty axis with them."""
    if OP == "prod":
        return T(1)
    if OP == "min" or OP == "max":
        return x[at]
    return T(0)


def combine(a: T, b: T) -> T:
    if OP == "prod":
        return a * b
    if OP == "min":
        return min(a, b)
    if OP == "max":
        return max(a, b)
    return a + b


def element(x: T) -> T:
    """What an input element contributes: its square for a squared norm."""
    if OP == "sqnorm":
        return x * x
    return x


def strided(x: Buf[T], base: u32, stride: u32, begin: u32, end: u32, lane: u32, lanes: u32) -> T:
    """The combination of x[base + i * stride] for i = begin + lane, begin + lane + lanes, ... below `end` (a
    non-empty piece): LOADS independent accumulators take consecutive steps of `lanes` elements, so that a thread
    has LOADS loads in flight, then combine in a fixed order."""
    acc = array(T, LOADS)
    first = start(x, base + begin * stride)
    for k in static_range(LOADS):
        acc[k] = first
    step = lanes * LOADS
    full = begin + (end - begin) // step * step     # whole steps: no bounds checks
    for i in range(begin + lane, full, step):
        for k in static_range(LOADS):
            acc[k] = combine(acc[k], element(x[base + (i + k * lanes) * stride]))
    for k in static_range(LOADS):
        tail = full + k * lanes + lane
        if tail < end:
            acc[k] = combine(acc[k], element(x[base + tail * stride]))
    total = acc[0]
    for k in static_range(1, LOADS):
        total = combine(total, acc[k])
    return total


@kernel(workgroup_size=(WORKGROUP,))
def reduce_rows(out: MutBuf[T], x: Buf[T], v: Axis):
    require(len(out) >= v.outer * v.chunks)
    require(v.lane_bits <= MAX_LANE_BITS)
    partial = shared(T, WORKGROUP)
    lid = local_id().x
    lanes = u32(1) << v.lane_bits
    lane = lid & (lanes - 1)
    pieces = v.outer * v.chunks
    piece = workgroup_id().x * (u32(WORKGROUP) >> v.lane_bits) + (lid >> v.lane_bits)
    # threads past the last piece read the last piece again (and store nothing): all threads reach the barriers
    p = min(piece, pieces - 1)
    row = v.offset + (p // v.chunks) * v.s_outer
    begin = (p % v.chunks) * v.piece
    acc = strided(x, row, v.s_n, begin, min(begin + v.piece, v.n), lane, lanes)
    partial[lid] = acc
    for step in range(v.lane_bits):
        barrier()
        half = lanes >> (step + 1)
        if lane < half:
            acc = combine(acc, partial[lid + half])
            partial[lid] = acc
    if lane == 0 and piece < pieces:
        out[piece] = acc


@kernel(workgroup_size=(TILE, LANES))
def reduce_axis(out: MutBuf[T], x: Buf[T], v: Axis):
    require(len(out) >= v.outer * v.chunks * v.inner)
    partial = shared(T, LANES, TILE)
    tx = local_id().x
    lane = local_id().y
    tiles = (v.inner + (TILE - 1)) // TILE
    j = (workgroup_id().x % tiles) * TILE + tx
    rest = workgroup_id().x // tiles
    chunk = rest % v.chunks
    o = rest // v.chunks
    # threads past the last inner index read that index again (and store nothing)
    base = v.offset + o * v.s_outer + min(j, v.inner - 1) * v.s_inner
    begin = chunk * v.piece
    acc = strided(x, base, v.s_n, begin, min(begin + v.piece, v.n), lane, u32(LANES))
    partial[lane, tx] = acc
    barrier()
    if lane == 0 and j < v.inner:
        for s in range(1, LANES):
            acc = combine(acc, partial[s, tx])
        out[rest * v.inner + j] = acc
