"""The compute-pass commands of the hot path, in two interchangeable forms: wgpu-py's public API, and direct calls
into wgpu-native through wgpu-py's cffi library (several times cheaper per call; used when this wgpu-py allows it).

Both take *tokens* (`token(obj)`): the wgpu-py object itself for the public API, its native handle for the direct
calls. Passes, pipelines and bind groups are turned into tokens once, so that a dispatch only passes them on.
"""

from __future__ import annotations

from typing import Any


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

