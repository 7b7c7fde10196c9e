"""vortx.matmul against numpy on every backend: odd sizes, every variant, batches with broadcasting, transposed
and sliced views, empty products, batches over many dispatches, the automatic choice, and the errors."""

from __future__ import annotations

import numpy as np
import pytest

import vortx as vx
import vortx.gemm as gemm
from shaders._generated.vortx.gemm import (
    GemmBlocked_4_4,
    GemmBlocked_4_8,
    GemmBlocked_8_4,
    GemmBlocked_8_8,
    GemmNaive,
    GemmTiled,
)
from vortx.devices import Device

rng = np.random.default_rng(5)
VARIANTS = ("naive", "tiled", "blocked", "auto")


@pytest.fixture
def dev(backend) -> Device:
    return vx.device(backend.name)


def data(*shape: int) -> np.ndarray:
    return rng.uniform(-2, 2, shape).astype(np.float32)


def check(got: vx.Tensor, a: np.ndarray, b: np.ndarray) -> None:
    want = np.matmul(a.astype(np.float64), b.astype(np.float64)).astype(np.float32)
    result = got.numpy()
    assert result.shape == want.shape and result.dtype == np.float32
    np.testing.assert_allclose(result, want, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(want).max(initial=0)))


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("m, n, k", [(1, 1, 1), (17, 33, 9), (130, 70, 65), (1, 40, 300), (40, 1, 3)])
def test_sizes(dev, variant, m, n, k):
    a, b = data(m, k), data(k, n)
    check(gemm.matmul(vx.tensor(a, device=dev), vx.tensor(b, device=dev), variant), a, b)


@pytest.mark.parametrize("variant", VARIANTS)
def test_broadcast_batches(dev, variant):
    cases = [((2, 3, 17, 9), (9, 5)), ((3, 1, 20, 7), (1, 4, 7, 6)), ((2, 17, 9), (3, 1, 9, 5)),
             ((4, 8, 3), (4, 3, 8)), ((1, 5, 6), (2, 3, 6, 2))]
    for sa, sb in cases:
        a, b = data(*sa), data(*sb)
        check(gemm.matmul(vx.tensor(a, device=dev), vx.tensor(b, device=dev), variant), a, b)


@pytest.mark.parametrize("variant", VARIANTS)
def test_views_without_copies(dev, variant):
    x, y = data(65, 130), data(70, 65)
    tx, ty = vx.tensor(x, device=dev), vx.tensor(y, device=dev)
    check(gemm.matmul(tx.T, ty.T, variant), x.T, y.T)                              # both transposed
    check(gemm.matmul(tx[:, 3:40].T, ty[5:40:2].T, variant), x[:, 3:40].T, y[5:40:2].T)
    big, z = data(2, 3, 40, 50), data(3, 40, 20)
    a_view = vx.tensor(big, device=dev)[:, :, 3:33:2, 1:41].transpose(-1, -2)      # offset, gaps, transposed
    b_view = vx.tensor(z, device=dev)[:, :15, :]
    check(gemm.matmul(a_view, b_view, variant), big[:, :, 3:33:2, 1:41].swapaxes(-1, -2), z[:, :15, :])
    w = data(3, 2, 9, 4)
    check(gemm.matmul(vx.tensor(w, device=dev).transpose(0, 1), vx.tensor(w, device=dev).transpose(0, 1)
                      .transpose(-1, -2), variant), w.swapaxes(0, 1), w.swapaxes(0, 1).swapaxes(-1, -2))


def test_operator_and_empty_products(dev):
    a, b = data(6, 4), data(4, 5)
    check(vx.tensor(a, device=dev) @ vx.tensor(b, device=dev), a, b)
    for sa, sb in [((3, 0), (0, 4)), ((0, 4), (4, 5)), ((2, 0, 3, 4), (4, 2))]:
        a, b = data(*sa), data(*sb)
        check(gemm.matmul(vx.tensor(a, device=dev), vx.tensor(b, device=dev)), a, b)


def test_batches_over_several_dispatches(dev, monkeypatch):
    monkeypatch.setattr(gemm, "MAX_Z", 4)
    a, b = data(3, 5, 7, 2), data(5, 2, 3)
    for variant in ("naive", "blocked"):
        check(gemm.matmul(vx.tensor(a, device=dev), vx.tensor(b, device=dev), variant), a, b)


def test_automatic_choice():
    assert gemm.choose("auto", 8, 8, 8, 1) is GemmNaive                 # launch-bound
    assert gemm.choose("auto", 1, 4096, 4096, 1) is GemmTiled           # thin: a matrix-vector product
    assert gemm.choose("auto", 256, 256, 256, 1) is GemmTiled           # 16 blocks of 64x64: too few
    assert gemm.choose("auto", 512, 512, 512, 1) is GemmBlocked_4_4
    assert gemm.choose("auto", 1024, 1024, 1024, 1) is GemmBlocked_8_4    # 128 blocks of 128x64, 64 of 128x128
    assert gemm.choose("auto", 4096, 4096, 4096, 1) is GemmBlocked_8_8
    assert gemm.choose("auto", 256, 256, 256, 16) is GemmBlocked_8_4
    assert gemm.choose("blocked", 1024, 2048, 64, 1) is GemmBlocked_4_8   # the longer side of the block along n
    assert gemm.choose("tiled", 4096, 4096, 4096, 1) is GemmTiled


def test_errors(dev):
    a = vx.tensor(data(2, 3), device=dev)
    with pytest.raises(vx.ShapeError, match=r"vortx.matmul: shapes \(2, 3\) and \(2, 3\) do not match: 3 columns"):
        gemm.matmul(a, a)
    with pytest.raises(vx.ShapeError, match=r"vortx.matmul: shapes \(2, 3\) and \(3,\): both operands need 2 to 4"):
        gemm.matmul(a, vx.tensor(data(3), device=dev))
    with pytest.raises(vx.ShapeError, match=r"the batch dimensions \(2,\) and \(3,\) cannot be broadcast"):
        gemm.matmul(vx.tensor(data(2, 2, 3), device=dev), vx.tensor(data(3, 3, 2), device=dev))
    with pytest.raises(TypeError, match="vortx.matmul: only f32 tensors are multiplied, not i32 and f32"):
        gemm.matmul(vx.tensor(np.ones((2, 3), np.int32), device=dev), a.T)
    with pytest.raises(TypeError, match="vortx.matmul: expected two tensors"):
        gemm.matmul(a, data(3, 2))
    with pytest.raises(ValueError, match="unknown variant 'fast'; the variants are auto, naive, tiled, blocked"):
        gemm.matmul(a, a.T, "fast")
