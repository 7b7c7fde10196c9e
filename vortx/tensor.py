"""`Tensor`: up to four dimensions (NCHW), row-major, as a view (shape, strides and offset, in elements) of a buffer
on a vortx device.

Views share their buffer without copying: reshape of contiguous data, permute and transpose, narrow and slicing,
indexing, squeeze and unsqueeze, broadcast_to. Operations return new tensors and record their kernels into the
device's current pass; `numpy()` (or any read) submits the recording and waits for it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from khal_runtime.buffers import element_type

from . import ops
from .devices import Device, Storage
from .gemm import matmul
from .ops import ShapeError, broadcast_shapes, broadcast_strides, check_rank, contiguous_strides, numel
from .reduce import reduce


class Tensor:
    __slots__ = ("storage", "shape", "dtype", "strides", "offset")

    def __init__(self, storage: Storage, shape: tuple[int, ...], dtype: type, strides: tuple[int, ...] | None = None,
                 offset: int = 0):
        check_rank("tensor", shape)
        self.storage, self.shape, self.dtype, self.offset = storage, tuple(shape), dtype, offset
        self.strides = contiguous_strides(self.shape) if strides is None else tuple(strides)

    # --- what it is ----------------------------------------------------------------------------------------------

    @property
    def device(self) -> Device:
        return self.storage.device

    @property
    def buffer(self) -> Any:
        return self.storage.buffer

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return numel(self.shape)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def is_contiguous(self) -> bool:
        """Row-major without gaps (dimensions of size 1 may have any stride)."""
        expected = contiguous_strides(self.shape)
        return all(n == 1 or s == e for n, s, e in zip(self.shape, self.strides, expected))

    def __repr__(self) -> str:
        body = np.array2string(self.numpy(), separator=", ", prefix="vortx.tensor(")
        return f"vortx.tensor({body}, dtype={self.dtype.ir}, device={self.device.backend.name})"

    # --- data ------------------------------------------------------------------------------------------------------

    def numpy(self) -> np.ndarray:
        """The values, as a new numpy array (submits the pending work and waits for it)."""
        dtype = np.dtype(self.dtype.numpy)
        if self.size == 0:
            return np.zeros(self.shape, dtype)
        data = self.device.download(self.buffer)
        view = np.lib.stride_tricks.as_strided(data[self.offset:], self.shape,
                                               tuple(s * dtype.itemsize for s in self.strides))
        return np.array(view)

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = self.numpy()
        return out if dtype is None else out.astype(dtype)

    def write(self, data: Any) -> None:
        """Copy `data` (a numpy array or list of this shape, or one that broadcasts to it, or a number) into the
        elements of this contiguous tensor, in order with the work recorded before: between replays of a captured
        graph (`device.capture()`), the next replay reads it."""
        self.device.write(self, data)

    def item(self) -> Any:
        if self.size != 1:
            raise ValueError(f"vortx.item: the tensor has {self.size} elements, not one")
        return self.numpy().reshape(-1)[0].item()

    def tolist(self) -> Any:
        return self.numpy().tolist()

    # --- views -----------------------------------------------------------------------------------------------------

    def _view(self, shape: tuple[int, ...], strides: tuple[int, ...], offset: int) -> Tensor:
        return Tensor(self.storage, shape, self.dtype, strides, offset)

    def view(self, *shape: int | tuple[int, ...]) -> Tensor:
        """The same elements with another shape, without a copy (the tensor must be contiguous)."""
        new = _shape_arg("view", shape, self.size)
        if not self.is_contiguous():
            raise ShapeError(f"vortx.view: a view of shape {self.shape} with strides {self.strides} is not "
                             "contiguous; use reshape() (which copies) or contiguous() first")
        return self._view(new, contiguous_strides(new), self.offset)

    def reshape(self, *shape: int | tuple[int, ...]) -> Tensor:
        """Like `view`, copying the tensor first when it is not contiguous."""
        source = self.contiguous()
        new = _shape_arg("reshape", shape, self.size)
        return source._view(new, contiguous_strides(new), source.offset)

    def permute(self, *dims: int) -> Tensor:
        dims = tuple(d % self.ndim for d in (dims[0] if len(dims) == 1 and isinstance(dims[0], tuple) else dims)) \
            if self.ndim else ()
        if sorted(dims) != list(range(self.ndim)):
            raise ShapeError(f"vortx.permute: {dims} is not a permutation of the {self.ndim} dimensions of "
                             f"shape {self.shape}")
        return self._view(tuple(self.shape[d] for d in dims), tuple(self.strides[d] for d in dims), self.offset)

    def transpose(self, dim0: int = -2, dim1: int = -1) -> Tensor:
        order = list(range(self.ndim))
        order[dim0], order[dim1] = order[dim1], order[dim0]
        return self.permute(*order)

    @property
    def T(self) -> Tensor:
        """The dimensions reversed (numpy's `.T`)."""
        return self.permute(*reversed(range(self.ndim)))

    def narrow(self, dim: int, start: int, length: int) -> Tensor:
        dim = _dim("narrow", dim, self.ndim)
        if not (0 <= start and 0 <= length and start + length <= self.shape[dim]):
            raise ShapeError(f"vortx.narrow: elements {start}..{start + length} of dimension {dim} of shape "
                             f"{self.shape}")
        shape = self.shape[:dim] + (length,) + self.shape[dim + 1:]
        return self._view(shape, self.strides, self.offset + start * self.strides[dim])

    def squeeze(self, dim: int | None = None) -> Tensor:
        if dim is None:
            keep = [d for d, n in enumerate(self.shape) if n != 1]
        else:
            dim = _dim("squeeze", dim, self.ndim)
            if self.shape[dim] != 1:
                raise ShapeError(f"vortx.squeeze: dimension {dim} of shape {self.shape} has size {self.shape[dim]}, "
                                 "not 1")
            keep = [d for d in range(self.ndim) if d != dim]
        return self._view(tuple(self.shape[d] for d in keep), tuple(self.strides[d] for d in keep), self.offset)

    def unsqueeze(self, dim: int) -> Tensor:
        dim = _dim("unsqueeze", dim, self.ndim + 1)
        return self._view(self.shape[:dim] + (1,) + self.shape[dim:], self.strides[:dim] + (0,) + self.strides[dim:],
                          self.offset)

    def broadcast_to(self, *shape: int | tuple[int, ...]) -> Tensor:
        new = _shape_arg("broadcast_to", shape, None)
        if broadcast_shapes("broadcast_to", self.shape, new) != new:
            raise ShapeError(f"vortx.broadcast_to: shape {self.shape} cannot be broadcast to {new}")
        return self._view(new, broadcast_strides(self, new), self.offset)

    def __getitem__(self, index: Any) -> Tensor:
        items = index if isinstance(index, tuple) else (index,)
        if sum(1 for i in items if i is Ellipsis) > 1:
            raise IndexError("vortx: an index can have only one Ellipsis")
        used = sum(1 for i in items if i is not None and i is not Ellipsis)
        if used > self.ndim:
            raise IndexError(f"vortx: {used} indices for a tensor of shape {self.shape}")
        if Ellipsis in items:
            at = items.index(Ellipsis)
            items = items[:at] + (slice(None),) * (self.ndim - used) + items[at + 1:]
        shape, strides, offset, d = [], [], self.offset, 0
        for item in items:
            if item is None:
                shape.append(1)
                strides.append(0)
                continue
            n, s = self.shape[d], self.strides[d]
            if isinstance(item, slice):
                start, stop, step = item.indices(n)
                if step < 1:
                    raise IndexError("vortx: slices with a negative step are not supported")
                shape.append(len(range(start, stop, step)))
                strides.append(s * step)
                offset += start * s if shape[-1] else 0
            elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
                i = int(item)
                if not -n <= i < n:
                    raise IndexError(f"vortx: index {i} is out of range for dimension {d} of shape {self.shape}")
                offset += (i % n) * s
            else:
                raise IndexError(f"vortx: cannot index with {type(item).__name__}; use ints, slices, None and ...")
            d += 1
        shape += self.shape[d:]
        strides += self.strides[d:]
        return self._view(tuple(shape), tuple(strides), offset)

    def __setitem__(self, index: Any, value: Any) -> None:
        target = self[index]
        if isinstance(value, Tensor):
            ops.same_device("setitem", self, value)
            if broadcast_shapes("setitem", target.shape, value.shape) != target.shape:
                raise ShapeError(f"vortx.setitem: a value of shape {value.shape} does not fit a view of shape "
                                 f"{target.shape}")
            if value.storage is self.storage:
                value = value.copy()
            ops.convert(value, self.dtype, out=target)
        else:
            ops.fill(target, value)

    # --- copies and conversions --------------------------------------------------------------------------------

    def contiguous(self) -> Tensor:
        """This tensor if it is contiguous, else a contiguous copy."""
        return self if self.is_contiguous() else self.copy()

    def copy(self) -> Tensor:
        return ops.convert(self, self.dtype)

    clone = copy

    def to(self, dtype: Any) -> Tensor:
        """The values converted to `dtype` (f32, f16, i32, u32): float to integer truncates toward zero."""
        t = element_type(dtype)
        return self if t is self.dtype else ops.convert(self, t)

    # --- arithmetic --------------------------------------------------------------------------------------------

    def __add__(self, other: Any) -> Tensor:
        return ops.binary("add", self, other)

    def __radd__(self, other: Any) -> Tensor:
        return ops.binary("add", self, other, reverse=True)

    def __sub__(self, other: Any) -> Tensor:
        return ops.binary("sub", self, other)

    def __rsub__(self, other: Any) -> Tensor:
        return ops.binary("sub", self, other, reverse=True)

    def __mul__(self, other: Any) -> Tensor:
        return ops.binary("mul", self, other)

    def __rmul__(self, other: Any) -> Tensor:
        return ops.binary("mul", self, other, reverse=True)

    def __truediv__(self, other: Any) -> Tensor:
        return ops.binary("div", self, other)

    def __rtruediv__(self, other: Any) -> Tensor:
        return ops.binary("div", self, other, reverse=True)

    def __pow__(self, other: Any) -> Tensor:
        return ops.binary("pow", self, other)

    def __rpow__(self, other: Any) -> Tensor:
        return ops.binary("pow", self, other, reverse=True)

    def __iadd__(self, other: Any) -> Tensor:
        return ops.update("add", self, other)

    def __isub__(self, other: Any) -> Tensor:
        return ops.update("sub", self, other)

    def __imul__(self, other: Any) -> Tensor:
        return ops.update("mul", self, other)

    def __itruediv__(self, other: Any) -> Tensor:
        return ops.update("div", self, other)

    def __neg__(self) -> Tensor:
        return ops.unary("neg", self)

    def __pos__(self) -> Tensor:
        return self

    def __abs__(self) -> Tensor:
        return ops.unary("abs", self)

    def __matmul__(self, other: Tensor) -> Tensor:
        return matmul(self, other)

    def add(self, other: Any) -> Tensor:
        return self + other

    def sub(self, other: Any) -> Tensor:
        return self - other

    def mul(self, other: Any) -> Tensor:
        return self * other

    def div(self, other: Any) -> Tensor:
        return self / other

    def maximum(self, other: Any) -> Tensor:
        return ops.binary("max", self, other)

    def minimum(self, other: Any) -> Tensor:
        return ops.binary("min", self, other)

    def matmul(self, other: Tensor) -> Tensor:
        return self @ other

    def neg(self) -> Tensor:
        return -self

    def abs(self) -> Tensor:
        return abs(self)

    def inv(self) -> Tensor:
        """1 / x."""
        return ops.unary("inv", self)

    def exp(self) -> Tensor:
        return ops.unary("exp", self)

    def log(self) -> Tensor:
        return ops.unary("log", self)

    def sqrt(self) -> Tensor:
        return ops.unary("sqrt", self)

    def relu(self) -> Tensor:
        return ops.unary("relu", self)

    def silu(self) -> Tensor:
        """x * sigmoid(x)."""
        return ops.unary("silu", self)

    def gelu(self) -> Tensor:
        """GELU in its tanh form (as GGML and GPT-2 compute it)."""
        return ops.unary("gelu", self)

    # --- reductions ----------------------------------------------------------------------------------------------

    def sum(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        return reduce(self, "sum", axis, keepdims)

    def prod(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        return reduce(self, "prod", axis, keepdims)

    def min(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        return reduce(self, "min", axis, keepdims)

    def max(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        return reduce(self, "max", axis, keepdims)

    def sqnorm(self, axis: int | None = None, keepdims: bool = False) -> Tensor:
        """The sum of squares."""
        return reduce(self, "sqnorm", axis, keepdims)


def _dim(op: str, dim: int, ndim: int) -> int:
    if not -ndim <= dim < max(ndim, 1):
        raise IndexError(f"vortx.{op}: dimension {dim} is out of range for rank {ndim}")
    return dim % max(ndim, 1)


def _shape_arg(op: str, shape: tuple, size: int | None) -> tuple[int, ...]:
    """A shape given as ints or one tuple, with one -1 resolved against `size`."""
    dims = list(shape[0] if len(shape) == 1 and isinstance(shape[0], (tuple, list)) else shape)
    if dims.count(-1) > 1 or any(not isinstance(d, (int, np.integer)) or d < -1 for d in dims):
        raise ShapeError(f"vortx.{op}: {tuple(dims)} is not a shape")
    if -1 in dims:
        known = numel(tuple(d for d in dims if d != -1))
        if size is None or known == 0 or size % known:
            raise ShapeError(f"vortx.{op}: cannot infer the -1 of {tuple(dims)} for {size} elements")
        dims[dims.index(-1)] = size // known
    new = tuple(int(d) for d in dims)
    check_rank(op, new)
    if size is not None and numel(new) != size:
        raise ShapeError(f"vortx.{op}: shape {new} has {numel(new)} elements, the tensor has {size}")
    return new
