"""Selection along the last axis of rows of f32: argmax and top-k, each as passes of partials per workgroup.

A pass sees `rows` rows of `n` candidates and cuts each row into pieces; a workgroup takes one piece and writes its
best (argmax) or its best `k` (top-k), values and ids, so the next pass sees rows of `chunks` or `chunks * k`
candidates; the host (`vortx/select.py`) repeats passes until one piece per row is left. The first pass reads a
strided row of values (`*_rows`, the id of an element is its position in the row); later passes read the
candidates of the previous pass, values and ids (`*_merge`).

Candidates are compared as integers, never as floats: `order_key` maps an f32 to a u32 whose unsigned order is the
float order, with every NaN above +inf and -0.0 equal to +0.0 (numpy's argmax: a NaN is the largest, and the
first of equal values wins). Integer compares need no case for NaN, and WebGPU promises nothing for NaN and
infinities in float code (docs/IR.md, Targets): this gives one order on every backend. The rank order is key
descending, then id ascending: ties go to the lowest index. Padding (positions past the end of a row) is the
candidate (-inf, NO_ID), which ranks below every real one, -inf included (its id is lower); a pass writes it for a
piece of fewer than `k` elements, and the next pass reads it like any other candidate.

- `argmax_*`: each thread walks its share of the piece, then shared memory combines the workgroup's threads in a
  tree of halvings.
- `top_k_*`: a piece is SORT candidates (padded), bitonic-sorted in shared memory into rank order; the first `k`
  are written. `k` is at most MAX_K = SORT / 2, so that every pass at least halves the candidates.
"""

from khal_runtime.lang import (
    Array,
    Buf,
    MutBuf,
    barrier,
    bitcast,
    f32,
    kernel,
    local_id,
    require,
    shared,
    static_range,
    struct,
    u32,
    workgroup_id,
)

WORKGROUP = 256                 # threads of every selection workgroup
PER_THREAD = 8                  # argmax: elements per thread in a piece
PIECE = WORKGROUP * PER_THREAD  # argmax: elements of a piece
SORT = 2048                     # top-k: candidates of a piece, sorted in shared memory (16 KiB of keys and ids)
MAX_K = SORT // 2
NAN_KEY = 4294967295            # 0xFFFFFFFF: every NaN, above +inf
NO_ID = 4294967295              # the id of padding
PAD_KEY = 8388607               # 0x007FFFFF, the key of -inf: padding is (-inf, NO_ID)


@struct
class Rows:
    rows: u32
    n: u32              # candidates per row
    offset: u32         # of the first row, in elements
    stride: u32         # between rows, in elements (candidates of a row are adjacent)
    chunks: u32         # pieces per row in this pass: the outputs hold rows * chunks * k pairs
    k: u32              # pairs written per piece (argmax: 1)


def order_key(x: f32) -> u32:
    """A u32 whose unsigned order is x's order: NaN above +inf, -0.0 equal to +0.0."""
    bits = bitcast(u32, x)
    if (bits & 0x7FFFFFFF) > 0x7F800000:
        return u32(NAN_KEY)
    if bits == 0x80000000:
        bits = u32(0)
    if bits >= 0x80000000:
        return ~bits                # negative: the larger the magnitude, the smaller the key
    return bits | 0x80000000


def key_value(key: u32) -> f32:
    """The float of a key (NaN for NAN_KEY, +0.0 for both zeros)."""
    if key >= 0x80000000:
        return bitcast(f32, key & 0x7FFFFFFF)
    return bitcast(f32, ~key)


def key_at(x: Buf[f32], base: u32, j: u32, n: u32) -> u32:
    """The key of x[base + j], or padding's past the end of the row."""
    return order_key(x[base + j]) if j < n else u32(PAD_KEY)


def before(key_a: u32, id_a: u32, key_b: u32, id_b: u32) -> bool:
    """Whether candidate a ranks before candidate b."""
    return key_a > key_b or (key_a == key_b and id_a < id_b)


# --- argmax --------------------------------------------------------------------------------------------------------

def best_of_workgroup(key: u32, id: u32, keys: Array[u32], ids: Array[u32]) -> u32:
    """The id of the best of every thread's candidate, in shared memory; lid 0 returns it (and keys[0] is its key
    after the call)."""
    lid = local_id().x
    keys[lid] = key
    ids[lid] = id
    best_key = key
    best_id = id
    half = u32(WORKGROUP // 2)
    while half > 0:
        barrier()
        if lid < half:
            other_key = keys[lid + half]
            other_id = ids[lid + half]
            if before(other_key, other_id, best_key, best_id):
                best_key = other_key
                best_id = other_id
                keys[lid] = best_key
                ids[lid] = best_id
        half = half // 2
    return best_id


@kernel(workgroup_size=(WORKGROUP,))
def argmax_rows(values: MutBuf[f32], ids: MutBuf[u32], x: Buf[f32], v: Rows):
    """The best element of each piece of PIECE elements of each row of x."""
    require(len(values) >= v.rows * v.chunks)
    require(len(ids) >= v.rows * v.chunks)
    keys_s = shared(u32, WORKGROUP)
    ids_s = shared(u32, WORKGROUP)
    lid = local_id().x
    p = workgroup_id().x
    row = p // v.chunks
    begin = (p % v.chunks) * PIECE
    end = min(begin + PIECE, v.n)
    base = v.offset + row * v.stride
    best_key = u32(PAD_KEY)
    best_id = u32(NO_ID)
    for k in static_range(PER_THREAD):
        j = begin + lid + k * WORKGROUP
        if j < end:
            key = order_key(x[base + j])
            if before(key, j, best_key, best_id):
                best_key = key
                best_id = j
    best = best_of_workgroup(best_key, best_id, keys_s, ids_s)
    if lid == 0:
        values[p] = key_value(keys_s[0])
        ids[p] = best


@kernel(workgroup_size=(WORKGROUP,))
def argmax_merge(values: MutBuf[f32], ids: MutBuf[u32], x: Buf[f32], x_ids: Buf[u32], v: Rows):
    """The best of each piece of PIECE candidates (value x, id x_ids) of each contiguous row."""
    require(len(values) >= v.rows * v.chunks)
    require(len(ids) >= v.rows * v.chunks)
    require(len(x_ids) == len(x))
    keys_s = shared(u32, WORKGROUP)
    ids_s = shared(u32, WORKGROUP)
    lid = local_id().x
    p = workgroup_id().x
    row = p // v.chunks
    begin = (p % v.chunks) * PIECE
    end = min(begin + PIECE, v.n)
    base = v.offset + row * v.stride
    best_key = u32(PAD_KEY)
    best_id = u32(NO_ID)
    for k in static_range(PER_THREAD):
        j = begin + lid + k * WORKGROUP
        if j < end:
            key = order_key(x[base + j])
            id = x_ids[base + j]
            if before(key, id, best_key, best_id):
                best_key = key
                best_id = id
    best = best_of_workgroup(best_key, best_id, keys_s, ids_s)
    if lid == 0:
        values[p] = key_value(keys_s[0])
        ids[p] = best


# --- top-k ---------------------------------------------------------------------------------------------------------

def sort_piece(keys: Array[u32], ids: Array[u32]):
    """Bitonic sort of the SORT candidates in shared memory into rank order (every thread of the workgroup calls
    it, after storing its candidates); each step compares and exchanges SORT / 2 pairs, then waits."""
    lid = local_id().x
    size = u32(2)
    while size <= SORT:
        stride = size // 2
        while stride > 0:
            barrier()
            for q in static_range(SORT // 2 // WORKGROUP):
                t = lid + q * WORKGROUP                     # the pair: i and i + stride
                i = ((t & ~(stride - 1)) << 1) | (t & (stride - 1))
                j = i + stride
                key_i = keys[i]
                id_i = ids[i]
                key_j = keys[j]
                id_j = ids[j]
                # blocks of `size` alternate between rank order and its reverse, until the last, whole block
                forward = (i & size) == 0
                swap = before(key_j, id_j, key_i, id_i) if forward else before(key_i, id_i, key_j, id_j)
                if swap:
                    keys[i] = key_j
                    ids[i] = id_j
                    keys[j] = key_i
                    ids[j] = id_i
            stride = stride // 2
        size = size * 2
    barrier()


def write_best(values: MutBuf[f32], ids: MutBuf[u32], keys: Array[u32], sorted_ids: Array[u32], at: u32, k: u32):
    """The first k candidates of the sorted piece, to values[at:at + k] and ids[at:at + k]."""
    for r in range(local_id().x, k, WORKGROUP):
        values[at + r] = key_value(keys[r])
        ids[at + r] = sorted_ids[r]


@kernel(workgroup_size=(WORKGROUP,))
def top_k_rows(values: MutBuf[f32], ids: MutBuf[u32], x: Buf[f32], v: Rows):
    """The best k of each piece of SORT elements of each row of x, in rank order."""
    require(len(values) >= v.rows * v.chunks * v.k)
    require(len(ids) >= v.rows * v.chunks * v.k)
    require(v.k <= MAX_K)
    keys_s = shared(u32, SORT)
    ids_s = shared(u32, SORT)
    lid = local_id().x
    p = workgroup_id().x
    row = p // v.chunks
    begin = (p % v.chunks) * SORT
    base = v.offset + row * v.stride
    for q in static_range(SORT // WORKGROUP):
        e = lid + q * WORKGROUP
        j = begin + e
        keys_s[e] = key_at(x, base, j, v.n)
        ids_s[e] = j if j < v.n else u32(NO_ID)
    sort_piece(keys_s, ids_s)
    write_best(values, ids, keys_s, ids_s, p * v.k, v.k)


@kernel(workgroup_size=(WORKGROUP,))
def top_k_merge(values: MutBuf[f32], ids: MutBuf[u32], x: Buf[f32], x_ids: Buf[u32], v: Rows):
    """The best k of each piece of SORT candidates (value x, id x_ids) of each row, in rank order."""
    require(len(values) >= v.rows * v.chunks * v.k)
    require(len(ids) >= v.rows * v.chunks * v.k)
    require(len(x_ids) == len(x))
    require(v.k <= MAX_K)
    keys_s = shared(u32, SORT)
    ids_s = shared(u32, SORT)
    lid = local_id().x
    p = workgroup_id().x
    row = p // v.chunks
    begin = (p % v.chunks) * SORT
    base = v.offset + row * v.stride
    for q in static_range(SORT // WORKGROUP):
        e = lid + q * WORKGROUP
        j = begin + e
        keys_s[e] = key_at(x, base, j, v.n)
        ids_s[e] = x_ids[base + j] if j < v.n else u32(NO_ID)
    sort_piece(keys_s, ids_s)
    write_best(values, ids, keys_s, ids_s, p * v.k, v.k)
