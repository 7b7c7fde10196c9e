"""vortx.argmax and vortx.top_k against numpy on every backend: vocabulary-sized rows (SmolLM2's 49,152 and Qwen's
151,936) that take several passes, sizes that are not multiples of a workgroup or a piece, many rows, ties
(within a piece and across pieces), -inf, -0.0, NaN (numpy's rule: the first NaN is the largest), k from 1 to
MAX_K, views read in place or copied, `out=`, empty row sets, and the errors."""

from __future__ import annotations

import numpy as np
import pytest

import vortx as vx
from shaders.vortx.select import MAX_K, PIECE, SORT
from vortx.devices import Device
from vortx.ops import ShapeError


@pytest.fixture
def dev(backend) -> Device:
    return vx.device(backend.name)


def ranked(x: np.ndarray) -> np.ndarray:
    """The indices of each row of `x` in rank order: NaN first, then by value descending, ties by index."""
    index = np.broadcast_to(np.arange(x.shape[-1]), x.shape)
    return np.lexsort((index, -np.nan_to_num(x, nan=0.0), ~np.isnan(x)), axis=-1)


def check_top_k(t: vx.Tensor, x: np.ndarray, k: int) -> None:
    values, ids = vx.top_k(t, k)
    want = ranked(x)[..., :k]
    assert values.shape == ids.shape == x.shape[:-1] + (k,)
    assert values.dtype is vx.f32 and ids.dtype is vx.u32
    np.testing.assert_array_equal(ids.numpy(), want, err_msg=f"top_k({k}) of {x.shape}")
    np.testing.assert_array_equal(values.numpy(), np.take_along_axis(x, want, -1))


def check_argmax(t: vx.Tensor, x: np.ndarray) -> None:
    got = vx.argmax(t)
    assert got.shape == x.shape[:-1] and got.dtype is vx.u32
    np.testing.assert_array_equal(got.numpy(), np.argmax(x, axis=-1), err_msg=f"argmax of {x.shape}")


def logits(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return (rng.standard_normal(shape) * 4).astype(np.float32)


# (rows, n): one element, part of a workgroup, a piece and one more, vocabularies (several passes), many rows
SIZES = [(1, 1), (3, 7), (2, 255), (2, 257), (2, PIECE), (2, PIECE + 1), (1, SORT - 1), (2, SORT + 1), (1, 5000),
         (1, 49152), (1, 151936), (40, 300)]


@pytest.mark.parametrize("rows,n", SIZES)
def test_argmax_matches_numpy(dev, rows, n):
    x = logits(np.random.default_rng(n), rows, n)
    x[0, n // 3] = x[0, -1] = x[0].max() + 1           # a tie between two pieces: the first wins
    check_argmax(vx.tensor(x, device=dev), x)


@pytest.mark.parametrize("rows,n", SIZES)
def test_top_k_matches_numpy(dev, rows, n):
    x = logits(np.random.default_rng(n), rows, n)
    x[:, ::7] = x[:, :1]                                # ties spread over every piece
    t = vx.tensor(x, device=dev)
    for k in sorted({1, min(n, 40), min(n, 256)}):
        check_top_k(t, x, k)


def test_top_k_up_to_max_k(dev):
    x = np.round(logits(np.random.default_rng(3), 2, 3 * SORT + 5))    # rounded: many ties
    t = vx.tensor(x, device=dev)
    for k in (MAX_K - 1, MAX_K):
        check_top_k(t, x, k)


def test_ties_go_to_the_lowest_index(dev):
    x = np.zeros((3, 5000), np.float32)
    x[1, 4000:] = 2.0                                   # the ties start in the second piece
    x[2, ::2] = -0.0                                    # -0.0 equals +0.0
    t = vx.tensor(x, device=dev)
    np.testing.assert_array_equal(vx.argmax(t).numpy(), [0, 4000, 0])
    values, ids = vx.top_k(t, 300)
    np.testing.assert_array_equal(ids.numpy(), [np.arange(300), 4000 + np.arange(300), np.arange(300)])
    assert np.all(values.numpy()[1] == 2.0)


def test_minus_infinity(dev):
    x = np.full((2, 3000), -np.inf, np.float32)
    x[1, [5, 2500]] = [-1e30, 3.0]                      # two finite values among -inf
    t = vx.tensor(x, device=dev)
    np.testing.assert_array_equal(vx.argmax(t).numpy(), [0, 2500])
    values, ids = vx.top_k(t, 4)
    np.testing.assert_array_equal(ids.numpy(), [[0, 1, 2, 3], [2500, 5, 0, 1]])
    np.testing.assert_array_equal(values.numpy(), np.take_along_axis(x, ids.numpy().astype(np.int64), -1))
    assert values.numpy()[0, 0] == -np.inf and values.numpy()[1, 0] == 3.0


def test_nan_ranks_first_as_in_numpy_argmax(dev):
    x = logits(np.random.default_rng(4), 3, 4100)
    x[0, [3000, 17]] = np.nan
    x[1, 4099] = np.nan
    x[2, 100] = np.inf                                  # no NaN: +inf is the largest
    t = vx.tensor(x, device=dev)
    check_argmax(t, x)
    values, ids = vx.top_k(t, 3)
    np.testing.assert_array_equal(ids.numpy(), ranked(x)[:, :3])
    got = values.numpy()
    assert np.isnan(got[0, :2]).all() and got[0, 2] == x[0, ranked(x)[0, 2]]
    assert np.isnan(got[1, 0]) and got[2, 0] == np.inf


def test_views_and_ranks(dev):
    rng = np.random.default_rng(6)
    x = logits(rng, 4, 6, 700)
    t = vx.tensor(x, device=dev)
    check_argmax(t, x)                                  # rank 3: rows of rows
    check_top_k(t, x, 9)
    check_argmax(t[:, 1:5, 10:650], x[:, 1:5, 10:650])  # rows with a gap between them: copied
    check_argmax(t[2, ::2], x[2, ::2])                  # equally spaced rows: read in place
    check_top_k(t[1, 1:4], x[1, 1:4], 5)
    check_top_k(t[:2, :, :20].permute(2, 0, 1), x[:2, :, :20].transpose(2, 0, 1), 3)  # last axis strided: copied
    row = vx.tensor(x[0, 0], device=dev)
    check_argmax(row.broadcast_to(3, 700), np.broadcast_to(x[0, 0], (3, 700)))
    one = vx.argmax(row)
    assert one.shape == () and one.item() == int(np.argmax(x[0, 0]))
    check_top_k(vx.tensor(x[..., :1], device=dev), x[..., :1], 1)   # one column


def test_argmax_out(dev):
    x = logits(np.random.default_rng(7), 5, 3000)
    out = vx.zeros((5,), vx.u32, device=dev)
    assert vx.argmax(vx.tensor(x, device=dev), out=out) is out
    np.testing.assert_array_equal(out.numpy(), np.argmax(x, -1))
    for bad in (vx.zeros((5,), vx.i32, device=dev), vx.zeros((4,), vx.u32, device=dev),
                vx.zeros((10,), vx.u32, device=dev)[::2]):
        with pytest.raises(ShapeError, match="out must be a contiguous u32 tensor of shape"):
            vx.argmax(vx.tensor(x, device=dev), out=bad)


def test_argmax_out_replays_in_a_capture(dev):
    """With `out`, a call after the first allocates nothing, so a captured argmax replays on new logits (while the
    pool hands buffers to other work)."""
    rng = np.random.default_rng(8)
    t, out = vx.tensor(logits(rng, 2, 49152), device=dev), vx.zeros((2,), vx.u32, device=dev)
    vx.argmax(t, out=out)
    dev.synchronize()
    with dev.backend.capture() as graph:
        vx.argmax(t, out=out)
        dev.flush()
    for _ in range(3):
        _ = [vx.tensor(logits(rng, 24), device=dev) * 2 for _ in range(8)]
        x = logits(rng, 2, 49152)
        dev.upload(x.reshape(-1), t.buffer)
        graph.replay()
        np.testing.assert_array_equal(out.numpy(), np.argmax(x, -1))


def test_no_rows(dev):
    t = vx.zeros((0, 9), device=dev)
    assert vx.argmax(t).shape == (0,)
    values, ids = vx.top_k(t, 4)
    assert values.shape == ids.shape == (0, 4)


def test_errors(dev):
    x = vx.zeros((2, 10), device=dev)
    with pytest.raises(TypeError, match=r"vortx.argmax: not available for i32 tensors \(only f32\)"):
        vx.argmax(x.to(vx.i32))
    with pytest.raises(TypeError, match="vortx.top_k: not available for f16"):
        vx.top_k(x.to(vx.f16), 1)
    with pytest.raises(ShapeError, match="0-d tensor has no last axis"):
        vx.argmax(vx.tensor(1.0, device=dev))
    with pytest.raises(ValueError, match=r"last axis of shape \(2, 0\) is empty"):
        vx.top_k(vx.zeros((2, 0), device=dev), 1)
    with pytest.raises(ValueError, match="k=11 is out of range for a last axis of 10 elements: 1 <= k <= 10"):
        vx.top_k(x, 11)
    with pytest.raises(ValueError, match="k=0 is out of range"):
        vx.top_k(x, 0)
    with pytest.raises(ValueError, match=f"k={MAX_K + 1} is out of range .*at most {MAX_K}"):
        vx.top_k(vx.zeros((MAX_K + 5,), device=dev), MAX_K + 1)
    with pytest.raises(TypeError, match="k must be an int, not True"):
        vx.top_k(x, True)
