"""`WebGpuBackend`: the device, its buffers (word-padded allocations, reads through staging buffers, writes that
merge partial words), the caches of bind-group and pipeline layouts and of bind groups, submission, waiting and
captures (`graph`)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from ...buffers import Buffer, BufferUsage, ReadOnlyBuffer
from ..base import Backend, BackendError, Encoder, ReadFuture
from .adapter import EXTRA_FEATURES, FEATURES, LIMITS, adapter_summary, choose_adapter, import_wgpu
from .commands import NativeCommands, PublicCommands
from .encoding import WebGpuEncoder, align4
from .graph import CapturedEncoder, WebGpuGraph
from .kernel import WebGpuKernel, group_key


class WebGpuBackend(Backend):
    """wgpu-py on the best Vulkan / Metal / D3D12 adapter (or the first whose name contains `adapter`)."""

    name = "webgpu"
    binding_align = 4       # storage bindings are whole 4-byte words: an f16 buffer a kernel sees has an even length

    def __init__(self, adapter: str | None = None, native_calls: bool = True):
        """`adapter`: a part of the device name to pick one of several; `native_calls=False` records dispatches
        through wgpu-py's public API only (slower; the native calls are used when this wgpu-py allows them)."""
        super().__init__()
        self.wgpu = import_wgpu()
        self.adapter = choose_adapter(adapter)
        offered = set(self.adapter.features)
        if "immediates" not in offered:
            raise BackendError(f"the adapter {adapter_summary(self.adapter)} lacks the wgpu feature `immediates` "
                               "(push constants), which every khal kernel needs")
        required = {w for names in FEATURES.values() if set(names) <= offered for w in names}
        required |= {f for f in EXTRA_FEATURES if f in offered}
        adapter_limits = self.adapter.limits
        limits = {k: adapter_limits[k] for k in LIMITS if k in adapter_limits}
        try:
            self.device = self.adapter.request_device_sync(label="khal", required_features=sorted(required),
                                                           required_limits=limits)
        except Exception as e:
            raise BackendError(f"wgpu could not open a device on {adapter_summary(self.adapter)}: "
                               f"{type(e).__name__}: {e}") from None
        self.queue = self.device.queue
        self.commands: Any = (native_calls and NativeCommands.find(self.device)) or PublicCommands()
        self.wgpu_features = frozenset(str(f) for f in self.device.features)
        self.features = frozenset(k for k, names in FEATURES.items() if set(names) <= self.wgpu_features)
        self.has_timestamps = "timestamp-query" in self.wgpu_features
        self.limits = dict(self.device.limits)
        self.max_workgroups = self.limits["max-compute-workgroups-per-dimension"]
        # Grids with more workgroups than this along x are folded into z (tests lower it to exercise folding).
        self.fold_threshold = self.max_workgroups
        self.max_binding_size = self.limits["max-storage-buffer-binding-size"]
        info = self.adapter.info
        self.info = dict(info)
        self.device_name = f"{info.get('device') or info.get('vendor')} ({info.get('backend_type')}" + \
            (f", {info['description']})" if info.get("description") else ")")
        # caches (kernels are cached by `Backend.kernel`)
        self.group_layouts: dict[int, Any] = {}
        self.pipeline_layouts: dict[tuple[int, int], Any] = {}
        self.bind_groups: dict[tuple[int, ...], Any] = {}          # buffer ids -> bind group (command token)
        self._group_objects: dict[tuple[int, ...], Any] = {}       # buffer ids -> the GPUBindGroup it holds alive
        self._groups_of: dict[int, set[tuple[int, ...]]] = {}      # buffer id -> keys of the groups that bind it
        self.bind_groups_created = 0
        self._fence: tuple[Any, Any] | None = None

    # --- buffers ----------------------------------------------------------------------------------------------

    def _create(self, nbytes: int, usage: BufferUsage, data: np.ndarray | None) -> Any:
        size = max(align4(nbytes), 4)
        if size > self.limits["max-buffer-size"]:
            raise BackendError(f"a buffer of {nbytes} bytes exceeds {self.device_name}'s maximum buffer size of "
                               f"{self.limits['max-buffer-size']} bytes")
        try:
            if data is not None and nbytes:
                handle = self.device.create_buffer(size=size, usage=int(usage), mapped_at_creation=True)
                raw = data.view(np.uint8)
                if nbytes != size:
                    raw = np.concatenate([raw, np.zeros(size - nbytes, np.uint8)])
                handle.write_mapped(raw)
                handle.unmap()
                return handle
            return self.device.create_buffer(size=size, usage=int(usage))   # WebGPU zero-initialises buffers
        except Exception as e:
            raise BackendError(f"wgpu could not create a buffer of {nbytes} bytes with usage {usage!r}: "
                               f"{type(e).__name__}: {e}") from None

    def _write(self, buffer: Buffer, data: np.ndarray, offset: int) -> None:
        start = offset * buffer.numpy_dtype.itemsize
        nbytes = data.nbytes
        if nbytes == 0:
            return
        if start % 4 == 0 and nbytes % 4 == 0:
            self.queue.write_buffer(buffer.handle, start, data)
            return
        # 16-bit elements off word boundaries: merge the partial words at both ends with the buffer's contents
        if not buffer.usage & BufferUsage.COPY_SRC:
            raise BackendError(f"write_buffer: {buffer!r} lacks COPY_SRC, which WebGPU needs to write 16-bit elements "
                               "at an odd offset or count (the host merges the partial 4-byte words at both ends)")
        first, end = start & ~3, align4(start + nbytes)
        merged = np.empty(end - first, np.uint8)
        head = self._start_read(buffer.handle, first, 4, np.uint8, 4)
        tail = self._start_read(buffer.handle, end - 4, 4, np.uint8, 4)
        merged[:4], merged[-4:] = head(), tail()
        merged[start - first:start - first + nbytes] = data.view(np.uint8)
        self.queue.write_buffer(buffer.handle, first, merged)

    def _start_read(self, handle: Any, offset: int, nbytes: int, dtype: np.dtype, count: int
                    ) -> Callable[[], np.ndarray]:
        """Start copying `nbytes` from `offset` of a device buffer into a staging buffer and mapping it; the function
        returned waits for the mapping and gives the first `count` elements of `dtype`."""
        usage = self.wgpu.BufferUsage.MAP_READ | self.wgpu.BufferUsage.COPY_DST
        staging = self.device.create_buffer(size=nbytes, usage=usage)
        encoder = self.device.create_command_encoder()
        encoder.copy_buffer_to_buffer(handle, offset, staging, 0, nbytes)
        self.queue.submit([encoder.finish()])
        promise = staging.map_async(self.wgpu.MapMode.READ)

        def wait() -> np.ndarray:
            promise.sync_wait()
            data = np.frombuffer(staging.read_mapped(copy=True), dtype, count=count)
            staging.unmap()
            staging.destroy()
            return data
        return wait

    def _read(self, buffer: ReadOnlyBuffer) -> ReadFuture:
        dtype, length = buffer.numpy_dtype, buffer.length
        if length == 0:
            return ReadFuture(lambda: np.empty(0, dtype))
        return ReadFuture(self._start_read(buffer.handle, 0, align4(buffer.nbytes), dtype, length))

    # --- bind groups ------------------------------------------------------------------------------------------

    def group_layout(self, count: int) -> Any:
        layout = self.group_layouts.get(count)
        if layout is None:
            layout = self.group_layouts[count] = self.device.create_bind_group_layout(
                label=f"khal {count} storage buffers",
                entries=[{"binding": i, "visibility": self.wgpu.ShaderStage.COMPUTE, "buffer": {"type": "storage"}}
                         for i in range(count)])
        return layout

    def pipeline_layout(self, count: int, immediate_size: int) -> Any:
        key = (count, immediate_size)
        layout = self.pipeline_layouts.get(key)
        if layout is None:
            layout = self.pipeline_layouts[key] = self.device.create_pipeline_layout(
                label=f"khal {count} buffers, {immediate_size} bytes of immediates",
                bind_group_layouts=[self.group_layout(count)] if count else [], immediate_size=immediate_size)
        return layout

    def bind_group(self, buffers: list[ReadOnlyBuffer]) -> Any:
        """The bind group of these buffers (in binding order), each bound from its start for its own length, as a
        command token; made on first use and cached, by allocation and length (`group_key`), until one of the
        allocations is garbage collected."""
        key = group_key(buffers)
        token = self.bind_groups.get(key)
        if token is not None:
            return token
        for b in buffers:
            if b.nbytes > self.max_binding_size:
                raise BackendError(f"a buffer of {b.nbytes} bytes cannot be bound: {self.device_name} binds at most "
                                   f"{self.max_binding_size} bytes per storage buffer")
        group = self.device.create_bind_group(
            label=f"khal {len(buffers)} buffers", layout=self.group_layout(len(buffers)),
            entries=[{"binding": i, "resource": {"buffer": b.handle, "offset": 0, "size": b.nbytes}}
                     for i, b in enumerate(buffers)])
        self.bind_groups_created += 1
        self.bind_groups[key] = token = self.commands.token(group)
        self._group_objects[key] = group
        for b in buffers:
            keys = self._groups_of.get(id(b.handle))
            if keys is None:
                keys = self._groups_of[id(b.handle)] = set()
                weakref.finalize(b.handle, _forget_buffer, weakref.ref(self), id(b.handle))
            keys.add(key)
        return token

    def bind_group_object(self, key: tuple[int, ...]) -> Any:
        """The GPUBindGroup cached under `key` (`group_key`), which a graph holds to keep its command token valid."""
        return self._group_objects[key]

    def _forget(self, handle_id: int) -> None:
        """Drop the bind groups of an allocation that was garbage collected (before its id can be reused)."""
        for key in self._groups_of.pop(handle_id, ()):
            self.bind_groups.pop(key, None)
            self._group_objects.pop(key, None)
            for other in key[::2]:              # the allocations' ids (between them, the lengths)
                keys = self._groups_of.get(other)
                if keys is not None:
                    keys.discard(key)

    # --- encoding, submission ---------------------------------------------------------------------------------

    def begin_encoding(self) -> WebGpuEncoder | CapturedEncoder:  # type: ignore[override]
        if self.destination is not self:
            return CapturedEncoder(self)
        return WebGpuEncoder(self)

    def submit(self, encoder: Encoder) -> None:
        """Send the encoder's work to the device (inside a capture, to its graph); a pass still open is ended
        first."""
        if not isinstance(encoder, (WebGpuEncoder, CapturedEncoder)) or encoder.backend is not self:
            raise BackendError(f"submit: {encoder!r} was not begun on this backend")
        if encoder.open_pass is not None:       # never once submitted: a submitted encoder refuses begin_pass
            encoder.open_pass.end()
        super().submit(encoder)

    def _submit(self, encoder: WebGpuEncoder) -> None:  # type: ignore[override]
        try:
            commands = encoder.raw.finish()
        except Exception as e:        # wgpu validates the recorded commands here (a GPUValidationError)
            raise BackendError(f"submit: wgpu rejected the recorded work: {e}") from e
        finally:
            encoder.raw = None
        self.queue.submit([commands])
        encoder.temporaries.clear()
        for pass_ in encoder.timed:
            pass_._submitted()

    def _begin_capture(self) -> WebGpuGraph:
        return WebGpuGraph(self)

    def _synchronize(self) -> None:
        # wgpu-py 0.32's queue.on_submitted_work_done_* is broken (its callback has the wrong C signature), so wait
        # with a blocking device poll, which returns once every submission is done; without it, map a fence buffer
        # that a fresh submission copies into (the queue finishes its submissions in order).
        poll_wait = getattr(self.device, "_poll_wait", None)
        if poll_wait is not None:
            poll_wait()
            return
        if self._fence is None:
            self._fence = (self.device.create_buffer(size=4, usage=self.wgpu.BufferUsage.COPY_SRC),
                           self.device.create_buffer(size=4, usage=self.wgpu.BufferUsage.MAP_READ |
                                                     self.wgpu.BufferUsage.COPY_DST))
        source, fence = self._fence
        encoder = self.device.create_command_encoder()
        encoder.copy_buffer_to_buffer(source, 0, fence, 0, 4)
        self.queue.submit([encoder.finish()])
        fence.map_sync(self.wgpu.MapMode.READ)
        fence.unmap()

    # --- kernels ----------------------------------------------------------------------------------------------

    def load_kernel(self, info: dict, artifact: Callable[[str], bytes]) -> WebGpuKernel:
        return WebGpuKernel(self, info, artifact("spirv"))

    # --- information ------------------------------------------------------------------------------------------

    def describe(self) -> dict[str, Any]:
        """Adapter, wgpu versions, the wgpu features enabled and the limits that matter to kernels."""
        info = self.info
        out = super().describe()
        try:
            from wgpu.backends import wgpu_native
            native = f", wgpu-native {wgpu_native.__version__}"
        except Exception:
            native = ""
        out.update({
            "adapter": f"{info.get('vendor') or '?'} {info.get('device') or '?'}: {info.get('adapter_type')} on "
                       f"{info.get('backend_type')}, {info.get('description') or 'no description'} "
                       f"(vendor 0x{info.get('vendor_id', 0):x}, device 0x{info.get('device_id', 0):x})",
            "wgpu": f"wgpu-py {self.wgpu.__version__}{native}",
            "wgpu_features": sorted(self.wgpu_features),
            "timestamps": "yes (timestamp queries)" if self.has_timestamps else "no",
            "dispatch": "native wgpu-native calls" if self.commands.native else "wgpu-py public API",
            "limits": [f"{k}={self.limits[k]}" for k in LIMITS if k in self.limits],
        })
        return out


def _forget_buffer(backend_ref: weakref.ref[WebGpuBackend], handle_id: int) -> None:
    backend = backend_ref()
    if backend is not None:
        backend._forget(handle_id)


