"""Device buffers: a handle that knows its backend, element type, length and usage.

`Buffer[T]` is writable; `ReadOnlyBuffer[T]` (its base class) can only be bound where a kernel reads. A kernel
parameter `MutBuf[f32]` takes a `Buffer[f32]`, a `Buf[f32]` takes either; the generated `.pyi` stubs say so, so
that a type checker catches a wrong element type or a read-only buffer passed for writing, and `call()` checks the
same at run time.

The `handle` is the backend's allocation; several buffers may share one (`read_only()`, `prefix(n)`), and each
has its own length, which is what a kernel sees as `len()` on every backend, however large the allocation behind.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import numpy as np

from .lang import SCALAR_TYPES

if TYPE_CHECKING:
    from .backends.base import Backend

T = TypeVar("T")
B = TypeVar("B", bound="ReadOnlyBuffer[Any]")


class BufferUsage(enum.IntFlag):
    """How a buffer may be used; the same bits as WebGPU's GPUBufferUsage."""
    MAP_READ = 1 << 0
    MAP_WRITE = 1 << 1
    COPY_SRC = 1 << 2
    COPY_DST = 1 << 3
    INDEX = 1 << 4
    VERTEX = 1 << 5
    UNIFORM = 1 << 6
    STORAGE = 1 << 7
    INDIRECT = 1 << 8
    QUERY_RESOLVE = 1 << 9


# What a buffer gets when the caller does not say: usable by kernels, readable and writable by the host.
DEFAULT_USAGE = BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST
_STORAGE = int(BufferUsage.STORAGE)         # as a plain int: flag arithmetic costs a microsecond per buffer

# numpy dtype -> element type (bool arrays are refused: bool travels as u32)
ELEMENT_TYPES = {np.dtype(t.numpy): t for t in SCALAR_TYPES.values()}


def element_type(dtype: Any) -> type:
    """The element type (f32, u32, ...) for a khal type, a numpy dtype or anything np.dtype() accepts."""
    if isinstance(dtype, type) and getattr(dtype, "ir", None) in SCALAR_TYPES:
        return dtype
    try:
        np_dtype = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{dtype!r} is not an element type; use f32, u32, i32, f16, i64, u64 or f64") from None
    if np_dtype not in ELEMENT_TYPES:
        hint = " (bool values travel as u32)" if np_dtype == np.bool_ else ""
        raise TypeError(f"buffers cannot hold {np_dtype}{hint}; the element types are "
                        + ", ".join(sorted(SCALAR_TYPES)))
    return ELEMENT_TYPES[np_dtype]


class ReadOnlyBuffer(Generic[T]):
    """A buffer of `len(buf)` elements of type T on one backend, which kernels may only read."""

    # __weakref__: the backend counts the memory it allocated until the buffer is collected (Backend.memory)
    __slots__ = ("backend", "dtype", "length", "usage", "handle", "bindable", "reads", "writes", "__weakref__")
    writable = False

    def __init__(self, backend: Backend, dtype: type, length: int, usage: BufferUsage, handle: Any):
        self.backend, self.dtype, self.length, self.usage, self.handle = backend, dtype, length, usage, handle
        # whether a kernel can bind it; kept as a plain bool because flag arithmetic is slow on the dispatch path
        self.bindable = bindable = bool(int(usage) & _STORAGE) and length > 0
        # what a dispatch compares, one identity test per buffer (`Backend.binding_key`): the key of the parameters
        # that may read it (this backend and element type), and of those that may write it; None where it cannot
        self.reads = backend.binding_key(dtype, False) if bindable else None
        self.writes = backend.binding_key(dtype, True) if bindable and self.writable else None

    def __len__(self) -> int:
        return self.length

    @property
    def numpy_dtype(self) -> np.dtype:
        return np.dtype(self.dtype.numpy)

    @property
    def nbytes(self) -> int:
        return self.length * self.numpy_dtype.itemsize

    @property
    def __cuda_array_interface__(self) -> dict:
        """The CUDA Array Interface (v3), for zero-copy use from CuPy, PyTorch or Numba; CUDA buffers only."""
        describe = getattr(self.backend, "cuda_array_interface", None)
        if describe is None:
            raise AttributeError(f"a buffer of the {self.backend.name} backend is not in CUDA memory")
        return describe(self)

    def read(self) -> np.ndarray:
        """The contents as a new numpy array (waits for the work submitted before)."""
        return self.backend.read_buffer(self)

    def prefix(self: B, length: int) -> B:
        """The first `length` elements of this buffer's memory, as a buffer of that length: a kernel it is bound to
        sees `len() == length` although the allocation is larger (a pool's buffers, for one). It is the same
        memory: writes through either show in both, and binding both where a kernel writes one is refused."""
        if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or not 0 <= length <= self.length:
            raise ValueError(f"prefix: {length!r} is not a length between 0 and {self.length}")
        length = int(length)
        self.backend.check_binding_length(self.dtype, length, f"a view of the first {length} elements")
        return type(self)(self.backend, self.dtype, length, self.usage, self.handle)

    def __repr__(self) -> str:
        kind = "Buffer" if self.writable else "ReadOnlyBuffer"
        return f"<{kind}[{self.dtype.ir}] of {self.length} on {self.backend.name}, usage {self.usage!r}>"


class Buffer(ReadOnlyBuffer[T]):
    """A buffer that kernels may read and write."""

    __slots__ = ()
    writable = True

    def read_only(self) -> ReadOnlyBuffer[T]:
        """A view of the same memory that can only be bound where kernels read."""
        return ReadOnlyBuffer(self.backend, self.dtype, self.length, self.usage, self.handle)

    def write(self, data: Any, offset: int = 0) -> None:
        """Copy `data` into the buffer, starting at element `offset`."""
        self.backend.write_buffer(self, data, offset)
