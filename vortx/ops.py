"""Componentwise operations: broadcasting, the strided layout of a dispatch, and the choice of kernel instance.

Every elementwise kernel (shaders/vortx/elementwise.py) takes the output's shape with an offset and strides for
each tensor, so one dispatch handles views, broadcasting (stride 0) and in-place updates of views. When every
tensor is contiguous and of the output's shape, `dense` lets the kernel skip the index arithmetic.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from khal_runtime import Family, workgroups
from khal_runtime.lang import SCALAR_TYPES, f16, f32, i32
from shaders._generated.vortx.elementwise import (
    BINARY,
    BINARY_SCALAR,
    CONVERT,
    FILL,
    UNARY,
    UPDATE,
    UPDATE_SCALAR,
    Strided,
)
from shaders._generated.vortx.transpose import TRANSPOSE_TILES, Tiles
from shaders.vortx.elementwise import PER_THREAD
from shaders.vortx.transpose import TILE

if TYPE_CHECKING:
    from .tensor import Tensor

MAX_RANK = 4
NUMERIC = tuple(SCALAR_TYPES[t] for t in BINARY.params["T"])     # types with arithmetic; f16 is for storage


class ShapeError(ValueError):
    """Shapes that an operation cannot combine; the message names the operation and the shapes."""


# --- shapes ----------------------------------------------------------------------------------------------------------

def broadcast_shapes(op: str, *shapes: tuple[int, ...]) -> tuple[int, ...]:
    """numpy's rule: align on the right; each dimension is equal, or 1."""
    rank = max(len(s) for s in shapes)
    out = []
    for d in range(-rank, 0):
        sizes = {s[d] for s in shapes if len(s) >= -d} - {1}
        if len(sizes) > 1:
            raise ShapeError(f"vortx.{op}: shapes {' and '.join(map(str, shapes))} cannot be broadcast together")
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)


def broadcast_strides(t: Tensor, shape: tuple[int, ...]) -> tuple[int, ...]:
    """`t`'s strides viewed with the (larger) `shape`: stride 0 along broadcast dimensions."""
    lead = len(shape) - t.ndim
    return tuple(0 if d < lead or t.shape[d - lead] == 1 and shape[d] != 1 else t.strides[d - lead]
                 for d in range(len(shape)))


def contiguous_strides(shape: tuple[int, ...]) -> tuple[int, ...]:
    strides, step = [], 1
    for n in reversed(shape):
        strides.append(step)
        step *= max(n, 1)
    return tuple(reversed(strides))


def check_rank(op: str, shape: tuple[int, ...]) -> None:
    if len(shape) > MAX_RANK:
        raise ShapeError(f"vortx.{op}: rank {len(shape)} (shape {shape}); vortx tensors have at most {MAX_RANK} "
                         "dimensions (NCHW)")


# --- dispatches ------------------------------------------------------------------------------------------------------

def layout(out: Tensor, a: Tensor | None = None, b: Tensor | None = None) -> tuple[Strided, bool]:
    """The `Strided` layout of a dispatch over `out`'s shape, and whether it is dense."""
    shape = out.shape
    pad = MAX_RANK - len(shape)
    fields = list((1,) * pad + shape)
    dense = out.offset == 0 and out.is_contiguous()
    for t in (out, a, b):
        if t is None:
            fields += [0] * 5
            continue
        strides = broadcast_strides(t, shape) if t is not out else t.strides
        fields += [t.offset, *((0,) * pad + strides)]
        dense = dense and (t is out or t.offset == 0 and t.shape == shape and t.is_contiguous())
    return Strided(*fields), dense


def numeric(op: str, *tensors: Tensor, types: tuple = NUMERIC) -> type:
    """The common element type of the operands, checked against what the operation supports."""
    dtype = tensors[0].dtype
    for t in tensors[1:]:
        if t.dtype is not dtype:
            raise TypeError(f"vortx.{op}: the tensors hold {dtype.ir} and {t.dtype.ir}; convert one with .to(...)")
    if dtype not in types:
        hint = "; f16 tensors are for storage: convert with .to(vortx.f32)" if dtype is f16 else ""
        raise TypeError(f"vortx.{op}: not available for {dtype.ir} tensors (only "
                        f"{', '.join(t.ir for t in types)}){hint}")
    return dtype


def scalar_value(op: str, value: Any, dtype: type) -> Any:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"vortx.{op}: expected a tensor or a number, not {type(value).__name__}")
    if dtype is f32:
        return float(value)
    if isinstance(value, float) and not value.is_integer():
        raise TypeError(f"vortx.{op}: the float {value} with an {dtype.ir} tensor; convert the tensor with "
                        ".to(vortx.f32)")
    lo, hi = (-2**31, 2**31 - 1) if dtype is i32 else (0, 2**32 - 1)
    if not lo <= int(value) <= hi:
        raise ValueError(f"vortx.{op}: {value} does not fit in {dtype.ir}")
    return int(value)


def threads(n: int, dense: bool) -> int:
    """Threads of an elementwise dispatch: on the dense path each handles PER_THREAD elements."""
    return -(-n // PER_THREAD) if dense else n


def dispatch(family: Family, out: Tensor, *args: Any, a: Tensor | None = None, b: Tensor | None = None,
             after: tuple = (), **template: str) -> Tensor:
    """Run one elementwise kernel over `out` (nothing to do for an empty tensor): its arguments are `out`, the
    tensors `a` and `b` that are given, `args`, the layout, the size, `dense`, then `after`."""
    # the kernel cannot read the buffer it writes through another binding: inputs that share it are copied first
    a, b = (t.copy() if t is not None and t.storage is out.storage else t for t in (a, b))
    n = out.size
    if n:
        lay, dense = layout(out, a, b)
        tensors = [t.buffer for t in (a, b) if t is not None]
        out.device.dispatch(family.pick(**template), threads(n, dense), out.buffer, *tensors, *args, lay, n, dense,
                            *after)
    return out


def binary(op: str, a: Tensor, b: Any, reverse: bool = False) -> Tensor:
    """`a op b` (`b op a` when `reverse`) for a tensor `a` and a tensor or number `b`, in a new tensor."""
    from .tensor import Tensor
    types = element_types(BINARY, OP=op)
    if isinstance(b, Tensor):
        if reverse:
            a, b = b, a
        dtype = numeric(op, a, b, types=types)
        same_device(op, a, b)
        out = a.device.empty(broadcast_shapes(op, a.shape, b.shape), dtype)
        return dispatch(BINARY, out, a=a, b=b, T=dtype.ir, OP=op)
    dtype = numeric(op, a, types=types)
    s = scalar_value(op, b, dtype)
    out = a.device.empty(a.shape, dtype)
    return dispatch(BINARY_SCALAR, out, s, a=a, after=(reverse,), T=dtype.ir, OP=op)


def update(op: str, x: Tensor, b: Any) -> Tensor:
    """`x op= b` in place (x may be a view)."""
    from .tensor import Tensor
    name = f"{op}_"
    types = element_types(UPDATE, OP=op)
    if isinstance(b, Tensor):
        dtype = numeric(name, x, b, types=types)
        same_device(name, x, b)
        if broadcast_shapes(name, x.shape, b.shape) != x.shape:
            raise ShapeError(f"vortx.{name}: a tensor of shape {x.shape} cannot be updated in place with one of "
                             f"shape {b.shape}")
        return dispatch(UPDATE, x, b=b, T=dtype.ir, OP=op)
    dtype = numeric(name, x, types=types)
    return dispatch(UPDATE_SCALAR, x, scalar_value(name, b, dtype), T=dtype.ir, OP=op)


def unary(op: str, a: Tensor) -> Tensor:
    dtype = numeric(op, a, types=element_types(UNARY, FN=op))
    return dispatch(UNARY, a.device.empty(a.shape, dtype), a=a, T=dtype.ir, FN=op)


def element_types(family: Family, **template: str) -> tuple[type, ...]:
    """The element types of the operation's instances: f32 alone for those that the kernels' `exclude=` keeps from
    the integer types (division, powers, transcendentals)."""
    op = next(iter(template.values()))
    if op not in family.params[next(iter(template))]:
        raise ValueError(f"vortx: unknown operation {op!r}")
    return tuple(SCALAR_TYPES[t] for t in family.values("T", **template))


def convert(a: Tensor, dtype: type, out: Tensor | None = None) -> Tensor:
    """`a` converted to `dtype` (a copy when the type is the same), into `out` (a view of `a`'s shape, or of a
    shape `a` broadcasts to) or a new contiguous tensor."""
    if out is None and dtype is a.dtype and dtype is not f16:
        tiles = _tiles(a)
        if tiles is not None:
            out = a.device.empty(a.shape, dtype)
            a.device.dispatch(TRANSPOSE_TILES.pick(T=dtype.ir), workgroups(tile_groups(tiles)), out.buffer,
                              a.buffer, tiles)
            return out
    out = out if out is not None else a.device.empty(a.shape, dtype)
    return dispatch(CONVERT, out, a=a, SRC=a.dtype.ir, DST=dtype.ir)


def tile_groups(tiles: Tiles) -> int:
    """The workgroups of a tiled transposing copy: one per TILE x TILE tile of each (p, q) batch."""
    return -(-tiles.n_a // TILE) * -(-tiles.n_b // TILE) * tiles.n_p * tiles.n_q


def _tiles(a: Tensor) -> Tiles | None:
    """How shaders/vortx/transpose.py copies `a` into a contiguous tensor: when its unit stride lies along an axis
    other than the last (and the last is long enough to fill tiles), or None, for the elementwise copy, which
    coalesces otherwise."""
    axes = [i for i, n in enumerate(a.shape) if n > 1]
    if len(axes) < 2 or a.strides[axes[-1]] == 1 or a.shape[axes[-1]] < TILE // 4:
        return None
    unit = [i for i in axes[:-1] if a.strides[i] == 1]
    if not unit:
        return None
    b, ax = axes[-1], unit[0]
    strides = contiguous_strides(a.shape)
    batch = [(a.shape[i], a.strides[i], strides[i]) for i in axes if i not in (ax, b)] + [(1, 0, 0)] * 2
    return Tiles(a.shape[ax], a.shape[b], a.strides[b], strides[ax], *batch[0], *batch[1], a.offset)


def fill(x: Tensor, value: Any) -> Tensor:
    if x.dtype is f16:                      # no f16 arithmetic kernels: fill an f32 tensor and convert it
        return convert(fill(x.device.empty(x.shape, f32), value), f16, out=x)
    dtype = numeric("fill", x)
    return dispatch(FILL, x, scalar_value("fill", value, dtype), T=dtype.ir)


def same_device(op: str, *tensors: Tensor) -> None:
    if any(t.device is not tensors[0].device for t in tensors):
        raise ValueError(f"vortx.{op}: the tensors are on different devices "
                         f"({', '.join(t.device.backend.name for t in tensors)})")


def numel(shape: tuple[int, ...]) -> int:
    return math.prod(shape)
