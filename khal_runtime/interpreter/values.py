"""Lane values and masks of the CPU interpreter.

Values. A batch runs `count` workgroups of `lanes` invocations: lane `p` is local index `p % lanes` of the batch's
workgroup `p // lanes`. A value is a numpy array that broadcasts to the batch's shape `(count, lanes)`: `(1, lanes)`
when it depends on the local index only (local ids, shared-memory indices derived from them), `(count, 1)` when it
depends on the workgroup only, a numpy scalar when it is the same in every lane (uniform). numpy's broadcasting
combines them, so index arithmetic is done once per workgroup or once per local index, not once per lane. A
value may also be an `Affine` (integer lanes `start + stride * p`, kept symbolic) or a dict of field values for
a struct parameter or a vector (`ir.VECTORS`). Inactive lanes hold unspecified values. Every value has the exact
numpy dtype of its IR type (`DTYPE`).

Masks. A statement runs under a mask: None (every lane of the batch) or a boolean array with at least one lane
set, of any shape that broadcasts to the batch's; `EMPTY` (no lane) is only ever returned, never run under.
"""

from __future__ import annotations

import numpy as np

from khal_runtime import ir

DTYPE = {t: np.dtype(ir.NUMPY[t]) for t in ir.SCALARS}
COMPARISONS = ir.COMPARISONS


def const(t: str, value: object):
    return DTYPE[t].type(value)


def zero(t: str):
    return DTYPE[t].type(0)


def where(cond, a, b):
    """`np.where` that keeps uniform operands uniform (numpy returns a 0-d array for scalars)."""
    return np.where(cond, a, b)[()]


def vector_zero(t: str) -> dict:
    """The zero of vector type `t`: a dict of its field values."""
    elem, lanes = ir.VECTORS[t]
    return {field: zero(elem) for field in ir.VECTOR_FIELDS[:lanes]}


def is_uniform(v) -> bool:
    return not isinstance(v, np.ndarray)


# ---------------------------------------------------------------------------------------------------------------
# Affine lane values

class Affine:
    """Integer lane values `start + stride * p` for the lanes p of a batch of shape `shape`. The 1-D global id
    is one: comparing it with a uniform bound (`i < len(a)`) is uniform for all batches but the last, and loads
    and stores through it are slices instead of gathers and scatters. Every value is inside the type's range:
    operations that would wrap produce arrays instead."""
    __slots__ = ("_dense", "shape", "start", "stride", "t")

    def __init__(self, t: str, start: int, stride: int, shape: tuple[int, int]):
        self.t, self.start, self.stride, self.shape = t, start, stride, shape
        self._dense: np.ndarray | None = None

    @property
    def last(self) -> int:
        return self.start + self.stride * (self.shape[0] * self.shape[1] - 1)

    def dense(self) -> np.ndarray:
        """The lane values as an array (made once: values are never modified)."""
        if self._dense is None:
            p = np.arange(self.shape[0] * self.shape[1], dtype=np.int64).reshape(self.shape)
            self._dense = (self.start + self.stride * p).astype(DTYPE[self.t])
        return self._dense

    def slice(self, length: int) -> slice | None:
        """The lanes' elements of a buffer of `length` elements, when all are in bounds and ascending."""
        if self.stride > 0 and self.start >= 0 and self.last < length:
            return slice(self.start, self.last + 1, self.stride)
        return None


def affine(t: str, start: int, stride: int, shape: tuple[int, int]):
    """The value `start + stride * p` (a scalar when stride is 0); None when it leaves `t`'s range."""
    lo, hi = ir.int_range(t)
    last = start + stride * (shape[0] * shape[1] - 1)
    if min(start, last) < lo or max(start, last) > hi or max(abs(start), abs(last)) >= 1 << 63:
        return None
    return DTYPE[t].type(start) if stride == 0 else Affine(t, start, stride, shape)


def dense(v):
    return v.dense() if type(v) is Affine else v


def affine_binary(op: str, t: str, a, b):
    """`a op b` kept symbolic when one side is Affine and the other uniform or Affine; None when it cannot be."""
    pa, pb = _parts(a), _parts(b)
    if pa is None or pb is None:
        return None
    shape = a.shape if type(a) is Affine else b.shape
    if op in COMPARISONS:
        return _compare(op, pa[0] - pb[0], pa[1] - pb[1], shape[0] * shape[1])
    if op == "add":
        return affine(t, pa[0] + pb[0], pa[1] + pb[1], shape)
    if op == "sub":
        return affine(t, pa[0] - pb[0], pa[1] - pb[1], shape)
    if op == "mul" and not (pa[1] and pb[1]):
        return affine(t, pa[0] * pb[0], pa[0] * pb[1] + pa[1] * pb[0], shape)
    return None


def _parts(v):
    if type(v) is Affine:
        return v.start, v.stride
    return (int(v), 0) if is_uniform(v) else None


_INT_COMPARE = {"eq": int.__eq__, "ne": int.__ne__, "lt": int.__lt__, "le": int.__le__, "gt": int.__gt__,
                "ge": int.__ge__}


def _compare(op: str, start: int, stride: int, n: int):
    """Compare `a - b = start + stride * p` with 0: uniform when the comparison agrees at both ends of the
    batch, which for a monotone sequence means at every lane; except equality, which can hold in between."""
    last = start + stride * (n - 1)
    if op in ("eq", "ne") and stride != 0 and min(start, last) <= 0 <= max(start, last):
        return None
    at_start, at_last = _INT_COMPARE[op](start, 0), _INT_COMPARE[op](last, 0)
    return np.bool_(at_start) if at_start == at_last else None


# ---------------------------------------------------------------------------------------------------------------
# Masks

class _Empty:
    def __repr__(self) -> str:
        return "EMPTY"


EMPTY = _Empty()


def _norm(mask: np.ndarray):
    if not mask.any():
        return EMPTY
    return None if mask.all() else mask


def mask_and(m, cond):
    """Lanes of mask `m` where the bool value `cond` holds."""
    if is_uniform(cond):
        return m if cond else EMPTY
    return _norm(cond if m is None else m & cond)


def mask_or(a, b):
    if a is EMPTY:
        return b
    if b is EMPTY:
        return a
    if a is None or b is None:
        return None
    return _norm(a | b)


def mask_minus(m, gone):
    """Lanes of mask `m` not in mask `gone`."""
    if gone is EMPTY:
        return m
    if gone is None:
        return EMPTY
    return _norm(~gone if m is None else m & ~gone)


def merge(m, new, old):
    """`new` in the lanes of mask `m`, `old` elsewhere."""
    if m is None:
        return new
    if isinstance(new, dict):   # a struct value: merge field by field
        return {k: merge(m, v, old[k]) for k, v in new.items()} if isinstance(old, dict) else new
    return where(m, dense(new), dense(old))


