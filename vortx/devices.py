"""A vortx device: one khal backend (which keeps the kernels loaded on it), the pass that operations record into,
and a pool of buffers (whose padding kernels never see: a tensor's buffer is a view of exactly its elements).

Operations do not run when they are called: each records a dispatch into the device's current pass, and the
recording is submitted when a result is read (`Tensor.numpy()`), when data is uploaded, when `synchronize()` is
called, or every `BATCH` dispatches. On every backend work runs in recording order, so a buffer that a dropped
tensor gave back to the pool can be handed to the next operation at once: whatever read it was recorded before.

`with device.capture() as graph:` records the operations of the block into a graph of the backend (khal's
`backend.capture()`) instead of running them, and `graph.replay()` runs them again, reading every tensor as it is
then: write new inputs between replays with `Tensor.write`. The device submits its pending work before the capture
opens and its pass into the graph when the block ends, so vortx work and other dispatches on the device (a kernel
run through `device.dispatch` or `vortx.run`) are recorded in order. Inside the block every output must exist
already (`out=`): allocating a tensor, reading one to the host, writing one or synchronizing raises CaptureError
naming the vortx function called. A buffer that a live graph uses does not go back to the pool when its tensor is
dropped (a later tensor would be written by the replays): the graph keeps the memory until it is released.
"""

from __future__ import annotations

import contextlib
import math
import sys
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np

import khal_runtime as khal
from khal_runtime.backends.base import CaptureError
from khal_runtime.backends.graphs import CAPTURING, READY
from khal_runtime.buffers import ReadOnlyBuffer, element_type

BATCH = 256                     # dispatches per submission while nothing forces one earlier
POOLED_BYTES = 1 << 30          # free buffers kept for reuse, at most
GRANULE = 64                    # pooled buffers hold a multiple of this many elements


class Device:
    """Use `vortx.device("cuda" | "webgpu" | "cpu" | "auto")` for the shared device of a backend."""

    def __init__(self, backend: khal.Backend):
        self.backend = backend
        self.encoder: khal.Encoder | None = None
        self.pass_: khal.Pass | None = None
        self.recorded = 0
        self.timestamps = False                 # time each pass on the device (for gpu_seconds)
        self.timed: list[khal.Pass] = []
        # free buffers by (element type, capacity); a dict keeps insertion order, so the oldest come first
        self.free: dict[int, tuple[tuple[str, int], khal.Buffer]] = {}
        self.by_size: dict[tuple[str, int], list[int]] = {}
        self.free_bytes = 0
        # buffers in use, until release(): held here so that an allocation is never part of cyclic garbage (a
        # tensor in a reference cycle), where the collector could finalize the device memory before the tensor's
        # storage gives it back to the pool
        self.lent: dict[int, khal.Buffer] = {}
        self.capturing: Graph | None = None     # the graph of the open `with device.capture()`
        self.graphs: weakref.WeakSet[Graph] = weakref.WeakSet()     # graphs that may still replay

    def __repr__(self) -> str:
        return f"<vortx device on {self.backend.name}: {self.backend.device_name}>"

    @property
    def on_cpu(self) -> bool:
        """Whether the device is a CPU (the interpreter, or lavapipe's Vulkan adapter): its workgroups run a few at
        a time and each costs a launch, so operations plan for few large ones there."""
        adapter = getattr(self.backend, "adapter", None)
        return self.backend.name == "cpu" or adapter is not None and adapter.info.get("adapter_type") == "CPU"

    # --- work -----------------------------------------------------------------------------------------------------

    def dispatch(self, cls: type, grid: Any, *args: Any, **kwargs: Any) -> None:
        """Record one dispatch of the kernel class `cls` into the current pass."""
        if self.pass_ is None:
            self.encoder = self.backend.begin_encoding()
            self.pass_ = self.encoder.begin_pass("vortx", timestamps=self.timestamps and self.capturing is None)
        elif self.pass_.destination is not self.backend.destination:
            self._crossed()
        if self.capturing is not None:
            self.capturing.handles.update(id(a.handle) for a in (*args, *kwargs.values())
                                          if isinstance(a, ReadOnlyBuffer))
        self.backend.kernel(cls).call(self.pass_, grid, *args, **kwargs)
        self.recorded += 1
        if self.recorded >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Submit what was recorded (the device runs it while Python goes on)."""
        if self.encoder is not None:
            if self.pass_.destination is not self.backend.destination:
                self._crossed()
            self.pass_.end()
            if self.pass_.timestamps:
                self.timed.append(self.pass_)
            self.backend.submit(self.encoder)
            self.encoder = self.pass_ = None
            self.recorded = 0

    def synchronize(self) -> None:
        """Submit what was recorded and wait for the device to finish it."""
        self._refuse_in_capture("synchronizes with the device", "synchronize after the `with` block")
        self.flush()
        self.backend.synchronize()

    def _crossed(self) -> None:
        """The pass was begun on the other side of a capture's boundary: a capture opened with `backend.capture()`
        rather than `device.capture()`, which would submit the pending work first and the pass at its end."""
        if self.encoder.destination is self.backend:
            raise CaptureError(f"{_operation()}: vortx work recorded before this capture opened is still pending; "
                               "capture vortx work with `with device.capture()`, which submits it first")
        self.encoder = self.pass_ = None
        self.recorded = 0
        raise CaptureError(f"{_operation()}: vortx work was recorded inside a `backend.capture()` that has ended "
                           "without it (the graph never had it, and it is dropped); capture vortx work with "
                           "`with device.capture()`, which submits it into the graph")

    @contextlib.contextmanager
    def capture(self) -> Iterator[Graph]:
        """`with device.capture() as graph:` records the vortx operations (and other dispatches on this device) of
        the block into a graph, without running them; `graph.replay(times)` runs them. Outputs must be allocated
        before the block (pass them as `out=`); inputs are read at each replay, as they are then."""
        self.flush()
        graph = Graph(self)
        with self.backend.capture() as recorded:
            graph.recorded = recorded
            self.capturing = graph
            try:
                yield graph
                self.flush()                # the last pass goes into the graph
            except BaseException:
                self.encoder = self.pass_ = None    # recorded into the graph that the backend now discards
                self.recorded = 0
                raise
            finally:
                self.capturing = None
        self.graphs.add(graph)

    def _refuse_in_capture(self, does: str, instead: str) -> None:
        if self.capturing is not None:
            raise CaptureError(f"{_operation()} cannot be captured: it {does}, inside `with device.capture()` on "
                               f"{self.backend.name}; {instead}")

    def _in_a_graph(self, buf: khal.Buffer) -> bool:
        """Whether a graph that may still replay (or the one being captured) uses `buf`'s memory."""
        handle = id(buf.handle)
        graphs = [*self.graphs, self.capturing] if self.capturing is not None else self.graphs
        return any(handle in g.handles and g.live for g in graphs)

    def gpu_seconds(self) -> float | None:
        """The device time of the passes submitted since the last call, while `timestamps` was on (None where the
        device cannot time passes)."""
        self.synchronize()
        times = [p.elapsed for p in self.timed]
        self.timed.clear()
        return None if not times or None in times else sum(times)

    # --- memory ---------------------------------------------------------------------------------------------------

    def buffer(self, dtype: type, length: int) -> khal.Buffer:
        """An allocation of at least `length` elements (from the pool when one is free), to `release` when done;
        its contents are undefined."""
        self._refuse_in_capture(f"allocates a tensor ({length} {dtype.ir} elements)",
                                "allocate its output before the capture and pass it as out=...")
        capacity = max(GRANULE, -(-length // GRANULE) * GRANULE)
        same = self.by_size.get((dtype.ir, capacity))
        buf = self._take(same.pop()) if same else self.backend.uninit_buffer(dtype, capacity)
        self.lent[id(buf)] = buf
        return buf

    def release(self, buf: khal.Buffer) -> None:
        """Keep `buf` for reuse; past POOLED_BYTES, the buffers freed longest ago go back to the backend."""
        self.lent.pop(id(buf), None)
        if buf.nbytes > POOLED_BYTES or (self.graphs or self.capturing) and self._in_a_graph(buf):
            return
        key = (buf.dtype.ir, len(buf))
        self.free[id(buf)] = (key, buf)
        self.by_size.setdefault(key, []).append(id(buf))
        self.free_bytes += buf.nbytes
        while self.free_bytes > POOLED_BYTES:
            oldest = next(iter(self.free))
            self.by_size[self.free[oldest][0]].remove(oldest)
            self._take(oldest)

    def _take(self, ident: int) -> khal.Buffer:
        _, buf = self.free.pop(ident)
        self.free_bytes -= buf.nbytes
        return buf

    def upload(self, array: np.ndarray, buf: khal.Buffer, offset: int = 0) -> None:
        self._refuse_in_capture("writes a tensor from the host", "write it before the capture or between replays: "
                                "a replay reads it as it is then")
        # a host write is not recorded in order with the pending dispatches: submit them first
        self.flush()
        buf.write(array, offset)

    def download(self, buf: khal.Buffer) -> np.ndarray:
        self._refuse_in_capture("reads a tensor back to the host", "read it after the `with` block, once the graph "
                                "was replayed")
        self.flush()
        return buf.read()

    def write(self, t: Any, data: Any) -> None:
        """`Tensor.write`: copy `data` (of the tensor's shape, or one that broadcasts to it) into the elements of
        the contiguous tensor `t`, in order with the work recorded before (between replays: the next one reads it)."""
        from .ops import ShapeError
        if not t.is_contiguous():
            raise ShapeError(f"vortx.Tensor.write: a view of shape {t.shape} with strides {t.strides} is not "
                             "contiguous; write into a contiguous tensor")
        array = np.asarray(data)
        try:
            array = np.broadcast_to(array, t.shape)
        except ValueError:
            raise ShapeError(f"vortx.Tensor.write: data of shape {array.shape} does not fit a tensor of shape "
                             f"{t.shape}") from None
        converted = array.astype(t.dtype.numpy)
        if array.dtype.kind in "iub" and not np.array_equal(converted, array):
            raise ValueError(f"vortx.Tensor.write: the values do not fit in {t.dtype.ir}")
        if t.size:
            self.upload(np.ascontiguousarray(converted).reshape(-1), t.buffer, t.offset)

    def empty(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """A new contiguous tensor whose contents are undefined."""
        from .tensor import Tensor
        t = element_type(dtype)
        size = math.prod(shape)
        return Tensor(Storage(self, self.buffer(t, size), size), tuple(shape), t)


class Graph:
    """vortx work captured by `device.capture()`: `replay(times)` submits the device's pending work, then runs the
    recorded work `times` times, in order; `release()` frees it (khal's Graph, `recorded`, holds the memory)."""

    def __init__(self, device: Device):
        self.device = device
        self.recorded: Any = None               # the backend's graph
        self.handles: set[int] = set()          # ids of the buffer allocations its dispatches use

    @property
    def live(self) -> bool:
        """Whether it is being captured or may be replayed."""
        return self.recorded is None or self.recorded.state in (CAPTURING, READY)

    def __len__(self) -> int:
        return len(self.recorded)

    def replay(self, times: int = 1) -> None:
        if self.recorded.state == READY and self.device.capturing is None:
            self.device.flush()                 # the work recorded before runs first
        self.recorded.replay(times)

    def release(self) -> None:
        self.recorded.release()

    def __repr__(self) -> str:
        return f"<vortx graph on {self.device.backend.name}, {self.recorded.state}, {len(self.recorded)} commands>"


def _operation() -> str:
    """The vortx function the program called (the outermost vortx frame on the stack) and where it called it."""
    frame, name, site = sys._getframe(1), "vortx", ""
    while frame is not None:
        module = frame.f_globals.get("__name__", "")
        if module == "vortx" or module.startswith("vortx."):
            name, site = f"vortx.{frame.f_code.co_qualname}", ""
        elif not site:
            site = f"{frame.f_code.co_filename}:{frame.f_lineno}"
        frame = frame.f_back
    return f"{name} (called at {site})" if site else name


class Storage:
    """A pooled allocation shared by a tensor and its views, which kernels see through `buffer`: its first `size`
    elements, so that `len()` in a kernel is the tensor's size, not the pool's capacity (rounded up only where the
    backend cannot bind that length: an odd number of f16 elements on WebGPU). The allocation goes back to the
    device's pool when the last tensor using it is gone."""

    __slots__ = ("device", "allocation", "buffer")

    def __init__(self, device: Device, allocation: khal.Buffer, size: int):
        self.device, self.allocation = device, allocation
        length = device.backend.bindable_length(allocation.dtype, size)
        self.buffer = allocation if length == len(allocation) else allocation.prefix(length)

    def __del__(self) -> None:
        self.device.release(self.allocation)


_devices: dict[str, Device] = {}


def device(kind: str = "auto") -> Device:
    """The shared device of a backend kind ("auto": CUDA, else WebGPU, else the CPU; KHAL_BACKEND overrides)."""
    backend = khal.backend(kind)
    if backend.name not in _devices:
        _devices[backend.name] = Device(backend)
    return _devices[backend.name]
