"""Reductions (sum, product, min, max, squared norm) of a strided view seen as (outer, n, inner): the `n` axis is
reduced, `outer` and `inner` are kept. One pass cuts `n` into `chunks` pieces and writes one partial per piece,
an (outer, chunks, inner) tensor in a contiguous buffer; the host repeats passes over the partials until one piece
is left (`vortx/reduce.py` plans them). The order of every combination is fixed, so float results are
deterministic: no float atomics.

- `reduce_run` (inner == 1): a workgroup per piece of a row; each thread combines PER_THREAD elements with
  coalesced loads (consecutive threads, consecutive elements), then subgroups and shared memory combine the
  threads. A piece holds RUN_CHUNK elements.
- `reduce_rows` (inner == 1, rows of at most ROW_CHUNK elements): ROW_THREADS threads per row and ROWS rows per
  workgroup, so that short rows still give each thread many loads in flight; shared memory combines a row's
  threads without subgroups.
- `reduce_axis` (inner > 1): consecutive threads take consecutive inner indices, so the loads of a row of the
  view coalesce; LANES threads per inner index share a piece of AXIS_CHUNK rows and combine through shared memory.

Later passes combine partials: a squared norm's partials are sums, so the host runs `sum` after the first pass.
"""

from khal_runtime.lang import (
    Buf,
    MutBuf,
    barrier,
    f32,
    i32,
    kernel,
    local_id,
    num_subgroups,
    require,
    shared,
    static_range,
    struct,
    subgroup_add,
    subgroup_id,
    subgroup_invocation_id,
    subgroup_max,
    subgroup_min,
    subgroup_mul,
    template,
    u32,
    workgroup_id,
)

T = template(f32, i32, u32)
OP = template("sum", "prod", "min", "max", "sqnorm")

# On the H100 (GPU time), a 16M-element f32 sum runs at 0.86x the bandwidth of a copy, reductions of a 4096 x 4096
# tensor at 0.96x (rows) and 0.83x (columns); workgroups of 128 to 1024 threads and 8 to 32 elements per thread
# came within a few percent of these sizes.
WORKGROUP = 256
PER_THREAD = 16
RUN_CHUNK = WORKGROUP * PER_THREAD      # 4096 elements per workgroup and pass
ROW_STEPS = 5
ROW_THREADS = 1 << ROW_STEPS                # a power of two: a tree of ROW_STEPS halvings combines them
ROWS = 8
PER_ROW_THREAD = 32
ROW_CHUNK = ROW_THREADS * PER_ROW_THREAD  # 1024 elements per row and pass
TILE = 32                               # inner indices per workgroup of reduce_axis: 128 bytes of f32
LANES = 8                               # threads per inner index
PER_LANE = 16
AXIS_CHUNK = LANES * PER_LANE           # 128 rows per workgroup and pass


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


def start(x: Buf[T], at: u32) -> T:
    """Where a thread's accumulation starts: the identity of sums and products; for min and max the piece's first
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


def subgroup_combine(x: T) -> T:
    if OP == "prod":
        return subgroup_mul(x)
    if OP == "min":
        return subgroup_min(x)
    if OP == "max":
        return subgroup_max(x)
    return subgroup_add(x)


@kernel(workgroup_size=(WORKGROUP,))
def reduce_run(out: MutBuf[T], x: Buf[T], v: Axis):
    require(len(out) >= v.outer * v.chunks)
    # room for one partial per subgroup, whatever the subgroup size
    partial = shared(T, WORKGROUP)
    lid = local_id().x
    piece = workgroup_id().x                     # (row, chunk), which is also where the partial goes
    row = v.offset + (piece // v.chunks) * v.s_outer
    first = (piece % v.chunks) * RUN_CHUNK
    acc = start(x, row + first * v.s_n)
    for k in static_range(PER_THREAD):
        i = first + k * WORKGROUP + lid
        if i < v.n:
            acc = combine(acc, element(x[row + i * v.s_n]))
    acc = subgroup_combine(acc)                  # every thread gets here: none returned early
    if subgroup_invocation_id() == 0:
        partial[subgroup_id()] = acc
    barrier()
    if lid == 0:
        for s in range(1, num_subgroups()):
            acc = combine(acc, partial[s])
        out[piece] = acc


@kernel(workgroup_size=(ROW_THREADS, ROWS))
def reduce_rows(out: MutBuf[T], x: Buf[T], v: Axis):
    require(len(out) >= v.outer * v.chunks)
    threads = shared(T, ROWS, ROW_THREADS)
    tx = local_id().x
    ty = local_id().y
    pieces = v.outer * v.chunks
    piece = workgroup_id().x * ROWS + ty
    # rows past the last piece read the last piece again (and store nothing): all threads reach the barriers
    p = min(piece, pieces - 1)
    row = v.offset + (p // v.chunks) * v.s_outer
    first = (p % v.chunks) * ROW_CHUNK
    acc = start(x, row + first * v.s_n)
    for k in static_range(PER_ROW_THREAD):
        i = first + k * ROW_THREADS + tx
        if i < v.n:
            acc = combine(acc, element(x[row + i * v.s_n]))
    threads[ty, tx] = acc
    for step in static_range(ROW_STEPS):
        barrier()
        half = u32((ROW_THREADS // 2) >> step)
        if tx < half:
            acc = combine(acc, threads[ty, tx + half])
            threads[ty, tx] = acc
    if tx == 0 and piece < pieces:
        out[piece] = acc


@kernel(workgroup_size=(TILE, LANES))
def reduce_axis(out: MutBuf[T], x: Buf[T], v: Axis):
    require(len(out) >= v.outer * v.chunks * v.inner)
    lanes = shared(T, LANES, TILE)
    tx = local_id().x
    lane = local_id().y
    tiles = (v.inner + (TILE - 1)) // TILE
    j = (workgroup_id().x % tiles) * TILE + tx
    rest = workgroup_id().x // tiles
    chunk = rest % v.chunks
    o = rest // v.chunks
    # threads past the last inner index read that index again (and store nothing)
    base = v.offset + o * v.s_outer + min(j, v.inner - 1) * v.s_inner
    first = chunk * AXIS_CHUNK
    acc = start(x, base + first * v.s_n)
    for k in static_range(PER_LANE):
        i = first + k * LANES + lane
        if i < v.n:
            acc = combine(acc, element(x[base + i * v.s_n]))
    lanes[lane, tx] = acc
    barrier()
    if lane == 0 and j < v.inner:
        for s in range(1, LANES):
            acc = combine(acc, lanes[s, tx])
        out[rest * v.inner + j] = acc
