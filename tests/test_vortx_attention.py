"""vortx.attention and vortx.write_cache against a numpy reference (f16-rounded keys and values, float64 sums) on
every backend present: decode at several positions (the context split across many workgroups as on a GPU, or a few
whose keys run over several steps, some splits past the live length; or in one piece), prefill with and without a
cached prefix, grouped-query ratios 1, 3 and 4, head_dim 64 and 128, the position read from the device at run time
(a captured call replayed at new positions), cache writes bounded by the cache, and the errors for bad shapes and
dtypes."""

from __future__ import annotations

import numpy as np
import pytest
from cases.vortx_attention import attention_reference

import vortx as vx
from vortx import attention as attention_module
from vortx.attention import attention, head_group, plan, write_cache, write_kv
from vortx.devices import Device
from vortx.ops import ShapeError

# (heads, kv_heads, head_dim): GQA ratio 1, SmolLM2's 3, and 4
SHAPES = [(4, 4, 128), (9, 3, 64), (8, 2, 128)]
TOLERANCE = 2e-5


@pytest.fixture
def dev(backend) -> Device:
    return vx.device(backend.name)


def random_cache(rng: np.random.Generator, ctx: int, kv_heads: int, head_dim: int) -> np.ndarray:
    return rng.standard_normal((ctx, kv_heads, head_dim)).astype(np.float16)


def position(dev: Device, start: int) -> vx.Tensor:
    return vx.tensor(np.array([start], np.uint32), device=dev)


def check(dev: Device, q: np.ndarray, k: np.ndarray, v: np.ndarray, start: int, scale: float | None = None) -> None:
    got = attention(vx.tensor(q, device=dev), vx.tensor(k, device=dev), vx.tensor(v, device=dev),
                    position(dev, start), scale=scale).numpy()
    want = attention_reference(q, k, v, start, q.shape[2] ** -0.5 if scale is None else scale)
    np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("heads, kv_heads, head_dim", SHAPES)
@pytest.mark.parametrize("target", [attention_module.SPLIT_TARGET, 8, 1], ids=["split", "few-splits", "whole"])
def test_decode_at_several_positions(dev, monkeypatch, heads, kv_heads, head_dim, target):
    """Decode with the context split as on a GPU (splits of 32 keys up to position 1100), in a few splits (up to
    12 steps of 32 keys each), and in one piece (as on a CPU device with few cores); positions at and past the
    steps' and the old chunks' boundaries."""
    rng = np.random.default_rng(heads * head_dim)
    ctx = 1100
    k, v = random_cache(rng, ctx, kv_heads, head_dim), random_cache(rng, ctx, kv_heads, head_dim)
    monkeypatch.setattr(attention_module, "split_target", lambda device: target)
    blocks = heads // head_group(heads // kv_heads)
    splits = plan(1, blocks, ctx, target)[0]
    assert (splits > 1) == (target > 1) and splits * blocks >= min(target, blocks * 35)
    for start in (0, 1, 31, 32, 100, 255, 256, 700, ctx - 1):
        check(dev, rng.standard_normal((1, heads, head_dim)).astype(np.float32), k, v, start)


@pytest.mark.parametrize("heads, kv_heads, head_dim", SHAPES)
@pytest.mark.parametrize("n, start", [(40, 0), (20, 300), (300, 0)], ids=["prompt", "after-prefix", "long"])
def test_prefill(dev, heads, kv_heads, head_dim, n, start):
    rng = np.random.default_rng(n + start)
    ctx = 320
    k, v = random_cache(rng, ctx, kv_heads, head_dim), random_cache(rng, ctx, kv_heads, head_dim)
    check(dev, rng.standard_normal((n, heads, head_dim)).astype(np.float32), k, v, start, scale=0.3)


def test_split_and_direct_paths_agree(dev, monkeypatch):
    """A prefill planned with the context split (as decode is) gives what the one-split kernel gives."""
    rng = np.random.default_rng(5)
    k, v = random_cache(rng, 900, 3, 64), random_cache(rng, 900, 3, 64)
    q = rng.standard_normal((6, 9, 64)).astype(np.float32)
    for target, splits in ((1 << 16, 29), (1, 1)):      # 29 splits: one per 32 keys of the cache
        monkeypatch.setattr(attention_module, "split_target", lambda device, target=target: target)
        assert plan(6, 3, 900, target)[0] == splits
        check(dev, q, k, v, 600)


def test_large_scores_stay_finite(dev):
    """Scores in the thousands: the softmax subtracts the maximum (a naive exp overflows)."""
    rng = np.random.default_rng(6)
    k, v = random_cache(rng, 600, 1, 64), random_cache(rng, 600, 1, 64)
    q = (rng.standard_normal((3, 2, 64)) * 100).astype(np.float32)
    check(dev, q, k, v, 550, scale=1.0)


def test_cache_written_then_attended(dev):
    """A prompt written at 0, then decode steps: write_cache stores f16 rows, attention reads them."""
    rng = np.random.default_rng(7)
    ctx, heads, kv_heads, d = 64, 6, 2, 64
    k_cache, v_cache = vx.zeros((ctx, kv_heads, d), vx.f16, dev), vx.zeros((ctx, kv_heads, d), vx.f16, dev)
    keys = rng.standard_normal((20, kv_heads, d)).astype(np.float32)
    values = rng.standard_normal((20, kv_heads, d)).astype(np.float32)
    steps = [(0, 12), (12, 1), (13, 1), (14, 6)]
    for start, n in steps:
        at = position(dev, start)
        write_cache(k_cache, vx.tensor(keys[start:start + n], device=dev), at)
        write_cache(v_cache, vx.tensor(values[start:start + n], device=dev), at)
        q = rng.standard_normal((n, heads, d)).astype(np.float32)
        got = attention(vx.tensor(q, device=dev), k_cache, v_cache, at, scale=0.125).numpy()
        want = attention_reference(q, keys.astype(np.float16), values.astype(np.float16), start, 0.125)
        np.testing.assert_allclose(got, want, atol=TOLERANCE, rtol=0)
    np.testing.assert_array_equal(k_cache.numpy()[:20], keys.astype(np.float16))
    assert not k_cache.numpy()[20:].any()


def test_write_cache_never_writes_past_the_cache(dev):
    rng = np.random.default_rng(8)
    ctx, kv_heads, d = 10, 2, 64
    x = rng.standard_normal((5, kv_heads, d)).astype(np.float32)
    cache = vx.zeros((ctx + 2, kv_heads, d), vx.f16, dev)
    layer = cache[:ctx]                          # rows past the view belong to someone else
    write_cache(layer, vx.tensor(x, device=dev), position(dev, ctx - 2))
    got = cache.numpy()
    np.testing.assert_array_equal(got[ctx - 2:ctx], x[:2].astype(np.float16))
    assert not got[:ctx - 2].any() and not got[ctx:].any()
    write_cache(layer, vx.tensor(x, device=dev), position(dev, 2**32 - 2))     # start + r wraps around
    np.testing.assert_array_equal(cache.numpy(), got)


def test_write_kv_writes_what_two_write_caches_write(dev):
    rng = np.random.default_rng(10)
    ctx, kv_heads, d = 12, 3, 8
    kv = vx.tensor(rng.standard_normal((4, 2 * kv_heads, d)).astype(np.float32), device=dev)
    k, v = kv[:1, :kv_heads], kv[:1, kv_heads:]              # views into one buffer, as a decode step's
    caches = [vx.zeros((ctx, kv_heads, d), vx.f16, dev) for _ in range(4)]
    write_kv(caches[0], caches[1], k, v, position(dev, 5))
    write_cache(caches[2], k.contiguous(), position(dev, 5))
    write_cache(caches[3], v.contiguous(), position(dev, 5))
    np.testing.assert_array_equal(caches[0].numpy(), caches[2].numpy())
    np.testing.assert_array_equal(caches[1].numpy(), caches[3].numpy())
    assert caches[0].numpy()[5].any() and caches[1].numpy()[5].any()
    with pytest.raises(ShapeError, match="write_kv"):
        write_kv(caches[0], vx.zeros((ctx, kv_heads, 2 * d), vx.f16, dev), k, v, position(dev, 0))


@pytest.mark.parametrize("target", [attention_module.SPLIT_TARGET, 1], ids=["split", "whole"])
def test_position_is_read_at_run_time(dev, monkeypatch, target):
    """A call captured once and replayed after `start` changes attends to the new length: the grid covers the
    whole cache and the kernels read the position from the buffer."""
    monkeypatch.setattr(attention_module, "split_target", lambda device: target)
    rng = np.random.default_rng(9)
    ctx, heads, kv_heads, d = 1000, 9, 3, 64
    k, v = random_cache(rng, ctx, kv_heads, d), random_cache(rng, ctx, kv_heads, d)
    q = rng.standard_normal((1, heads, d)).astype(np.float32)
    tq, tk, tv = (vx.tensor(a, device=dev) for a in (q, k, v))
    start, out = position(dev, 0), vx.empty((1, heads, d), vx.f32, dev)
    attention(tq, tk, tv, start, out=out)        # loads the kernels and makes the scratch partials
    dev.synchronize()
    with dev.backend.capture() as graph:
        attention(tq, tk, tv, start, out=out)
        dev.flush()
    for pos in (3, 400, ctx - 1):
        dev.upload(np.array([pos], np.uint32), start.buffer)
        graph.replay()
        np.testing.assert_allclose(out.numpy(), attention_reference(q, k, v, pos, d ** -0.5), atol=TOLERANCE)
    graph.release()


def test_errors(dev):
    rng = np.random.default_rng(10)
    q = vx.tensor(rng.standard_normal((2, 6, 64)).astype(np.float32), device=dev)
    k = vx.zeros((16, 2, 64), vx.f16, dev)
    start = position(dev, 0)
    with pytest.raises(TypeError, match="q holds f16, expected f32"):
        attention(q.to(vx.f16), k, k, start)
    with pytest.raises(TypeError, match="k_cache holds f32, expected f16"):
        attention(q, k.to(vx.f32), k, start)
    with pytest.raises(TypeError, match="start holds i32, expected u32"):
        attention(q, k, k, vx.tensor(np.array([0], np.int32), device=dev))
    with pytest.raises(ShapeError, match=r"start has shape \(2,\)"):
        attention(q, k, k, vx.tensor(np.array([0, 1], np.uint32), device=dev))
    with pytest.raises(ShapeError, match="6 heads, not a multiple of the caches' 4 kv heads"):
        attention(q, vx.zeros((16, 4, 64), vx.f16, dev), vx.zeros((16, 4, 64), vx.f16, dev), start)
    with pytest.raises(ShapeError, match="head_dim 64, the caches"):
        attention(q, vx.zeros((16, 2, 32), vx.f16, dev), vx.zeros((16, 2, 32), vx.f16, dev), start)
    with pytest.raises(ShapeError, match="k_cache of shape .* and v_cache of shape .* differ"):
        attention(q, k, vx.zeros((8, 2, 64), vx.f16, dev), start)
    with pytest.raises(ShapeError, match="q has shape .2, 384., expected 3 dimensions"):
        attention(q.reshape(2, 384), k, k, start)
    with pytest.raises(ShapeError, match="head_dim 320 is not a multiple of 4 in 4 .. 256"):
        attention(vx.zeros((1, 2, 320), vx.f32, dev), vx.zeros((4, 2, 320), vx.f16, dev),
                  vx.zeros((4, 2, 320), vx.f16, dev), start)
    with pytest.raises(ShapeError, match="head_dim 62 is not a multiple of 4"):
        attention(vx.zeros((1, 2, 62), vx.f32, dev), vx.zeros((4, 2, 62), vx.f16, dev),
                  vx.zeros((4, 2, 62), vx.f16, dev), start)
    with pytest.raises(ShapeError, match="not contiguous"):
        attention(q.permute(1, 0, 2), k, k, start)
    with pytest.raises(ShapeError, match="out has shape"):
        attention(q, k, k, start, out=vx.empty((1, 6, 64), vx.f32, dev))
    with pytest.raises(ValueError, match="out shares its buffer with q"):
        attention(q, k, k, start, out=q)
    with pytest.raises(TypeError, match="k_cache must be a vortx tensor, not ndarray"):
        attention(q, np.zeros((16, 2, 64), np.float16), k, start)
    with pytest.raises(ShapeError, match="x of shape .* does not fit rows of the cache"):
        write_cache(k, vx.zeros((1, 6, 64), vx.f32, dev), start)
    with pytest.raises(TypeError, match="x holds f16, expected f32"):
        write_cache(k, vx.zeros((1, 2, 64), vx.f16, dev), start)


def test_plan():
    """Enough workgroups for the target, at most one split per SPLIT_CHUNK keys and MAX_SPLITS."""
    chunk = attention_module.SPLIT_CHUNK
    assert plan(1, 3, 4096) == (86, chunk)           # SmolLM2 decode on a GPU: 258 workgroups
    assert plan(1, 3, 4096, target=8) == (3, chunk)  # a CPU: few workgroups
    assert plan(1, 32, 100) == (4, chunk)            # no split shorter than a step
    assert plan(1, 1, 1 << 20) == (attention_module.MAX_SPLITS, chunk)
    assert plan(512, 3, 4096)[0] == 1 and plan(3, 2, 5000) == (43, chunk)
    # query heads per kv head -> heads a workgroup takes together
    assert {per_kv: head_group(per_kv) for per_kv in (1, 3, 4, 5, 6, 14, 16)} == \
        {1: 1, 3: 3, 4: 4, 5: 1, 6: 3, 14: 7, 16: 8}
