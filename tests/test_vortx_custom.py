"""`vortx.run`: a hand-written kernel on vortx tensors, on every backend present. The kernel sees each tensor's
exact size as `len()`, not the capacity of the pooled buffer behind it, and bad arguments are errors that name
them."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

import khal_runtime as khal
import vortx as vx
from khal_runtime.backends import create
from vortx.devices import GRANULE, Device

SCALE = """
from khal_runtime.lang import MutBuf, f32, global_id, kernel, u32


@kernel(workgroup_size=(64,))
def scale(x: MutBuf[f32], factor: f32, seen: MutBuf[u32]):
    i = global_id().x
    if i < len(x):
        x[i] = x[i] * factor
    if i == 0:
        seen[0] = len(x)
"""


@pytest.fixture
def dev(backend) -> Device:
    return vx.device(backend.name)


@pytest.fixture
def scale(shader_package):
    return importlib.import_module(f"{shader_package({'custom': SCALE})}.custom").Scale


def test_a_kernel_sees_the_tensor_size_not_the_pool_capacity(dev, scale):
    n = 1001
    x = vx.tensor(np.arange(n, dtype=np.float32), device=dev)
    seen = vx.zeros(1, vx.u32, device=dev)
    allocation = x.storage.allocation
    assert len(allocation) == -(-n // GRANULE) * GRANULE > n          # the pool's buffer is bigger
    allocation.write(np.full(len(allocation) - n, -5, np.float32), offset=n)
    vx.run(scale, len(allocation), x, 2.0, seen)                     # more threads than elements
    np.testing.assert_array_equal(x.numpy(), np.arange(n) * 2)
    assert seen.item() == n
    assert (dev.download(allocation)[n:] == -5).all()                 # the padding is left alone
    vx.run(scale, 64, x[:10], factor=0.5, seen=seen)                  # a leading slice is a buffer of its own
    assert seen.item() == 10 and x[:12].tolist() == [*range(10), 20, 22]


def test_arguments_that_cannot_be_buffers_are_refused_by_name(dev, scale):
    x, seen = vx.zeros((4, 6), device=dev), vx.zeros(1, vx.u32, device=dev)
    with pytest.raises(ValueError, match=r"vortx.run\(custom.scale\): argument 'x' is a view \(shape \(6, 4\), "
                                         r"strides \(1, 6\)\)"):
        vx.run(scale, 24, x.T, 1.0, seen)
    with pytest.raises(ValueError, match=r"argument 'x' is a view \(shape \(3, 6\), offset 6\)"):
        vx.run(scale, 24, x[1:], 1.0, seen)
    elsewhere = vx.zeros(1, vx.u32, device=Device(create("cpu")))
    with pytest.raises(ValueError, match="argument 'seen' is on cpu, the first tensor on"):
        vx.run(scale, 24, x, 1.0, elsewhere)
    with pytest.raises(TypeError, match="pass its class, not an instance"):
        vx.run(scale(dev.backend), 24, x, 1.0, seen)
    with pytest.raises(khal.KernelArgumentError, match="argument 'factor' must be a number"):
        vx.run(scale, 24, x, "1.0", seen)


def test_an_odd_f16_tensor_on_webgpu_cannot_be_seen_exactly(dev, scale):
    halves, seen = vx.zeros(3, vx.f16, device=dev), vx.zeros(1, vx.u32, device=dev)
    if dev.backend.name == "webgpu":
        # vortx's own kernels take sizes as arguments and use a view of 4; a kernel's len() would count the 4th
        assert len(halves.buffer) == 4
        with pytest.raises(khal.BackendError, match="first 3 elements of f16 on webgpu needs an even length"):
            vx.run(scale, 3, halves, 1.0, seen)
    else:
        assert len(halves.buffer) == 3
        with pytest.raises(khal.KernelArgumentError, match="argument 'x' must hold f32, but the buffer holds f16"):
            vx.run(scale, 3, halves, 1.0, seen)
