"""The WebGPU backend (khal_runtime/backends/webgpu/) on a real device (lavapipe on a machine without a GPU):
the example kernels of `shaders/`, once `khal-gpu build` has produced `shaders/_generated`.
"""

from __future__ import annotations

import importlib
from types import SimpleNamespace

import numpy as np
import pytest
import webgpu_kit
from webgpu_kit import rng, run_pass, sample

from khal_runtime import BufferUsage, indirect

pytestmark = pytest.mark.webgpu

# the kit's fixtures: backend
backend = webgpu_kit.backend


def generated(module):
    try:
        return importlib.import_module(f"shaders._generated.examples.{module}")
    except ImportError:
        pytest.skip("shaders/_generated is not built; run `khal-gpu build`")


def test_example_add_assign(backend):
    mod = generated("add_assign")
    add = mod.AddAssign(backend)
    for n in (1, 1000, 70_000 * 64 + 3):          # the last one needs folding
        a, b = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
        ga, gb = backend.init_buffer(a), backend.init_buffer(b)
        run_pass(backend, lambda p, n=n, ga=ga, gb=gb: add.call(p, n, ga, gb))
        np.testing.assert_array_equal(ga.read(), a + b)


def test_example_indirect(backend):
    add = generated("add_assign").AddAssign(backend)
    n = 1000
    counts = backend.init_buffer(np.array([-(-n // 64), 1, 1], np.uint32),
                                 usage=BufferUsage.INDIRECT | BufferUsage.STORAGE | BufferUsage.COPY_DST)
    a, b = backend.init_buffer(np.ones(n, np.float32)), backend.init_buffer(np.arange(n, dtype=np.float32))
    run_pass(backend, lambda p: add.call(p, indirect(counts), a, b))
    np.testing.assert_array_equal(a.read(), np.arange(n, dtype=np.float32) + 1)


@pytest.mark.parametrize("t, op", [("f32", "add"), ("f32", "max"), ("i32", "add"), ("i32", "max")])
def test_example_binary_ops(backend, t, op):
    mod = generated("elementwise")
    kernel = getattr(mod, f"BinaryOp_{t}_{op}")(backend)
    dtype = np.float32 if t == "f32" else np.int32
    a, b = (sample(dtype, 777) // (1 if t == "f32" else 4) for _ in range(2))
    out = backend.uninit_buffer(dtype, 777)
    run_pass(backend, lambda p: kernel.call(p, 777, out, backend.init_buffer(a), backend.init_buffer(b)))
    np.testing.assert_array_equal(out.read(), a + b if op == "add" else np.maximum(a, b))


def test_example_half(backend):
    mod = generated("half")
    if "f16" not in backend.features:
        pytest.skip("no f16 on this device")
    x, y = sample(np.float16, 300) / 100, sample(np.float16, 300) / 100
    gy = backend.init_buffer(y)
    out = backend.uninit_buffer(np.float32, 300)
    gx = backend.init_buffer(x)
    run_pass(backend, lambda p: [mod.AxpyF16(backend).call(p, 300, gy, gx, 0.5),
                                 mod.WidenF16(backend).call(p, 300, out, gx)])
    np.testing.assert_allclose(gy.read().astype(np.float32), (np.float16(0.5) * x + y).astype(np.float32),
                               rtol=2e-3, atol=1e-3)
    np.testing.assert_array_equal(out.read(), x.astype(np.float32))


def test_example_matmul(backend):
    mod = generated("matmul")
    m, k, n = 37, 45, 29
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    c = backend.uninit_buffer(np.float32, m * n)
    run_pass(backend, lambda p: mod.MatmulTiled(backend).call(p, (n, m), c, backend.init_buffer(a),
                                                              backend.init_buffer(b), SimpleNamespace(m=m, k=k, n=n)))
    np.testing.assert_allclose(c.read().reshape(m, n), a @ b, rtol=1e-4, atol=1e-4)


def test_example_reductions(backend):
    values = rng.integers(0, 1000, 100_000).astype(np.uint32)
    total = backend.uninit_buffer(np.uint32, 1)
    run_pass(backend, lambda p: generated("reduction").SumU32(backend).call(p, len(values), total,
                                                                            backend.init_buffer(values)))
    assert total.read()[0] == values.sum()
    if "subgroups" in backend.features and "atomic_f32" in backend.features:
        floats = rng.random(10_000).astype(np.float32)
        ftotal = backend.uninit_buffer(np.float32, 1)
        run_pass(backend, lambda p: generated("subgroup_sum").SubgroupSum(backend).call(
            p, len(floats), ftotal, backend.init_buffer(floats)))
        np.testing.assert_allclose(ftotal.read()[0], floats.sum(dtype=np.float64), rtol=1e-4)


def test_example_unpack(backend):
    mod = generated("unpack")
    words = rng.integers(0, 2**32, 100, dtype=np.uint64).astype(np.uint32)
    gw = backend.init_buffer(words)
    nibbles, signed = backend.uninit_buffer(np.float32, 800), backend.uninit_buffer(np.int32, 400)
    run_pass(backend, lambda p: [mod.UnpackNibbles(backend).call(p, 100, nibbles, gw, 0.5),
                                 mod.UnpackSignedBytes(backend).call(p, 100, signed, gw)])
    q = (words[:, None] >> (4 * np.arange(8, dtype=np.uint32))) & 15
    np.testing.assert_array_equal(nibbles.read(), ((q.astype(np.int32) - 8) * 0.5).reshape(-1).astype(np.float32))
    np.testing.assert_array_equal(signed.read(), words.view(np.int8).astype(np.int32))
