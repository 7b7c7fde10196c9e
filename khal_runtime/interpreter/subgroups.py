"""Subgroup operations of the CPU interpreter. They work on a (subgroups, subgroup_size) array of lane values
(subgroups lie inside workgroups, so a batch's lanes reshape to one row per subgroup), after checking that every
invocation of each subgroup reaches them."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from khal_runtime import ir

from .state import Frame, check_together, error
from .values import DTYPE, where

Fn = Callable[..., object]
Run = Callable[[Frame, object], object]


def subgroup_op(name: str, operand: str, x: Run, arg: Run | None, line: int) -> Run:
    """The closure of subgroup operation `name` on the operand `x` (and the lane, mask or delta `arg`)."""
    shuffle = name in ir.ops.SUBGROUP_SHUFFLES
    fn = None if shuffle else subgroup_fn(name, operand)

    def run(f: Frame, m):
        b, sg = f.batch, f.batch.dispatch.sg
        if m is not None:
            check_together(f, m, sg, line, name, "subgroup")
        v, a = x(f, m), (None if arg is None else arg(f, m))
        # operands that are the same in every workgroup give one row per subgroup of a workgroup
        shape = np.broadcast_shapes(np.shape(v), np.shape(a), (1, b.lanes))
        rows = np.broadcast_to(v, shape).reshape(-1, sg)
        out = _shuffle(f, m, name, rows, a, shape, line) if shuffle else fn(rows)
        return out.reshape(shape)
    return run



def subgroup_fn(name: str, t: str) -> Fn:
    dt = DTYPE[t]
    floats = t in ir.FLOATS
    reductions = {
        "subgroup_add": lambda x: np.add.reduce(x, axis=1, dtype=dt),
        "subgroup_mul": lambda x: np.multiply.reduce(x, axis=1, dtype=dt),
        "subgroup_min": lambda x: (np.fmin if floats else np.minimum).reduce(x, axis=1),
        "subgroup_max": lambda x: (np.fmax if floats else np.maximum).reduce(x, axis=1),
        "subgroup_and": lambda x: np.bitwise_and.reduce(x, axis=1),
        "subgroup_or": lambda x: np.bitwise_or.reduce(x, axis=1),
        "subgroup_xor": lambda x: np.bitwise_xor.reduce(x, axis=1),
        "subgroup_any": lambda x: np.logical_or.reduce(x, axis=1),
        "subgroup_all": lambda x: np.logical_and.reduce(x, axis=1),
        "subgroup_broadcast_first": lambda x: x[:, 0],
    }
    if name in reductions:
        reduce = reductions[name]
        return lambda x: np.broadcast_to(reduce(x)[:, None], x.shape)
    if name == "subgroup_inclusive_add":
        return lambda x: np.cumsum(x, axis=1, dtype=dt)
    return _exclusive_add


def _exclusive_add(x):
    # shifting the inclusive scan keeps the same additions in the same order as the inclusive one
    out = np.zeros_like(x)
    out[:, 1:] = np.cumsum(x[:, :-1], axis=1, dtype=x.dtype)
    return out


def shuffle_source(name: str, lane: np.ndarray, arg, size: int) -> np.ndarray:
    """For each lane (`lane`: the (subgroups, size) lane ids), the lane it reads from. Out-of-range sources of
    `subgroup_shuffle` and `subgroup_shuffle_xor` are returned as they are, for the caller to report; the shifts
    read their own value instead (IR.md)."""
    arg = np.broadcast_to(arg, lane.shape).astype(np.int64)
    if name == "subgroup_shuffle":
        return arg
    if name == "subgroup_shuffle_xor":
        return lane ^ arg
    src = lane + arg if name == "subgroup_shuffle_down" else lane - arg
    return where((src < 0) | (src >= size), lane, src)


def _shuffle(f: Frame, m, name: str, rows: np.ndarray, arg, shape: tuple[int, int], line: int) -> np.ndarray:
    """Subgroup shuffles on the (subgroups, subgroup_size) array `rows` of the lane values of `shape`."""
    sg = rows.shape[1]
    lane = np.broadcast_to(np.arange(sg), rows.shape)
    src = shuffle_source(name, lane, np.broadcast_to(arg, shape).reshape(-1, sg), sg)
    bad = src >= sg
    p = f.batch.first_active(bad.reshape(shape), m)
    if p is not None:
        raise error(f, line, f"{name} reads lane {f.batch.at(src.reshape(shape), p)} of a subgroup of {sg}", p)
    return np.take_along_axis(rows, np.where(bad, lane, src), axis=1)
