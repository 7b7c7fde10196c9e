"""vortx.nn against numpy on every backend: rms_norm, softmax, rope (both pairings, partial rotary dims, frequency
factors, long positions), silu_gate and embedding (f32 and f16 tables), at SmolLM2's sizes and odd ones, on views
read in place, in place (out=x), into given outputs, and the errors that name the operation and the argument."""

from __future__ import annotations

import numpy as np
import pytest

import vortx as vx
from vortx import nn
from vortx.devices import Device

rng = np.random.default_rng(11)


@pytest.fixture
def dev(backend) -> Device:
    return vx.device(backend.name)


def data(*shape, scale=3.0) -> np.ndarray:
    return (rng.standard_normal(shape) * scale).astype(np.float32)


def close(got: vx.Tensor, want: np.ndarray, tolerance: float) -> None:
    array = got.numpy()
    assert array.dtype == np.float32 and array.shape == want.shape, (array.dtype, array.shape, want.shape)
    scale = max(1.0, float(np.abs(want).max(initial=0)))
    np.testing.assert_allclose(array, want, rtol=0, atol=tolerance * scale)


def rms_ref(x: np.ndarray, w: np.ndarray, eps: float) -> np.ndarray:
    x = x.astype(np.float64)
    return (x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w).astype(np.float32)


def softmax_ref(x: np.ndarray) -> np.ndarray:
    e = np.exp(x.astype(np.float64) - x.max(-1, keepdims=True))
    return (e / e.sum(-1, keepdims=True)).astype(np.float32)


def rope_ref(x: np.ndarray, pos: np.ndarray, theta: float, dims: int, neox: bool, factors=None) -> np.ndarray:
    """The angle in f32 (position times an f32 frequency, as transformers computes it), its cos and sin exact."""
    inv = (theta ** (-np.arange(0, dims, 2, dtype=np.float64) / dims)).astype(np.float32)
    angle = pos.astype(np.float32)[:, None] * inv
    if factors is not None:
        angle = angle / factors
    c, s = np.cos(angle.astype(np.float64))[:, None], np.sin(angle.astype(np.float64))[:, None]
    i = np.arange(dims // 2)
    a, b = (i, i + dims // 2) if neox else (2 * i, 2 * i + 1)
    x = x.astype(np.float64)
    y = x.copy()
    y[..., a] = x[..., a] * c - x[..., b] * s
    y[..., b] = x[..., a] * s + x[..., b] * c
    return y.astype(np.float32)


def silu_gate_ref(g: np.ndarray, u: np.ndarray) -> np.ndarray:
    g = g.astype(np.float64)
    return (g / (1 + np.exp(-g)) * u).astype(np.float32)


@pytest.mark.parametrize("shape", [(576,), (3, 576), (2, 3, 1536), (1,), (4, 5), (2, 257), (3, 1537), (9, 64)])
def test_rms_norm(dev, shape):
    x, w = data(*shape), data(shape[-1], scale=1.0)
    close(nn.rms_norm(vx.tensor(x, device=dev), vx.tensor(w, device=dev), 1e-5), rms_ref(x, w, 1e-5), 2e-6)


def test_rms_norm_views_in_place_and_out(dev):
    fused, w = data(4, 1000), data(576, scale=1.0)
    t = vx.tensor(fused, device=dev)
    weight = vx.tensor(w, device=dev)
    close(nn.rms_norm(t[:, 100:676], weight, 1e-6), rms_ref(fused[:, 100:676], w, 1e-6), 2e-6)    # read in place
    transposed = vx.tensor(data(576, 4), device=dev).T                                           # copied first
    close(nn.rms_norm(transposed, weight, 1e-5), rms_ref(transposed.numpy(), w, 1e-5), 2e-6)
    view = t[:, 100:676]
    nn.rms_norm(view, weight, 1e-6, out=view)                                                     # in place
    expected = fused.copy()
    expected[:, 100:676] = rms_ref(fused[:, 100:676], w, 1e-6)
    close(t, expected, 2e-6)
    out = vx.zeros((4, 576), device=dev)
    assert nn.rms_norm(view, weight, 1e-6, out=out) is out
    close(out, rms_ref(expected[:, 100:676], w, 1e-6), 2e-6)


@pytest.mark.parametrize("shape", [(1,), (7,), (256,), (257,), (9, 33), (2, 49152), (3, 2, 1000)])
def test_softmax(dev, shape):
    x = data(*shape, scale=8.0)
    close(nn.softmax(vx.tensor(x, device=dev)), softmax_ref(x), 2e-6)


def test_softmax_is_stable_and_handles_minus_infinity(dev):
    x = data(3, 500) + np.array([[0.0], [1e4], [-1e4]], np.float32)          # exp(x) alone would overflow
    x[0, ::3] = -np.inf                                                      # masked scores
    got = nn.softmax(vx.tensor(x, device=dev)).numpy()
    assert np.all(got[0, ::3] == 0)
    close(vx.tensor(got, device=dev), softmax_ref(x), 2e-6)
    np.testing.assert_allclose(got.sum(-1), 1, atol=1e-5)
    t = vx.tensor(x[1:], device=dev)
    nn.softmax(t, out=t)                                                     # in place
    close(t, softmax_ref(x[1:]), 2e-6)


@pytest.mark.parametrize("neox", [False, True])
@pytest.mark.parametrize("head_dim, dims", [(64, 64), (64, 32), (10, 6), (2, 2)])
@pytest.mark.parametrize("ids", [vx.u32, vx.i32])
def test_rope(dev, neox, head_dim, dims, ids):
    tokens, heads = 5, 3
    x = data(tokens, heads, head_dim, scale=1.0)
    pos = np.array([0, 1, 7, 99, 250])
    got = nn.rope(vx.tensor(x, device=dev), vx.tensor(pos, ids, device=dev), theta=10000.0, dims=dims, neox=neox)
    close(got, rope_ref(x, pos, 10000.0, dims, neox), 2e-5)


def test_rope_frequency_factors_long_positions_views_and_in_place(dev, backend):
    tokens, heads, head_dim = 4, 15, 64
    fused = data(tokens, heads * head_dim, scale=1.0)                        # q (9 heads), k, v (3 each)
    t = vx.tensor(fused, device=dev)
    q = t.view(tokens, heads, head_dim)[:, :9]                               # a view with gaps: read in place
    factors = rng.uniform(1, 8, 32).astype(np.float32)
    pos = np.array([3, 500, 2000, 4095])
    expected = rope_ref(fused.reshape(tokens, heads, head_dim)[:, :9], pos, 500000.0, 64, False, factors)
    # lavapipe reduces large angles with a rounded 2 pi (shaders/vortx/nn.py): 3e-8 per radian
    tolerance = 1e-5 if backend.name == "cpu" else 3e-4
    got = nn.rope(q, vx.tensor(pos, vx.u32, device=dev), theta=500000.0,
                  freq_factors=vx.tensor(factors, device=dev))
    close(got, expected, tolerance)
    nn.rope(q, vx.tensor(pos, vx.i32, device=dev), theta=500000.0, freq_factors=vx.tensor(factors, device=dev),
            out=q)
    whole = fused.reshape(tokens, heads, head_dim).copy()
    whole[:, :9] = expected
    close(t.view(tokens, heads, head_dim), whole, tolerance)                 # k and v untouched


def test_rope_matches_transformers_rotate_half(dev):
    torch = pytest.importorskip("torch")
    from transformers.models.llama.modeling_llama import apply_rotary_pos_emb
    tokens, heads, head_dim, theta = 6, 2, 16, 10000.0
    x = data(tokens, heads, head_dim, scale=1.0)
    pos = np.arange(tokens) * 13
    inv = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    freqs = torch.tensor(pos, dtype=torch.float32)[:, None] * inv[None]
    emb = torch.cat([freqs, freqs], -1)
    q = torch.tensor(x).transpose(0, 1)[None]                                # (batch, heads, tokens, head_dim)
    want, _ = apply_rotary_pos_emb(q, q, emb.cos()[None], emb.sin()[None])
    got = nn.rope(vx.tensor(x, device=dev), vx.tensor(pos, vx.u32, device=dev), theta=theta, neox=True)
    close(got, want[0].transpose(0, 1).numpy(), 2e-5)


@pytest.mark.parametrize("shape", [(1536,), (3, 1536), (1,), (2, 5, 7), (4, 1537)])
def test_silu_gate(dev, shape):
    g, u = data(*shape), data(*shape)
    close(nn.silu_gate(vx.tensor(g, device=dev), vx.tensor(u, device=dev)), silu_gate_ref(g, u), 2e-6)


def test_silu_gate_halves_of_a_fused_projection_and_in_place(dev):
    fused = data(3, 2 * 100)
    t = vx.tensor(fused, device=dev)
    gate, up = t[:, :100], t[:, 100:]
    want = silu_gate_ref(fused[:, :100], fused[:, 100:])
    close(nn.silu_gate(gate, up), want, 2e-6)
    for target in ("gate", "up"):
        t = vx.tensor(fused, device=dev)
        gate, up = t[:, :100], t[:, 100:]
        out = gate if target == "gate" else up
        nn.silu_gate(gate, up, out=out)
        close(out, want, 2e-6)
        separate = vx.tensor(fused[:, 100:], device=dev)                  # up in a tensor of its own
        if target == "gate":
            nn.silu_gate(gate, separate, out=gate)
            close(gate, silu_gate_ref(want, fused[:, 100:]), 2e-6)
        else:
            nn.silu_gate(separate, up, out=up)
            close(up, silu_gate_ref(fused[:, 100:], want), 2e-6)
    t = vx.tensor(fused, device=dev)
    with pytest.raises(ValueError, match="vortx.silu_gate: gate and up overlap, and out=gate is one of them"):
        nn.silu_gate(t[:, :100], t[:, 50:150], out=t[:, :100])


@pytest.mark.parametrize("dtype", [np.float32, np.float16])
@pytest.mark.parametrize("ids", [vx.u32, vx.i32])
def test_embedding(dev, dtype, ids):
    table = data(1000, 64).astype(dtype)
    chosen = np.array([0, 999, 5, 5, 123])
    got = nn.embedding(vx.tensor(table, device=dev), vx.tensor(chosen, ids, device=dev))
    close(got, table[chosen].astype(np.float32), 0)


def test_embedding_of_a_smollm2_sized_f16_table_and_ids_outside(dev):
    table = data(49152, 64).astype(np.float16)            # SmolLM2's vocabulary (a narrower row)
    t = vx.tensor(table, device=dev)
    ids = np.array([49151, 0, 49152, 7])
    got = nn.embedding(t, vx.tensor(ids, vx.u32, device=dev)).numpy()
    np.testing.assert_array_equal(got[[0, 1, 3]], table[[49151, 0, 7]].astype(np.float32))
    assert np.isnan(got[2]).all()                          # outside the table
    got = nn.embedding(t, vx.tensor([-1, 3], vx.i32, device=dev)).numpy()
    assert np.isnan(got[0]).all() and np.array_equal(got[1], table[3].astype(np.float32))
    out = vx.zeros((2, 64), device=dev)
    assert nn.embedding(t[:, :], vx.tensor([1, 2], vx.u32, device=dev), out=out) is out
    close(out, table[[1, 2]].astype(np.float32), 0)


def test_empty_inputs(dev):
    assert nn.rms_norm(vx.zeros((0, 8), device=dev), vx.ones(8, device=dev), 1e-5).shape == (0, 8)
    assert nn.softmax(vx.zeros((3, 0), device=dev)).shape == (3, 0)
    assert nn.embedding(vx.zeros((4, 8), device=dev), vx.zeros(0, vx.u32, device=dev)).shape == (0, 8)


def test_errors_name_the_operation_and_the_argument(dev):
    x, w = vx.zeros((2, 8), device=dev), vx.ones(8, device=dev)
    ids = vx.zeros(2, vx.u32, device=dev)
    with pytest.raises(vx.ShapeError, match=r"vortx.rms_norm: weight has shape \(7,\); x of shape \(2, 8\) needs"):
        nn.rms_norm(x, vx.ones(7, device=dev), 1e-5)
    with pytest.raises(TypeError, match="vortx.rms_norm: x holds i32; expected f32"):
        nn.rms_norm(vx.zeros((2, 8), vx.i32, device=dev), w, 1e-5)
    with pytest.raises(ValueError, match="vortx.rms_norm: eps must be a finite number"):
        nn.rms_norm(x, w, -1.0)
    with pytest.raises(vx.ShapeError, match=r"vortx.rms_norm: out has shape \(8,\); the result has shape \(2, 8\)"):
        nn.rms_norm(x, w, 1e-5, out=w)
    with pytest.raises(ValueError, match="vortx.softmax: out shares its memory with x .*pass out=x itself"):
        nn.softmax(x, out=x[1:].broadcast_to(2, 8))              # another view of x's memory
    with pytest.raises(vx.ShapeError, match=r"vortx.rope: x has shape \(2, 8\) \(rank 2\); it needs 3 dimensions"):
        nn.rope(x, ids, theta=1e4)
    with pytest.raises(vx.ShapeError, match=r"vortx.rope: positions has shape \(3,\); x of shape \(2, 1, 8\)"):
        nn.rope(x.view(2, 1, 8), vx.zeros(3, vx.u32, device=dev), theta=1e4)
    with pytest.raises(TypeError, match="vortx.rope: positions holds f32; expected u32 or i32"):
        nn.rope(x.view(2, 1, 8), vx.zeros(2, device=dev), theta=1e4)
    with pytest.raises(ValueError, match=r"vortx.rope: dims must be an even number from 2 to head_dim \(8\)"):
        nn.rope(x.view(2, 1, 8), ids, theta=1e4, dims=5)
    with pytest.raises(vx.ShapeError, match=r"vortx.rope: freq_factors has shape \(4,\); rotating 4 dims needs"):
        nn.rope(x.view(2, 1, 8), ids, theta=1e4, dims=4, freq_factors=vx.ones(4, device=dev))
    with pytest.raises(vx.ShapeError, match=r"vortx.silu_gate: up has shape \(8,\) and gate \(2, 8\)"):
        nn.silu_gate(x, w)
    with pytest.raises(TypeError, match="vortx.embedding: table holds i32; expected f32 or f16"):
        nn.embedding(vx.zeros((4, 8), vx.i32, device=dev), ids)
    with pytest.raises(vx.ShapeError, match=r"vortx.embedding: ids has shape \(1, 2\) \(rank 2\); it needs 1"):
        nn.embedding(x, ids.view(1, 2))
    with pytest.raises(TypeError, match="vortx.embedding: ids must be a vortx tensor, not ndarray"):
        nn.embedding(x, np.zeros(2, np.uint32))

