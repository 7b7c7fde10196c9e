"""A kernel on WebGPU: one compute pipeline, its immediates (push constants) layout, and the dispatch of the hot
path, which folds grids of more than the device's per-dimension limit of workgroups along x into z."""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING, Any

from ...kernels import Indirect
from ..base import BackendError, KernelFunction

if TYPE_CHECKING:
    from ...buffers import ReadOnlyBuffer
    from .backend import WebGpuBackend
    from .encoding import WebGpuPass

INDIRECT_GRID = 0xFFFFFFFF      # khal_grid.xyz of an indirect dispatch: the counts are only known on the device
# What a capture's pass has bound as its pipeline: never a kernel's, so that `dispatch` always takes the branch that
# binds one, where it hands the dispatch to the pass to record (the hot path pays nothing for captures).
RECORDING = object()


def group_key(buffers: list[ReadOnlyBuffer]) -> tuple[int, ...]:
    """What identifies a bind group (the backend caches them by it): the id of each buffer's allocation, and the
    length it is bound with."""
    key = []
    for b in buffers:
        key.append(id(b.handle))
        key.append(b.length)
    return tuple(key)


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
            if pass_.pipeline is RECORDING:
                pass_.record(self, grid, buffers, scalars)         # type: ignore[attr-defined]
                return
            self._set_pipeline(handle, self._pipeline)
            pass_.pipeline = self._pipeline
        backend = self.backend
        if buffers:
            group = backend.bind_groups.get(group_key(buffers))
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

    def resolve(self, grid: Any, scalars: Any) -> tuple[bytearray, tuple[int, int, int] | None]:
        """The immediates and the physical workgroup counts (None for an indirect grid) of one dispatch: what a
        capture records, once, for its replays (the hot path above does the same without allocating)."""
        if self.has_struct:
            scalars = [v for s in scalars for v in (s if isinstance(s, list) else (s,))]
        immediates = bytearray(self.immediate_size)
        if isinstance(grid, Indirect):
            self.pack_into(immediates, 0, INDIRECT_GRID, INDIRECT_GRID, INDIRECT_GRID, 0, *scalars)
            return immediates, None
        x, y, z = grid
        backend = self.backend
        if x <= backend.fold_threshold and y <= backend.max_workgroups and z <= backend.max_workgroups:
            self.pack_into(immediates, 0, x, y, z, 0, *scalars)
            return immediates, (x, y, z)
        fold, folds = self._fold(x, y, z)
        self.pack_into(immediates, 0, x, y, z, fold, *scalars)
        return immediates, (fold, y, folds)

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

