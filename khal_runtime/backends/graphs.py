"""Capture and replay: the `Graph` that `with backend.capture() as graph:` fills, and `graph.replay(times)` runs.

    with backend.capture() as graph:
        encoder = backend.begin_encoding()
        with encoder.begin_pass("step") as pass_:
            kernels.add_assign.call(pass_, len(a), a, b)
        backend.submit(encoder)
    graph.replay(300)                 # the recorded work, 300 times over, in order; then read or synchronize

Inside the block, the encoders begun and submitted there record into the graph instead of the device's queue; what
would need the device at once (creating, reading or writing a buffer, synchronize, timestamps, an indirect grid on
CUDA) raises CaptureError naming it. A replay runs the recorded work as a submission does: asynchronously, in order
with the work submitted before and after it, reading every buffer as it is then, so values that change between
replays (a token id, a position) travel in buffers written with `write_buffer` or by kernels. The scalar arguments
and grids are those of the capture. A graph holds what its work uses (buffers, bind groups, pipelines) until it
is released, so none of it can be freed under a replay.

The life of a graph: capturing (inside the block), then ready; discarded when the block raised (the work recorded
so far is dropped, never half replayed), released by `release()`. Each backend records its own way: the CPU keeps the
interpreter calls, WebGPU the pre-resolved pass commands and copies it encodes into one command buffer per replay,
CUDA a CUDA graph made by stream capture.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from .base import CaptureError

if TYPE_CHECKING:
    from .base import Backend, Encoder

CAPTURING, READY, DISCARDED, RELEASED = "capturing", "ready", "discarded", "released"


class Graph(ABC):
    """Work recorded on one backend by `backend.capture()`, to be replayed."""

    def __init__(self, backend: Backend):
        self.backend = backend
        self.state = CAPTURING
        self.commands = 0                       # dispatches and copies recorded
        self.encoders: list[Encoder] = []       # begun inside the capture: each must be submitted inside it
        self.keep: list[Any] = []               # what the recorded work uses, held for the replays
        self._reason = ""                       # why it was discarded

    def __len__(self) -> int:
        """The number of dispatches and copies recorded (CUDA: the nodes of its CUDA graph)."""
        return self.commands

    def replay(self, times: int = 1) -> None:
        """Run the recorded work `times` times, in order, after the work submitted before (asynchronously, as a
        submit: a read or synchronize waits for it). A graph with nothing recorded, or `times=0`, does nothing."""
        if isinstance(times, bool) or not hasattr(times, "__index__") or times.__index__() < 0:
            raise ValueError(f"replay: times must be an integer from 0 on, not {times!r}")
        if self.state != READY:
            raise CaptureError(f"replay: {self._unusable()}")
        backend = self.backend
        if backend.destination is not backend:
            raise CaptureError(f"replay cannot be captured: a capture is open on this {backend.name} backend; replay "
                               "the graph after the `with` block")
        if times and self.commands:
            self._replay(times.__index__())

    def release(self) -> None:
        """Free the device resources of the graph and what it holds; it cannot be replayed after (idempotent)."""
        if self.state == CAPTURING:
            raise CaptureError("release: the capture of this graph is still open; release it after the `with` block")
        if self.state == READY:
            self._release()
        self.state = RELEASED
        self.keep = []

    def _unusable(self) -> str:
        if self.state == CAPTURING:
            return "the capture of this graph is still open; replay it after the `with` block"
        if self.state == DISCARDED:
            return f"this graph was discarded because its capture block raised ({self._reason})"
        return "this graph was released"

    # --- called by Backend.capture and Backend.submit ----------------------------------------------------------

    def _end(self) -> None:
        """The block ended normally: check that every encoder was submitted, then make the graph replayable (a
        failure discards it)."""
        unsubmitted = sum(not e.submitted for e in self.encoders)
        self.encoders = []
        try:
            if unsubmitted:
                raise CaptureError(f"capture: {unsubmitted} encoder(s) begun inside the capture were not submitted; "
                                   "submit each with backend.submit(encoder) inside the `with` block")
            self._finish()
        except BaseException as e:
            self._discard(e)
            raise
        self.state = READY

    def _discard(self, error: BaseException) -> None:
        """The block raised `error` (or ending the capture failed): drop everything recorded."""
        self.encoders = []
        self._reason = f"{type(error).__name__}: {error}"
        try:
            self._abort()
        finally:
            self.state = DISCARDED
            self.keep = []

    @abstractmethod
    def _add(self, encoder: Encoder) -> None:
        """Record the work of an encoder submitted inside the capture."""

    @abstractmethod
    def _finish(self) -> None:
        """End the capture: prepare what the replays run."""

    def _abort(self) -> None:
        """End a capture whose block raised (CUDA ends its stream capture); the recorded work is dropped."""

    @abstractmethod
    def _replay(self, times: int) -> None: ...

    def _release(self) -> None:
        """Free the device resources of a ready graph."""

    def __repr__(self) -> str:
        return f"<khal {self.backend.name} graph, {self.state}, {self.commands} commands>"
