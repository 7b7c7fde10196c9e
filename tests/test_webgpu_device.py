"""The WebGPU backend (khal_runtime/backends/webgpu/) on a real device (lavapipe on a machine without a GPU):
the device and its buffers: creation, its errors, round trips, writes, copies and reads.
"""

from __future__ import annotations

import sys
from types import SimpleNamespace

import numpy as np
import pytest
import webgpu_kit
from webgpu_kit import run_pass, sample

from khal_runtime import BackendError, BufferUsage
from khal_runtime.backends import webgpu as webgpu_module

pytestmark = pytest.mark.webgpu

# the kit's fixtures: backend, kernels
backend = webgpu_kit.backend
kernels = webgpu_kit.kernels

DTYPES = [np.float32, np.float16, np.float64, np.int32, np.uint32, np.int64, np.uint64]


# --- creation -------------------------------------------------------------------------------------------------------

def test_features_and_description(backend):
    assert "immediates" in backend.features
    assert backend.features <= set(webgpu_module.FEATURES)
    described = backend.describe()
    assert described["backend"] == "webgpu" and described["device"] == backend.device_name
    assert f"max-compute-workgroups-per-dimension={backend.max_workgroups}" in described["limits"]
    assert backend.max_workgroups >= 65535
    assert backend.info["backend_type"] in webgpu_module.GOOD_BACKENDS and described["adapter"]
    for name in backend.features:
        assert set(webgpu_module.FEATURES[name]) <= set(described["wgpu_features"])
    # the limits that matter are the adapter's maxima
    for key in ("max-storage-buffer-binding-size", "max-buffer-size", "max-immediate-size"):
        assert backend.limits[key] == backend.adapter.limits[key]


def test_missing_wgpu_is_a_backend_error(monkeypatch):
    monkeypatch.setattr(webgpu_module.adapter, "wgpu", None)     # as if no backend had imported it yet
    monkeypatch.setitem(sys.modules, "wgpu", None)        # makes `import wgpu` fail
    with pytest.raises(BackendError, match="wgpu-py is not installed"):
        webgpu_module.WebGpuBackend()


def test_missing_vulkan_device_is_a_backend_error(monkeypatch, backend):
    gl = SimpleNamespace(info={"device": "llvmpipe", "backend_type": "OpenGL", "adapter_type": "CPU"},
                         features={"immediates"})
    monkeypatch.setattr(webgpu_module.wgpu.gpu, "enumerate_adapters_sync", lambda: [gl])
    with pytest.raises(BackendError, match="no Vulkan, Metal or D3D12 device.*OpenGL.*lavapipe"):
        webgpu_module.WebGpuBackend()


# --- buffers --------------------------------------------------------------------------------------------------------

COPIES = BufferUsage.COPY_SRC | BufferUsage.COPY_DST


def usage_for(dtype, n):
    """Storage buffers of f16 need an even length on WebGPU; odd ones exercise the word padding as copy buffers."""
    return COPIES if np.dtype(dtype) == np.float16 and n % 2 else BufferUsage.STORAGE | COPIES


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("n", [1, 7, 1000])
def test_buffer_round_trip(backend, dtype, n):
    data = sample(dtype, n)
    buf = backend.init_buffer(data, usage=usage_for(dtype, n))
    got = buf.read()
    assert got.dtype == np.dtype(dtype) and got.shape == (n,)
    np.testing.assert_array_equal(got, data)
    zeros = backend.uninit_buffer(dtype, n, usage=usage_for(dtype, n))
    np.testing.assert_array_equal(zeros.read(), np.zeros(n, dtype))


def test_empty_buffer(backend):
    buf = backend.uninit_buffer(np.float32, 0)
    assert buf.read().shape == (0,)
    buf.write(np.zeros(0, np.float32))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_write_at_offset(backend, dtype):
    data = sample(dtype, 11)
    buf = backend.init_buffer(data, usage=usage_for(dtype, 11))
    for offset, count in [(0, 4), (3, 5), (5, 1), (10, 1), (1, 10)]:    # odd offsets and counts for 16-bit types
        part = sample(dtype, count)
        buf.write(part, offset)
        data[offset:offset + count] = part
        np.testing.assert_array_equal(buf.read(), data)


def test_write_is_ordered_with_kernels(backend, kernels):
    axpy = kernels.axpy(backend)
    a, b = backend.init_buffer(np.zeros(64, np.float32)), backend.init_buffer(np.ones(64, np.float32))
    run_pass(backend, lambda p: axpy.call(p, 64, a, b, 1.0))
    a.write(np.full(64, 10, np.float32))
    run_pass(backend, lambda p: axpy.call(p, 64, a, b, 2.0))
    np.testing.assert_array_equal(a.read(), np.full(64, 12, np.float32))


def test_copy_buffer_to_buffer(backend):
    source = backend.init_buffer(np.arange(100, dtype=np.float32))
    target = backend.init_buffer(np.zeros(50, np.float32))
    encoder = backend.begin_encoding()
    encoder.copy_buffer_to_buffer(source, 10, target, 5, 20)
    encoder.copy_buffer_to_buffer(source, 99, target, 49, 1)
    backend.submit(encoder)
    expected = np.zeros(50, np.float32)
    expected[5:25] = np.arange(10, 30)
    expected[49] = 99
    np.testing.assert_array_equal(target.read(), expected)


def test_copy_within_one_buffer_overlapping(backend):
    buf = backend.init_buffer(np.arange(20, dtype=np.int32))
    encoder = backend.begin_encoding()
    encoder.copy_buffer_to_buffer(buf, 0, buf, 3, 10)
    backend.submit(encoder)
    expected = np.arange(20, dtype=np.int32)
    expected[3:13] = np.arange(10)
    np.testing.assert_array_equal(buf.read(), expected)


def test_f16_copies_need_word_boundaries(backend):
    source = backend.init_buffer(np.arange(9, dtype=np.float16), usage=COPIES)
    target = backend.init_buffer(np.zeros(9, np.float16), usage=COPIES)
    encoder = backend.begin_encoding()
    with pytest.raises(BackendError, match="4-byte words"):
        encoder.copy_buffer_to_buffer(source, 1, target, 0, 2)
    encoder.copy_buffer_to_buffer(source, 2, target, 2, 7)     # ends at both buffers' ends: allowed
    encoder.copy_buffer_to_buffer(source, 0, target, 0, 2)
    backend.submit(encoder)
    np.testing.assert_array_equal(target.read(), np.arange(9, dtype=np.float16))


def test_odd_f16_write_needs_copy_src(backend):
    buf = backend.init_buffer(np.zeros(6, np.float16), usage=BufferUsage.STORAGE | BufferUsage.COPY_DST)
    buf.write(np.ones(4, np.float16))                      # whole words: fine
    with pytest.raises(BackendError, match="COPY_SRC"):
        buf.write(np.ones(1, np.float16), 1)


def test_read_without_copy_src(backend):
    buf = backend.init_buffer(np.ones(4, np.float32), usage=BufferUsage.STORAGE | BufferUsage.COPY_DST)
    with pytest.raises(BackendError, match="COPY_SRC"):
        buf.read()


def test_async_read(backend, kernels):
    axpy = kernels.axpy(backend)
    a, b = backend.init_buffer(np.zeros(1000, np.float32)), backend.init_buffer(np.arange(1000, dtype=np.float32))
    run_pass(backend, lambda p: axpy.call(p, 1000, a, b, 3.0))
    future = backend.read_buffer_async(a)
    second = backend.read_buffer_async(b)
    np.testing.assert_array_equal(future.result(), np.arange(1000, dtype=np.float32) * 3)
    assert future.result() is future.result()
    np.testing.assert_array_equal(second.result(), np.arange(1000, dtype=np.float32))


def test_copy_while_a_pass_is_open(backend):
    a, b = backend.init_buffer(np.ones(4, np.float32)), backend.init_buffer(np.zeros(4, np.float32))
    encoder = backend.begin_encoding()
    pass_ = encoder.begin_pass("open")
    with pytest.raises(BackendError, match="still open"):
        encoder.copy_buffer_to_buffer(a, 0, b, 0, 4)
    backend.submit(encoder)             # ends the pass that is still open
    assert pass_.ended
    with pytest.raises(RuntimeError, match="already submitted"):
        backend.submit(encoder)
