"""Causal grouped-query attention over an f16 KV cache, and the cache write.

Query i of a call (position start + i) attends to cache positions 0 .. start + i, where `start` is read from a
(1,) u32 buffer at run time: a captured decode step is replayed at a new position by writing that buffer, with the
grid of the capture. The grid is therefore sized for the whole cache (`ctx`), and workgroups whose keys lie past
the live length find no work and exit; every read and write is also bounded by `ctx`, whatever the buffer holds.

- `attend`: a workgroup of WORKGROUP threads takes one (split, head, query): the keys s * span .. (s + 1) * span
  of that query's live range, in chunks of CHUNK keys. Each thread scores CHUNK / WORKGROUP keys against the
  query (held in shared memory; keys are f16, sums f32), a shared-memory tree gives the chunk's maximum, and the
  running softmax is rescaled by exp(old max - new max) (flash attention's online softmax). Each thread then owns
  the output dimensions lid, lid + WORKGROUP, ... and adds the chunk's probabilities times the values, whose loads
  coalesce across threads. With one split (`direct`) it writes the normalised output; with several it writes the
  split's unnormalised output, maximum and sum to `dst` as (query, head, split, head_dim + 2) partials.
- `attend_combine`: a workgroup per (query, head) merges the live splits' partials (log-sum-exp weights).
- `write_cache`: a thread per element converts rows of x (n, kv_heads, head_dim) f32 to f16 rows start .. of the
  cache; rows at or past ctx are dropped.

Masked keys and the running maximum's starting value are a large finite negative, not -inf: lavapipe does not
carry infinities through arithmetic, and exp of a finite -1e30 is 0 everywhere.
"""

from khal_runtime.lang import (
    Array,
    Buf,
    MutBuf,
    array,
    barrier,
    exp,
    f16,
    f32,
    global_id,
    kernel,
    local_id,
    require,
    shared,
    static_range,
    struct,
    u32,
    workgroup_id,
)

WORKGROUP = 64                      # threads of an attend or combine workgroup
CHUNK = 256                         # keys scored per step of attend (a multiple of WORKGROUP)
KEYS_PER_THREAD = CHUNK // WORKGROUP
MAX_HEAD_DIM = 256
DIMS_PER_THREAD = MAX_HEAD_DIM // WORKGROUP
TREE = 6                            # log2(WORKGROUP): halvings of a shared-memory reduction
NEG_BIG = -1.0e30                   # masked scores and the initial running maximum (see the module docstring)


@struct
class Attn:
    n: u32              # query positions of this call
    heads: u32
    kv_heads: u32       # heads is a multiple of kv_heads: query head h reads kv head h // (heads // kv_heads)
    head_dim: u32       # at most MAX_HEAD_DIM
    ctx: u32            # rows of the caches: no key at or past ctx is read
    splits: u32         # pieces of the key range (grid x); 1: `direct`
    span: u32           # keys per split, a multiple of CHUNK
    direct: u32         # 1: dst is the output (n, heads, head_dim); 0: dst holds the partials
    q_off: u32          # element offsets of q, the caches and dst
    k_off: u32
    v_off: u32
    o_off: u32
    scale: f32


@struct
class CacheRows:
    n: u32              # rows of x
    row: u32            # elements of a row: kv_heads * head_dim
    ctx: u32            # rows of the cache
    x_off: u32
    c_off: u32


def live_keys(a: Attn, start: Buf[u32], i: u32) -> u32:
    """The keys query i attends to: positions 0 .. start + i, bounded by the cache."""
    return min(start[0] + i + 1, a.ctx)


def tree_max(red: Array[f32], lid: u32, value: f32) -> f32:
    """The workgroup's maximum of `value` (every thread gets it)."""
    red[lid] = value
    barrier()
    for step in static_range(TREE):
        half = u32(WORKGROUP >> (step + 1))
        if lid < half:
            red[lid] = max(red[lid], red[lid + half])
        barrier()
    total = red[0]
    barrier()
    return total


def tree_sum(red: Array[f32], lid: u32, value: f32) -> f32:
    red[lid] = value
    barrier()
    for step in static_range(TREE):
        half = u32(WORKGROUP >> (step + 1))
        if lid < half:
            red[lid] = red[lid] + red[lid + half]
        barrier()
    total = red[0]
    barrier()
    return total


@kernel(workgroup_size=(WORKGROUP,))
def attend(dst: MutBuf[f32], q: Buf[f32], k: Buf[f16], v: Buf[f16], start: Buf[u32], a: Attn):
    require(a.head_dim <= MAX_HEAD_DIM)
    require(a.span % CHUNK == 0)
    require(len(q) >= a.q_off + a.n * a.heads * a.head_dim)
    require(len(k) >= a.k_off + a.ctx * a.kv_heads * a.head_dim)
    require(len(v) >= a.v_off + a.ctx * a.kv_heads * a.head_dim)
    require(a.direct <= 1)
    # room for the output (direct) or the partials
    require(len(dst) >= a.o_off + a.n * a.heads * (a.direct * a.head_dim
                                                   + (1 - a.direct) * a.splits * (a.head_dim + 2)))
    q_s = shared(f32, MAX_HEAD_DIM)
    p_s = shared(f32, CHUNK)
    red = shared(f32, WORKGROUP)
    acc = array(f32, DIMS_PER_THREAD)
    scores = array(f32, KEYS_PER_THREAD)
    lid = local_id().x
    split = workgroup_id().x
    h = workgroup_id().y
    i = workgroup_id().z
    hd = a.head_dim
    kv_row = a.kv_heads * hd
    kv = h // (a.heads // a.kv_heads)
    q_base = a.q_off + (i * a.heads + h) * hd
    for t in static_range(DIMS_PER_THREAD):
        d = lid + t * WORKGROUP
        if d < hd:
            q_s[d] = q[q_base + d] * a.scale
    barrier()
    end = min(live_keys(a, start, i), (split + 1) * a.span)
    begin = split * a.span
    run_max = f32(NEG_BIG)
    run_sum = f32(0)            # this thread's share of the softmax denominator, at run_max
    for base in range(begin, end, CHUNK):
        best = f32(NEG_BIG)
        for t in static_range(KEYS_PER_THREAD):
            j = base + lid + t * WORKGROUP
            s = f32(NEG_BIG)
            if j < end:
                row = a.k_off + j * kv_row + kv * hd
                s = f32(0)
                for d in range(hd):
                    s += q_s[d] * f32(k[row + d])
            scores[t] = s
            best = max(best, s)
        new_max = max(run_max, tree_max(red, lid, best))
        rescale = exp(run_max - new_max)
        run_sum *= rescale
        for t in static_range(KEYS_PER_THREAD):
            p = exp(scores[t] - new_max) if base + lid + t * WORKGROUP < end else f32(0)
            p_s[lid + t * WORKGROUP] = p
            run_sum += p
        run_max = new_max
        barrier()
        count = min(end - base, u32(CHUNK))
        for t in static_range(DIMS_PER_THREAD):
            d = lid + t * WORKGROUP
            if d < hd:
                o = acc[t] * rescale
                col = a.v_off + base * kv_row + kv * hd + d
                for j in range(count):
                    o += p_s[j] * f32(v[col + j * kv_row])
                acc[t] = o
        barrier()
    total = tree_sum(red, lid, run_sum)
    if a.direct == 1:
        out = a.o_off + (i * a.heads + h) * hd
        for t in static_range(DIMS_PER_THREAD):
            d = lid + t * WORKGROUP
            if d < hd and total > 0.0:
                dst[out + d] = acc[t] / total
    elif begin < end:
        out = a.o_off + ((i * a.heads + h) * a.splits + split) * (hd + 2)
        for t in static_range(DIMS_PER_THREAD):
            d = lid + t * WORKGROUP
            if d < hd:
                dst[out + d] = acc[t]
        if lid == 0:
            dst[out + hd] = run_max
            dst[out + hd + 1] = total


@kernel(workgroup_size=(WORKGROUP,))
def attend_combine(out: MutBuf[f32], part: Buf[f32], start: Buf[u32], a: Attn):
    require(a.head_dim <= MAX_HEAD_DIM)
    require(a.span > 0)
    require(len(part) >= a.n * a.heads * a.splits * (a.head_dim + 2))
    require(len(out) >= a.o_off + a.n * a.heads * a.head_dim)
    acc = array(f32, DIMS_PER_THREAD)
    lid = local_id().x
    h = workgroup_id().x
    i = workgroup_id().y
    hd = a.head_dim
    live = min((live_keys(a, start, i) + a.span - 1) // a.span, a.splits)
    base = (i * a.heads + h) * a.splits * (hd + 2)
    best = f32(NEG_BIG)
    for s in range(live):
        best = max(best, part[base + s * (hd + 2) + hd])
    total = f32(0)
    for s in range(live):
        at = base + s * (hd + 2)
        w = exp(part[at + hd] - best)
        total += w * part[at + hd + 1]
        for t in static_range(DIMS_PER_THREAD):
            d = lid + t * WORKGROUP
            if d < hd:
                acc[t] += w * part[at + d]
    dst = a.o_off + (i * a.heads + h) * hd
    for t in static_range(DIMS_PER_THREAD):
        d = lid + t * WORKGROUP
        if d < hd and total > 0.0:
            out[dst + d] = acc[t] / total


@kernel(workgroup_size=(256,))
def write_cache(cache: MutBuf[f16], x: Buf[f32], start: Buf[u32], c: CacheRows):
    require(len(x) >= c.x_off + c.n * c.row)
    require(len(cache) >= c.c_off + c.ctx * c.row)
    e = global_id().x
    if e < c.n * c.row:
        r = e // c.row
        pos = start[0] + r
        if pos < c.ctx and pos >= start[0]:         # pos < start[0]: start + r wrapped around 2^32
            cache[c.c_off + pos * c.row + e % c.row] = f16(x[c.x_off + e])
