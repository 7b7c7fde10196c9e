"""vortx tensors against numpy on every backend: creation, views, broadcasting, operators, in-place updates,
conversions, empty tensors, and the errors that name the operation and the shapes."""

from __future__ import annotations

import gc

import numpy as np
import pytest

import vortx as vx
from vortx.devices import Device

rng = np.random.default_rng(3)


@pytest.fixture
def dev(backend) -> Device:
    return vx.device(backend.name)


def data(*shape, dtype=np.float32, low=-4.0, high=4.0):
    if np.dtype(dtype).kind == "f":
        return rng.uniform(low, high, shape).astype(dtype)
    return rng.integers(-1000 if np.dtype(dtype).kind == "i" else 0, 1000, shape, dtype=dtype)


def close(t: vx.Tensor, expected: np.ndarray, tolerance: float = 0) -> None:
    got = t.numpy()
    assert got.shape == expected.shape and got.dtype == expected.dtype, (got.shape, got.dtype, expected.shape)
    if tolerance:
        np.testing.assert_allclose(got, expected, rtol=tolerance, atol=tolerance)
    else:
        np.testing.assert_array_equal(got, expected)


def test_creation(dev):
    close(vx.zeros((2, 3), device=dev), np.zeros((2, 3), np.float32))
    close(vx.ones(5, vx.i32, device=dev), np.ones(5, np.int32))
    close(vx.full((2, 2), 2.5, device=dev), np.full((2, 2), 2.5, np.float32))
    close(vx.full((3,), 7, vx.f16, device=dev), np.full(3, 7, np.float16))
    close(vx.arange(10, device=dev), np.arange(10, dtype=np.int32))
    close(vx.arange(0, 1, 0.25, device=dev), np.arange(0, 1, 0.25, dtype=np.float32))
    x = data(2, 3, 4, 5)
    t = vx.tensor(x, device=dev)
    assert t.shape == (2, 3, 4, 5) and t.dtype is vx.f32 and t.ndim == 4 and t.size == 120
    close(t, x)
    assert vx.tensor([1, 2, 3], device=dev).dtype is vx.i32           # numpy's int64 becomes i32
    assert vx.tensor(np.float64(2.5), device=dev).item() == 2.5


def test_views_share_memory_without_copies(dev):
    x = data(2, 3, 4, 5)
    t = vx.tensor(x, device=dev)
    cases = [
        (t.permute(0, 2, 1, 3), x.transpose(0, 2, 1, 3)), (t.transpose(1, 3), x.swapaxes(1, 3)), (t.T, x.T),
        (t.narrow(2, 1, 2), x[:, :, 1:3]), (t[1], x[1]), (t[:, 1:3, ::2, -1], x[:, 1:3, ::2, -1]),
        (t[..., 2], x[..., 2]), (t[None, 0, 0].squeeze(0), x[0, 0]), (t[0, 0].unsqueeze(1), x[0, 0][:, None]),
        (t.view(6, 20), x.reshape(6, 20)), (t[0, :, 0].broadcast_to(4, 3, 5), np.broadcast_to(x[0, :, 0], (4, 3, 5))),
    ]
    for view, expected in cases:
        assert view.storage is t.storage
        close(view, np.ascontiguousarray(expected))
    close(t.permute(3, 2, 1, 0).reshape(-1), x.transpose(3, 2, 1, 0).reshape(-1))      # reshape copies here
    transposed = t.transpose(2, 3).contiguous()
    assert transposed.is_contiguous() and transposed.storage is not t.storage
    close(transposed, np.ascontiguousarray(x.swapaxes(2, 3)))


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint32])
def test_copies_that_move_the_unit_stride_go_through_tiles(dev, dtype):
    x = data(3, 37, 50, 9, dtype=dtype)
    t = vx.tensor(x, device=dev)
    cases = [(t[1].T, x[1].T), (t.permute(0, 3, 2, 1), x.transpose(0, 3, 2, 1)),
             (t.permute(3, 1, 0, 2)[:, 2:35], x.transpose(3, 1, 0, 2)[:, 2:35]), (t[2, 5:, 1:].T, x[2, 5:, 1:].T)]
    for view, expected in cases:
        assert vx.ops._tiles(view) is not None, view.shape
        close(view.contiguous(), np.ascontiguousarray(expected))
    assert vx.ops._tiles(t.permute(1, 2, 0, 3)) is None         # the unit stride stays last: elementwise copy


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.uint32])
def test_binary_operators_broadcasting_and_scalars(dev, dtype):
    x, y = data(3, 1, 5, dtype=dtype), data(4, 5, dtype=dtype)
    a, b = vx.tensor(x, device=dev), vx.tensor(y, device=dev)
    close(a + b, x + y)
    close(a - b, x - y)
    close(a * b, x * y)
    close(a.maximum(b), np.maximum(x, y))
    close(a.minimum(b), np.minimum(x, y))
    close(a + 3, x + dtype(3))
    close(3 - a, dtype(3) - x)
    close(b * 2, y * dtype(2))
    close(a[:, :, 1:4] + b.T[1:4, :2].T[None], x[:, :, 1:4] + y.T[1:4, :2].T[None])    # views on both sides


def test_float_operations(dev):
    x, y = data(4, 6, low=0.5, high=3), data(6, low=0.5, high=3)
    a, b = vx.tensor(x, device=dev), vx.tensor(y, device=dev)
    close(a / b, x / y, 1e-6)
    close(a ** b, x ** y, 1e-5)
    close(2.0 / a, 2 / x, 1e-6)
    for name, ref in [("exp", np.exp), ("log", np.log), ("sqrt", np.sqrt), ("inv", lambda v: 1 / v),
                      ("silu", lambda v: v / (1 + np.exp(-v))), ("relu", lambda v: np.maximum(v, 0)),
                      ("gelu", lambda v: 0.5 * v * (1 + np.tanh(0.7978845608028654 * (v + 0.044715 * v ** 3))))]:
        close(getattr(a - 1, name)() if name not in ("log", "sqrt", "inv") else getattr(a, name)(),
              (ref(x - 1) if name not in ("log", "sqrt", "inv") else ref(x)).astype(np.float32), 1e-5)
    close(-a, -x)
    close(abs(a - 2), np.abs(x - 2))


def test_integer_unary(dev):
    x = data(7, dtype=np.int32)
    close(-vx.tensor(x, device=dev), -x)
    close(abs(vx.tensor(x, device=dev)), np.abs(x))
    u = data(7, dtype=np.uint32)
    close(-vx.tensor(u, device=dev), (0 - u).astype(np.uint32))


def test_in_place_updates_of_views(dev):
    x = data(4, 5)
    t = vx.tensor(x, device=dev)
    t[1:3] += vx.tensor(x[0], device=dev)
    x[1:3] += x[0]
    t[:, 0] *= 2
    x[:, 0] *= 2
    t /= 4
    x /= 4
    t -= t[0]                       # reads what it writes: vortx copies the right side first
    x -= x[0].copy()
    t[3] = 9
    x[3] = 9
    t[2, 1:] = vx.tensor(x[0, :4] * 0 + 5, device=dev)
    x[2, 1:] = 5
    close(t, x, 1e-6)


def test_conversions(dev):
    x = data(9, low=-100, high=100)
    t = vx.tensor(x, device=dev)
    close(t.to(vx.i32), x.astype(np.int32))
    close(t.to(vx.f16), x.astype(np.float16))
    close(t.to(vx.f16).to(vx.f32), x.astype(np.float16).astype(np.float32))
    close(abs(t).to(vx.u32), np.abs(x).astype(np.uint32))
    assert t.to(vx.f32) is t


def test_empty_tensors(dev):
    e = vx.zeros((0, 3), device=dev)
    close(e + 1, np.zeros((0, 3), np.float32))
    close(e.T.contiguous(), np.zeros((3, 0), np.float32))
    close(e.exp(), np.zeros((0, 3), np.float32))
    e += 2
    close(vx.tensor(np.zeros((2, 0, 4), np.int32), device=dev) * 3, np.zeros((2, 0, 4), np.int32))


def test_work_is_recorded_until_read(dev):
    t = vx.zeros(1000, device=dev)
    for _ in range(600):            # more than one batch of dispatches
        t += 1
    assert dev.encoder is not None or dev.recorded == 0
    close(t, np.full(1000, 600, np.float32))
    assert dev.encoder is None


def test_errors_name_the_operation_and_shapes(dev):
    a, b = vx.zeros((2, 3), device=dev), vx.zeros((4,), device=dev)
    with pytest.raises(vx.ShapeError, match=r"vortx.add: shapes \(2, 3\) and \(4,\) cannot be broadcast together"):
        a + b
    with pytest.raises(vx.ShapeError, match=r"vortx.add_: a tensor of shape \(3,\) cannot be updated in place with "
                                            r"one of shape \(2, 3\)"):
        b2 = vx.zeros(3, device=dev)
        b2 += a
    with pytest.raises(TypeError, match="vortx.add: the tensors hold f32 and i32"):
        a + vx.zeros((2, 3), vx.i32, device=dev)
    with pytest.raises(TypeError, match=r"vortx.div: not available for i32 tensors \(only f32\)"):
        vx.zeros(3, vx.i32, device=dev) / 2
    with pytest.raises(TypeError, match="vortx.exp: not available for f16 tensors .* convert with .to"):
        vx.zeros(4, vx.f16, device=dev).exp()
    with pytest.raises(vx.ShapeError, match=r"vortx.view: a view of shape \(3, 2\) .* is not contiguous"):
        a.T.view(6)
    with pytest.raises(vx.ShapeError, match=r"vortx.reshape: shape \(4, 2\) has 8 elements, the tensor has 6"):
        a.reshape(4, 2)
    with pytest.raises(vx.ShapeError, match=r"vortx.tensor: rank 5 \(shape \(1, 1, 1, 1, 2\)\); vortx tensors have "
                                            r"at most 4 dimensions"):
        vx.zeros((1, 1, 1, 1, 2), device=dev)
    with pytest.raises(IndexError, match=r"vortx: index 5 is out of range for dimension 1 of shape \(2, 3\)"):
        a[0, 5]
    with pytest.raises(TypeError, match="vortx.add: the float 1.5 with an i32 tensor"):
        vx.zeros(2, vx.i32, device=dev) + 1.5


def test_the_pool_reuses_and_evicts(monkeypatch):
    import vortx.devices as device_module
    dev = Device(vx.device("cpu").backend)
    a = dev.buffer(vx.f32, 100)
    dev.release(a)
    assert dev.buffer(vx.f32, 90) is a                  # the same capacity comes back
    monkeypatch.setattr(device_module, "POOLED_BYTES", 3 * 128 * 4)
    buffers = [dev.buffer(vx.f32, 128) for _ in range(4)]
    for b in buffers:
        dev.release(b)
    assert dev.free_bytes == 3 * 128 * 4                # the oldest was dropped
    assert {id(dev.buffer(vx.f32, 128)) for _ in range(3)} == {id(b) for b in buffers[1:]}


def test_templates_import_as_python_with_arithmetic():
    from khal_runtime.lang import template
    t = template(8, 16)
    assert callable(2 * t + 1) and callable(t // 2)


def test_a_tensor_in_cyclic_garbage_gives_back_intact_memory(dev):
    class Cycle:
        pass

    cycle = Cycle()
    cycle.me, cycle.tensor = cycle, vx.ones(1000, device=dev)
    dev.synchronize()
    del cycle
    gc.collect()            # finalizes the cycle; its buffer goes back to the pool, and must still be usable
    x = vx.tensor(np.arange(1000, dtype=np.float32), device=dev)
    assert (x + 1).sum().item() == 1000 * 1001 / 2
