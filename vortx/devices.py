"""A vortx device: one khal backend (which keeps the kernels loaded on it), the pass that operations record into,
and a pool of buffers (whose padding kernels never see: a tensor's buffer is a view of exactly its elements).

Operations do not run when they are called: each records a dispatch into the device's current pass, and the
recording is submitted when a result is read (`Tensor.numpy()`), when data is uploaded, when `synchronize()` is
called, or every `BATCH` dispatches. On every backend work runs in recording order, so a buffer that a dropped
tensor gave back to the pool can be handed to the next operation at once: whatever read it was recorded before.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

import khal_runtime as khal
from khal_runtime.buffers import element_type

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

    def __repr__(self) -> str:
        return f"<vortx device on {self.backend.name}: {self.backend.device_name}>"

    # --- work -----------------------------------------------------------------------------------------------------

    def dispatch(self, cls: type, grid: Any, *args: Any, **kwargs: Any) -> None:
        """Record one dispatch of the kernel class `cls` into the current pass."""
        if self.pass_ is None:
            self.encoder = self.backend.begin_encoding()
            self.pass_ = self.encoder.begin_pass("vortx", timestamps=self.timestamps)
        self.backend.kernel(cls).call(self.pass_, grid, *args, **kwargs)
        self.recorded += 1
        if self.recorded >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Submit what was recorded (the device runs it while Python goes on)."""
        if self.encoder is not None:
            self.pass_.end()
            if self.timestamps:
                self.timed.append(self.pass_)
            self.backend.submit(self.encoder)
            self.encoder = self.pass_ = None
            self.recorded = 0

    def synchronize(self) -> None:
        """Submit what was recorded and wait for the device to finish it."""
        self.flush()
        self.backend.synchronize()

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
        capacity = max(GRANULE, -(-length // GRANULE) * GRANULE)
        same = self.by_size.get((dtype.ir, capacity))
        buf = self._take(same.pop()) if same else self.backend.uninit_buffer(dtype, capacity)
        self.lent[id(buf)] = buf
        return buf

    def release(self, buf: khal.Buffer) -> None:
        """Keep `buf` for reuse; past POOLED_BYTES, the buffers freed longest ago go back to the backend."""
        self.lent.pop(id(buf), None)
        if buf.nbytes > POOLED_BYTES:
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

    def upload(self, array: np.ndarray, buf: khal.Buffer) -> None:
        # a host write is not recorded in order with the pending dispatches: submit them first
        self.flush()
        buf.write(array)

    def download(self, buf: khal.Buffer) -> np.ndarray:
        self.flush()
        return buf.read()

    def empty(self, shape: tuple[int, ...], dtype: Any) -> Any:
        """A new contiguous tensor whose contents are undefined."""
        from .tensor import Tensor
        t = element_type(dtype)
        size = math.prod(shape)
        return Tensor(Storage(self, self.buffer(t, size), size), tuple(shape), t)


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
