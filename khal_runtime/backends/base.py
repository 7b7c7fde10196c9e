"""The interface every backend implements, and the logic they share.

A backend owns a device. Buffers live on it; an `Encoder` records compute passes and copies; `submit` sends the
recording to the device; `synchronize` waits for everything submitted. A `Pass` is a context manager in which
generated kernel bindings dispatch; with `timestamps=True`, its `elapsed` seconds are known after a synchronize.

    backend = khal_runtime.backend("auto")
    a = backend.init_buffer(np.arange(8, dtype=np.float32))
    encoder = backend.begin_encoding()
    with encoder.begin_pass("add") as pass_:
        kernels.add_assign.call(pass_, len(a), a, b)
    backend.submit(encoder)
    print(a.read())

`with backend.capture() as graph:` records the work submitted inside the block instead of running it, and
`graph.replay()` runs it again (`graphs.py`).
"""

from __future__ import annotations

import contextlib
import functools
import math
import weakref
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, overload

import numpy as np

from ..buffers import DEFAULT_USAGE, Buffer, BufferUsage, ReadOnlyBuffer, element_type

if TYPE_CHECKING:
    from ..kernels import Kernel
    from .graphs import Graph

T = TypeVar("T")
KernelT = TypeVar("KernelT", bound="Kernel")

# The device features kernels can require; the CPU and CUDA backends offer them all. `int_dot4` (4 x 8-bit dot
# products) is __dp4a on CUDA and emulated on WebGPU and the CPU.
ALL_FEATURES = frozenset({"immediates", "f16", "f64", "i64", "subgroups", "atomic_f32", "int_dot4"})


class BackendError(RuntimeError):
    """A backend cannot be created or cannot do what was asked (a missing driver, feature or usage flag)."""


class CaptureError(BackendError):
    """Something that cannot be captured was asked while a capture is open, or a graph was misused."""


class KernelFunction(ABC):
    """A kernel loaded on one backend (pipeline, CUDA function or IR)."""

    @abstractmethod
    def dispatch(self, pass_: Any, grid: Any, buffers: list, scalars: tuple) -> None:
        """Record one dispatch; `grid` is a workgroup count or an `Indirect`, `buffers` the buffers in binding
        order (checked: each its allocation `handle` and the `length` that the kernel must see as `len()`),
        `scalars` the scalar arguments in order (a struct as the list of its field values)."""


class Pass(ABC):
    """A compute pass. Use it as a context manager; kernels dispatch into it."""

    def __init__(self, encoder: Encoder, label: str, timestamps: bool):
        self.encoder, self.backend, self.label, self.timestamps = encoder, encoder.backend, label, timestamps
        # where its dispatches go (its encoder's destination): `Kernel.call` compares it with the backend's
        self.destination = encoder.destination
        self.ended = False

    @property
    def elapsed(self) -> float | None:
        """Seconds the pass took on the device, once the work was synchronized (None without timestamps)."""
        return None

    def end(self) -> None:
        self.ended = True

    def __enter__(self) -> Pass:
        return self

    def __exit__(self, *exc) -> None:
        if not self.ended:
            self.end()


class Encoder(ABC):
    """Records passes and copies until `backend.submit(encoder)`."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.submitted = False
        # where its work goes: the backend's queue (the backend itself), or the graph of the capture open when the
        # encoder was begun; an encoder only records while that is still where the backend's work goes
        self.destination: Backend | Graph = backend.destination
        if self.destination is not backend:
            self.destination.encoders.append(self)

    def check_destination(self, what: str) -> None:
        """Refuse (CaptureError) to record into an encoder begun on the other side of a capture's boundary."""
        if self.destination is not self.backend.destination:
            if self.destination is self.backend:
                raise CaptureError(f"{what}: this encoder was begun before the capture opened; begin a new encoder "
                                   "inside the `with backend.capture()` block")
            raise CaptureError(f"{what}: this encoder was begun inside a capture that has ended; begin a new one")

    def begin_pass(self, label: str = "", timestamps: bool = False) -> Pass:
        """A compute pass; `timestamps=True` times it (its `elapsed`), which a capture cannot do."""
        self.check_destination("begin_pass")
        if timestamps:
            self.backend.check_not_capturing("begin_pass(timestamps=True)", "time the replays on the host instead")
        return self._begin_pass(label, timestamps)

    @abstractmethod
    def _begin_pass(self, label: str, timestamps: bool) -> Pass: ...

    def copy_buffer_to_buffer(self, source: ReadOnlyBuffer, source_offset: int, target: Buffer, target_offset: int,
                              count: int) -> None:
        """Copy `count` elements (offsets in elements too), device to device."""
        self.check_destination("copy_buffer_to_buffer")
        self.backend.check_copy(source, source_offset, target, target_offset, count)
        self._copy(source, source_offset, target, target_offset, count)

    @abstractmethod
    def _copy(self, source: ReadOnlyBuffer, source_offset: int, target: Buffer, target_offset: int,
              count: int) -> None: ...


class ReadFuture:
    """The result of `read_buffer_async`: `result()` waits for the data."""

    def __init__(self, wait: Callable[[], np.ndarray]):
        self._wait, self._value = wait, None

    def result(self) -> np.ndarray:
        if self._value is None:
            self._value = self._wait()
        return self._value


@functools.cache
def binding_step(align: int, dtype: type) -> int:
    """Elements of `dtype` per binding word of `align` bytes: the lengths a kernel can see exactly are its
    multiples (cached: vortx asks for every tensor)."""
    return align // math.gcd(align, np.dtype(dtype.numpy).itemsize)


class Backend(ABC):
    name: str = ""
    device_name: str = ""
    features: frozenset[str] = frozenset()
    # The granularity in bytes of the lengths that a kernel can see: WebGPU binds whole 4-byte words.
    binding_align: int = 1

    def __init__(self) -> None:
        self._kernels: dict[type, Any] = {}         # binding class -> its instance loaded on this backend
        # where submitted work goes: the device's queue (this backend), or the graph of an open capture
        self.destination: Backend | Graph = self
        self._binding_keys: dict[tuple[type, bool], tuple] = {}
        self._bytes_in_use = self._peak_bytes = 0

    # --- kernels --------------------------------------------------------------------------------------------

    def kernel(self, cls: type[KernelT]) -> KernelT:
        """The binding class `cls` loaded on this backend: its artifacts are read, verified and loaded (a
        pipeline, a CUDA module, the parsed IR) on the first call, and every later call, like `cls(backend)`,
        returns the same instance."""
        loaded = self._kernels.get(cls)
        if loaded is None:
            loaded = self._kernels[cls] = cls._load(self)
        return loaded

    def binding_key(self, dtype: type, writes: bool) -> tuple:
        """The one object that stands for "a buffer of `dtype` on this backend, bound where a kernel reads (or
        writes)": buffers carry theirs (`reads`, `writes`) and kernels compare them by identity."""
        key = self._binding_keys.get((dtype, writes))
        if key is None:
            key = self._binding_keys[dtype, writes] = (self, dtype, writes)
        return key

    # --- buffers --------------------------------------------------------------------------------------------

    @overload
    def init_buffer(self, data: Any, usage: BufferUsage = ..., *, dtype: type[T]) -> Buffer[T]: ...
    @overload
    def init_buffer(self, data: Any, usage: BufferUsage = ..., *, dtype: None = ...) -> Buffer[Any]: ...

    def init_buffer(self, data: Any, usage: BufferUsage = DEFAULT_USAGE, *, dtype: Any = None) -> Buffer[Any]:
        """A new buffer holding a copy of `data` (a numpy array of any shape, read flat in C order, or a list).

        `dtype` (f32, u32, ...) makes the element type explicit, which lets a type checker see it
        (`Buffer[f32]`); a numpy array must already have that dtype, a list is converted to it."""
        if dtype is not None:
            t = element_type(dtype)
            if isinstance(data, np.ndarray) and data.dtype != np.dtype(t.numpy):
                raise TypeError(f"init_buffer: the array holds {data.dtype}, not {t.ir}; convert it with "
                                f".astype(np.{np.dtype(t.numpy)})")
            data = np.asarray(data, dtype=t.numpy)
        self.check_not_capturing("init_buffer", "create the buffers before the capture")
        array = np.ascontiguousarray(data).reshape(-1)
        t = element_type(array.dtype)
        self._check_layout(t, array.size, BufferUsage(usage))
        return self._counted(Buffer(self, t, array.size, BufferUsage(usage), self._create(array.nbytes, usage, array)),
                             array.nbytes)

    def uninit_buffer(self, dtype: type[T], length: int, usage: BufferUsage = DEFAULT_USAGE) -> Buffer[T]:
        """A new buffer of `length` elements of `dtype` (f32, np.float32, ...), filled with zeros."""
        self.check_not_capturing("uninit_buffer", "create the buffers before the capture")
        t = element_type(dtype)
        if not isinstance(length, (int, np.integer)) or length < 0:
            raise ValueError(f"a buffer length must be a non-negative integer, not {length!r}")
        nbytes = int(length) * np.dtype(t.numpy).itemsize
        self._check_layout(t, int(length), BufferUsage(usage))
        buffer = Buffer(self, t, int(length), BufferUsage(usage), self._create(nbytes, usage, None))
        return self._counted(buffer, nbytes)

    def _counted(self, buffer: Buffer, nbytes: int) -> Buffer:
        self._bytes_in_use += nbytes
        self._peak_bytes = max(self._peak_bytes, self._bytes_in_use)
        weakref.finalize(buffer, self._uncount, nbytes)
        return buffer

    def _uncount(self, nbytes: int) -> None:
        self._bytes_in_use -= nbytes

    def memory(self, reset_peak: bool = False) -> tuple[int, int]:
        """(bytes in use, peak bytes) of the buffers this backend created and that are still alive (their device
        allocations: a backend may round them up); `reset_peak` starts the next peak from what is in use now."""
        in_use, peak = self._bytes_in_use, self._peak_bytes
        if reset_peak:
            self._peak_bytes = in_use
        return in_use, peak

    def write_buffer(self, buffer: Buffer, data: Any, offset: int = 0) -> None:
        """Copy `data` into `buffer` at element `offset` (ordered before work submitted later)."""
        self.check_owner(buffer, "write_buffer")
        self.check_not_capturing("write_buffer", "write before the capture or between replays: a replay reads the "
                                 "buffer as it is then")
        array = np.asarray(data)
        if array.dtype != buffer.numpy_dtype:
            # data numpy cannot convert to the buffer's type raises numpy's own error, as it always did
            np.ascontiguousarray(data, dtype=buffer.numpy_dtype)
            raise TypeError(f"write_buffer: the data is {array.dtype} but {buffer!r} holds "
                            f"{buffer.dtype.ir}; convert it with .astype(np.{buffer.numpy_dtype})")
        array = np.ascontiguousarray(array).reshape(-1)
        if offset < 0 or offset + array.size > buffer.length:
            raise IndexError(f"write_buffer: {array.size} elements at offset {offset} do not fit in a buffer of "
                             f"{buffer.length}")
        self.require_usage(buffer, BufferUsage.COPY_DST, "write_buffer")
        self._write(buffer, array, offset)

    def read_buffer(self, buffer: ReadOnlyBuffer) -> np.ndarray:
        """The buffer's contents as a new numpy array, after all submitted work."""
        return self.read_buffer_async(buffer).result()

    def read_buffer_async(self, buffer: ReadOnlyBuffer) -> ReadFuture:
        """Start reading the buffer back; `.result()` waits and gives the numpy array."""
        self.check_owner(buffer, "read_buffer")
        self.check_not_capturing("read_buffer", "read after the `with` block, once the graph was replayed")
        self.require_usage(buffer, BufferUsage.COPY_SRC, "read_buffer")
        return self._read(buffer)

    # --- capture and replay ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def capture(self) -> Iterator[Graph]:
        """`with backend.capture() as graph:` records the dispatches and copies of the encoders begun and submitted
        inside the block, without running them; `graph.replay(times)` runs them later, in order, reading the buffers
        as they are then. Buffer creation, reads, writes and synchronize raise CaptureError inside the block; a
        block that raises discards its graph. Captures do not nest."""
        self.check_not_capturing("capture", "captures do not nest; replay one graph after the other instead")
        graph = self._begin_capture()
        self.destination = graph
        try:
            yield graph
        except BaseException as e:
            self.destination = self
            graph._discard(e)
            raise
        self.destination = self
        graph._end()

    def check_not_capturing(self, what: str, instead: str) -> None:
        """Refuse (CaptureError) what cannot be captured while a capture is open; `instead` says what to do."""
        if self.destination is not self:
            raise CaptureError(f"{what} cannot be captured: a capture is open on this {self.name} backend "
                               f"(inside `with backend.capture()`); {instead}")

    @abstractmethod
    def _begin_capture(self) -> Graph:
        """A new graph that the encoders submitted from now on record into (`capture` makes it the destination)."""

    # --- checks shared by the backends ----------------------------------------------------------------------

    def check_owner(self, buffer: ReadOnlyBuffer, what: str) -> None:
        if not isinstance(buffer, ReadOnlyBuffer):
            raise TypeError(f"{what}: expected a khal buffer, found {type(buffer).__name__}")
        if buffer.backend is not self:
            raise BackendError(f"{what}: {buffer!r} belongs to another backend ({buffer.backend.name}), "
                               f"not this {self.name} backend")

    def require_usage(self, buffer: ReadOnlyBuffer, flag: BufferUsage, what: str) -> None:
        if not buffer.usage & flag:
            raise BackendError(f"{what}: {buffer!r} lacks the usage flag {flag.name}; create it with "
                               f"usage=... | BufferUsage.{flag.name}")

    def check_copy(self, source: ReadOnlyBuffer, source_offset: int, target: Buffer, target_offset: int,
                   count: int) -> None:
        self.check_owner(source, "copy_buffer_to_buffer")
        self.check_owner(target, "copy_buffer_to_buffer")
        if not isinstance(target, Buffer):
            raise TypeError("copy_buffer_to_buffer: the target is a read-only buffer")
        if source.dtype is not target.dtype:
            raise TypeError(f"copy_buffer_to_buffer: cannot copy {source.dtype.ir} elements into a "
                            f"{target.dtype.ir} buffer")
        if min(source_offset, target_offset, count) < 0 or source_offset + count > source.length or \
                target_offset + count > target.length:
            raise IndexError(f"copy_buffer_to_buffer: {count} elements from offset {source_offset} of "
                             f"{source.length} to offset {target_offset} of {target.length} is out of bounds")
        self.require_usage(source, BufferUsage.COPY_SRC, "copy_buffer_to_buffer")
        self.require_usage(target, BufferUsage.COPY_DST, "copy_buffer_to_buffer")

    def bindable_length(self, dtype: type, length: int) -> int:
        """The smallest length from `length` on that a kernel can see exactly (a whole number of binding words)."""
        step = binding_step(self.binding_align, dtype)
        return -(-length // step) * step

    def check_binding_length(self, dtype: type, length: int, what: str) -> None:
        """Refuse (BackendError) a length that kernels could not see exactly: `len()` would count the padding."""
        step = binding_step(self.binding_align, dtype)
        if length % step:
            padded = self.bindable_length(dtype, length)
            needs = "an even length" if step == 2 else f"a length that is a multiple of {step}"
            raise BackendError(f"{what} of {dtype.ir} on {self.name} needs {needs}, not {length}: {self.name} binds "
                               f"whole {self.binding_align}-byte words, so a kernel would see len() = {padded}; "
                               f"pad it to {padded} elements")

    def _check_layout(self, dtype: type, length: int, usage: BufferUsage) -> None:
        """Refuse a storage buffer that kernels could not see with its exact length."""
        if usage & BufferUsage.STORAGE:
            self.check_binding_length(dtype, length, "a storage buffer")

    # --- what each backend implements -----------------------------------------------------------------------

    @abstractmethod
    def _create(self, nbytes: int, usage: BufferUsage, data: np.ndarray | None) -> Any:
        """A device allocation of `nbytes` holding `data` (zeros when None)."""

    @abstractmethod
    def _write(self, buffer: Buffer, data: np.ndarray, offset: int) -> None: ...

    @abstractmethod
    def _read(self, buffer: ReadOnlyBuffer) -> ReadFuture: ...

    @abstractmethod
    def begin_encoding(self) -> Encoder: ...

    def submit(self, encoder: Encoder) -> None:
        """Send the encoder's work to the device (once); inside a capture, to the capture's graph."""
        if encoder.submitted:
            raise RuntimeError("this encoder was already submitted")
        encoder.check_destination("submit")
        encoder.submitted = True
        if self.destination is self:
            self._submit(encoder)
        else:
            self.destination._add(encoder)

    @abstractmethod
    def _submit(self, encoder: Encoder) -> None:
        """Send the work of an encoder not submitted before (`submit` has checked and marked it)."""

    def synchronize(self) -> None:
        """Wait until the device finished all submitted work."""
        self.check_not_capturing("synchronize", "synchronize after the `with` block")
        self._synchronize()

    @abstractmethod
    def _synchronize(self) -> None: ...

    @abstractmethod
    def load_kernel(self, info: dict, artifact: Callable[[str], bytes]) -> KernelFunction:
        """Load one kernel from its manifest entry; `artifact(kind)` returns the verified bytes of an artifact.
        Called once per binding class and backend (`kernel()` caches what it gives)."""

    def describe(self) -> dict[str, Any]:
        """What `khal-gpu info` prints."""
        return {"backend": self.name, "device": self.device_name, "features": sorted(self.features)}

    def __repr__(self) -> str:
        return f"<khal {self.name} backend on {self.device_name}>"
