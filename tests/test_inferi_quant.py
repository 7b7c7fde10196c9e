"""`inferi.quant.QuantizedWeight` on every backend present: each GGUF format uploaded from its file bytes, its
matvec, matmul and rows_of against `gguf.quants.dequantize`, `out=` reuse, and the errors for what it refuses."""

from __future__ import annotations

import gguf
import numpy as np
import pytest

import vortx as vx
from benchmarks.inferi_matvec import dequantized, main, make_raw
from inferi.quant import SUPPORTED, QuantError, QuantizedWeight

T = gguf.GGMLQuantizationType


@pytest.fixture
def dev(backend):
    return vx.device(backend.name)


def _close(got: np.ndarray, want: np.ndarray) -> None:
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-5 * max(1.0, float(np.abs(want).max())))


@pytest.mark.parametrize("type", sorted(SUPPORTED, key=lambda t: t.value), ids=lambda t: t.name)
def test_weight_matches_gguf_dequantize(dev, type):
    rng = np.random.default_rng(type.value)
    rows, cols = 19, (256 if gguf.GGML_QUANT_SIZES[type][0] > 1 else 45)
    raw = make_raw(rng, type, rows, cols)
    want = dequantized(type, rows, raw)
    w = QuantizedWeight.upload(dev, "blk.0.attn_q.weight", type, (rows, cols), raw)
    assert (w.rows, w.cols, w.type, w.nbytes) == (rows, cols, type, raw.size)
    np.testing.assert_array_equal(w.dequantize(), want)
    x = rng.standard_normal(cols).astype(np.float32)
    _close(w.matvec(vx.tensor(x, device=dev)).numpy(), want @ x)
    xs = rng.standard_normal((21, cols)).astype(np.float32)
    _close(w.matmul(vx.tensor(xs, device=dev)).numpy(), xs @ want.T)
    ids = np.array([3, 0, 18, 3], np.int32)
    np.testing.assert_array_equal(w.rows_of(vx.tensor(ids, device=dev)).numpy(), want[ids])


def test_out_buffers_are_reused(dev):
    rng = np.random.default_rng(1)
    raw = make_raw(rng, T.Q8_0, 40, 64)
    want = dequantized(T.Q8_0, 40, raw)
    w = QuantizedWeight.upload(dev, "output.weight", T.Q8_0, (40, 64), raw)
    y, ys, rows = vx.zeros((40,), device=dev), vx.zeros((3, 40), device=dev), vx.zeros((2, 64), device=dev)
    for seed in range(2):
        x = np.random.default_rng(seed).standard_normal((3, 64)).astype(np.float32)
        assert w.matvec(vx.tensor(x[0], device=dev), out=y) is y
        assert w.matmul(vx.tensor(x, device=dev), out=ys) is ys
        assert w.rows_of(vx.tensor(np.array([seed, 39], np.uint32), device=dev), out=rows) is rows
        _close(y.numpy(), want @ x[0])
        _close(ys.numpy(), x @ want.T)
        np.testing.assert_array_equal(rows.numpy(), want[[seed, 39]])


def test_more_rows_than_a_grid_side(dev):
    """Qwen2's output layer has 151,936 rows: more workgroups than a grid holds along x."""
    rng = np.random.default_rng(2)
    rows, cols = 70000, 32
    raw = make_raw(rng, T.Q4_1, rows, cols)
    want = dequantized(T.Q4_1, rows, raw)
    w = QuantizedWeight.upload(dev, "token_embd.weight", T.Q4_1, (rows, cols), raw)
    x = rng.standard_normal(cols).astype(np.float32)
    _close(w.matvec(vx.tensor(x, device=dev)).numpy(), want @ x)
    ids = rng.integers(0, rows, 50).astype(np.uint32)
    np.testing.assert_array_equal(w.rows_of(vx.tensor(ids, device=dev)).numpy(), want[ids])


def test_an_unsupported_type_names_the_tensor_and_the_type():
    dev = vx.device("cpu")
    with pytest.raises(QuantError, match=r"blk\.3\.ffn_up\.weight: type IQ4_NL is not supported"):
        QuantizedWeight.upload(dev, "blk.3.ffn_up.weight", T.IQ4_NL, (4, 32), np.zeros(4 * 18, np.uint8))


@pytest.mark.parametrize(("shape", "nbytes", "problem"), [
    ((4, 33), 4 * 33, "whole blocks of 32 values, not 33"),
    ((4, 32), 100, r"Q8_0 \(4, 32\) takes 136 bytes, not 100"),
    ((4,), 136, "must be a \\(rows, cols\\) matrix"),
])
def test_bad_shapes_and_sizes_are_refused(shape, nbytes, problem):
    with pytest.raises(QuantError, match="blk.0.attn_k.weight: .*" + problem):
        QuantizedWeight.upload(vx.device("cpu"), "blk.0.attn_k.weight", T.Q8_0, shape, np.zeros(nbytes, np.uint8))


def test_operands_of_the_wrong_shape_are_refused():
    dev = vx.device("cpu")
    w = QuantizedWeight.upload(dev, "w", T.F32, (3, 4), np.zeros(48, np.uint8))
    with pytest.raises(ValueError, match=r"w\.matvec: expected x: an f32 tensor of shape \(4,\), not f32 \(5,\)"):
        w.matvec(vx.zeros((5,), device=dev))
    with pytest.raises(ValueError, match=r"w\.matmul: out must be an f32 tensor on cpu of shape \(2, >= 3\)"):
        w.matmul(vx.zeros((2, 4), device=dev), out=vx.zeros((3, 2), device=dev))
    with pytest.raises(ValueError, match=r"w\.matvec: gated needs gate over up \(an even number of rows, not 3\)"):
        w.matvec(vx.zeros((4,), device=dev), norm=vx.ones((4,), device=dev), gated=True)
    with pytest.raises(ValueError, match="w.rows_of: expected ids of shape"):
        w.rows_of(vx.zeros((2,), device=dev))


def test_the_benchmark_runs_on_the_interpreter(capsys):
    assert main(["--backend", "cpu"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| cpu")]
    assert len(rows) == 9 and all(" GB/s |" in r and r.endswith("x |") for r in rows), rows
