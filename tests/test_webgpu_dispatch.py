"""The WebGPU backend (khal_runtime/backends/webgpu/) on a real device (lavapipe on a machine without a GPU):
dispatches of the hand-written kernels of webgpu_kit.py.
"""

from __future__ import annotations

import gc
from types import SimpleNamespace

import numpy as np
import pytest
import webgpu_kit
from webgpu_kit import rng, run_pass

from khal_runtime import BackendError, BufferUsage, indirect, workgroups

pytestmark = pytest.mark.webgpu

# the kit's fixtures: backend, public_backend, any_backend, kernels
backend = webgpu_kit.backend
public_backend = webgpu_kit.public_backend
any_backend = webgpu_kit.any_backend
kernels = webgpu_kit.kernels


def test_axpy(any_backend, kernels):
    axpy = kernels.axpy(any_backend)
    n = 1001
    a, b = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    ga, gb = any_backend.init_buffer(a), any_backend.init_buffer(b)
    run_pass(any_backend, lambda p: [axpy.call(p, n, ga, gb, 0.5) for _ in range(3)])
    np.testing.assert_allclose(ga.read(), a + 1.5 * b, rtol=1e-5, atol=1e-6)    # may be fused into fma


def test_empty_grid_is_a_no_op(backend, kernels):
    axpy = kernels.axpy(backend)
    a, b = backend.init_buffer(np.ones(8, np.float32)), backend.init_buffer(np.ones(8, np.float32))
    run_pass(backend, lambda p: [axpy.call(p, 0, a, b, 1.0), axpy.call(p, workgroups(0, 2, 1), a, b, 1.0)])
    np.testing.assert_array_equal(a.read(), np.ones(8, np.float32))


def test_scalar_and_struct_packing(any_backend, kernels):
    params = kernels.params(any_backend)
    out = any_backend.uninit_buffer(np.uint32, 12)
    run_pass(any_backend, lambda p: params.call(p, workgroups(3, 2, 1), out, -7, 4000000000, 1.25, True,
                                                {"scale": -2.5, "bias": -3, "mask": 0xDEADBEEF}, 6.5))
    got = out.read()
    expected = [np.uint32(np.int32(-7).view(np.uint32)), 4000000000, np.float32(1.25).view(np.uint32), 1,
                np.float32(-2.5).view(np.uint32), np.int32(-3).view(np.uint32), 0xDEADBEEF,
                np.float32(6.5).view(np.uint32), 3, 2, 1, 0]
    np.testing.assert_array_equal(got, np.array(expected, np.uint32))


def test_64_bit_scalars(backend, kernels):
    if not {"f64", "i64"} <= backend.features:
        pytest.skip("the device has no f64 or i64")
    wide = kernels.wide_params(backend)
    out = backend.uninit_buffer(np.uint64, 5)
    run_pass(backend, lambda p: wide.call(p, 1, out, 5, -2**40 - 3, 1 / 3, SimpleNamespace(lo=9, x=-0.1)))
    expected = [5, np.int64(-2**40 - 3).view(np.uint64), np.float64(1 / 3).view(np.uint64), 9,
                np.float64(-0.1).view(np.uint64)]
    np.testing.assert_array_equal(out.read(), np.array(expected, np.uint64))


def probe(backend, kernels, grid, size):
    kernel = kernels.probe(backend)
    seen, counter = backend.uninit_buffer(np.uint32, size), backend.uninit_buffer(np.uint32, 4)
    run_pass(backend, lambda p: kernel.call(p, grid, seen, counter))
    return seen.read(), counter.read()


def expected_ids(x, y):
    return ((np.arange(x, dtype=np.uint32) + 1)[None, :] + (np.arange(y, dtype=np.uint32) << 20)[:, None]).reshape(-1)


def test_folded_grid(any_backend, kernels, monkeypatch):
    monkeypatch.setattr(any_backend, "fold_threshold", 7)
    seen, counter = probe(any_backend, kernels, workgroups(100, 3), 300)
    np.testing.assert_array_equal(seen, expected_ids(100, 3))
    # 300 logical workgroups ran; the kernel saw the logical grid; fold = ceil(100 / ceil(100 / 7)) = 7
    assert list(counter) == [300, 100, 3, 7]
    seen, counter = probe(any_backend, kernels, workgroups(7, 2), 14)      # at the threshold: not folded
    assert list(counter) == [14, 7, 2, 0]


def test_unfoldable_grids_are_refused(backend, kernels, monkeypatch):
    kernel = kernels.probe(backend)
    seen, counter = backend.uninit_buffer(np.uint32, 4), backend.uninit_buffer(np.uint32, 4)
    monkeypatch.setattr(backend, "fold_threshold", 7)
    encoder = backend.begin_encoding()
    with encoder.begin_pass() as pass_:
        with pytest.raises(BackendError, match="one workgroup along z"):
            kernel.call(pass_, workgroups(8, 1, 2), seen, counter)
        with pytest.raises(BackendError, match="too many even folded"):
            kernel.call(pass_, workgroups(7 * backend.max_workgroups + 1), seen, counter)
        with pytest.raises(BackendError, match="along y"):
            kernel.function.dispatch(pass_, (8, backend.max_workgroups + 1, 1), [seen, counter], ())
    backend.submit(encoder)


def test_more_than_65535_workgroups(backend, kernels):
    x = backend.max_workgroups + 4465        # 70,000 on a device with the WebGPU minimum
    seen, counter = probe(backend, kernels, workgroups(x), x)
    np.testing.assert_array_equal(seen, expected_ids(x, 1))
    assert counter[0] == x and counter[1] == x and counter[3] > 0


def test_large_1d_axpy(backend, kernels):
    axpy = kernels.axpy(backend)
    n = (backend.max_workgroups + 100) * 64 + 5
    a, b = np.ones(n, np.float32), np.arange(n, dtype=np.float32) % 1000
    ga, gb = backend.init_buffer(a), backend.init_buffer(b)
    run_pass(backend, lambda p: axpy.call(p, n, ga, gb, 2.0))
    np.testing.assert_array_equal(ga.read(), a + 2 * b)


def test_indirect_dispatch(any_backend, kernels):
    counts = any_backend.init_buffer(np.array([9, 5, 3, 1, 0], np.uint32),
                                     usage=BufferUsage.INDIRECT | BufferUsage.STORAGE | BufferUsage.COPY_DST)
    seen, counter = probe(any_backend, kernels, indirect(counts, 1), 15)     # (5, 3, 1) from element 1
    np.testing.assert_array_equal(seen, expected_ids(5, 3))
    assert list(counter) == [15, 5, 3, 0]


def test_device_errors_surface_at_submit(backend, kernels, monkeypatch):
    kernel = kernels.probe(backend)
    seen, counter = backend.uninit_buffer(np.uint32, 4), backend.uninit_buffer(np.uint32, 4)
    monkeypatch.setattr(backend, "fold_threshold", 10**6)        # pretend the device took 70,000 workgroups
    encoder = backend.begin_encoding()
    with encoder.begin_pass() as pass_:
        kernel.call(pass_, workgroups(70_000), seen, counter)
    with pytest.raises(BackendError, match="65535"):
        backend.submit(encoder)
    monkeypatch.undo()
    seen, counter = probe(backend, kernels, workgroups(3), 3)    # the device goes on working
    assert counter[0] == 3


def test_bind_groups_are_cached(backend, kernels):
    axpy = kernels.axpy(backend)
    a, b, c = (backend.init_buffer(np.ones(64, np.float32)) for _ in range(3))
    before = backend.bind_groups_created
    for _ in range(2):
        run_pass(backend, lambda p: [axpy.call(p, 64, a, b, 1.0) for _ in range(5)])
    assert backend.bind_groups_created == before + 1
    def three(p, c=c):
        axpy.call(p, 64, a, b.read_only(), 1.0)
        axpy.call(p, 64, a, c, 1.0)
        axpy.call(p, 64, a, b, 1.0)
    run_pass(backend, three)
    del three
    assert backend.bind_groups_created == before + 2
    np.testing.assert_array_equal(a.read(), np.full(64, 14, np.float32))
    # a group is dropped with its buffers, and forgotten by the buffers it shared
    keys = [k for k in backend.bind_groups if id(c.handle) in k]
    assert len(keys) == 1
    del c
    gc.collect()
    assert keys[0] not in backend.bind_groups and keys[0] not in backend._groups_of[id(a.handle)]
    assert backend.bind_groups_created == before + 2


def test_pipelines_are_cached(backend, kernels):
    assert kernels.axpy(backend).function is kernels.axpy(backend).function


def test_pass_timing(backend, kernels):
    axpy = kernels.axpy(backend)
    a, b = backend.init_buffer(np.ones(1 << 16, np.float32)), backend.init_buffer(np.ones(1 << 16, np.float32))
    timed = run_pass(backend, lambda p: axpy.call(p, 1 << 16, a, b, 1.0), timestamps=True)
    untimed = run_pass(backend, lambda p: axpy.call(p, 1 << 16, a, b, 1.0))
    backend.synchronize()
    assert untimed.elapsed is None
    if backend.has_timestamps:
        assert 0 < timed.elapsed < 10
    else:
        assert timed.elapsed is None
