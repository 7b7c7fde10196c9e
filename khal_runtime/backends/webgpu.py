"""The WebGPU backend: wgpu-py (wgpu-native) on Vulkan, Metal or D3D12; Mesa's lavapipe on a CPU-only machine.

Kernels arrive as SPIR-V that naga translates. The ABI is docs/IR.md's: buffer `i` at group 0, binding `i`, always
bound as a `storage` buffer (naga ignores `readonly`; the host enforces read-only), and the immediates (push
constants) start with the hidden `uvec4 khal_grid = (X, Y, Z, fold)` followed by the scalar parameters at the
offsets of the manifest's `push_constants` layout.

Per-dispatch host work is the point of this module's shape. `WebGpuKernel.dispatch` does, per call: one tuple of
buffer ids and a dict look-up for the cached bind group, `set_pipeline` / `set_bind_group` only when they differ
from what the pass has bound, one `struct.pack_into` into a reused immediates buffer, `set_immediates` and the
dispatch. Pipelines are cached per kernel (id and SPIR-V hash) on the backend; bind groups are cached on the
backend by the identity of their buffers, shared by all kernels with the same buffer count (one bind-group layout
per count), and dropped when one of their buffers is garbage collected.

Grids over the device's per-dimension limit (65,535) in x are folded into z: the logical grid (X, Y, 1) runs as
(fold, Y, ceil(X / fold)) with khal_grid = (X, Y, 1, fold), and the kernel maps the workgroup id back and skips the
workgroups past X. Indirect dispatches are never folded: khal_grid is (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0), so
no workgroup is skipped, and the kernel should take its workgroup count from the builtin when fold == 0.

Device alignment rules that the host API hides: buffers are allocated in whole 4-byte words; writes of 16-bit
elements at an odd offset or count merge the boundary words (a short synchronous read); device copies must start
and end on 4-byte boundaries (only f16 copies can break that, and they are refused with an explanation, except a
copy that ends at the end of both buffers).
"""

from __future__ import annotations

import os
import struct
import tempfile
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np

from ..buffers import Buffer, BufferUsage, ReadOnlyBuffer
from ..kernels import Indirect
from .base import Backend, BackendError, Encoder, KernelFunction, Pass, ReadFuture

wgpu: Any = None        # the wgpu module, imported when the first backend is created

# khal's feature names -> the wgpu feature names that provide them (all must be present).
FEATURES = {
    "immediates": ("immediates",),
    "f16": ("shader-f16",),
    "f64": ("shader-f64",),
    "i64": ("shader-int64",),
    "subgroups": ("subgroup",),
    "atomic_f32": ("shader-float32-atomic",),
}
# wgpu features requested as well when offered: pass timing, and subgroup barriers for subgroup kernels.
EXTRA_FEATURES = ("timestamp-query", "subgroup-barrier")

# Limits raised to the adapter's maxima.
LIMITS = (
    "max-buffer-size", "max-storage-buffer-binding-size", "max-immediate-size", "max-storage-buffers-per-shader-stage",
    "max-bindings-per-bind-group", "max-compute-workgroup-storage-size", "max-compute-invocations-per-workgroup",
    "max-compute-workgroup-size-x", "max-compute-workgroup-size-y", "max-compute-workgroup-size-z",
    "max-compute-workgroups-per-dimension",
)

# Backends that run SPIR-V compute through naga with immediates; wgpu's OpenGL backend (which wgpu falls back to when
# no Vulkan driver is installed) does not count.
GOOD_BACKENDS = ("Vulkan", "Metal", "D3D12")
# Preference among several adapters.
ADAPTER_RANK = {"DiscreteGPU": 0, "IntegratedGPU": 1, "VirtualGPU": 2, "CPU": 3}

INDIRECT_GRID = 0xFFFFFFFF      # khal_grid.xyz of an indirect dispatch: the counts are only known on the device


def _align4(n: int) -> int:
    return (n + 3) & ~3


def _import_wgpu() -> Any:
    global wgpu
    if wgpu is None:
        # Mesa's Vulkan drivers print "XDG_RUNTIME_DIR is invalid" for every device they probe without one; a
        # headless machine (CI, a container) often has none, and compute needs nothing from it.
        if not os.path.isdir(os.environ.get("XDG_RUNTIME_DIR", "")):
            os.environ["XDG_RUNTIME_DIR"] = tempfile.gettempdir()
        try:
            import wgpu as module
        except ImportError as e:
            raise BackendError(f"wgpu-py is not installed or cannot load wgpu-native ({e}); install it with "
                               "`pip install wgpu`") from None
        except Exception as e:       # wgpu-native failing to load raises other errors on some systems
            raise BackendError(f"wgpu-py failed to load: {type(e).__name__}: {e}") from None
        wgpu = module
    return wgpu


def _adapter_summary(adapter: Any) -> str:
    info = adapter.info
    return f"{info.get('device') or info.get('vendor') or '?'} ({info.get('backend_type', '?')}, " \
           f"{info.get('adapter_type', '?')})"


def choose_adapter(prefer: str | None = None) -> Any:
    """The best Vulkan / Metal / D3D12 adapter (a discrete GPU first, a CPU implementation last) whose description
    contains `prefer` when given; BackendError when there is none."""
    _import_wgpu()
    try:
        adapters = list(wgpu.gpu.enumerate_adapters_sync())
    except Exception as e:
        raise BackendError(f"wgpu-py could not enumerate adapters: {type(e).__name__}: {e}") from None
    good = [a for a in adapters if a.info.get("backend_type") in GOOD_BACKENDS]
    if prefer:
        wanted = prefer.lower()
        good = [a for a in good if wanted in (_adapter_summary(a) + a.info.get("description", "")).lower()]
    good = [a for a in good if "immediates" in a.features] or good
    if not good:
        found = ", ".join(_adapter_summary(a) for a in adapters) or "none"
        wanted = f" matching {prefer!r}" if prefer else ""
        raise BackendError(f"no Vulkan, Metal or D3D12 device{wanted} (wgpu found: {found}); on Linux without a GPU "
                           "install Mesa's lavapipe (Debian/Ubuntu: mesa-vulkan-drivers)")
    good.sort(key=lambda a: ADAPTER_RANK.get(a.info.get("adapter_type"), 4))
    return good[0]


# --- the commands of the hot path -----------------------------------------------------------------------------------

class PublicCommands:
    """Compute-pass commands through wgpu-py's public API."""

    native = False

    @staticmethod
    def token(obj: Any) -> Any:
        return obj

    @staticmethod
    def data(buffer: bytearray) -> Any:
        return buffer

    @staticmethod
    def set_pipeline(pass_: Any, pipeline: Any) -> None:
        pass_.set_pipeline(pipeline)

    @staticmethod
    def set_bind_group(pass_: Any, group: Any) -> None:
        pass_.set_bind_group(0, group)

    @staticmethod
    def set_immediates(pass_: Any, offset: int, data: Any, size: int) -> None:
        pass_.set_immediates(offset, data, 0, size)

    @staticmethod
    def dispatch(pass_: Any, x: int, y: int, z: int) -> None:
        pass_.dispatch_workgroups(x, y, z)

    @staticmethod
    def dispatch_indirect(pass_: Any, buffer: Any, offset: int) -> None:
        pass_.dispatch_workgroups_indirect(buffer, offset)


class NativeCommands:
    """The same commands as direct calls into wgpu-native through wgpu-py's cffi library, on the objects' native
    handles, with the immediates passed as a pointer made once per kernel. wgpu-py's `set_immediates` alone costs
    about 3 us per call (it builds a memoryview and checks the data each time); these cost well under 1 us. Errors
    in the recorded commands are still reported, by wgpu when the pass ends or the encoder finishes."""

    native = True
    FUNCTIONS = ("wgpuComputePassEncoderSetPipeline", "wgpuComputePassEncoderSetBindGroup",
                 "wgpuComputePassEncoderSetImmediates", "wgpuComputePassEncoderDispatchWorkgroups",
                 "wgpuComputePassEncoderDispatchWorkgroupsIndirect")

    def __init__(self, ffi: Any, lib: Any):
        self.ffi = ffi
        (self.set_pipeline, self._set_bind_group, self.set_immediates, self.dispatch,
         self.dispatch_indirect) = (getattr(lib, name) for name in self.FUNCTIONS)

    @staticmethod
    def token(obj: Any) -> Any:
        return obj._internal

    def data(self, buffer: bytearray) -> Any:
        return self.ffi.cast("void *", self.ffi.from_buffer(buffer))

    def set_bind_group(self, pass_: Any, group: Any) -> None:
        self._set_bind_group(pass_, 0, group, 0, self.ffi.NULL)

    @classmethod
    def find(cls, device: Any) -> NativeCommands | None:
        """The native commands when this wgpu-py has the expected insides (else the public API is used)."""
        try:
            from wgpu.backends.wgpu_native import _api
            if not isinstance(device, _api.GPUDevice) or not all(hasattr(_api.lib, n) for n in cls.FUNCTIONS):
                return None
            return cls(_api.ffi, _api.lib)
        except Exception:
            return None


# --- passes and encoders -------------------------------------------------------------------------------------------

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
            device = backend.device
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
        self._promise = self._timing[2].map_async(wgpu.MapMode.READ)

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

    def begin_pass(self, label: str = "", timestamps: bool = False) -> WebGpuPass:
        self._check_recording("begin_pass")
        pass_ = WebGpuPass(self, label, timestamps)
        self.open_pass = pass_
        return pass_

    def _copy(self, source: ReadOnlyBuffer, source_offset: int, target: Buffer, target_offset: int,
              count: int) -> None:
        self._check_recording("copy_buffer_to_buffer")
        size = source.numpy_dtype.itemsize
        src, dst = source_offset * size, target_offset * size
        nbytes = count * size
        if nbytes == 0:
            return
        if nbytes % 4 and dst + nbytes == target.nbytes and src + _align4(nbytes) <= source.handle.size:
            nbytes = _align4(nbytes)       # the copy ends at the target's end: the extra bytes land in its padding
        if src % 4 or dst % 4 or nbytes % 4:
            raise BackendError(f"copy_buffer_to_buffer: WebGPU copies whole 4-byte words, and {count} "
                               f"{source.dtype.ir} elements from offset {source_offset} to offset {target_offset} "
                               "do not start and end on word boundaries; use even offsets and counts for 16-bit "
                               "elements")
        if source.handle is target.handle:       # WebGPU refuses copies within one buffer: go through a temporary
            temp = self.backend.device.create_buffer(size=nbytes,
                                                     usage=wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST)
            self.raw.copy_buffer_to_buffer(source.handle, src, temp, 0, nbytes)
            self.raw.copy_buffer_to_buffer(temp, 0, target.handle, dst, nbytes)
            self.temporaries.append(temp)
        else:
            self.raw.copy_buffer_to_buffer(source.handle, src, target.handle, dst, nbytes)


# --- kernels -------------------------------------------------------------------------------------------------------

class WebGpuKernel(KernelFunction):
    """One compute pipeline and its immediates layout; bind groups come from the backend's cache."""

    def __init__(self, backend: WebGpuBackend, info: dict, spirv: bytes):
        self.backend, self.name = backend, info["id"]
        device = backend.device
        layout = info["push_constants"]
        self.immediate_size = size = layout["size"]
        if size > backend.limits["max-immediate-size"]:
            raise BackendError(f"kernel {self.name} needs {size} bytes of immediates (push constants), but "
                               f"{backend.device_name} offers {backend.limits['max-immediate-size']}; pass fewer "
                               "or smaller scalar parameters")
        self.pack_into = struct.Struct(layout["format"]).pack_into
        # struct parameters arrive as lists of their field values, to be flattened
        self.has_struct = any(e["kind"] == "struct" for e in layout["fields"])
        n = len(info["buffers"])
        if n > backend.limits["max-storage-buffers-per-shader-stage"]:
            raise BackendError(f"kernel {self.name} binds {n} storage buffers, but {backend.device_name} allows "
                               f"{backend.limits['max-storage-buffers-per-shader-stage']} per shader stage")
        try:
            module = device.create_shader_module(label=self.name, code=spirv)
            self.pipeline = device.create_compute_pipeline(
                label=self.name, layout=backend.pipeline_layout(n, size),
                compute={"module": module, "entry_point": info["entry"]["spirv"]})
        except Exception as e:
            raise BackendError(f"kernel {self.name}: wgpu could not create its pipeline from the SPIR-V "
                               f"({type(e).__name__}: {e})") from None
        commands = backend.commands
        self.immediates = bytearray(size)        # reused by every dispatch: set_immediates copies it
        self._immediates = commands.data(self.immediates)
        self._pipeline = commands.token(self.pipeline)
        self._set_pipeline, self._set_immediates = commands.set_pipeline, commands.set_immediates
        self._dispatch = commands.dispatch

    def dispatch(self, pass_: WebGpuPass, grid: Any, buffers: list, scalars: Any) -> None:  # type: ignore[override]
        handle = pass_.handle
        if pass_.pipeline is not self._pipeline:
            self._set_pipeline(handle, self._pipeline)
            pass_.pipeline = self._pipeline
        backend = self.backend
        if buffers:
            group = backend.bind_groups.get(tuple(map(id, buffers)))
            if group is None:
                group = backend.bind_group(buffers)
            if pass_.group is not group:
                backend.commands.set_bind_group(handle, group)
                pass_.group = group
        if self.has_struct:
            scalars = [v for s in scalars for v in (s if isinstance(s, list) else (s,))]
        if grid.__class__ is tuple:
            x, y, z = grid
            if x <= backend.fold_threshold and y <= backend.max_workgroups and z <= backend.max_workgroups:
                self.pack_into(self.immediates, 0, x, y, z, 0, *scalars)
                self._set_immediates(handle, 0, self._immediates, self.immediate_size)
                self._dispatch(handle, x, y, z)
                return
            fold, folds = self._fold(x, y, z)
            self.pack_into(self.immediates, 0, x, y, z, fold, *scalars)
            self._set_immediates(handle, 0, self._immediates, self.immediate_size)
            self._dispatch(handle, fold, y, folds)
        elif isinstance(grid, Indirect):
            self.pack_into(self.immediates, 0, INDIRECT_GRID, INDIRECT_GRID, INDIRECT_GRID, 0, *scalars)
            self._set_immediates(handle, 0, self._immediates, self.immediate_size)
            backend.commands.dispatch_indirect(handle, backend.commands.token(grid.buffer.handle), grid.offset * 4)
        else:
            raise TypeError(f"{self.name}: a grid is a tuple of three workgroup counts or an Indirect, not {grid!r}")

    def _fold(self, x: int, y: int, z: int) -> tuple[int, int]:
        """(physical x, physical z) of a grid folded into z; BackendError when it cannot be."""
        limit, threshold = self.backend.max_workgroups, self.backend.fold_threshold
        for count, axis in ((y, "y"), (z, "z")):
            if count > limit:
                raise BackendError(f"{self.name}: {count} workgroups along {axis}, but WebGPU allows at most "
                                   f"{limit} per dimension and only x can be folded")
        if z != 1:
            raise BackendError(f"{self.name}: {x} workgroups along x need folding into z (more than {threshold}), "
                               f"which only works for a grid with one workgroup along z, not {z}")
        folds = -(-x // threshold)
        if folds > limit:
            raise BackendError(f"{self.name}: {x} workgroups along x are too many even folded into z (at most "
                               f"{threshold} x {limit} = {threshold * limit})")
        fold = -(-x // folds)     # the narrowest fold with that many rows wastes fewer than `folds` workgroups
        return fold, folds


# --- the backend ---------------------------------------------------------------------------------------------------

class WebGpuBackend(Backend):
    """wgpu-py on the best Vulkan / Metal / D3D12 adapter (or the first whose name contains `adapter`)."""

    name = "webgpu"

    def __init__(self, adapter: str | None = None, native_calls: bool = True):
        """`adapter`: a part of the device name to pick one of several; `native_calls=False` records dispatches
        through wgpu-py's public API only (slower; the native calls are used when this wgpu-py allows them)."""
        self.adapter = choose_adapter(adapter)
        offered = set(self.adapter.features)
        if "immediates" not in offered:
            raise BackendError(f"the adapter {_adapter_summary(self.adapter)} lacks the wgpu feature `immediates` "
                               "(push constants), which every khal kernel needs")
        required = {w for names in FEATURES.values() if set(names) <= offered for w in names}
        required |= {f for f in EXTRA_FEATURES if f in offered}
        adapter_limits = self.adapter.limits
        limits = {k: adapter_limits[k] for k in LIMITS if k in adapter_limits}
        try:
            self.device = self.adapter.request_device_sync(label="khal", required_features=sorted(required),
                                                           required_limits=limits)
        except Exception as e:
            raise BackendError(f"wgpu could not open a device on {_adapter_summary(self.adapter)}: "
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
        # caches
        self.kernels: dict[tuple[str, str], WebGpuKernel] = {}
        self.group_layouts: dict[int, Any] = {}
        self.pipeline_layouts: dict[tuple[int, int], Any] = {}
        self.bind_groups: dict[tuple[int, ...], Any] = {}          # buffer ids -> bind group (command token)
        self._group_objects: dict[tuple[int, ...], Any] = {}       # buffer ids -> the GPUBindGroup it holds alive
        self._groups_of: dict[int, set[tuple[int, ...]]] = {}      # buffer id -> keys of the groups that bind it
        self.bind_groups_created = 0
        self._fence: tuple[Any, Any] | None = None

    # --- buffers ----------------------------------------------------------------------------------------------

    def _check_layout(self, dtype: type, length: int, usage: BufferUsage) -> None:
        if dtype.ir == "f16" and length % 2 and usage & BufferUsage.STORAGE:
            raise BackendError(f"an f16 storage buffer on WebGPU needs an even length, not {length}: WebGPU binds "
                               f"whole 4-byte words, so a kernel would see len() = {length + 1}; pad it to "
                               f"{length + 1} elements")

    def _create(self, nbytes: int, usage: BufferUsage, data: np.ndarray | None) -> Any:
        size = max(_align4(nbytes), 4)
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
        first, end = start & ~3, _align4(start + nbytes)
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
        staging = self.device.create_buffer(size=nbytes, usage=wgpu.BufferUsage.MAP_READ | wgpu.BufferUsage.COPY_DST)
        encoder = self.device.create_command_encoder()
        encoder.copy_buffer_to_buffer(handle, offset, staging, 0, nbytes)
        self.queue.submit([encoder.finish()])
        promise = staging.map_async(wgpu.MapMode.READ)

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
        return ReadFuture(self._start_read(buffer.handle, 0, _align4(buffer.nbytes), dtype, length))

    # --- bind groups ------------------------------------------------------------------------------------------

    def group_layout(self, count: int) -> Any:
        layout = self.group_layouts.get(count)
        if layout is None:
            layout = self.group_layouts[count] = self.device.create_bind_group_layout(
                label=f"khal {count} storage buffers",
                entries=[{"binding": i, "visibility": wgpu.ShaderStage.COMPUTE, "buffer": {"type": "storage"}}
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

    def bind_group(self, handles: list) -> Any:
        """The bind group of these buffer handles (in binding order) as a command token, made on first use and
        cached until one of the buffers is garbage collected."""
        key = tuple(map(id, handles))
        token = self.bind_groups.get(key)
        if token is not None:
            return token
        for h in handles:
            if h.size > self.max_binding_size:
                raise BackendError(f"a buffer of {h.size} bytes cannot be bound: {self.device_name} binds at most "
                                   f"{self.max_binding_size} bytes per storage buffer")
        group = self.device.create_bind_group(
            label=f"khal {len(handles)} buffers", layout=self.group_layout(len(handles)),
            entries=[{"binding": i, "resource": {"buffer": h, "offset": 0, "size": h.size}}
                     for i, h in enumerate(handles)])
        self.bind_groups_created += 1
        self.bind_groups[key] = token = self.commands.token(group)
        self._group_objects[key] = group
        for h in handles:
            keys = self._groups_of.get(id(h))
            if keys is None:
                keys = self._groups_of[id(h)] = set()
                weakref.finalize(h, _forget_buffer, weakref.ref(self), id(h))
            keys.add(key)
        return token

    def _forget(self, handle_id: int) -> None:
        """Drop the bind groups of a buffer that was garbage collected (before its id can be reused)."""
        for key in self._groups_of.pop(handle_id, ()):
            self.bind_groups.pop(key, None)
            self._group_objects.pop(key, None)
            for other in key:
                keys = self._groups_of.get(other)
                if keys is not None:
                    keys.discard(key)

    # --- encoding, submission ---------------------------------------------------------------------------------

    def begin_encoding(self) -> WebGpuEncoder:
        return WebGpuEncoder(self)

    def submit(self, encoder: Encoder) -> None:
        """Send the encoder's work to the device; a pass still open is ended first."""
        if not isinstance(encoder, WebGpuEncoder) or encoder.backend is not self:
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

    def synchronize(self) -> None:
        """Wait until the device finished all submitted work."""
        # wgpu-py 0.32's queue.on_submitted_work_done_* is broken (its callback has the wrong C signature), so wait
        # with a blocking device poll, which returns once every submission is done; without it, map a fence buffer
        # that a fresh submission copies into (the queue finishes its submissions in order).
        poll_wait = getattr(self.device, "_poll_wait", None)
        if poll_wait is not None:
            poll_wait()
            return
        if self._fence is None:
            self._fence = (self.device.create_buffer(size=4, usage=wgpu.BufferUsage.COPY_SRC),
                           self.device.create_buffer(size=4, usage=wgpu.BufferUsage.MAP_READ |
                                                     wgpu.BufferUsage.COPY_DST))
        source, fence = self._fence
        encoder = self.device.create_command_encoder()
        encoder.copy_buffer_to_buffer(source, 0, fence, 0, 4)
        self.queue.submit([encoder.finish()])
        fence.map_sync(wgpu.MapMode.READ)
        fence.unmap()

    # --- kernels ----------------------------------------------------------------------------------------------

    def load_kernel(self, info: dict, artifact: Callable[[str], bytes]) -> WebGpuKernel:
        key = (info["id"], info["artifacts"].get("spirv", {}).get("sha256", ""))
        kernel = self.kernels.get(key)
        if kernel is None:
            kernel = self.kernels[key] = WebGpuKernel(self, info, artifact("spirv"))
        return kernel

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
            "wgpu": f"wgpu-py {wgpu.__version__}{native}",
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


__all__ = ["FEATURES", "WebGpuBackend", "WebGpuEncoder", "WebGpuKernel", "WebGpuPass", "choose_adapter"]
