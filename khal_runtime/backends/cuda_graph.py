"""CUDA graphs for the CUDA backend's captures, through ctypes on libcuda (PyCUDA has no graph API).

A capture is a stream capture on the backend's PyCUDA stream (`Stream.handle`): `cuStreamBeginCapture_v2`, the
launches and copies that khal issues on the stream (recorded, not run), `cuStreamEndCapture`, then
`cuGraphInstantiateWithFlags` once; a replay is one `cuGraphLaunch` per repetition on the same stream.

The capture mode is *relaxed*: the global and thread-local modes forbid "potentially unsafe" driver calls on the
capturing thread, and PyCUDA makes some behind khal's back (a buffer garbage collected during the capture is freed
with cuMemFree, a kernel used for the first time is loaded with cuModuleLoadData), which would invalidate the
capture. What would really break it (synchronous copies, waits) khal refuses itself before calling the driver.
"""

from __future__ import annotations

import ctypes
import sys
import weakref
from typing import TYPE_CHECKING, Any

from .base import BackendError
from .graphs import Graph

if TYPE_CHECKING:
    from .base import Encoder
    from .cuda import CudaBackend

CU_STREAM_CAPTURE_MODE_RELAXED = 2
_c = ctypes.c_void_p
# name -> argument types; every function returns a CUresult
SIGNATURES = {
    "cuStreamBeginCapture_v2": (_c, ctypes.c_int),
    "cuStreamEndCapture": (_c, ctypes.POINTER(_c)),
    "cuGraphGetNodes": (_c, _c, ctypes.POINTER(ctypes.c_size_t)),
    "cuGraphInstantiateWithFlags": (ctypes.POINTER(_c), _c, ctypes.c_ulonglong),
    "cuGraphLaunch": (_c, _c),
    "cuGraphExecDestroy": (_c,),
    "cuGraphDestroy": (_c,),
    "cuStreamSynchronize": (_c,),
    "cuGetErrorName": (ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)),
    "cuGetErrorString": (ctypes.c_int, ctypes.POINTER(ctypes.c_char_p)),
}


class Driver:
    """The libcuda entry points of stream capture and graphs, each checked (`call`)."""

    def __init__(self) -> None:
        name = "nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1"
        try:
            lib = ctypes.WinDLL(name) if sys.platform == "win32" else ctypes.CDLL(name)  # type: ignore[attr-defined]
        except OSError as e:
            raise BackendError(f"CUDA graphs need {name}, which cannot be loaded: {e}") from None
        self.functions: dict[str, Any] = {}
        for function, argtypes in SIGNATURES.items():
            try:
                f = getattr(lib, function)
            except AttributeError:
                raise BackendError(f"CUDA graphs need {function}, which this driver ({name}) lacks; CUDA 11.4 or "
                                   "later has it") from None
            f.argtypes, f.restype = argtypes, ctypes.c_int
            self.functions[function] = f
        self.launch = self.functions["cuGraphLaunch"]

    def call(self, function: str, *args: Any) -> None:
        """Call a driver function; BackendError with its name and the driver's error when it fails."""
        result = self.functions[function](*args)
        if result:
            raise BackendError(f"{function} failed: {self.error(result)}")

    def error(self, result: int) -> str:
        name, text = ctypes.c_char_p(), ctypes.c_char_p()
        if self.functions["cuGetErrorName"](result, ctypes.byref(name)) or not name.value:
            return f"CUresult {result}"
        self.functions["cuGetErrorString"](result, ctypes.byref(text))
        return f"{name.value.decode()} ({(text.value or b'').decode()})"


_driver: Driver | None = None


def driver() -> Driver:
    global _driver
    if _driver is None:
        _driver = Driver()
    return _driver


class CudaGraph(Graph):
    """A CUDA graph captured from the backend's stream, instantiated once; a replay launches it on that stream.
    It holds the buffers of every dispatch and copy captured (the launches hold only their pointers)."""

    backend: CudaBackend

    def __init__(self, backend: CudaBackend):
        super().__init__(backend)
        self.driver = driver()
        self.stream = _c(backend.stream.handle)
        self.graph = _c()
        self.executable = _c()
        self.driver.call("cuStreamBeginCapture_v2", self.stream, CU_STREAM_CAPTURE_MODE_RELAXED)
        self._capturing = True

    def _end_capture(self) -> None:
        self._capturing = False
        self.driver.call("cuStreamEndCapture", self.stream, ctypes.byref(self.graph))

    def _add(self, encoder: Encoder) -> None:
        pass                    # its launches and copies were captured by the stream as they were issued

    def _finish(self) -> None:
        self._end_capture()
        count = ctypes.c_size_t()
        self.driver.call("cuGraphGetNodes", self.graph, None, ctypes.byref(count))
        self.commands = count.value
        if self.commands:
            self.driver.call("cuGraphInstantiateWithFlags", ctypes.byref(self.executable), self.graph, 0)
        # freed when released or garbage collected, after the work launched on the stream (which uses the buffers)
        self._finalizer = weakref.finalize(self, _destroy, self.driver, self.stream, self.executable, self.graph,
                                           self.keep)
        self._finalizer.atexit = False          # at exit the driver frees everything itself

    def _abort(self) -> None:
        # the block (or ending the capture) raised: end the capture however it went (it may have been invalidated;
        # its error is not the one to report) and drop what it made
        if self._capturing:
            self._capturing = False
            self.driver.functions["cuStreamEndCapture"](self.stream, ctypes.byref(self.graph))
        if self.graph.value:
            self.driver.functions["cuGraphDestroy"](self.graph)
            self.graph = _c()

    def _replay(self, times: int) -> None:
        launch, executable, stream = self.driver.launch, self.executable, self.stream
        for _ in range(times):
            result = launch(executable, stream)
            if result:
                raise BackendError(f"cuGraphLaunch failed: {self.driver.error(result)}")

    def _release(self) -> None:
        self._finalizer()


def _destroy(cuda: Driver, stream: Any, executable: Any, graph: Any, keep: list) -> None:
    """Wait for the stream (a launched graph still uses the buffers in `keep`), then free the graph."""
    cuda.functions["cuStreamSynchronize"](stream)
    if executable.value:
        cuda.functions["cuGraphExecDestroy"](executable)
    if graph.value:
        cuda.functions["cuGraphDestroy"](graph)
    keep.clear()
