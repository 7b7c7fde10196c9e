"""Attention over an f16 KV cache: `write_cache` stores new keys or values, `attention` runs causal grouped-query
scaled dot-product attention of n query positions over the cache (kernels: shaders/vortx/attention.py).

    k_cache = vortx.empty((ctx, kv_heads, head_dim), vortx.f16)      # and v_cache alike
    start = vortx.tensor(np.array([pos], np.uint32))                 # the first new position, on the device
    write_cache(k_cache, k, start)                                   # k, v: (n, kv_heads, head_dim) f32
    write_cache(v_cache, v, start)                                   # or write_kv(k_cache, v_cache, k, v, start)
    y = attention(q, k_cache, v_cache, start, scale=head_dim ** -0.5)   # q (n, heads, head_dim) -> same shape

The position comes from the `start` tensor, never from the host: a captured step replays at a new position once
`start` is written. So the work is planned for the whole cache: the key range of each query is cut into `splits`
pieces, chosen so that the workgroups of a split (n queries times heads / GROUP, a workgroup taking the GROUP
query heads of one kv head) times splits reach SPLIT_TARGET on a GPU, CPU_SPLIT_TARGET on lavapipe and the
interpreter, where each workgroup costs a launch and a few run at once (decode: one query, a few heads, so the
context is split; prefill of many positions: one split, and `attend` writes the output directly). The kernel
`attend_split` sizes the pieces from the live length at run time (a multiple of SPLIT_CHUNK keys each), so a
short context runs a few short pieces and the other workgroups exit at once. With several splits a second kernel
merges the pieces; their partials go to a scratch buffer kept per device, so that a call no larger than one that
ran before allocates nothing (inside a capture, pass `out` too).
"""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

from khal_runtime import workgroups
from khal_runtime.lang import f16, f32, u32
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
from shaders.vortx.attention import GROUP, MAX_HEAD_DIM, MAX_SPLITS, SPLIT_CHUNK

from .ops import ShapeError, same_device

if TYPE_CHECKING:
    from .devices import Device
    from .tensor import Tensor

SPLIT_TARGET = 256          # workgroups a call should give a GPU before its context is split no further
# ... and a CPU (the interpreter, lavapipe), whose workgroups run a few at a time and each costs a launch: on
# lavapipe (2 cores, SmolLM2 decode, 3 workgroups a split) a target of 2 beat 4, 8 and 16 at positions 100 to 2000
CPU_SPLIT_TARGET = os.cpu_count() or 1
MAX_Z = 65535               # workgroups along z (the query positions) in one dispatch

# scratch partials by device: reused by every call, in recording order (a call's combine reads them before the next
# call's attend writes them)
_scratch: dict[int, Tensor] = {}


def write_cache(cache: Tensor, x: Tensor, start: Tensor) -> None:
    """Write x (n, kv_heads, head_dim) f32 as f16 into rows start .. start + n - 1 of the cache (ctx, kv_heads,
    head_dim); rows at or past ctx are dropped by the kernel, never written outside the cache."""
    n, row = _check_rows("write_cache", cache, x, start)
    if n * row:
        cache.device.dispatch(WriteCache, n * row, cache.buffer, x.buffer, start.buffer,
                              CacheRows(n, row, cache.shape[0], x.offset, cache.offset))


def write_kv(k_cache: Tensor, v_cache: Tensor, k: Tensor, v: Tensor, start: Tensor) -> None:
    """write_cache(k_cache, k, start) and write_cache(v_cache, v, start) in one dispatch."""
    n, row = _check_rows("write_kv", k_cache, k, start)
    if _check_rows("write_kv", v_cache, v, start) != (n, row) or v_cache.shape != k_cache.shape:
        raise ShapeError(f"vortx.write_kv: k {k.shape} and v {v.shape}, k_cache {k_cache.shape} and v_cache "
                         f"{v_cache.shape} differ")
    same_device("write_kv", k_cache, v_cache)
    if n * row:
        k_cache.device.dispatch(WriteKv, 2 * n * row, k_cache.buffer, v_cache.buffer, k.buffer, v.buffer,
                                start.buffer, KVRows(n, row, k_cache.shape[0], k.offset, v.offset, k_cache.offset,
                                                     v_cache.offset))


def _check_rows(op: str, cache: Tensor, x: Tensor, start: Tensor) -> tuple[int, int]:
    """(rows of x, elements a row) after checking x against the cache it goes into."""
    _check(cache, op, "cache", f16, 3)
    _check(x, op, "x", f32, 3)
    _check_start(op, start)
    if x.shape[1:] != cache.shape[1:]:
        raise ShapeError(f"vortx.{op}: x of shape {x.shape} does not fit rows of the cache of shape "
                         f"{cache.shape}: both need (kv_heads, head_dim) = {cache.shape[1:]}")
    same_device(op, cache, x, start)
    return x.shape[0], math.prod(x.shape[1:])


def attention(q: Tensor, k_cache: Tensor, v_cache: Tensor, start: Tensor, *, scale: float | None = None,
              out: Tensor | None = None) -> Tensor:
    """Causal attention of q (n, heads, head_dim) f32, the positions start .. start + n - 1, over the positions
    0 .. start + n - 1 of k_cache and v_cache (ctx, kv_heads, head_dim) f16; heads a multiple of kv_heads (query
    head h reads kv head h // (heads // kv_heads)); `scale` multiplies the scores (default 1 / sqrt(head_dim)).
    Returns (n, heads, head_dim) f32, in `out` when given (contiguous)."""
    _check(q, "attention", "q", f32, 3)
    _check(k_cache, "attention", "k_cache", f16, 3)
    _check(v_cache, "attention", "v_cache", f16, 3)
    _check_start("attention", start)
    n, heads, head_dim = q.shape
    ctx, kv_heads, kv_dim = k_cache.shape
    if v_cache.shape != k_cache.shape:
        raise ShapeError(f"vortx.attention: k_cache of shape {k_cache.shape} and v_cache of shape {v_cache.shape} "
                         "differ")
    if kv_dim != head_dim:
        raise ShapeError(f"vortx.attention: q of shape {q.shape} has head_dim {head_dim}, the caches "
                         f"{k_cache.shape} have {kv_dim}")
    if kv_heads == 0 or heads % kv_heads:
        raise ShapeError(f"vortx.attention: q has {heads} heads, not a multiple of the caches' {kv_heads} kv heads")
    if not 0 < head_dim <= MAX_HEAD_DIM or head_dim % 4:
        raise ShapeError(f"vortx.attention: head_dim {head_dim} is not a multiple of 4 in 4 .. {MAX_HEAD_DIM}")
    if n > MAX_Z:
        raise ShapeError(f"vortx.attention: {n} query positions in one call; at most {MAX_Z}")
    if ctx == 0:
        raise ShapeError(f"vortx.attention: the caches of shape {k_cache.shape} hold no positions")
    same_device("attention", q, k_cache, v_cache, start)
    if out is None:
        out = q.device.empty(q.shape, f32)
    else:
        _check(out, "attention", "out", f32, 3)
        if out.shape != q.shape:
            raise ShapeError(f"vortx.attention: out has shape {out.shape}, the result {q.shape}")
        same_device("attention", q, out)
        if out.storage is q.storage:
            raise ValueError("vortx.attention: out shares its buffer with q; the kernels cannot write the buffer "
                             "they read: pass another tensor")
    if not n * heads:
        return out
    scale = head_dim ** -0.5 if scale is None else float(scale)
    group = head_group(heads // kv_heads)
    splits, span = plan(n, heads // group, ctx, split_target(q.device))
    device = q.device
    attn = Attn(n, heads, kv_heads, head_dim, ctx, splits, span, q.offset, k_cache.offset, v_cache.offset,
                0 if splits > 1 else out.offset, scale)
    grid = workgroups(splits, heads // group, n)
    caches = (q.buffer, k_cache.buffer, v_cache.buffer, start.buffer)
    if splits == 1:
        device.dispatch(ATTEND.pick(GROUP=group), grid, out.buffer, *caches, attn)
        return out
    part = scratch(device, n * heads * splits * (head_dim + 2))
    device.dispatch(ATTEND_SPLIT.pick(GROUP=group), grid, part.buffer, *caches, attn)
    device.dispatch(AttendCombine, workgroups(heads, n), out.buffer, part.buffer, start.buffer,
                    attn._replace(o_off=out.offset))
    return out


def head_group(per_kv: int) -> int:
    """The query heads an attend workgroup takes together (they share one kv head, whose keys and values it then
    loads once for all): the largest GROUP instance that divides the heads per kv head."""
    return max(g for g in GROUP.values if per_kv % g == 0)


def split_target(device: Device) -> int:
    """The workgroups to aim at on the device: lavapipe (a CPU adapter) and the interpreter want few."""
    return CPU_SPLIT_TARGET if device.on_cpu else SPLIT_TARGET


def plan(n: int, blocks: int, ctx: int, target: int | None = None) -> tuple[int, int]:
    """(splits, span): the fewest pieces of the context that give n * blocks (workgroups per split) * splits at
    least `target` (default SPLIT_TARGET) workgroups, at most one per SPLIT_CHUNK keys and MAX_SPLITS; the keys of
    a piece are a multiple of `span`, SPLIT_CHUNK (attend_split sizes them at run time). One piece: `attend`."""
    target = SPLIT_TARGET if target is None else target
    splits = min(-(-ctx // SPLIT_CHUNK), MAX_SPLITS, max(1, -(-target // (n * blocks))))
    return splits, SPLIT_CHUNK


def scratch(device: Device, size: int) -> Tensor:
    """A device buffer of at least `size` f32 partials: one per device, replaced by a larger one when a call needs
    more (a captured graph keeps the buffers it recorded)."""
    held = _scratch.get(id(device))
    if held is None or held.size < size:
        held = _scratch[id(device)] = device.empty((size,), f32)
    return held


def _check(t: object, op: str, name: str, dtype: type, rank: int) -> None:
    from .tensor import Tensor
    if not isinstance(t, Tensor):
        raise TypeError(f"vortx.{op}: {name} must be a vortx tensor, not {type(t).__name__}")
    if t.dtype is not dtype:
        raise TypeError(f"vortx.{op}: {name} holds {t.dtype.ir}, expected {dtype.ir}")
    if t.ndim != rank:
        raise ShapeError(f"vortx.{op}: {name} has shape {t.shape}, expected {rank} dimensions")
    if not t.is_contiguous():
        raise ShapeError(f"vortx.{op}: {name} (shape {t.shape}, strides {t.strides}) is not contiguous; "
                         "use .contiguous()")


def _check_start(op: str, start: object) -> None:
    _check(start, op, "start", u32, 1)
    if start.shape != (1,):
        raise ShapeError(f"vortx.{op}: start has shape {start.shape}; it is the first position, a (1,) u32 tensor")
    if start.offset:
        raise ShapeError(f"vortx.{op}: start is a view at offset {start.offset}; the kernels read the first element "
                         "of its buffer: pass a tensor of its own (.copy())")
