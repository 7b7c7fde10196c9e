"""The CUDA backend on PyCUDA (`pip install 'khal-gpu[cuda]'`): PTX from the artifacts, launched on one stream.

CUDA has no command buffers: a dispatch launches at once, in order, on the backend's stream, and `submit` only
marks the encoder as done. Kernel arguments are packed into one buffer with the layout the manifest gives
(`cuda_params`), and launched through PyCUDA's `_launch_kernel`, the call under `prepared_async_call`.
CUDA buffers expose `__cuda_array_interface__`, and `wrap_cuda_array` adopts memory from CuPy or PyTorch
without a copy. A capture is a CUDA graph captured from the stream (`cuda_graph`).
"""

from __future__ import annotations

import atexit
import struct
from collections.abc import Callable
from typing import Any

import numpy as np

from ..buffers import DEFAULT_USAGE, Buffer, BufferUsage, ReadOnlyBuffer, element_type
from ..kernels import Indirect
from .base import ALL_FEATURES, Backend, BackendError, Encoder, KernelFunction, Pass, ReadFuture
from .cuda_graph import CudaGraph


class CudaMemory:
    """A device allocation: its pointer, and whatever keeps it alive (a PyCUDA allocation, or the object whose
    memory was adopted). Its buffers know their lengths, which kernels get as their length arguments."""

    __slots__ = ("owner", "pointer")

    def __init__(self, owner: Any, pointer: int):
        self.owner, self.pointer = owner, pointer


class CudaPass(Pass):
    def __init__(self, encoder: CudaEncoder, label: str, timestamps: bool):
        super().__init__(encoder, label, timestamps)
        backend = encoder.backend
        # inside a capture, the graph's list of what its launches use (they hold only pointers); None outside
        self.keep: list | None = None if encoder.destination is backend else encoder.destination.keep
        self.events = None
        if timestamps:
            self.events = (backend.cuda.Event(), backend.cuda.Event())
            self.events[0].record(backend.stream)

    def end(self) -> None:
        if self.events and not self.ended:
            self.events[1].record(self.backend.stream)
        super().end()

    @property
    def elapsed(self) -> float | None:
        if not self.events or not self.ended or not self.events[1].query():
            return None
        return self.events[1].time_since(self.events[0]) * 1e-3


class CudaEncoder(Encoder):
    def _begin_pass(self, label: str, timestamps: bool) -> CudaPass:
        return CudaPass(self, label, timestamps)

    def _copy(self, source: ReadOnlyBuffer, source_offset: int, target: Buffer, target_offset: int,
              count: int) -> None:
        size = source.numpy_dtype.itemsize
        backend = self.backend
        if self.destination is not backend:
            self.destination.keep += (source.handle, target.handle)
        backend.cuda.memcpy_dtod_async(target.handle.pointer + target_offset * size,
                                       source.handle.pointer + source_offset * size, count * size, backend.stream)


class CudaKernel(KernelFunction):
    def __init__(self, backend: CudaBackend, info: dict, ptx: bytes):
        self.backend, self.name = backend, info["id"]
        try:
            self.module = backend.cuda.module_from_buffer(ptx + b"\0")
            self.function = self.module.get_function(info["entry"]["ptx"])
        except backend.cuda.Error as e:
            raise BackendError(f"kernel {self.name}: the driver rejected its PTX ({e}); the driver may be older "
                               "than the PTX version (see the PTX .version line)") from None
        self.block = tuple(info["workgroup_size"])
        self.stream = backend.stream
        self.parameters = parameter_packer(struct.Struct(info["cuda_params"]["format"]).pack, len(info["buffers"]),
                                           [s["type"] in info["structs"] for s in info["scalars"]])
        self.launch = self.function._launch_kernel

    def dispatch(self, pass_: CudaPass, grid: Any, buffers: list, scalars: tuple) -> None:  # type: ignore[override]
        if grid.__class__ is not tuple:
            grid = self.backend.indirect_counts(grid)
        if 0 in grid:
            return
        if pass_.keep is not None:
            pass_.keep.append(buffers)
        self.launch(grid, self.block, self.parameters(buffers, scalars), 0, self.stream)


def parameter_packer(pack: Callable[..., bytes], buffer_count: int, struct_params: list[bool]
                     ) -> Callable[[list, tuple], bytes]:
    """`parameters(buffers, scalars)`: a launch's parameter buffer in the ABI's order (each buffer's pointer and
    element count, then the scalars, a struct as its fields), `pack`ed. It is one expression made when the kernel
    loads, because building the argument list per launch was a measurable part of a dispatch's host time."""
    fields = [f"b[{i}].handle.pointer, b[{i}].length" for i in range(buffer_count)]
    fields += [f"*s[{i}]" if is_struct else f"s[{i}]" for i, is_struct in enumerate(struct_params)]
    return eval(f"lambda b, s: pack({', '.join(fields)})", {"pack": pack})  # noqa: S307 (made from counts only)


STAGING = 1 << 16              # bytes of a reused page-locked block for reads back to the host


class CudaBackend(Backend):
    name = "cuda"
    features = ALL_FEATURES

    def __init__(self, device: int = 0):
        super().__init__()
        try:
            import pycuda.driver as cuda
        except ImportError as e:
            if "libcuda" in str(e):
                raise BackendError("no NVIDIA driver: libcuda.so.1 cannot be loaded") from None
            raise BackendError("PyCUDA is not installed; install the extra: pip install 'khal-gpu[cuda]'") from None
        try:
            cuda.init()
            count = cuda.Device.count()
        except cuda.Error as e:
            raise BackendError(f"the CUDA driver cannot start: {e}") from None
        if count <= device:
            raise BackendError(f"no CUDA device {device} (the driver sees {count})")
        self.cuda = cuda
        self.device = cuda.Device(device)
        self.context = self.device.retain_primary_context()
        self.context.push()
        self.stream = cuda.Stream()
        self.staging: list[np.ndarray] = []     # free page-locked blocks for reads (see _read)
        major, minor = self.device.compute_capability()
        driver = cuda.get_driver_version()
        self.device_name = (f"{self.device.name()} (sm_{major}{minor}, CUDA driver "
                            f"{driver // 1000}.{driver % 1000 // 10})")
        atexit.register(self._close)

    def _close(self) -> None:
        try:
            self.stream.synchronize()
            self.context.pop()
        except Exception:               # the process is exiting; the driver cleans up after us
            pass

    def describe(self) -> dict[str, Any]:
        attr = self.cuda.device_attribute
        return {**super().describe(),
                "multiprocessors": self.device.get_attribute(attr.MULTIPROCESSOR_COUNT),
                "memory": f"{self.device.total_memory() / 2**30:.1f} GiB",
                "shared memory per block": self.device.get_attribute(attr.MAX_SHARED_MEMORY_PER_BLOCK)}

    # --- memory ---------------------------------------------------------------------------------------------

    def _create(self, nbytes: int, usage: BufferUsage, data: np.ndarray | None) -> CudaMemory:
        allocation = self.cuda.mem_alloc(max(nbytes, 1))
        if data is not None and nbytes:
            self.cuda.memcpy_htod_async(allocation, data, self.stream)
        elif nbytes:
            self.cuda.memset_d8_async(allocation, 0, nbytes, self.stream)
        return CudaMemory(allocation, int(allocation))

    def _write(self, buffer: Buffer, data: np.ndarray, offset: int) -> None:
        self.cuda.memcpy_htod_async(buffer.handle.pointer + offset * buffer.numpy_dtype.itemsize, data, self.stream)

    def _read(self, buffer: ReadOnlyBuffer) -> ReadFuture:
        nbytes = buffer.length * buffer.numpy_dtype.itemsize
        # page-locked memory takes a few hundred µs to allocate: small reads (a token id a decode step) reuse
        # blocks of STAGING bytes, given back once read
        block = (self.staging.pop() if self.staging else self.cuda.pagelocked_empty(STAGING, np.uint8)) \
            if nbytes <= STAGING else self.cuda.pagelocked_empty(nbytes, np.uint8)
        host = block[:nbytes].view(buffer.numpy_dtype)
        if buffer.length:
            self.cuda.memcpy_dtoh_async(host, buffer.handle.pointer, self.stream)
        done = self.cuda.Event()
        done.record(self.stream)

        def wait() -> np.ndarray:
            done.synchronize()
            result = np.array(host)              # out of page-locked memory, which is scarce
            if len(block) == STAGING:
                self.staging.append(block)
            return result
        return ReadFuture(wait)

    def indirect_counts(self, grid: Indirect) -> tuple[int, int, int]:
        """CUDA cannot launch with a grid in device memory: read the three counts (this waits for the stream)."""
        self.check_not_capturing("an indirect dispatch", "CUDA reads an indirect grid to the host before the launch; "
                                 "give the grid as workgroup counts")
        counts = np.empty(3, np.uint32)
        self.stream.synchronize()
        self.cuda.memcpy_dtoh(counts, grid.buffer.handle.pointer + 4 * grid.offset)
        return tuple(int(c) for c in counts)

    # --- zero-copy exchange ---------------------------------------------------------------------------------

    def cuda_array_interface(self, buffer: ReadOnlyBuffer) -> dict:
        return {"shape": (buffer.length,), "typestr": buffer.numpy_dtype.str, "version": 3,
                "data": (buffer.handle.pointer, not buffer.writable), "stream": self.stream.handle or None}

    def wrap_cuda_array(self, array: Any, usage: BufferUsage = DEFAULT_USAGE) -> Buffer[Any]:
        """A buffer over the memory of a CuPy array, PyTorch CUDA tensor or any `__cuda_array_interface__`
        object, without a copy; the buffer keeps `array` alive."""
        cai = getattr(array, "__cuda_array_interface__", None)
        if cai is None:
            raise TypeError(f"{type(array).__name__} has no __cuda_array_interface__")
        self.check_not_capturing("wrap_cuda_array", "wrap the array before the capture")
        shape, dtype = cai["shape"], np.dtype(cai["typestr"])
        strides = cai.get("strides")
        if strides is not None and tuple(strides) != tuple(np.empty(shape, dtype).strides):
            raise ValueError("wrap_cuda_array needs a C-contiguous array; call .contiguous() or cupy.ascontiguousarray")
        length = int(np.prod(shape, dtype=np.int64))
        pointer = cai["data"][0]
        return Buffer(self, element_type(dtype), length, BufferUsage(usage),
                      CudaMemory(array, pointer))

    # --- work -----------------------------------------------------------------------------------------------

    def begin_encoding(self) -> CudaEncoder:
        return CudaEncoder(self)

    def _submit(self, encoder: Encoder) -> None:
        pass                    # every dispatch and copy was launched on the stream as it was recorded

    def _synchronize(self) -> None:
        self.stream.synchronize()

    def _begin_capture(self) -> CudaGraph:
        return CudaGraph(self)

    def load_kernel(self, info: dict, artifact: Callable[[str], bytes]) -> CudaKernel:
        return CudaKernel(self, info, artifact("ptx"))
