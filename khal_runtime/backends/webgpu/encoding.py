"""WebGPU passes and encoders: one wgpu command encoder per `Encoder`, one compute pass per `Pass`, with timestamp
queries for pass timing, and device copies in the 4-byte words WebGPU copies."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ...buffers import Buffer, ReadOnlyBuffer
from ..base import BackendError, Encoder, Pass

if TYPE_CHECKING:
    from .backend import WebGpuBackend


def align4(n: int) -> int:
    """`n` bytes rounded up to whole 4-byte words, the unit of WebGPU's buffer sizes and copies."""
    return (n + 3) & ~3


class WebGpuPass(Pass):
    """A compute pass; `raw` is the wgpu compute-pass encoder."""

    encoder: WebGpuEncoder
    backend: WebGpuBackend

    def __init__(self, encoder: WebGpuEncoder, label: str, timestamps: bool):
        super().__init__(encoder, label, timestamps)
        backend = encoder.backend
        self._timing: tuple[Any, Any, Any] | None = None     # query set, resolve buffer, read-back buffer
        self._promise: Any = None
        self._seconds: float | None = None
        writes = None
        if timestamps and backend.has_timestamps:
            device, wgpu = backend.device, backend.wgpu
            query_set = device.create_query_set(type=wgpu.QueryType.timestamp, count=2)
            resolve = device.create_buffer(size=16, usage=wgpu.BufferUsage.QUERY_RESOLVE | wgpu.BufferUsage.COPY_SRC)
            readback = device.create_buffer(size=16, usage=wgpu.BufferUsage.MAP_READ | wgpu.BufferUsage.COPY_DST)
            self._timing = (query_set, resolve, readback)
            writes = {"query_set": query_set, "beginning_of_pass_write_index": 0, "end_of_pass_write_index": 1}
        self.raw = encoder.raw.begin_compute_pass(label=label, timestamp_writes=writes)
        self.handle = backend.commands.token(self.raw)      # what the hot-path commands take
        # what is bound now (as command tokens), so that dispatches set them only when they change
        self.pipeline: Any = None
        self.group: Any = None

    def end(self) -> None:
        if not self.ended:
            self.raw.end()
            self.raw = self.handle = None
            self.encoder.open_pass = None
            if self._timing is not None:
                query_set, resolve, readback = self._timing
                self.encoder.raw.resolve_query_set(query_set, 0, 2, resolve, 0)
                self.encoder.raw.copy_buffer_to_buffer(resolve, 0, readback, 0, 16)
                self.encoder.timed.append(self)
        super().end()

    def _submitted(self) -> None:
        assert self._timing is not None
        self._promise = self._timing[2].map_async(self.backend.wgpu.MapMode.READ)

    @property
    def elapsed(self) -> float | None:
        """Seconds between the pass's start and end on the device (waits for the pass to finish); None without
        timestamps, before the encoder was submitted, or when the device has no timestamp queries."""
        if self._seconds is None and self._promise is not None:
            self._promise.sync_wait()
            assert self._timing is not None
            readback = self._timing[2]
            begin, end = np.frombuffer(readback.read_mapped(copy=True), dtype=np.uint64)
            readback.unmap()
            self._timing, self._promise = None, None
            # wgpu resolves timestamps in nanoseconds
            self._seconds = max(int(end) - int(begin), 0) * 1e-9
        return self._seconds


class WebGpuEncoder(Encoder):
    """Records passes and copies into one wgpu command encoder."""

    backend: WebGpuBackend

    def __init__(self, backend: WebGpuBackend):
        super().__init__(backend)
        self.raw = backend.device.create_command_encoder()
        self.open_pass: WebGpuPass | None = None
        self.timed: list[WebGpuPass] = []
        self.temporaries: list[Any] = []          # buffers to keep until the submit

    def _check_recording(self, what: str) -> None:
        if self.submitted:
            raise BackendError(f"{what}: this encoder was already submitted; begin a new one")
        if self.open_pass is not None:
            raise BackendError(f"{what}: the pass {self.open_pass.label!r} is still open; end it (leave its `with` "
                               "block) first")

    def _begin_pass(self, label: str, timestamps: bool) -> WebGpuPass:
        self._check_recording("begin_pass")
        pass_ = WebGpuPass(self, label, timestamps)
        self.open_pass = pass_
        return pass_

    def _copy(self, source: ReadOnlyBuffer, source_offset: int, target: Buffer, target_offset: int,
              count: int) -> None:
        self._check_recording("copy_buffer_to_buffer")
        for copy in copies(self.backend, source, source_offset, target, target_offset, count, self.temporaries):
            self.raw.copy_buffer_to_buffer(*copy)


def copies(backend: WebGpuBackend, source: ReadOnlyBuffer, source_offset: int, target: Buffer, target_offset: int,
           count: int, temporaries: list) -> list[tuple[Any, int, Any, int, int]]:
    """The wgpu copies (source, byte offset, target, byte offset, bytes) that copy `count` elements, in whole words;
    a copy within one buffer goes through a temporary buffer, added to `temporaries` (to keep until the work ran)."""
    size = source.numpy_dtype.itemsize
    src, dst = source_offset * size, target_offset * size
    nbytes = count * size
    if nbytes == 0:
        return []
    if nbytes % 4 and dst + nbytes == target.nbytes and src + align4(nbytes) <= source.handle.size:
        nbytes = align4(nbytes)       # the copy ends at the target's end: the extra bytes land in its padding
    if src % 4 or dst % 4 or nbytes % 4:
        raise BackendError(f"copy_buffer_to_buffer: WebGPU copies whole 4-byte words, and {count} "
                           f"{source.dtype.ir} elements from offset {source_offset} to offset {target_offset} "
                           "do not start and end on word boundaries; use even offsets and counts for 16-bit "
                           "elements")
    if source.handle is target.handle:       # WebGPU refuses copies within one buffer: go through a temporary
        usage = backend.wgpu.BufferUsage
        temp = backend.device.create_buffer(size=nbytes, usage=usage.COPY_SRC | usage.COPY_DST)
        temporaries.append(temp)
        return [(source.handle, src, temp, 0, nbytes), (temp, 0, target.handle, dst, nbytes)]
    return [(source.handle, src, target.handle, dst, nbytes)]
