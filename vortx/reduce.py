"""Reductions: sum, prod, min, max and sqnorm (the sum of squares), over a whole tensor or along one axis.

The kernels (shaders/vortx/reduce.py) reduce a strided view seen as (outer, n, inner) along `n`: a pass cuts `n`
into pieces and writes one partial per piece, and `reduce` repeats passes over the partials until one piece is
left, so any length works. A pass cuts rows into pieces only when whole rows would give the device fewer than
`TUNING.groups` workgroups: a full reduction is two passes (about that many partials, then one), a reduction of
many rows or columns one. Views are read in place when their dimensions merge into that form, and copied to
contiguous memory first otherwise.

Integer sums and products wrap around (mod 2^32), as numpy's do in the tensor's own dtype. Empty reductions give
0 for sum and sqnorm, 1 for prod; min and max of nothing raise ValueError, as in numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from khal_runtime import Family, workgroups
from shaders._generated.vortx.reduce import REDUCE_AXIS, REDUCE_ROWS, Axis
from shaders.vortx.reduce import LANES, LOADS, MAX_LANE_BITS, OP, TILE, WORKGROUP

from .ops import ShapeError, fill, numeric

if TYPE_CHECKING:
    from .tensor import Tensor

OPS = OP.values                 # ("sum", "prod", "min", "max", "sqnorm")

Dim = tuple[int, int]       # (size, stride in elements)


@dataclass
class Tuning:
    """The planner's run-time choices (`benchmarks/reduce_sweep.py` times alternatives on a device). The defaults
    are the best of that sweep on the H200 under CUDA (2026-12; 67M f32): a full sum at 0.86x of a buffer copy's
    bandwidth with 2112 groups (16 per SM), rows of 64 at 0.71x with 16 elements a thread (rows of 1024: 0.81x,
    0.86x with 32), the first axis at 0.93x with 1056 groups. Vulkan on the same GPU preferred the same values
    within 3 %."""

    groups: int = 2112              # workgroups a pass of reduce_rows should give the device before it cuts rows
    axis_groups: int = 1056         # the same for reduce_axis
    per_thread: int = 16            # elements per thread that set how many threads share a short row
    min_split: int = 1 << 16        # the fewest elements of a pass that is cut into pieces


TUNING = Tuning()


def reduce(t: Tensor, op: str, axis: int | None = None, keepdims: bool = False) -> Tensor:
    """`op` over all of `t` (a 0-d tensor, or all ones with `keepdims`) or along `axis`."""
    if op not in OPS:
        raise ValueError(f"vortx.reduce: unknown reduction {op!r}; the reductions are {', '.join(OPS)}")
    dtype = numeric(op, t)
    if axis is None:
        shape, n = (1,) * t.ndim if keepdims else (), t.size
    else:
        axis = _axis(op, t, axis)
        shape, n = t.shape[:axis] + ((1,) if keepdims else ()) + t.shape[axis + 1:], t.shape[axis]
    out = t.device.empty(shape, dtype)
    if out.size == 0:
        return out
    if n == 0 and op in ("min", "max"):
        where = "of the whole tensor" if axis is None else f"along axis {axis}"
        raise ValueError(f"vortx.{op}: the reduction {where} of shape {t.shape} has no elements, and {op} has no "
                         "identity")
    if n == 0:                          # the identity (and no kernel binds an empty tensor)
        return fill(out, 1 if op == "prod" else 0)
    dims = _view(t, axis)
    if dims is None:
        t = t.contiguous()
        dims = _view(t, axis)
    return _passes(out, op, t, *dims)


def _axis(op: str, t: Tensor, axis: int) -> int:
    if isinstance(axis, bool) or not hasattr(axis, "__index__"):
        raise TypeError(f"vortx.{op}: axis must be an int or None, not {axis!r}")
    if not -t.ndim <= axis < t.ndim:
        raise ShapeError(f"vortx.{op}: axis {axis} is out of range for a tensor of shape {t.shape} (rank {t.ndim})")
    return axis.__index__() % t.ndim


def _merge(dims: list[Dim]) -> Dim | None:
    """The dimensions (outermost first) as one run of equally spaced elements, or None if they are not one."""
    size, stride = 1, 0
    for n, s in reversed(dims):
        if n == 0:
            return 0, 0                     # nothing to address
        if n == 1:
            continue
        if size == 1:
            size, stride = n, s
        elif s == stride * size:
            size *= n
        else:
            return None
    return size, stride


def _view(t: Tensor, axis: int | None) -> tuple[Dim, Dim, Dim] | None:
    """`t` as (outer, reduced, inner) dimensions, or None when they do not merge into that form."""
    dims = list(zip(t.shape, t.strides))
    if axis is None:
        # a full reduction may visit the elements in any order: largest stride first, to merge permuted views
        run = _merge(sorted(dims, key=lambda d: -d[1]))
        return None if run is None else ((1, 0), run, (1, 0))
    outer, inner = _merge(dims[:axis]), _merge(dims[axis + 1:])
    if outer is None or inner is None:
        return None
    if inner[0] == 1 and outer[0] > 1 and outer[1] < dims[axis][1]:
        # the outputs lie closer together than the elements of one (a transposed view): consecutive threads take
        # consecutive outputs, so that their loads coalesce
        return (1, 0), dims[axis], outer
    return outer, dims[axis], inner


def _passes(out: Tensor, op: str, src: Tensor, outer: Dim, reduced: Dim, inner: Dim) -> Tensor:
    """Reduce the view of `src` into `out` (contiguous, outer * inner elements), through partials as needed."""
    (n_outer, s_outer), (n, s_n), (n_inner, s_inner) = outer, reduced, inner
    device, dtype, offset = out.device, out.dtype, src.offset
    while True:
        family, chunks, piece, lane_bits, groups = plan(n_outer, n, n_inner)
        dst = out if chunks == 1 else device.empty((n_outer * chunks * n_inner,), dtype)
        device.dispatch(family.pick(T=dtype.ir, OP=op), workgroups(groups), dst.buffer, src.buffer,
                        Axis(n_outer, n, n_inner, offset, s_outer, s_n, s_inner, chunks, piece, lane_bits))
        if chunks == 1:
            return out
        # next, the (outer, chunks, inner) partials; those of a squared norm are sums of squares, to be added
        src, offset, n, s_outer, s_n, s_inner = dst, 0, chunks, chunks * n_inner, n_inner, 1
        op = "sum" if op == "sqnorm" else op


def plan(n_outer: int, n: int, n_inner: int, tuning: Tuning = TUNING) -> tuple[Family, int, int, int, int]:
    """One pass: the kernel family, how many pieces it cuts `n` into, their length, log2 of the threads that share
    a piece (reduce_rows), and how many workgroups it takes."""
    # a pass of fewer elements than min_split is not cut: its partials would cost one more pass
    cut = n_outer * n * n_inner >= tuning.min_split
    if n_inner > 1:
        per_chunk = n_outer * _ceil(n_inner, TILE)
        chunks, piece = _pieces(n, LANES * LOADS, _ceil(tuning.axis_groups, per_chunk) if cut else 1)
        return REDUCE_AXIS, chunks, piece, 0, per_chunk * chunks
    # enough threads per row that each combines about `per_thread` elements, up to a workgroup per row
    lane_bits = min(MAX_LANE_BITS, (_ceil(n, tuning.per_thread) - 1).bit_length())
    cut = cut and lane_bits == MAX_LANE_BITS
    chunks, piece = _pieces(n, WORKGROUP * LOADS, _ceil(tuning.groups, n_outer) if cut else 1)
    return REDUCE_ROWS, chunks, piece, lane_bits, _ceil(n_outer * chunks, WORKGROUP >> lane_bits)


def _pieces(n: int, step: int, wanted: int) -> tuple[int, int]:
    """`n` cut into at most `wanted` pieces whose length is a multiple of `step`: (count, length)."""
    chunks = min(wanted, _ceil(n, step))
    if chunks <= 1:
        return 1, n
    piece = _ceil(_ceil(n, chunks), step) * step
    return _ceil(n, piece), piece


def _ceil(a: int, b: int) -> int:
    return -(-a // b)
