"""The numpy reference of inferi's decoder family, read from a GGUF file: the oracle the khal model is tested against,
and the statement of the conventions it must follow. In the style of gpt-fast's model.py, in float64 (so that its
own rounding, about 1e-13 relative, is far below every tolerance the tests use).

One model with flags, from the file's metadata:
- llama: q/k rows already permuted by the converter, so RoPE rotates adjacent pairs (2i, 2i + 1); Llama 3's
  `rope_freqs` tensor (when present) divides each pair's frequency.
- qwen2: biases on q, k, v; RoPE on NEOX pairs (i, i + n_rot/2).
- qwen3: an RMS norm over each head of q and k (one weight shared by the heads) before RoPE; NEOX; the head size
  is `attention.key_length`, which need not be hidden/heads.
- all: grouped-query attention (kv head h serves q heads h*group .. h*group + group-1), RMS norms, SiLU-gated MLP,
  `rope.dimension_count` leading dims rotated (default the head size), the output projection `output.weight` or,
  tied, `token_embd.weight`; v heads have the size of k heads (`value_length` equals `key_length` in the family).
The file is read with `gguf.GGUFReader` (fine for tiny files; slow for real vocabularies) and every tensor is
dequantized with `gguf.quants.dequantize`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

DECODER_ARCHS = ("llama", "qwen2", "qwen3")
NEOX_ARCHS = ("qwen2", "qwen3")                 # the others rotate adjacent pairs


@dataclass(frozen=True)
class Hyper:
    arch: str
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    n_rot: int          # rotated leading dims of each head
    theta: float
    eps: float


def read_model(path: str | Path) -> tuple[Hyper, dict[str, np.ndarray]]:
    """Hyperparameters and every tensor, float64, in numpy order (a matrix is (rows, cols), y = W @ x)."""
    reader = gguf.GGUFReader(path)
    meta = {name: field.contents() for name, field in reader.fields.items()}
    arch = meta["general.architecture"]
    if arch not in DECODER_ARCHS:
        raise ValueError(f"{path}: architecture {arch!r} is not in the decoder family (llama, qwen2, qwen3)")
    hidden, heads = meta[f"{arch}.embedding_length"], meta[f"{arch}.attention.head_count"]
    head_dim = meta.get(f"{arch}.attention.key_length", hidden // heads)
    hyper = Hyper(arch=arch, layers=meta[f"{arch}.block_count"], heads=heads,
                  kv_heads=meta.get(f"{arch}.attention.head_count_kv", heads), head_dim=head_dim,
                  n_rot=meta.get(f"{arch}.rope.dimension_count", head_dim),
                  theta=meta.get(f"{arch}.rope.freq_base", 10000.0),
                  eps=meta[f"{arch}.attention.layer_norm_rms_epsilon"])
    weights = {}
    for tensor in reader.tensors:
        shape = tuple(reversed(tensor.shape.tolist()))          # GGUF lists dims innermost first
        weights[tensor.name] = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(shape).astype(np.float64)
    return hyper, weights


def rms_norm(x: np.ndarray, weight: np.ndarray, eps: float) -> np.ndarray:
    return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps) * weight


def rope(x: np.ndarray, positions: np.ndarray, hyper: Hyper, freq_factors: np.ndarray | None) -> np.ndarray:
    """Rotate the first n_rot dims of every head of x (n, heads, head_dim) by position * theta^(-2i/n_rot)."""
    half = hyper.n_rot // 2
    freqs = hyper.theta ** (-np.arange(half) * 2.0 / hyper.n_rot)
    if freq_factors is not None:
        freqs = freqs / freq_factors
    angle = positions[:, None, None] * freqs                    # (n, 1, half)
    cos, sin = np.cos(angle), np.sin(angle)
    out = x.copy()
    if hyper.arch in NEOX_ARCHS:                                # pairs (i, i + half)
        a, b = x[..., :half], x[..., half:hyper.n_rot]
        out[..., :half], out[..., half:hyper.n_rot] = a * cos - b * sin, a * sin + b * cos
    else:                                                       # adjacent pairs (2i, 2i + 1)
        a, b = x[..., 0:hyper.n_rot:2], x[..., 1:hyper.n_rot:2]
        out[..., 0:hyper.n_rot:2], out[..., 1:hyper.n_rot:2] = a * cos - b * sin, a * sin + b * cos
    return out


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Causal grouped-query attention: q (n, heads, d), k and v (n, kv_heads, d) -> (n, heads, d)."""
    n, heads, d = q.shape
    group = heads // k.shape[1]
    k, v = np.repeat(k, group, axis=1), np.repeat(v, group, axis=1)     # q head h reads kv head h // group
    scores = np.einsum("qhd,khd->hqk", q, k) / np.sqrt(d)
    scores = np.where(np.tril(np.ones((n, n), bool)), scores, -np.inf)
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    scores /= scores.sum(axis=-1, keepdims=True)
    return np.einsum("hqk,khd->qhd", scores, v)


def reference_logits(path: str | Path, token_ids) -> np.ndarray:
    """Logits (len(token_ids), vocab), float64, of one sequence starting at position 0."""
    return forward(*read_model(path), token_ids)


def forward(hyper: Hyper, w: dict[str, np.ndarray], token_ids) -> np.ndarray:
    """The decoder on weights `read_model` gave: logits (len(token_ids), vocab), float64."""
    ids = np.asarray(token_ids, dtype=np.int64)
    n = len(ids)
    positions = np.arange(n, dtype=np.float64)
    freq_factors = w.get("rope_freqs.weight")
    x = w["token_embd.weight"][ids]
    for i in range(hyper.layers):
        p = f"blk.{i}."

        def proj(name: str, h: np.ndarray, p=p) -> np.ndarray:
            y = h @ w[p + name + ".weight"].T
            return y + w[p + name + ".bias"] if p + name + ".bias" in w else y

        h = rms_norm(x, w[p + "attn_norm.weight"], hyper.eps)
        q = proj("attn_q", h).reshape(n, hyper.heads, hyper.head_dim)
        k = proj("attn_k", h).reshape(n, hyper.kv_heads, hyper.head_dim)
        v = proj("attn_v", h).reshape(n, hyper.kv_heads, hyper.head_dim)
        if p + "attn_q_norm.weight" in w:                       # qwen3: per-head norms before RoPE
            q = rms_norm(q, w[p + "attn_q_norm.weight"], hyper.eps)
            k = rms_norm(k, w[p + "attn_k_norm.weight"], hyper.eps)
        q, k = rope(q, positions, hyper, freq_factors), rope(k, positions, hyper, freq_factors)
        x = x + attention(q, k, v).reshape(n, hyper.heads * hyper.head_dim) @ w[p + "attn_output.weight"].T
        h = rms_norm(x, w[p + "ffn_norm.weight"], hyper.eps)
        gate = proj("ffn_gate", h)
        x = x + (gate / (1 + np.exp(-gate)) * proj("ffn_up", h)) @ w[p + "ffn_down.weight"].T
    x = rms_norm(x, w["output_norm.weight"], hyper.eps)
    return x @ w.get("output.weight", w["token_embd.weight"]).T
