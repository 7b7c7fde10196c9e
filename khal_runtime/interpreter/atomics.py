"""Atomics of the CPU interpreter: one statement's operations applied in order (IR.md: workgroups by linear
index, lanes by local index), duplicates included, returning the old values."""

from __future__ import annotations

import itertools

import numpy as np

_COMBINE = {"add": np.add, "sub": np.subtract, "and": np.bitwise_and, "or": np.bitwise_or,
            "xor": np.bitwise_xor, "min": np.minimum, "max": np.maximum}


def atomic_apply(op: str, mem: np.ndarray, locs: np.ndarray, vals: np.ndarray, cmp: np.ndarray | None):
    """Apply `mem[locs[k]] = op(mem[locs[k]], vals[k])` for k in order and return the old values.

    Without duplicate locations this is one vectorised step. With duplicates, the operations on one location
    form a sequential scan: done per location with numpy's `accumulate` when there are few distinct locations,
    otherwise in rounds (the r-th operation on every location at once), whichever loops less.
    """
    order = np.argsort(locs, kind="stable")
    sorted_locs = locs[order]
    starts = np.flatnonzero(np.r_[True, sorted_locs[1:] != sorted_locs[:-1]])
    if len(starts) == len(locs):
        return _atomic_round(op, mem, locs, vals, cmp)
    lengths = np.diff(np.r_[starts, len(locs)])
    if op != "compare_exchange" and len(starts) <= lengths.max():
        return _atomic_scans(op, mem, order, sorted_locs, starts, vals)
    rank = np.arange(len(locs)) - np.repeat(starts, lengths)
    old = np.empty_like(vals)
    for r in range(lengths.max()):
        sel = order[rank == r]   # at most one operation per location: a plain vectorised step
        old[sel] = _atomic_round(op, mem, locs[sel], vals[sel], None if cmp is None else cmp[sel])
    return old


def _atomic_round(op, mem, locs, vals, cmp):
    old = mem[locs]
    if op == "exchange":
        new = vals
    elif op == "compare_exchange":
        new = np.where(old == cmp, vals, old)
    else:
        new = _COMBINE[op](old, vals)
    mem[locs] = new
    return old


def _atomic_scans(op, mem, order, sorted_locs, starts, vals):
    old = np.empty_like(vals)
    bounds = np.r_[starts, len(order)]
    for s, e in itertools.pairwise(bounds):
        loc, lanes = sorted_locs[s], order[s:e]
        v = vals[lanes]
        if op == "exchange":
            seq = np.concatenate(([mem[loc]], v))
        else:
            seq = _COMBINE[op].accumulate(np.concatenate(([mem[loc]], v)), dtype=mem.dtype)
        old[lanes] = seq[:-1]
        mem[loc] = seq[-1]
    return old
