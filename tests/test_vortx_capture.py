"""vortx inside capture (`with device.capture() as graph:`, vortx/devices.py) on every backend: a decode-like step of
vortx.nn operations with preallocated outputs and a hand-written kernel is recorded without running, replays equal
direct execution with inputs written between replays, pending work runs in order around the capture and the
replays, buffers a live graph uses are not handed to new tensors, and what cannot be captured raises naming the vortx
function."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import vortx as vx
from shaders._generated.examples.add_assign import AddAssign
from vortx import nn
from vortx.devices import Device

rng = np.random.default_rng(5)
HIDDEN, FFN, HEADS, HEAD_DIM, VOCAB, EPS, THETA = 576, 1536, 3, 64, 300, 1e-5, 10000.0


@pytest.fixture
def dev(backend) -> Device:
    return vx.device(backend.name)


class Step:
    """The buffers of one decode step and the step itself: embedding of a token id, RMS norm, RoPE at a position
    read from the device, a SiLU gate, a softmax and a kernel of the program's own (`vortx.run`), all into outputs
    that exist before the capture."""

    def __init__(self, dev: Device):
        self.table = rng.standard_normal((VOCAB, HIDDEN)).astype(np.float16)
        self.w = rng.uniform(0.5, 1.5, HIDDEN).astype(np.float32)
        t = lambda a, dtype=None: vx.tensor(a, dtype, device=dev)     # noqa: E731
        self.t_table, self.t_w = t(self.table), t(self.w)
        self.token, self.position = t(np.zeros(1), vx.u32), t(np.zeros(1), vx.i32)
        self.gate, self.up = vx.zeros((1, FFN), device=dev), vx.zeros((1, FFN), device=dev)
        self.x, self.h = vx.zeros((1, HIDDEN), device=dev), vx.zeros((1, HIDDEN), device=dev)
        self.q, self.z = vx.zeros((1, HEADS, HEAD_DIM), device=dev), vx.zeros((1, FFN), device=dev)
        self.p = vx.zeros((1, FFN), device=dev)
        self.acc = vx.zeros(FFN, device=dev)

    def run(self) -> None:
        nn.embedding(self.t_table, self.token, out=self.x)
        nn.rms_norm(self.x, self.t_w, EPS, out=self.h)
        nn.rope(self.h[:, :HEADS * HEAD_DIM].view(1, HEADS, HEAD_DIM), self.position, theta=THETA, out=self.q)
        nn.silu_gate(self.gate, self.up, out=self.z)
        nn.softmax(self.z, out=self.p)
        vx.run(AddAssign, FFN, self.acc, self.z.view(FFN))           # acc += z: each replay must see the last

    def write_inputs(self, token: int, position: int, gate: np.ndarray, up: np.ndarray) -> None:
        self.token.write([token])
        self.position.write(np.array([position]))
        self.gate.write(gate)
        self.up.write(up)

    def expected(self, token: int, position: int, gate: np.ndarray, up: np.ndarray) -> dict[str, np.ndarray]:
        x = self.table[token].astype(np.float64)[None]
        h = x / np.sqrt((x * x).mean(-1, keepdims=True) + EPS) * self.w
        q = h[:, :HEADS * HEAD_DIM].reshape(1, HEADS, HEAD_DIM)
        angle = np.float32(position) * (THETA ** (-np.arange(0, HEAD_DIM, 2) / HEAD_DIM)).astype(np.float32)
        c, s = np.cos(angle.astype(np.float64)), np.sin(angle.astype(np.float64))
        rotated = q.copy()
        rotated[..., 0::2] = q[..., 0::2] * c - q[..., 1::2] * s
        rotated[..., 1::2] = q[..., 0::2] * s + q[..., 1::2] * c
        z = gate / (1 + np.exp(-gate.astype(np.float64))) * up
        e = np.exp(z - z.max())
        return {"x": x, "h": h, "q": rotated, "z": z, "p": e / e.sum()}

    def check(self, expected: dict[str, np.ndarray]) -> None:
        # 1e-4: lavapipe's cos and sin at position 250 (shaders/vortx/nn.py); the others are within 1e-5
        for name, want in expected.items():
            np.testing.assert_allclose(getattr(self, name).numpy(), want, rtol=1e-5, atol=1e-4, err_msg=name)


def inputs(position: int) -> tuple:
    return (int(rng.integers(VOCAB)), position, rng.standard_normal((1, FFN)).astype(np.float32),
            rng.standard_normal((1, FFN)).astype(np.float32))


def test_a_captured_step_replays_like_direct_execution(dev):
    step = Step(dev)
    step.run()                                  # the first rope uploads its frequency table, outside the capture
    step.acc.write(np.zeros(FFN))
    with dev.capture() as graph:
        step.run()
    assert len(graph) >= 6
    assert not step.acc.numpy().any()           # nothing ran at capture
    total = np.zeros(FFN)
    for position in (0, 1, 17, 250):
        args = inputs(position)
        step.write_inputs(*args)
        graph.replay()
        expected = step.expected(*args)
        step.check(expected)
        total += expected["z"][0]
        np.testing.assert_allclose(step.acc.numpy(), total, rtol=1e-5, atol=1e-4)
    graph.replay(3)                             # the inputs of the last step, three times more
    np.testing.assert_allclose(step.acc.numpy(), total + 3 * expected["z"][0], rtol=1e-5, atol=1e-4)


def test_pending_work_runs_before_the_capture_and_before_each_replay(dev):
    x, w, y = vx.tensor(np.ones((2, 8)), device=dev), vx.ones(8, device=dev), vx.zeros((2, 8), device=dev)
    x *= 3.0                                    # recorded, not yet submitted: it must not enter the graph
    with dev.capture() as graph:
        nn.rms_norm(x, w, 0.0, out=y)
    assert len(graph) == 1
    np.testing.assert_array_equal(x.numpy(), np.full((2, 8), 3.0, np.float32))
    x.write(np.arange(16).reshape(2, 8))
    x += 1.0                                    # pending in the device's pass when the replay comes
    graph.replay()
    v = np.arange(16, dtype=np.float64).reshape(2, 8) + 1
    np.testing.assert_allclose(y.numpy(), v / np.sqrt((v * v).mean(-1, keepdims=True)), rtol=1e-6)


def test_what_cannot_be_captured_raises_naming_the_function(dev):
    x, w, y = vx.ones((2, 8), device=dev), vx.ones(8, device=dev), vx.zeros((2, 8), device=dev)
    ids = vx.zeros(2, vx.u32, device=dev)
    with dev.capture() as graph:
        with pytest.raises(vx.CaptureError, match=r"^vortx.rms_norm \(called at .*test_vortx_capture.py:\d+\) "
                                                  r"cannot be captured: it allocates a tensor"):
            nn.rms_norm(x, w, 1e-5)
        with pytest.raises(vx.CaptureError, match=r"^vortx.Tensor.__add__ .* allocates a tensor .*out="):
            x + 1.0
        with pytest.raises(vx.CaptureError, match=r"^vortx.zeros .* allocates"):
            vx.zeros(3, device=dev)
        with pytest.raises(vx.CaptureError, match=r"^vortx.Tensor.numpy .* reads a tensor back to the host"):
            y.numpy()
        with pytest.raises(vx.CaptureError, match=r"^vortx.Tensor.item .* reads a tensor back"):
            y[0, 0].item()
        with pytest.raises(vx.CaptureError, match=r"^vortx.Tensor.write .* writes a tensor from the host, .*; write it "
                                                  "before the capture or between replays"):
            x.write(np.zeros((2, 8)))
        with pytest.raises(vx.CaptureError, match=r"^vortx.Device.synchronize .* synchronizes"):
            dev.synchronize()
        with pytest.raises(vx.CaptureError, match="vortx.rope cannot be captured the first time it runs with "
                                                  "theta=1234.5, dims=8"):
            nn.rope(x.view(2, 1, 8), ids, theta=1234.5, out=y.view(2, 1, 8))
        nn.rms_norm(x, w, 0.0, out=y)           # the refused calls left the capture intact
    graph.replay()
    np.testing.assert_allclose(y.numpy(), np.ones((2, 8)), rtol=1e-6)


def test_an_exception_in_the_block_discards_the_graph_and_the_device_goes_on(dev):
    x, w, y = vx.ones((2, 8), device=dev), vx.ones(8, device=dev), vx.zeros((2, 8), device=dev)
    with pytest.raises(KeyError):
        with dev.capture() as graph:
            nn.rms_norm(x, w, 0.0, out=y)
            raise KeyError("the caller's own error")
    with pytest.raises(vx.CaptureError, match="discarded"):
        graph.replay()
    assert not y.numpy().any()
    np.testing.assert_allclose((nn.rms_norm(x * 2.0, w, 0.0) + 1.0).numpy(), np.full((2, 8), 2.0), rtol=1e-6)


def test_a_live_graph_keeps_its_buffers_from_new_tensors(dev):
    x, w = vx.tensor(np.full((4, 64), 2.0), device=dev), vx.ones(64, device=dev)
    y = vx.zeros((4, 64), device=dev)
    with dev.capture() as graph:
        nn.rms_norm(x, w, 0.0, out=y)
    handles = {id(t.storage.allocation.handle) for t in (x, y)}
    kept = [t.storage.allocation.handle for t in (x, y)]
    del x, y
    gc.collect()
    fresh = [vx.zeros((4, 64), device=dev) for _ in range(4)]       # the pool would hand out the freed buffers
    assert not handles & {id(t.storage.allocation.handle) for t in fresh}
    graph.replay()                                                  # still runs on its own memory
    np.testing.assert_array_equal(fresh[0].numpy(), np.zeros((4, 64), np.float32))
    graph.release()
    del kept


def test_a_raw_backend_capture_with_pending_vortx_work_is_refused_clearly(dev):
    x = vx.ones(8, device=dev)
    x += 1.0                                    # pending in vortx's pass
    with dev.backend.capture():
        with pytest.raises(vx.CaptureError, match=r"vortx work recorded before this capture opened is still "
                                                  r"pending; capture vortx work with `with device.capture\(\)`"):
            x += 1.0
    np.testing.assert_array_equal(x.numpy(), np.full(8, 2.0, np.float32))


def test_timestamps_and_capture(dev):
    x, w, y = vx.ones((2, 8), device=dev), vx.ones(8, device=dev), vx.zeros((2, 8), device=dev)
    dev.timestamps = True
    try:
        with dev.capture() as graph:            # a capture cannot time its passes: they are recorded untimed
            nn.rms_norm(x, w, 0.0, out=y)
        graph.replay()
        dev.gpu_seconds()
    finally:
        dev.timestamps = False
    np.testing.assert_allclose(y.numpy(), np.ones((2, 8)), rtol=1e-6)


def test_tensor_write(dev):
    t = vx.zeros((2, 3), device=dev)
    t.write([[1, 2, 3], [4, 5, 6]])
    np.testing.assert_array_equal(t.numpy(), np.arange(1, 7, dtype=np.float32).reshape(2, 3))
    t[1].write(7)                               # a contiguous view at an offset; a number broadcasts
    np.testing.assert_array_equal(t.numpy()[1], np.full(3, 7, np.float32))
    with pytest.raises(vx.ShapeError, match=r"vortx.Tensor.write: data of shape \(4,\) does not fit a tensor of "
                                            r"shape \(2, 3\)"):
        t.write(np.zeros(4))
    with pytest.raises(vx.ShapeError, match="vortx.Tensor.write: a view of shape .* is not contiguous"):
        t.T.write(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="vortx.Tensor.write: the values do not fit in u32"):
        vx.zeros(2, vx.u32, device=dev).write([-1, 2])
