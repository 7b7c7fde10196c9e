"""The CPU backend: kernels run in the IR interpreter (`khal_runtime.interpreter`), the executable reference of
the IR. Work is recorded into the encoder and runs at `submit`, in order, like on a GPU queue; a capture's graph
keeps the recorded calls (which hold the buffers' memory) and a replay runs them again."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .. import ir
from ..buffers import Buffer, BufferUsage, ReadOnlyBuffer
from ..interpreter import execute, program
from ..kernels import Indirect
from .base import ALL_FEATURES, Backend, Encoder, KernelFunction, Pass, ReadFuture
from .graphs import Graph


class CpuPass(Pass):
    def __init__(self, encoder: CpuEncoder, label: str, timestamps: bool):
        super().__init__(encoder, label, timestamps)
        self.seconds: float | None = None
        self.ops: list[Callable[[], None]] = []
        encoder.ops.append(self._run)
        encoder.passes.append(self)

    def _run(self) -> None:
        start = time.perf_counter()
        for op in self.ops:
            op()
        if self.timestamps:
            self.seconds = time.perf_counter() - start

    @property
    def elapsed(self) -> float | None:
        return self.seconds


class CpuEncoder(Encoder):
    def __init__(self, backend: CpuBackend):
        super().__init__(backend)
        self.ops: list[Callable[[], None]] = []         # the passes' runs and the copies, in order
        self.passes: list[CpuPass] = []
        self.copies = 0

    def _begin_pass(self, label: str, timestamps: bool) -> CpuPass:
        return CpuPass(self, label, timestamps)

    def _copy(self, source: ReadOnlyBuffer, source_offset: int, target: Buffer, target_offset: int,
              count: int) -> None:
        size = source.numpy_dtype.itemsize
        src, dst = source.handle, target.handle

        def copy() -> None:
            dst[target_offset * size:(target_offset + count) * size] = \
                src[source_offset * size:(source_offset + count) * size]
        self.ops.append(copy)
        self.copies += 1


class CpuGraph(Graph):
    """The recorded calls (dispatches and copies, each holding the memory it uses); a replay makes them again."""

    def __init__(self, backend: CpuBackend):
        super().__init__(backend)
        self.ops: list[Callable[[], None]] = []

    def _add(self, encoder: CpuEncoder) -> None:  # type: ignore[override]
        self.ops += encoder.ops
        self.commands += encoder.copies + sum(len(p.ops) for p in encoder.passes)

    def _finish(self) -> None:
        pass

    def _replay(self, times: int) -> None:
        ops = self.ops
        for _ in range(times):
            for op in ops:
                op()

    def _release(self) -> None:
        self.ops = []

    _abort = _release


class CpuKernel(KernelFunction):
    def __init__(self, kernel: ir.Kernel, backend: CpuBackend):
        self.kernel, self.backend = kernel, backend
        self.dtypes = [np.dtype(ir.NUMPY[b.elem]) for b in kernel.buffers]
        self.structs = [kernel.structs.get(s.type) for s in kernel.scalars]

    def dispatch(self, pass_: CpuPass, grid: Any, buffers: list, scalars: tuple) -> None:
        arrays = [buf.handle.view(dtype)[:buf.length] for buf, dtype in zip(buffers, self.dtypes)]
        values = [dict(zip((f for f, _ in fields), v)) if fields else v for fields, v in zip(self.structs, scalars)]
        backend = self.backend

        def run() -> None:
            counts = grid
            if isinstance(grid, Indirect):
                words = grid.buffer.handle.view(np.uint32)
                counts = tuple(int(c) for c in words[grid.offset:grid.offset + 3])
            execute(self.kernel, counts, arrays, values, subgroup_size=backend.subgroup_size, check=backend.check)
        pass_.ops.append(run)


class CpuBackend(Backend):
    name = "cpu"
    features = ALL_FEATURES

    def __init__(self, subgroup_size: int = 32, check: bool = False):
        """`check=True` makes the interpreter report data races (slower)."""
        super().__init__()
        self.subgroup_size, self.check = subgroup_size, check
        self.device_name = f"khal IR interpreter (numpy {np.__version__}, subgroup size {subgroup_size})"

    def _create(self, nbytes: int, usage: BufferUsage, data: np.ndarray | None) -> np.ndarray:
        storage = np.zeros(nbytes, dtype=np.uint8)
        if data is not None:
            storage[:] = data.view(np.uint8)
        return storage

    def _write(self, buffer: Buffer, data: np.ndarray, offset: int) -> None:
        size = buffer.numpy_dtype.itemsize
        buffer.handle[offset * size:offset * size + data.nbytes] = data.view(np.uint8)

    def _read(self, buffer: ReadOnlyBuffer) -> ReadFuture:
        data = buffer.handle.view(buffer.numpy_dtype)[:buffer.length].copy()
        return ReadFuture(lambda: data)

    def begin_encoding(self) -> CpuEncoder:
        return CpuEncoder(self)

    def _submit(self, encoder: Encoder) -> None:
        for op in encoder.ops:
            op()

    def _synchronize(self) -> None:
        pass

    def _begin_capture(self) -> CpuGraph:
        return CpuGraph(self)

    def load_kernel(self, info: dict, artifact: Callable[[str], bytes]) -> CpuKernel:
        kernel = ir.from_json(artifact("ir").decode())
        program(kernel)         # verified and compiled once, here: a corrupt artifact fails at load, not at dispatch
        return CpuKernel(kernel, self)
