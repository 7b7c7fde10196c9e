"""Differential-test cases of the attention kernels (shaders/vortx/attention.py), and the numpy reference of causal
grouped-query attention over an f16 cache that tests/test_vortx_attention.py also uses.

Sizes are query positions. Each `attend` and `attend_split` instance (GROUP query heads per workgroup) runs with
GROUP or 2 GROUP heads per kv head. `attend` writes the output directly, with `start` putting the last queries past
a chunk boundary; `attend_split` writes per-split partials (decode-like: the splits' keys sized from the live
length, some splits past it, which write nothing), with the queries ending mid-chunk. The caches are read through
offsets. `attend_combine` merges random partials of which only the live splits count. `write_cache` writes rows
that run past the end of the cache, which are dropped.
"""

from __future__ import annotations

import numpy as np

from khal_runtime import workgroups
from khal_runtime.testing import Args, Case
from shaders._generated.vortx.attention import (
    ATTEND,
    ATTEND_SPLIT,
    AttendCombine,
    Attn,
    CacheRows,
    KVRows,
    WriteCache,
    WriteKv,
)
from shaders.vortx.attention import CHUNK, SPLIT_CHUNK

HEADS, KV_HEADS, HEAD_DIM = 6, 2, 64
CTX = 2 * CHUNK + 40
SPLITS = 7              # attend_split: 7 pieces; one query: 5 live of 32 keys, three: 6 live of 96 (3 steps)
OFF = 4                 # element offsets of the caches (a layer's slice); even: WebGPU binds f16 in pairs

CASES: list[Case] = []


def attention_reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, start: int, scale: float) -> np.ndarray:
    """Causal attention of q (n, heads, d) at positions start.. over k, v (ctx, kv_heads, d) in float64."""
    n, heads, _ = q.shape
    group = heads // k.shape[1]
    k, v = k.astype(np.float64), v.astype(np.float64)
    out = np.zeros(q.shape, np.float64)
    for i in range(n):
        live = min(start + i + 1, k.shape[0])
        for h in range(heads):
            s = k[:live, h // group] @ q[i, h].astype(np.float64) * scale
            p = np.exp(s - s.max())
            out[i, h] = p / p.sum() @ v[:live, h // group]
    return out


def split_span(a: Attn, live: int) -> int:
    """The keys of each split of attend_split at `live` keys (shaders/vortx/attention.py)."""
    share = -(-live // a.splits)
    return -(-share // a.span) * a.span


def split_partials(q: np.ndarray, k: np.ndarray, v: np.ndarray, start: int, a: Attn, dst: np.ndarray) -> np.ndarray:
    """`dst` with the (query, head, split, d + 2) partials that attend writes: unnormalised output, max, sum."""
    d, group = a.head_dim, a.heads // a.kv_heads
    out = dst.astype(np.float64).reshape(a.n, a.heads, a.splits, d + 2)
    for i in range(a.n):
        live = min(start + i + 1, a.ctx)
        span = split_span(a, live)
        for h in range(a.heads):
            for s in range(a.splits):
                keys = slice(s * span, min(live, (s + 1) * span))
                if keys.start >= keys.stop:
                    continue
                score = k[keys, h // group].astype(np.float64) @ q[i, h].astype(np.float64) * a.scale
                p = np.exp(score - score.max())
                out[i, h, s, :d] = p @ v[keys, h // group].astype(np.float64)
                out[i, h, s, d], out[i, h, s, d + 1] = score.max(), p.sum()
    return out.astype(np.float32).reshape(-1)


def attend_inputs(rng: np.random.Generator, n: int, heads: int, split: bool) -> Args:
    """Inputs of `attend` (split False) or `attend_split`; the last live split of each query ends mid-chunk."""
    splits, span = (SPLITS, SPLIT_CHUNK) if split else (1, 0)
    start = 4 * SPLIT_CHUNK + 9 if split and n == 1 else CTX - n - 5
    a = Attn(n, heads, KV_HEADS, HEAD_DIM, CTX, splits, span, 0, OFF, 2 * OFF, 0, 0.125)
    size = n * heads * (HEAD_DIM if splits == 1 else splits * (HEAD_DIM + 2))
    cache = (CTX * KV_HEADS * HEAD_DIM,)
    return {"part" if split else "dst": np.zeros(size, np.float32),
            "q": rng.standard_normal(n * heads * HEAD_DIM).astype(np.float32),
            "k": np.concatenate([np.zeros(OFF, np.float16), rng.standard_normal(cache).astype(np.float16)]),
            "v": np.concatenate([np.zeros(2 * OFF, np.float16), rng.standard_normal(cache).astype(np.float16)]),
            "start": np.array([start], np.uint32), "a": a}


def caches(args: Args) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    shape = (CTX, KV_HEADS, HEAD_DIM)
    a = args["a"]
    return (args["q"].reshape(a.n, a.heads, HEAD_DIM), args["k"][OFF:].reshape(shape),
            args["v"][2 * OFF:].reshape(shape))


def attend_reference(args: Args) -> dict[str, np.ndarray]:
    a, start = args["a"], int(args["start"][0])
    q, k, v = caches(args)
    return {"dst": attention_reference(q, k, v, start, a.scale).astype(np.float32).reshape(-1)}


def attend_split_reference(args: Args) -> dict[str, np.ndarray]:
    q, k, v = caches(args)
    return {"part": split_partials(q, k, v, int(args["start"][0]), args["a"], args["part"])}


def combine_inputs(rng: np.random.Generator, n: int) -> Args:
    # 80 splits of 32 keys: five queries see 71 live ones (dealt in runs of 8 round the slices), one query 3
    splits, span = 80, SPLIT_CHUNK
    start = (70 if n > 1 else 2) * SPLIT_CHUNK + 7 - n
    part = rng.standard_normal((n, HEADS, splits, HEAD_DIM + 2)).astype(np.float32)
    part[..., HEAD_DIM] *= 4                                        # maxima
    part[..., HEAD_DIM + 1] = rng.uniform(1, 50, part.shape[:-1])   # sums: positive
    a = Attn(n, HEADS, KV_HEADS, HEAD_DIM, splits * span, splits, span, 0, 0, 0, 5, 0.125)
    return {"out": np.zeros(5 + n * HEADS * HEAD_DIM, np.float32), "part": part.reshape(-1),
            "start": np.array([max(start, 0)], np.uint32), "a": a}


def combine_reference(args: Args) -> dict[str, np.ndarray]:
    a, start = args["a"], int(args["start"][0])
    part = args["part"].astype(np.float64).reshape(a.n, a.heads, a.splits, a.head_dim + 2)
    out = args["out"].astype(np.float64)
    for i in range(a.n):
        keys = min(start + i + 1, a.ctx)
        live = min(-(-keys // split_span(a, keys)), a.splits)
        p = part[i, :, :live]
        w = np.exp(p[..., a.head_dim] - p[..., a.head_dim].max(axis=1, keepdims=True))
        o = (w[..., None] * p[..., :a.head_dim]).sum(1) / (w * p[..., a.head_dim + 1]).sum(1)[:, None]
        at = a.o_off + i * a.heads * a.head_dim
        out[at:at + a.heads * a.head_dim] = o.reshape(-1)
    return {"out": out.astype(np.float32)}


def write_inputs(rng: np.random.Generator, n: int) -> Args:
    ctx, row = 50, KV_HEADS * HEAD_DIM
    start = max(ctx - n // 2, 0)    # the second half of the rows lies past the cache
    return {"cache": np.zeros(OFF + ctx * row, np.float16),
            "x": rng.standard_normal(1 + n * row).astype(np.float32),
            "start": np.array([start], np.uint32), "c": CacheRows(n, row, ctx, 1, OFF)}


def write_reference(args: Args) -> dict[str, np.ndarray]:
    c, start = args["c"], int(args["start"][0])
    cache = args["cache"].copy()
    rows = args["x"][c.x_off:c.x_off + c.n * c.row].reshape(c.n, c.row)
    for r in range(c.n):
        if start + r < c.ctx:
            at = c.c_off + (start + r) * c.row
            cache[at:at + c.row] = rows[r].astype(np.float16)
    return {"cache": cache}


def write_kv_inputs(rng: np.random.Generator, n: int) -> Args:
    """k and v in one buffer (as a decode step's q | k | v), the caches at different offsets."""
    one = write_inputs(rng, n)
    c, size = one["c"], n * KV_HEADS * HEAD_DIM
    x = rng.standard_normal(3 + 2 * size).astype(np.float32)
    return {"k_cache": one["cache"], "v_cache": np.zeros(len(one["cache"]) + 6, np.float16), "k": x, "v": x,
            "start": one["start"], "c": KVRows(n, c.row, c.ctx, 1, 2 + size, OFF, OFF + 5)}


def write_kv_reference(args: Args) -> dict[str, np.ndarray]:
    c, out = args["c"], {}
    for name, x_off, c_off in (("k", c.k_off, c.kc_off), ("v", c.v_off, c.vc_off)):
        cache = args[name + "_cache"]
        out[name + "_cache"] = write_reference({"cache": cache, "x": args[name], "start": args["start"],
                                                "c": CacheRows(c.n, c.row, c.ctx, x_off, c_off)})["cache"]
    return out


for family, split in ((ATTEND, False), (ATTEND_SPLIT, True)):
    for cls in family:
        group = cls.TEMPLATE["GROUP"]
        heads = KV_HEADS * group * (2 if group < 4 else 1)       # two workgroups per kv head for the small groups
        CASES.append(Case(cls, inputs=lambda rng, n, heads=heads, split=split: attend_inputs(rng, n, heads, split),
                          reference=attend_split_reference if split else attend_reference,
                          grid=lambda a, group=group: workgroups(a["a"].splits, a["a"].heads // group, a["a"].n),
                          sizes=(1, 3) if split else (1, 4, 9), tolerance={"part" if split else "dst": 1e-5}))
CASES.append(Case(AttendCombine, inputs=combine_inputs, reference=combine_reference,
                  grid=lambda a: workgroups(HEADS, a["a"].n), sizes=(1, 5), tolerance={"out": 1e-5}))
CASES.append(Case(WriteCache, inputs=write_inputs, reference=write_reference,
                  grid=lambda a: a["c"].n * a["c"].row, sizes=(1, 2, 9, 120)))
CASES.append(Case(WriteKv, inputs=write_kv_inputs, reference=write_kv_reference,
                  grid=lambda a: 2 * a["c"].n * a["c"].row, sizes=(1, 2, 9, 120)))
