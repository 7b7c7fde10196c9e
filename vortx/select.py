"""Selection along the last axis: `argmax` (u32 ids) and `top_k` (values descending and their u32 ids), of f32
tensors.

The kernels (shaders/vortx/select.py) take rows of candidates and write the best one (argmax) or the best `k`
(top_k) of each piece of a row; the host repeats passes over those partials until one piece per row is left. For a
vocabulary row of 151,936 logits, argmax is two passes (75 partials, then one) and top_k(40) three (75 pieces of
2048 sorted in shared memory, 3000 candidates, then 80).

Ranking: larger values first; equal values by the lower index (numpy's argmax, and a stable sort); -0.0 equals
+0.0. NaN ranks above +inf, as in numpy.argmax: a row holding NaN has the first NaN as its argmax and its NaNs,
lowest index first, at the head of its top_k (values come back as NaN). -inf ranks below every finite value and
is returned like any other when a row has fewer than `k` larger values.
"""

from __future__ import annotations

import operator
from typing import TYPE_CHECKING

from khal_runtime import workgroups
from khal_runtime.lang import f32, u32
from shaders._generated.vortx.select import ArgmaxMerge, ArgmaxRows, Rows, TopKMerge, TopKRows
from shaders.vortx.select import MAX_K, PIECE, SORT

from .ops import ShapeError

if TYPE_CHECKING:
    from .devices import Device
    from .tensor import Tensor


def argmax(x: Tensor, out: Tensor | None = None) -> Tensor:
    """The index of the largest element along the last axis: a u32 tensor of shape x.shape[:-1] (ties: the lowest
    index). `out`, when given, is a contiguous u32 tensor of that shape; then the partials of the passes are kept
    for the next call of that size, so that a call after the first allocates nothing (where x's rows are read in
    place) and can be captured and replayed."""
    rows, n, offset, stride, x = _rows("argmax", x)
    shape, keep = x.shape[:-1], out is not None
    if out is None:
        out = x.device.empty(shape, u32)
    elif out.dtype is not u32 or out.shape != shape or not out.is_contiguous() or out.offset:
        raise ShapeError(f"vortx.argmax: out must be a contiguous u32 tensor of shape {shape} that starts its "
                         f"storage, not {out.dtype.ir} {out.shape} (strides {out.strides}, offset {out.offset})")
    if rows == 0:
        return out
    device, src, src_ids, step, key = x.device, x, None, 0, (id(x.device), rows, n)
    while True:
        chunks = -(-n // PIECE)
        values = _partials(device, (*key, step, "values"), rows * chunks, f32, keep)
        ids = out if chunks == 1 else _partials(device, (*key, step, "ids"), rows * chunks, u32, keep)
        _pass(ArgmaxRows, ArgmaxMerge, values, ids, src, src_ids, Rows(rows, n, offset, stride, chunks, 1))
        if chunks == 1:
            return out
        src, src_ids, n, offset, stride, step = values, ids, chunks, 0, chunks, step + 1


# argmax's partials when `out` is given, kept per (device, rows, n, pass): a captured graph that replays the argmax
# needs buffers that no later operation takes from the pool (work runs in order, so calls may share them)
_KEPT: dict[tuple, Tensor] = {}


def _partials(device: Device, key: tuple, size: int, dtype: type, keep: bool) -> Tensor:
    if not keep:
        return device.empty((size,), dtype)
    if key not in _KEPT:
        _KEPT[key] = device.empty((size,), dtype)
    return _KEPT[key]


def top_k(x: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The `k` largest elements along the last axis, largest first, and their indices: f32 and u32 tensors of shape
    x.shape[:-1] + (k,). Equal values come in index order. 1 <= k <= min(x.shape[-1], MAX_K)."""
    rows, n, offset, stride, x = _rows("top_k", x)
    if isinstance(k, bool) or not hasattr(k, "__index__"):
        raise TypeError(f"vortx.top_k: k must be an int, not {k!r}")
    k = operator.index(k)
    if not 1 <= k <= min(n, MAX_K):
        raise ValueError(f"vortx.top_k: k={k} is out of range for a last axis of {n} elements: 1 <= k <= "
                         f"{min(n, MAX_K)} (at most {MAX_K}, half of a {SORT}-candidate sort)")
    shape = x.shape[:-1] + (k,)
    device = x.device
    if rows == 0:
        return device.empty(shape, f32), device.empty(shape, u32)
    src, src_ids = x, None
    while True:
        chunks = -(-n // SORT)
        values, ids = device.empty((rows * chunks * k,), f32), device.empty((rows * chunks * k,), u32)
        _pass(TopKRows, TopKMerge, values, ids, src, src_ids, Rows(rows, n, offset, stride, chunks, k))
        if chunks == 1:
            return values.view(shape), ids.view(shape)
        # each piece's best k, in rank order, are the candidates of the next pass
        src, src_ids, n, offset, stride = values, ids, chunks * k, 0, chunks * k


def _pass(first: type, merge: type, values: Tensor, ids: Tensor, src: Tensor, src_ids: Tensor | None,
          v: Rows) -> None:
    """One pass: a workgroup per piece of each row; the first pass reads values, later ones candidates."""
    grid = workgroups(v.rows * v.chunks)
    if src_ids is None:
        values.device.dispatch(first, grid, values.buffer, ids.buffer, src.buffer, v)
    else:
        values.device.dispatch(merge, grid, values.buffer, ids.buffer, src.buffer, src_ids.buffer, v)


def _rows(op: str, x: Tensor) -> tuple[int, int, int, int, Tensor]:
    """`x` as rows of its last axis: (rows, n, offset, row stride, the tensor read), read in place when its rows
    are equally spaced runs of adjacent elements, copied to contiguous memory otherwise."""
    if x.dtype is not f32:
        raise TypeError(f"vortx.{op}: not available for {x.dtype.ir} tensors (only f32); convert with "
                        ".to(vortx.f32)")
    if x.ndim == 0:
        raise ShapeError(f"vortx.{op}: a 0-d tensor has no last axis")
    n = x.shape[-1]
    if n == 0:
        raise ValueError(f"vortx.{op}: the last axis of shape {x.shape} is empty")
    stride = _row_stride(x) if n == 1 or x.strides[-1] == 1 else None
    if stride is None:
        x = x.contiguous()
        stride = n
    return x.size // n, n, x.offset, stride, x


def _row_stride(x: Tensor) -> int | None:
    """The distance between consecutive rows (all axes but the last) when one stride walks them all, else None."""
    dims = [(m, s) for m, s in zip(x.shape[:-1], x.strides[:-1]) if m != 1]
    if any(s_outer != s_inner * m_inner for (_, s_outer), (m_inner, s_inner) in zip(dims, dims[1:])):
        return None
    return dims[-1][1] if dims else x.shape[-1]
