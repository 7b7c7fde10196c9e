"""Captures on WebGPU: encoders and passes that record resolved commands, and the graph that replays them.

WebGPU command buffers are single-use and it has no compute bundles, so a graph keeps what a command buffer is made
of, resolved once at capture: per dispatch its pipeline, bind group and immediates as command tokens (the bind
group made or found in the backend's cache, the immediates packed into bytes of their own); per copy its wgpu
buffers and byte range. Ending the capture merges the passes that follow each other into one compute pass and
drops the `set_pipeline`, `set_bind_group` and `set_immediates` that repeat what is already set, so a replay only
walks a list of native calls: each repetition is one compute pass per run of dispatches, with the copies encoded
in order between them, and the whole replay is one command buffer submitted once. A replay submits a command
buffer encoded ahead and then encodes the one for the next replay of the same count while the GPU runs this one:
encoding costs about 2 µs a dispatch on the host, which would otherwise add to the GPU's time instead of hiding
under it (a command buffer only names buffers, so one encoded early still reads them as they are when it runs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..base import BackendError, Encoder, Pass
from ..graphs import Graph
from .encoding import copies
from .kernel import RECORDING, group_key

if TYPE_CHECKING:
    from ...buffers import Buffer, ReadOnlyBuffer
    from .backend import WebGpuBackend
    from .kernel import WebGpuKernel


@dataclass
class Dispatch:
    """One recorded dispatch, as command tokens."""
    pipeline: Any
    group: Any                          # None for a kernel without buffers
    immediates: bytearray
    counts: tuple[int, int, int] | None  # physical workgroup counts; None: indirect
    indirect: tuple[Any, int] | None = None  # (buffer token, byte offset) of an indirect grid


class CapturedPass(Pass):
    """A pass of a capture: `WebGpuKernel.dispatch` hands it each dispatch (its `pipeline` is RECORDING)."""

    backend: WebGpuBackend
    encoder: CapturedEncoder

    def __init__(self, encoder: CapturedEncoder, label: str):
        super().__init__(encoder, label, False)
        self.handle: Any = None
        self.pipeline, self.group = RECORDING, None
        self.dispatches: list[Dispatch] = []
        self.keep = encoder.destination.keep
        encoder.items.append(self.dispatches)

    def record(self, kernel: WebGpuKernel, grid: Any, buffers: list[ReadOnlyBuffer], scalars: Any) -> None:
        backend, keep = self.backend, self.keep
        group = None
        if buffers:
            group = backend.bind_group(buffers)
            keep.append(backend.bind_group_object(group_key(buffers)))
            keep += [b.handle for b in buffers]
        immediates, counts = kernel.resolve(grid, scalars)
        indirect = None
        if counts is None:
            keep.append(grid.buffer.handle)
            indirect = (backend.commands.token(grid.buffer.handle), grid.offset * 4)
        keep.append(kernel)
        self.dispatches.append(Dispatch(kernel._pipeline, group, immediates, counts, indirect))

    def end(self) -> None:
        if not self.ended:
            self.encoder.open_pass = None
        super().end()


class CapturedEncoder(Encoder):
    """An encoder begun inside a capture: its passes and copies become the graph's when it is submitted."""

    backend: WebGpuBackend
    destination: WebGpuGraph

    def __init__(self, backend: WebGpuBackend):
        super().__init__(backend)
        self.items: list[Any] = []      # in order: a pass's list of Dispatch, or one copy's wgpu arguments
        self.open_pass: CapturedPass | None = None

    def _check_open_pass(self, what: str) -> None:
        if self.open_pass is not None:
            raise BackendError(f"{what}: the pass {self.open_pass.label!r} is still open; end it (leave its `with` "
                               "block) first")

    def _begin_pass(self, label: str, timestamps: bool) -> CapturedPass:
        self._check_open_pass("begin_pass")
        self.open_pass = CapturedPass(self, label)
        return self.open_pass

    def _copy(self, source: ReadOnlyBuffer, source_offset: int, target: Buffer, target_offset: int,
              count: int) -> None:
        self._check_open_pass("copy_buffer_to_buffer")
        keep = self.destination.keep
        recorded = copies(self.backend, source, source_offset, target, target_offset, count, keep)
        keep += (source.handle, target.handle)
        self.items += recorded


class WebGpuGraph(Graph):
    """The resolved commands of a capture; a replay encodes them into one command buffer and submits it."""

    backend: WebGpuBackend

    def __init__(self, backend: WebGpuBackend):
        super().__init__(backend)
        self.items: list[Any] = []
        # what a replay runs: (True, [(command, arguments after the pass handle), ...]) for a compute pass,
        # (False, copy arguments) for a copy
        self.program: list[tuple[bool, Any]] = []
        self.ahead: tuple[int, Any] | None = None  # (times, a command buffer encoded for the next replay)

    def _add(self, encoder: CapturedEncoder) -> None:  # type: ignore[override]
        self.items += encoder.items
        self.commands += sum(len(item) if isinstance(item, list) else 1 for item in encoder.items)

    def _finish(self) -> None:
        program: list[tuple[bool, Any]] = []
        run: list[Dispatch] = []
        for item in self.items + [None]:
            if isinstance(item, list):
                run += item
                continue
            if run:
                program.append((True, self._pass_commands(run)))
                run = []
            if item is not None:
                program.append((False, item))
        self.program, self.items = program, []

    def _pass_commands(self, dispatches: list[Dispatch]) -> list[tuple[Any, tuple]]:
        """The commands of one compute pass running `dispatches`, without the bindings that repeat the state."""
        commands, keep = self.backend.commands, self.keep
        out: list[tuple[Any, tuple]] = []
        pipeline = group = immediates = None
        for d in dispatches:
            if d.pipeline is not pipeline:
                out.append((commands.set_pipeline, (d.pipeline,)))
                pipeline, immediates = d.pipeline, None     # immediates are set again after a pipeline change
            if d.group is not None and d.group is not group:
                out.append((commands.set_bind_group, (d.group,)))
                group = d.group
            if d.immediates != immediates:
                keep.append(d.immediates)                   # the native command reads it through a pointer
                out.append((commands.set_immediates, (0, commands.data(d.immediates), len(d.immediates))))
                immediates = d.immediates
            if d.counts is not None:
                out.append((commands.dispatch, d.counts))
            else:
                out.append((commands.dispatch_indirect, d.indirect))
        return out

    def _replay(self, times: int) -> None:
        ahead, self.ahead = self.ahead, None
        commands = ahead[1] if ahead is not None and ahead[0] == times else self._encode(times)
        self.backend.queue.submit([commands])
        self.ahead = (times, self._encode(times))

    def _encode(self, times: int) -> Any:
        backend = self.backend
        token = backend.commands.token
        encoder = backend.device.create_command_encoder(label="khal replay")
        for _ in range(times):
            for is_pass, item in self.program:
                if is_pass:
                    raw = encoder.begin_compute_pass()
                    handle = token(raw)
                    for command, arguments in item:
                        command(handle, *arguments)
                    raw.end()
                else:
                    encoder.copy_buffer_to_buffer(*item)
        try:
            return encoder.finish()
        except Exception as e:        # wgpu validates the recorded commands here
            raise BackendError(f"replay: wgpu rejected the recorded work: {e}") from e

    def _release(self) -> None:
        self.program, self.ahead = [], None

    def _abort(self) -> None:
        self.items, self.program, self.ahead = [], [], None
