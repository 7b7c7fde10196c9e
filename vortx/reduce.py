"""Reductions: sum, prod, min, max and sqnorm (the sum of squares), over a whole tensor or along one axis.

The kernels (shaders/vortx/reduce.py) reduce a strided view seen as (outer, n, inner) along `n`: a pass cuts `n`
into pieces and writes one partial per piece, and `reduce` repeats passes over the partials until one piece is
left, so any length works (a pass reduces rows of up to 1024 elements at once, divides longer runs by 4096, and
divides the reduced axis by 128 across inner indices). Views
are read in place when their dimensions merge into that form, and copied to contiguous memory first otherwise.

Integer sums and products wrap around (mod 2^32), as numpy's do in the tensor's own dtype. Empty reductions give
0 for sum and sqnorm, 1 for prod; min and max of nothing raise ValueError, as in numpy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from khal_runtime import Family, workgroups
from shaders._generated.vortx.reduce import REDUCE_AXIS, REDUCE_ROWS, REDUCE_RUN, Axis
from shaders.vortx.reduce import AXIS_CHUNK, OP, ROW_CHUNK, ROWS, RUN_CHUNK, TILE, WORKGROUP

from .ops import ShapeError, fill, numeric

if TYPE_CHECKING:
    from .tensor import Tensor

OPS = OP.values                 # ("sum", "prod", "min", "max", "sqnorm")

Dim = tuple[int, int]       # (size, stride in elements)


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
    if inner[0] == 1 and outer[0] > 1 and (outer[1] < dims[axis][1] or dims[axis][0] < WORKGROUP):
        # the outputs lie closer together than the elements of one (a transposed view), or there are fewer
        # elements per output than a workgroup of the run kernel has threads: a thread per output instead
        return (1, 0), dims[axis], outer
    return outer, dims[axis], inner


def _passes(out: Tensor, op: str, src: Tensor, outer: Dim, reduced: Dim, inner: Dim) -> Tensor:
    """Reduce the view of `src` into `out` (contiguous, outer * inner elements), through partials as needed."""
    (n_outer, s_outer), (n, s_n), (n_inner, s_inner) = outer, reduced, inner
    device, dtype, offset = out.device, out.dtype, src.offset
    while True:
        family, chunks, groups = _plan(n_outer, n, n_inner)
        dst = out if chunks == 1 else device.empty((n_outer * chunks * n_inner,), dtype)
        device.dispatch(family.pick(T=dtype.ir, OP=op), workgroups(groups), dst.buffer,
                        src.buffer, Axis(n_outer, n, n_inner, offset, s_outer, s_n, s_inner, chunks))
        if chunks == 1:
            return out
        # next, the (outer, chunks, inner) partials; those of a squared norm are sums of squares, to be added
        src, offset, n, s_outer, s_n, s_inner = dst, 0, chunks, chunks * n_inner, n_inner, 1
        op = "sum" if op == "sqnorm" else op


def _plan(n_outer: int, n: int, n_inner: int) -> tuple[Family, int, int]:
    """The kernel family of a pass, how many pieces it cuts `n` into, and how many workgroups it takes."""
    if n_inner > 1:
        chunks = max(1, -(-n // AXIS_CHUNK))
        return REDUCE_AXIS, chunks, n_outer * chunks * -(-n_inner // TILE)
    if n <= ROW_CHUNK:
        return REDUCE_ROWS, 1, -(-n_outer // ROWS)
    chunks = -(-n // RUN_CHUNK)
    return REDUCE_RUN, chunks, n_outer * chunks
