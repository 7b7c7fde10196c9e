"""Capture and replay (khal_runtime/backends/graphs.py and each backend's graph) on every backend this machine has:
replays equal direct dispatch, read buffers as they are at the replay, keep their buffers alive, and what cannot be
captured raises naming the operation."""

from __future__ import annotations

import gc

import numpy as np
import pytest

from khal_runtime import indirect, workgroups
from khal_runtime.backends.base import CaptureError
from khal_runtime.buffers import DEFAULT_USAGE, BufferUsage
from shaders._generated.examples.add_assign import AddAssign
from shaders._generated.examples.elementwise import BinaryOp_f32_max
from shaders._generated.examples.matmul import MatmulShape, MatmulTiled
from shaders._generated.examples.unpack import UnpackNibbles

rng = np.random.default_rng(9)


def record(backend, step, passes=1):
    """One encoder whose `passes` passes each run `step(pass_)`, submitted."""
    encoder = backend.begin_encoding()
    for i in range(passes):
        with encoder.begin_pass(f"step {i}") as pass_:
            step(pass_)
    backend.submit(encoder)


def workload(backend):
    """Buffers and a function recording a mix of work into an encoder: kernels with buffers, a float scalar and a
    struct, two passes and device copies between them."""
    m = 16
    data = {"a": rng.random(m * m, dtype=np.float32), "b": rng.random(m * m, dtype=np.float32),
            "words": rng.integers(0, 2**32, 64, dtype=np.uint32)}

    def buffers():
        out = {k: backend.init_buffer(v) for k, v in data.items()}
        out["c"], out["nibbles"] = backend.uninit_buffer(np.float32, m * m), backend.uninit_buffer(np.float32, 512)
        return out

    def run(bufs):
        encoder = backend.begin_encoding()
        with encoder.begin_pass("one") as pass_:
            MatmulTiled(backend).call(pass_, workgroups(m // 16, m // 16), bufs["c"], bufs["a"], bufs["b"],
                                      MatmulShape(m, m, m))
            AddAssign(backend).call(pass_, m * m, bufs["a"], bufs["c"])
        encoder.copy_buffer_to_buffer(bufs["a"], 0, bufs["b"], 8, 32)
        with encoder.begin_pass("two") as pass_:
            UnpackNibbles(backend).call(pass_, 512, bufs["nibbles"], bufs["words"], 0.5)
            BinaryOp_f32_max(backend).call(pass_, m * m, bufs["c"], bufs["a"], bufs["b"])
        backend.submit(encoder)
    return buffers, run


def test_replays_equal_direct_dispatch(backend):
    buffers, run = workload(backend)
    direct, captured = buffers(), buffers()
    with backend.capture() as graph:
        run(captured)
    assert len(graph) == 5                      # four dispatches and a copy (on CUDA: the nodes of its graph)
    for k, v in captured.items():               # nothing ran at capture
        if k in ("a", "b"):
            np.testing.assert_array_equal(v.read(), direct[k].read())
    for times in (1, 2):
        for _ in range(times):
            run(direct)
        graph.replay(times)
        for k in direct:
            np.testing.assert_array_equal(captured[k].read(), direct[k].read(), err_msg=k)


def test_a_replay_reads_the_buffers_as_they_are_then(backend):
    a = backend.init_buffer(np.zeros(300, np.float32))
    b = backend.init_buffer(np.ones(300, np.float32))
    add = AddAssign(backend)
    with backend.capture() as graph:
        record(backend, lambda p: add.call(p, 300, a, b))
    expected = np.zeros(300, np.float32)
    for step in (1.0, 5.0, -2.0):
        b.write(np.full(300, step, np.float32))             # a value that changes between replays, in a buffer
        graph.replay(3)
        expected += 3 * step
        np.testing.assert_array_equal(a.read(), expected)


def test_kernels_and_copies_chain_through_buffers_in_order(backend):
    # a += b; b = a (a copy): every replay doubles, so each step must see the one before it
    a = backend.init_buffer(np.array([1, 2, 3, 4], np.float32))
    b = backend.init_buffer(np.array([1, 1, 1, 1], np.float32))
    add = AddAssign(backend)

    def step(pass_):
        add.call(pass_, 4, a, b)
    with backend.capture() as graph:
        encoder = backend.begin_encoding()
        with encoder.begin_pass("add") as pass_:
            step(pass_)
        encoder.copy_buffer_to_buffer(a, 0, b, 0, 4)
        backend.submit(encoder)
    x, y = np.array([1, 2, 3, 4], np.float32), np.ones(4, np.float32)
    graph.replay(5)
    for _ in range(5):
        x = x + y
        y = x.copy()
    np.testing.assert_array_equal(a.read(), x)
    np.testing.assert_array_equal(b.read(), y)


def test_a_graph_keeps_its_buffers_alive(backend):
    a = backend.init_buffer(np.zeros(64, np.float32))
    add = AddAssign(backend)

    def capture():
        b = backend.init_buffer(np.full(64, 3.0, np.float32))       # dropped when this returns
        c = backend.init_buffer(np.full(64, 2.0, np.float32))
        with backend.capture() as graph:
            encoder = backend.begin_encoding()
            encoder.copy_buffer_to_buffer(c, 0, b, 0, 32)
            with encoder.begin_pass("add") as pass_:
                add.call(pass_, 64, a, b)
            backend.submit(encoder)
        return graph
    graph = capture()
    gc.collect()
    others = [backend.init_buffer(np.full(64, 7.0, np.float32)) for _ in range(4)]     # would reuse freed memory
    graph.replay(2)
    np.testing.assert_array_equal(a.read(), np.array([4.0] * 32 + [6.0] * 32, np.float32))
    graph.release()
    with pytest.raises(CaptureError, match="released"):
        graph.replay()
    graph.release()                                 # idempotent
    del others


@pytest.mark.parametrize("operation, name", [
    (lambda be, buf, enc: be.init_buffer(np.ones(4, np.float32)), "init_buffer"),
    (lambda be, buf, enc: be.uninit_buffer(np.float32, 4), "uninit_buffer"),
    (lambda be, buf, enc: buf.write(np.ones(4, np.float32)), "write_buffer"),
    (lambda be, buf, enc: buf.read(), "read_buffer"),
    (lambda be, buf, enc: be.read_buffer_async(buf), "read_buffer"),
    (lambda be, buf, enc: be.synchronize(), "synchronize"),
    (lambda be, buf, enc: enc.begin_pass("timed", timestamps=True), r"begin_pass\(timestamps=True\)"),
    (lambda be, buf, enc: be.capture().__enter__(), "capture"),
])
def test_what_cannot_be_captured_raises_naming_it(backend, operation, name):
    buf = backend.init_buffer(np.zeros(4, np.float32))
    one = backend.init_buffer(np.ones(4, np.float32))
    add = AddAssign(backend)
    with backend.capture() as graph:
        encoder = backend.begin_encoding()
        with pytest.raises(CaptureError, match=f"^{name} cannot be captured: a capture is open on this "
                                               f"{backend.name} backend"):
            operation(backend, buf, encoder)
        with encoder.begin_pass("add") as pass_:
            add.call(pass_, 4, buf, one)
        backend.submit(encoder)
    graph.replay()                  # the refused operation left the capture intact
    np.testing.assert_array_equal(buf.read(), np.ones(4, np.float32))


def test_an_exception_in_the_block_discards_the_graph(backend):
    a = backend.init_buffer(np.zeros(8, np.float32))
    b = backend.init_buffer(np.ones(8, np.float32))
    add = AddAssign(backend)
    with pytest.raises(KeyError):
        with backend.capture() as graph:
            record(backend, lambda p: add.call(p, 8, a, b))
            raise KeyError("the caller's own error")
    with pytest.raises(CaptureError, match=r"discarded because its capture block raised \(KeyError"):
        graph.replay()
    np.testing.assert_array_equal(a.read(), np.zeros(8, np.float32))     # nothing ran, and the backend works
    with backend.capture() as graph:
        record(backend, lambda p: add.call(p, 8, a, b))
    graph.replay()
    np.testing.assert_array_equal(a.read(), np.ones(8, np.float32))


def test_encoders_and_passes_do_not_cross_the_capture_boundary(backend):
    a = backend.init_buffer(np.zeros(8, np.float32))
    b = backend.init_buffer(np.ones(8, np.float32))
    add = AddAssign(backend)
    before = backend.begin_encoding()
    open_pass = before.begin_pass("open before")
    with backend.capture() as graph:
        with pytest.raises(CaptureError, match="dispatch: this encoder was begun before the capture opened"):
            add.call(open_pass, 8, a, b)
        with pytest.raises(CaptureError, match="begun before the capture opened"):
            before.copy_buffer_to_buffer(a, 0, b, 0, 8)
        inside = backend.begin_encoding()
        backend.submit(inside)
        late = backend.begin_encoding()
        backend.submit(late)
    assert len(graph) == 0
    with pytest.raises(CaptureError, match="begun inside a capture that has ended"):
        late.begin_pass("after")
    add.call(open_pass, 8, a, b)                  # outside the capture, the pass begun before works again
    open_pass.end()
    backend.submit(before)
    np.testing.assert_array_equal(a.read(), np.ones(8, np.float32))


def test_an_encoder_left_unsubmitted_discards_the_graph(backend):
    a = backend.init_buffer(np.zeros(8, np.float32))
    b = backend.init_buffer(np.ones(8, np.float32))
    with pytest.raises(CaptureError, match="1 encoder.* not submitted"):
        with backend.capture() as graph:
            encoder = backend.begin_encoding()
            with encoder.begin_pass("add") as pass_:
                AddAssign(backend).call(pass_, 8, a, b)
    with pytest.raises(CaptureError, match="discarded"):
        graph.replay()
    np.testing.assert_array_equal(a.read(), np.zeros(8, np.float32))


def test_empty_graphs_replay_times_and_replays_inside_a_capture(backend):
    with backend.capture() as empty:
        pass
    assert len(empty) == 0
    empty.replay(3)
    with pytest.raises(CaptureError, match="still open"):
        with backend.capture() as graph:
            graph.replay()
    for times in (-1, 1.5, True, "2"):
        with pytest.raises(ValueError, match="times must be an integer from 0 on"):
            empty.replay(times)
    with backend.capture():
        with pytest.raises(CaptureError, match="replay cannot be captured"):
            empty.replay()


def test_an_indirect_grid_is_read_at_each_replay(backend):
    a = backend.init_buffer(np.zeros(512, np.float32))
    b = backend.init_buffer(np.ones(512, np.float32))
    counts = backend.init_buffer(np.array([1, 1, 1], np.uint32), DEFAULT_USAGE | BufferUsage.INDIRECT)
    add = AddAssign(backend)
    if backend.name == "cuda":
        with backend.capture():
            encoder = backend.begin_encoding()
            with encoder.begin_pass("indirect") as pass_:
                with pytest.raises(CaptureError, match="an indirect dispatch cannot be captured"):
                    add.call(pass_, indirect(counts), a, b)
            backend.submit(encoder)
        return
    with backend.capture() as graph:
        record(backend, lambda p: add.call(p, indirect(counts), a, b))
    graph.replay()
    counts.write(np.array([2, 1, 1], np.uint32))        # 2 workgroups of 256
    graph.replay()
    np.testing.assert_array_equal(a.read(), np.array([2.0] * 256 + [1.0] * 256, np.float32))


@pytest.mark.webgpu
def test_a_webgpu_replay_is_one_submission_of_resolved_commands(monkeypatch):
    from conftest import get_backend
    backend = get_backend("webgpu")
    a = backend.init_buffer(np.zeros(256 * 70, np.float32))
    b = backend.init_buffer(np.ones(256 * 70, np.float32))
    c = backend.init_buffer(np.zeros(256 * 70, np.float32))
    add = AddAssign(backend)
    monkeypatch.setattr(backend, "fold_threshold", 64)          # 70 workgroups are folded into z
    with backend.capture() as graph:
        record(backend, lambda p: [add.call(p, 256 * 70, a, b) for _ in range(10)], passes=2)
        record(backend, lambda p: add.call(p, 256 * 70, c, b))
    # the three passes run as one: the pipeline, the immediates (the same grid throughout) and a's group are set
    # once, then c's group; then the 21 dispatches
    (is_pass, commands), = graph.program
    assert is_pass and len(commands) == 3 + 1 + 21
    assert [arguments for _, arguments in commands if arguments[1:] == (1, 2)] == [(35, 1, 2)] * 21    # folded
    submits = []
    queue = backend.queue
    monkeypatch.setattr(backend, "queue", type("Queue", (), {"submit": lambda self, c: (submits.append(c),
                                                                                        queue.submit(c))})())
    graph.replay(3)
    assert len(submits) == 1
    monkeypatch.undo()
    np.testing.assert_array_equal(a.read(), np.full(256 * 70, 60.0, np.float32))
    np.testing.assert_array_equal(c.read(), np.full(256 * 70, 3.0, np.float32))
