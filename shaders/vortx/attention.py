"""Causal grouped-query attention over an f16 KV cache, and the cache write.

Query i of a call (position start + i) attends to cache positions 0 .. start + i, where `start` is read from a
(1,) u32 buffer at run time: a captured decode step is replayed at a new position by writing that buffer, with the
grid of the capture. The grid is therefore sized for the whole cache (`ctx`), and workgroups whose keys lie past
the live length find no work and exit; every read and write is also bounded by `ctx`, whatever the buffer holds.

- `attend`: a workgroup of WORKGROUP threads takes one (split, query) and GROUP query heads that share one kv
  head (a template: GQA's keys and values are loaded once for the group): the keys s * span .. (s + 1) * span
  of the query's live range, in chunks of CHUNK keys. Each thread scores CHUNK / WORKGROUP keys against the
  group's queries (held in shared memory, pre-scaled; keys f16, sums f32), one shared-memory tree gives every
  head's chunk maximum, and the running softmax is rescaled by exp(old max - new max) (flash attention's online
  softmax). Each thread then owns the output dimensions lid, lid + WORKGROUP, ... and adds the chunk's
  probabilities times the values, whose loads coalesce across threads. With one split (`direct`) it writes the
  normalised output; with several, each split's unnormalised output, maximum and sum go to `dst` as (query,
  head, split, head_dim + 2) partials (a split past the live length writes nothing).
- `attend_combine`: a workgroup per (query, head) merges the live splits' partials (log-sum-exp weights).
- `write_cache`: a thread per element converts rows of x (n, kv_heads, head_dim) f32 to f16 rows start .. of the
  cache; rows at or past ctx are dropped.

Masked keys and the running maximum's starting value are a large finite negative, not -inf: lavapipe does not
carry infinities through arithmetic, and exp of a finite -1e30 is 0 everywhere.
"""

from khal_runtime.lang import (
    Array,
    Buf,
    Const,
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
    template,
    u32,
    workgroup_id,
)

WORKGROUP = 64                      # threads of an attend or combine workgroup
CHUNK = 256                         # keys scored per step of attend (a multiple of WORKGROUP)
KEYS_PER_THREAD = CHUNK // WORKGROUP
MAX_HEAD_DIM = 256
DIMS_PER_THREAD = MAX_HEAD_DIM // WORKGROUP
TREE = 6                            # log2(WORKGROUP): halvings of a shared-memory reduction
GROUP = template(1, 2, 3, 4, 7, 8)     # query heads of one kv head per attend workgroup: K/V loaded once for them
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


def tree(red: Array[f32], lid: u32, is_max: Const[bool]):
    """Reduce red[g, 0 .. WORKGROUP) into red[g, 0] for every head g of the workgroup (max or sum), all heads in
    one tree of TREE halvings; every thread reads the results after the last barrier."""
    barrier()
    for step in static_range(TREE):
        half = u32(WORKGROUP >> (step + 1))
        if lid < half:
            for g in static_range(GROUP):
                if is_max:
                    red[g, lid] = max(red[g, lid], red[g, lid + half])
                else:
                    red[g, lid] = red[g, lid] + red[g, lid + half]
        barrier()


@kernel(workgroup_size=(WORKGROUP,))
def attend(dst: MutBuf[f32], q: Buf[f32], k: Buf[f16], v: Buf[f16], start: Buf[u32], a: Attn):
    require(a.head_dim <= MAX_HEAD_DIM)
    require(a.head_dim % 4 == 0)
    require(a.span % CHUNK == 0)
    require((a.heads // a.kv_heads) % GROUP == 0)
    require(len(q) >= a.q_off + a.n * a.heads * a.head_dim)
    require(len(k) >= a.k_off + a.ctx * a.kv_heads * a.head_dim)
    require(len(v) >= a.v_off + a.ctx * a.kv_heads * a.head_dim)
    require(a.direct <= 1)
    # room for the output (direct) or the partials
    require(len(dst) >= a.o_off + a.n * a.heads * (a.direct * a.head_dim
                                                   + (1 - a.direct) * a.splits * (a.head_dim + 2)))
    q_s = shared(f32, GROUP, MAX_HEAD_DIM)
    p_s = shared(f32, GROUP, CHUNK)
    red = shared(f32, GROUP, WORKGROUP)
    acc = array(f32, GROUP, DIMS_PER_THREAD)
    scores = array(f32, GROUP, KEYS_PER_THREAD)
    run_max = array(f32, GROUP)
    run_sum = array(f32, GROUP)         # this thread's share of the softmax denominators, at run_max
    rescale = array(f32, GROUP)
    lid = local_id().x
    split = workgroup_id().x
    i = workgroup_id().z
    hd = a.head_dim
    kv_row = a.kv_heads * hd
    h0 = workgroup_id().y * GROUP                   # the workgroup's first query head; all read one kv head
    kv = h0 // (a.heads // a.kv_heads)
    for g in static_range(GROUP):
        run_max[g] = NEG_BIG
        for t in static_range(DIMS_PER_THREAD):
            d = lid + t * WORKGROUP
            if d < hd:
                q_s[g, d] = q[a.q_off + (i * a.heads + h0 + g) * hd + d] * a.scale
    barrier()
    end = min(live_keys(a, start, i), (split + 1) * a.span)
    begin = split * a.span
    for base in range(begin, end, CHUNK):
        for t in static_range(KEYS_PER_THREAD):
            j = base + lid + t * WORKGROUP
            for g in static_range(GROUP):
                scores[g, t] = 0.0
            if j < end:
                row = a.k_off + j * kv_row + kv * hd
                for d0 in range(0, hd, 4):
                    for u in static_range(4):
                        key = f32(k[row + d0 + u])
                        for g in static_range(GROUP):
                            scores[g, t] += q_s[g, d0 + u] * key
            else:
                for g in static_range(GROUP):
                    scores[g, t] = NEG_BIG
        for g in static_range(GROUP):
            best = scores[g, 0]
            for t in static_range(1, KEYS_PER_THREAD):
                best = max(best, scores[g, t])
            red[g, lid] = best
        tree(red, lid, True)
        for g in static_range(GROUP):
            new_max = max(run_max[g], red[g, 0])
            rescale[g] = exp(run_max[g] - new_max)
            run_sum[g] *= rescale[g]
            for t in static_range(KEYS_PER_THREAD):
                p = exp(scores[g, t] - new_max) if base + lid + t * WORKGROUP < end else f32(0)
                p_s[g, lid + t * WORKGROUP] = p
                run_sum[g] += p
            run_max[g] = new_max
        barrier()
        count = min(end - base, u32(CHUNK))
        for t in static_range(DIMS_PER_THREAD):
            d = lid + t * WORKGROUP
            if d < hd:
                for g in static_range(GROUP):
                    acc[g, t] *= rescale[g]
                col = a.v_off + base * kv_row + kv * hd + d
                for j in range(count):
                    value = f32(v[col + j * kv_row])
                    for g in static_range(GROUP):
                        acc[g, t] += p_s[g, j] * value
        barrier()
    for g in static_range(GROUP):
        red[g, lid] = run_sum[g]
    tree(red, lid, False)
    for g in static_range(GROUP):
        total = red[g, 0]
        h = h0 + g
        if a.direct == 1:
            for t in static_range(DIMS_PER_THREAD):
                d = lid + t * WORKGROUP
                if d < hd and total > 0.0:
                    dst[a.o_off + (i * a.heads + h) * hd + d] = acc[g, t] / total
        elif begin < end:
            out = a.o_off + ((i * a.heads + h) * a.splits + split) * (hd + 2)
            for t in static_range(DIMS_PER_THREAD):
                d = lid + t * WORKGROUP
                if d < hd:
                    dst[out + d] = acc[g, t]
            if lid == 0:
                dst[out + hd] = run_max[g]
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
