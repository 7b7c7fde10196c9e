"""Causal grouped-query attention over an f16 KV cache, and the cache write.

Query i of a call (position start + i) attends to cache positions 0 .. start + i, where `start` is read from a
(1,) u32 buffer at run time: a captured decode step is replayed at a new position by writing that buffer, with the
grid of the capture. The grid is therefore sized for the whole cache (`ctx`), and workgroups whose keys lie past
the live length find no work and exit; every read and write is also bounded by `ctx`, whatever the buffer holds.
Both attend kernels take GROUP query heads that share one kv head per workgroup (a template: GQA's keys and values
are loaded once for the group) and keep flash attention's online softmax: a running maximum per head, the sums
and outputs rescaled by exp(old max - new max) at each step.

- `attend` (prefill, and decode on CPU devices): a workgroup of WORKGROUP threads takes one query and all its
  keys, in chunks of CHUNK: each thread scores CHUNK / WORKGROUP keys against the group's queries (held in shared
  memory, pre-scaled; keys f16, sums f32), one shared-memory tree gives every head's chunk maximum, then each
  thread owns the output dimensions lid, lid + WORKGROUP, ... and adds the chunk's probabilities times the values,
  whose loads coalesce across threads. It writes the normalised output.
- `attend_split` (decode on a GPU): a workgroup per piece of a query's keys, `splits` pieces of `split_span` keys
  (the live length over the splits rounded up to a multiple of `span`, itself a multiple of SPLIT_CHUNK): short
  contexts run a few short pieces, long ones every workgroup of the grid. Per step of SPLIT_CHUNK keys, a team of
  TEAM invocations scores each key, reading its row in runs of 4 dimensions, and shuffles add the team's dot
  products; a subgroup maximum and one barrier give the chunk maximum, a second publishes the probabilities, and
  the P.V loop over the chunk is unrolled (coalesced value loads, all in flight). It writes each split's
  unnormalised output, maximum and sum to `part` as (query, head, split, head_dim + 2) partials; a split past the
  live length writes nothing.
- `attend_combine`: a workgroup per (query, head) merges the live splits' partials (log-sum-exp weights): the
  maxima and the weights across threads, the weighted outputs in runs of UNROLL splits (their loads in flight
  together) dealt round SLICES groups of threads, whose sums meet in shared memory.
- `write_cache`: a thread per element converts rows of x (n, kv_heads, head_dim) f32 to f16 rows start .. of the
  cache; rows at or past ctx are dropped.

Teams are made of consecutive invocations of one subgroup (by subgroup_id and subgroup_invocation_id, not local
id), so subgroups of at least TEAM invocations are needed: 8 on lavapipe, 32 on NVIDIA, 4 to 64 elsewhere.
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
    num_subgroups,
    require,
    shared,
    static_range,
    struct,
    subgroup_add,
    subgroup_id,
    subgroup_invocation_id,
    subgroup_max,
    subgroup_shuffle_xor,
    subgroup_size,
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
SPLIT_CHUNK = 32                    # keys per step of attend_split, and the smallest span of its splits
TEAM_BITS = 2
TEAM = 1 << TEAM_BITS               # invocations of attend_split that score one key together
TEAMS = WORKGROUP // TEAM
KEYS_PER_TEAM = SPLIT_CHUNK // TEAMS
MAX_SUBGROUPS = WORKGROUP // TEAM   # subgroups of a workgroup, at TEAM invocations or more each
MAX_SPLITS = 256                    # splits attend_combine merges
UNROLL = 8                          # splits whose partials a thread of attend_combine loads at once
SLICES = 4                          # attend_combine: runs of UNROLL splits go round SLICES groups of WORKGROUP
COMBINE_THREADS = SLICES * WORKGROUP
GROUP = template(1, 2, 3, 4, 7, 8)     # query heads of one kv head per attend workgroup: K/V loaded once for them
NEG_BIG = -1.0e30                   # masked scores and the initial running maximum (see the module docstring)


@struct
class Attn:
    n: u32              # query positions of this call
    heads: u32
    kv_heads: u32       # heads is a multiple of kv_heads: query head h reads kv head h // (heads // kv_heads)
    head_dim: u32       # at most MAX_HEAD_DIM
    ctx: u32            # rows of the caches: no key at or past ctx is read
    splits: u32         # attend_split: pieces of the key range (grid x), at most MAX_SPLITS
    span: u32           # attend_split: the keys of a split are a multiple of it (a multiple of SPLIT_CHUNK)
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


def split_span(a: Attn, live: u32) -> u32:
    """The keys of each split of attend_split at `live` keys: live over the splits, rounded up to the span."""
    share = (live + a.splits - 1) // a.splits
    return (share + a.span - 1) // a.span * a.span


def load_queries(q_s: Array[f32], q: Buf[f32], a: Attn, i: u32, h0: u32, lid: u32):
    """The group's queries of position i into shared memory, scaled."""
    for g in static_range(GROUP):
        for t in static_range(DIMS_PER_THREAD):
            d = lid + t * WORKGROUP
            if d < a.head_dim:
                q_s[g, d] = q[a.q_off + (i * a.heads + h0 + g) * a.head_dim + d] * a.scale
    barrier()


def to_subgroups(red: Array[f32], g: u32, value: f32, is_max: Const[bool]):
    """The maximum or sum of `value` over the subgroup into red[g, subgroup] (read after a barrier)."""
    value = subgroup_max(value) if is_max else subgroup_add(value)
    if subgroup_invocation_id() == 0:
        red[g, subgroup_id()] = value


def over_subgroups(red: Array[f32], g: u32, is_max: Const[bool]) -> f32:
    """The maximum or sum of red[g, 0 .. num_subgroups())."""
    total = red[g, 0]
    for s in range(1, num_subgroups()):
        total = max(total, red[g, s]) if is_max else total + red[g, s]
    return total


@kernel(workgroup_size=(WORKGROUP,))
def attend(dst: MutBuf[f32], q: Buf[f32], k: Buf[f16], v: Buf[f16], start: Buf[u32], a: Attn):
    require(a.head_dim <= MAX_HEAD_DIM)
    require(a.head_dim % 4 == 0)
    require((a.heads // a.kv_heads) % GROUP == 0)
    require(len(q) >= a.q_off + a.n * a.heads * a.head_dim)
    require(len(k) >= a.k_off + a.ctx * a.kv_heads * a.head_dim)
    require(len(v) >= a.v_off + a.ctx * a.kv_heads * a.head_dim)
    require(len(dst) >= a.o_off + a.n * a.heads * a.head_dim)
    q_s = shared(f32, GROUP, MAX_HEAD_DIM)
    p_s = shared(f32, GROUP, CHUNK)
    red = shared(f32, GROUP, WORKGROUP)
    acc = array(f32, GROUP, DIMS_PER_THREAD)
    scores = array(f32, GROUP, KEYS_PER_THREAD)
    run_max = array(f32, GROUP)
    run_sum = array(f32, GROUP)         # this thread's share of the softmax denominators, at run_max
    rescale = array(f32, GROUP)
    lid = local_id().x
    i = workgroup_id().z
    hd = a.head_dim
    kv_row = a.kv_heads * hd
    h0 = workgroup_id().y * GROUP                   # the workgroup's first query head; all read one kv head
    kv = h0 // (a.heads // a.kv_heads)
    for g in static_range(GROUP):
        run_max[g] = NEG_BIG
    load_queries(q_s, q, a, i, h0, lid)
    end = live_keys(a, start, i)
    for base in range(0, end, CHUNK):
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
        for t in static_range(DIMS_PER_THREAD):
            d = lid + t * WORKGROUP
            if d < hd and total > 0.0:
                dst[a.o_off + (i * a.heads + h0 + g) * hd + d] = acc[g, t] / total


@kernel(workgroup_size=(WORKGROUP,))
def attend_split(part: MutBuf[f32], q: Buf[f32], k: Buf[f16], v: Buf[f16], start: Buf[u32], a: Attn):
    require(a.head_dim <= MAX_HEAD_DIM)
    require(a.head_dim % 4 == 0)
    require(a.span > 0 and a.span % SPLIT_CHUNK == 0)
    require(0 < a.splits and a.splits <= MAX_SPLITS)
    require((a.heads // a.kv_heads) % GROUP == 0)
    require(len(q) >= a.q_off + a.n * a.heads * a.head_dim)
    require(len(k) >= a.k_off + a.ctx * a.kv_heads * a.head_dim)
    require(len(v) >= a.v_off + a.ctx * a.kv_heads * a.head_dim)
    require(len(part) >= a.o_off + a.n * a.heads * a.splits * (a.head_dim + 2))
    q_s = shared(f32, GROUP, MAX_HEAD_DIM)
    p_s = shared(f32, GROUP, SPLIT_CHUNK)
    red = shared(f32, GROUP, MAX_SUBGROUPS)
    acc = array(f32, GROUP, DIMS_PER_THREAD)
    scores = array(f32, GROUP, KEYS_PER_TEAM)
    run_max = array(f32, GROUP)
    run_sum = array(f32, GROUP)         # this team's share of the softmax denominators (lane 0 of each), at run_max
    rescale = array(f32, GROUP)
    lid = local_id().x
    flat = subgroup_id() * subgroup_size() + subgroup_invocation_id()
    team = flat >> TEAM_BITS
    lane = flat & (TEAM - 1)
    split = workgroup_id().x
    i = workgroup_id().z
    hd = a.head_dim
    kv_row = a.kv_heads * hd
    h0 = workgroup_id().y * GROUP
    kv = h0 // (a.heads // a.kv_heads)
    live = live_keys(a, start, i)
    span = split_span(a, live)
    begin = split * span
    end = min(live, begin + span)
    if begin >= end:
        return
    for g in static_range(GROUP):
        run_max[g] = NEG_BIG
    load_queries(q_s, q, a, i, h0, lid)
    k_base = a.k_off + kv * hd
    for base in range(begin, end, SPLIT_CHUNK):
        for g in static_range(GROUP):
            for t in static_range(KEYS_PER_TEAM):
                scores[g, t] = 0.0
        # keys past the end read the last live row (in bounds; their scores are masked below)
        for d0 in range(lane * 4, hd, TEAM * 4):
            for t in static_range(KEYS_PER_TEAM):
                row = k_base + min(base + team + t * TEAMS, end - 1) * kv_row + d0
                for u in static_range(4):
                    key = f32(k[row + u])
                    for g in static_range(GROUP):
                        scores[g, t] += q_s[g, d0 + u] * key
        for g in static_range(GROUP):
            best = f32(NEG_BIG)
            for t in static_range(KEYS_PER_TEAM):
                score = scores[g, t]
                for b in static_range(TEAM_BITS):
                    score += subgroup_shuffle_xor(score, u32(1 << b))
                scores[g, t] = score if base + team + t * TEAMS < end else NEG_BIG
                best = max(best, scores[g, t])
            to_subgroups(red, g, best, True)
        barrier()
        for g in static_range(GROUP):
            new_max = max(run_max[g], over_subgroups(red, g, True))
            rescale[g] = exp(run_max[g] - new_max)
            run_sum[g] *= rescale[g]
            for t in static_range(KEYS_PER_TEAM):
                p = exp(scores[g, t] - new_max)
                if lane == 0:
                    p_s[g, team + t * TEAMS] = p
                    run_sum[g] += p
            run_max[g] = new_max
        # red and p_s are written again only after the next step's first barrier, which every read here precedes
        barrier()
        for t in static_range(DIMS_PER_THREAD):
            d = lid + t * WORKGROUP
            if d < hd:
                for g in static_range(GROUP):
                    acc[g, t] *= rescale[g]
                col = a.v_off + kv * hd + d
                for j in static_range(SPLIT_CHUNK):
                    value = f32(v[col + min(base + j, end - 1) * kv_row])     # p_s is 0 past the end
                    for g in static_range(GROUP):
                        acc[g, t] += p_s[g, j] * value
    for g in static_range(GROUP):
        to_subgroups(red, g, run_sum[g], False)
    barrier()
    for g in static_range(GROUP):
        total = over_subgroups(red, g, False)
        out = a.o_off + ((i * a.heads + h0 + g) * a.splits + split) * (hd + 2)
        for t in static_range(DIMS_PER_THREAD):
            d = lid + t * WORKGROUP
            if d < hd:
                part[out + d] = acc[g, t]
        if lid == 0:
            part[out + hd] = run_max[g]
            part[out + hd + 1] = total


@kernel(workgroup_size=(COMBINE_THREADS,))
def attend_combine(out: MutBuf[f32], part: Buf[f32], start: Buf[u32], a: Attn):
    require(a.head_dim <= MAX_HEAD_DIM)
    require(a.span > 0)
    require(0 < a.splits and a.splits <= MAX_SPLITS)
    require(len(part) >= a.n * a.heads * a.splits * (a.head_dim + 2))
    require(len(out) >= a.o_off + a.n * a.heads * a.head_dim)
    weight = shared(f32, MAX_SPLITS)
    red = shared(f32, 1, COMBINE_THREADS // TEAM)
    sums = shared(f32, SLICES, MAX_HEAD_DIM)
    acc = array(f32, DIMS_PER_THREAD)
    lid = local_id().x
    slot = lid % WORKGROUP              # dimensions slot, slot + WORKGROUP, ... of the split runs of piece `piece`
    piece = lid // WORKGROUP
    h = workgroup_id().x
    i = workgroup_id().y
    hd = a.head_dim
    keys = live_keys(a, start, i)
    live = min((keys + split_span(a, keys) - 1) // split_span(a, keys), a.splits)
    base = (i * a.heads + h) * a.splits * (hd + 2)
    best = f32(NEG_BIG)
    for s in range(lid, live, COMBINE_THREADS):
        best = max(best, part[base + s * (hd + 2) + hd])
    to_subgroups(red, 0, best, True)
    barrier()
    top = over_subgroups(red, 0, True)
    barrier()                                       # every thread has read red
    total = f32(0)
    for s in range(lid, MAX_SPLITS, COMBINE_THREADS):
        w = f32(0)
        if s < live:
            at = base + s * (hd + 2)
            w = exp(part[at + hd] - top)
            total += w * part[at + hd + 1]
        weight[s] = w
    to_subgroups(red, 0, total, False)
    barrier()
    norm = over_subgroups(red, 0, False)
    for t in static_range(DIMS_PER_THREAD):
        d = slot + t * WORKGROUP
        if d < hd:
            for s0 in range(piece * UNROLL, live, SLICES * UNROLL):
                for u in static_range(UNROLL):
                    s = s0 + u         # weight is 0 from `live` on; the load reads the last live split
                    acc[t] += weight[s] * part[base + min(s, live - 1) * (hd + 2) + d]
            sums[piece, d] = acc[t]
    barrier()
    dst = a.o_off + (i * a.heads + h) * hd
    for t in static_range(DIMS_PER_THREAD):
        d = slot + t * WORKGROUP
        if piece == 0 and d < hd and norm > 0.0:
            for r in static_range(1, SLICES):
                acc[t] += sums[r, d]
            out[dst + d] = acc[t] / norm


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


@struct
class KVRows:
    n: u32              # rows of k and of v
    row: u32            # elements of a row: kv_heads * head_dim
    ctx: u32            # rows of each cache
    k_off: u32
    v_off: u32
    kc_off: u32
    vc_off: u32


@kernel(workgroup_size=(256,))
def write_kv(k_cache: MutBuf[f16], v_cache: MutBuf[f16], k: Buf[f32], v: Buf[f32], start: Buf[u32], c: KVRows):
    """write_cache of the keys and the values in one dispatch (a decode step's launches are its time): thread e
    writes element e of k, or element e - n * row of v."""
    require(len(k) >= c.k_off + c.n * c.row)
    require(len(v) >= c.v_off + c.n * c.row)
    require(len(k_cache) >= c.kc_off + c.ctx * c.row)
    require(len(v_cache) >= c.vc_off + c.ctx * c.row)
    t = global_id().x
    size = c.n * c.row
    if t < 2 * size:
        e = t % size
        pos = start[0] + e // c.row
        if pos < c.ctx and pos >= start[0]:         # pos < start[0]: start + r wrapped around 2^32
            if t < size:
                k_cache[c.kc_off + pos * c.row + e % c.row] = f16(k[c.k_off + e])
            else:
                v_cache[c.vc_off + pos * c.row + e % c.row] = f16(v[c.v_off + e])
