"""The decoder family inferi runs (Llama, Qwen2, Qwen3), on vortx tensors and quantized weights.

A forward pass, for n new tokens at positions start .. start+n-1:

    x = embedding rows of the tokens                             (n, dim)
    for each layer:
        h = rms_norm(x) * attn_norm
        q, k, v = h @ Wq, h @ Wk, h @ Wv  (+ biases: Qwen2)       (n, heads, head_dim), (n, kv_heads, head_dim) x2
        q, k = rms_norm per head (Qwen3)
        q, k = rope(q, k at their positions)                     adjacent pairs (Llama) or NEOX halves (Qwen)
        append k, v to the layer's f16 cache; attend q over positions 0 .. start+n-1 (causal, grouped-query)
        x += attention @ Wo
        h = rms_norm(x) * ffn_norm
        x += (silu(h @ Wgate) * (h @ Wup)) @ Wdown
    logits = (rms_norm(x) * output_norm) @ Woutput               (the token embedding when tied)

Every intermediate lives in a `Workspace` made once for a number of tokens, and every operation writes into it
(`out=`): a decode step then allocates nothing, so that it can be captured once and replayed for every token, the
token id and its position travelling in device buffers (`Workspace.ids`, `positions`, `start`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import vortx as vx
from vortx import nn
from vortx.attention import attention, write_cache

from .config import ModelConfig
from .quant import QuantizedWeight


@dataclass
class Layer:
    attn_norm: vx.Tensor
    wq: QuantizedWeight
    wk: QuantizedWeight
    wv: QuantizedWeight
    wo: QuantizedWeight
    ffn_norm: vx.Tensor
    gate: QuantizedWeight
    up: QuantizedWeight
    down: QuantizedWeight
    bq: vx.Tensor | None = None         # Qwen2
    bk: vx.Tensor | None = None
    bv: vx.Tensor | None = None
    q_norm: vx.Tensor | None = None     # Qwen3
    k_norm: vx.Tensor | None = None


@dataclass
class Weights:
    embedding: QuantizedWeight          # (vocab, dim)
    layers: list[Layer]
    output_norm: vx.Tensor
    output: QuantizedWeight             # the embedding itself when the model ties them
    rope_freqs: vx.Tensor | None        # Llama 3: divisors of RoPE's frequencies, (rope_dims / 2,)


class KVCache:
    """Each layer's keys and values, f16, (ctx, kv_heads, head_dim); `length` positions hold tokens."""

    def __init__(self, config: ModelConfig, ctx: int, device: vx.Device):
        shape = (ctx, config.n_kv_heads, config.head_dim)
        self.ctx, self.length = ctx, 0
        self.k = [vx.empty(shape, vx.f16, device) for _ in range(config.n_layers)]
        self.v = [vx.empty(shape, vx.f16, device) for _ in range(config.n_layers)]

    @property
    def nbytes(self) -> int:
        return sum(t.size * 2 for t in self.k + self.v)


class Workspace:
    """The buffers of a forward pass over `n` tokens: inputs (ids, positions, start) and every intermediate."""

    def __init__(self, config: ModelConfig, n: int, device: vx.Device, all_logits: bool = False):
        c, e = config, lambda *shape: vx.empty(shape, vx.f32, device)
        self.n = n
        self.ids = vx.empty((n,), vx.u32, device)
        self.positions = vx.empty((n,), vx.u32, device)
        self.start = vx.empty((1,), vx.u32, device)
        self.x, self.h = e(n, c.dim), e(n, c.dim)
        self.q, self.q2 = e(n, c.n_heads, c.head_dim), e(n, c.n_heads, c.head_dim)
        self.k, self.k2 = e(n, c.n_kv_heads, c.head_dim), e(n, c.n_kv_heads, c.head_dim)
        self.v = e(n, c.n_kv_heads, c.head_dim)
        self.att = e(n, c.n_heads, c.head_dim)
        self.gate, self.up, self.act = e(n, c.ffn_dim), e(n, c.ffn_dim), e(n, c.ffn_dim)
        self.last = e(n if all_logits else 1, c.dim)
        self.logits = e(n if all_logits else 1, c.vocab_size)

    def set_inputs(self, ids: list[int], start: int) -> None:
        """Writes the token ids and their positions into the device buffers (before a run or a replay)."""
        self.ids.write(ids)
        self.positions.write(range(start, start + len(ids)))
        self.start.write([start])


def linear(w: QuantizedWeight, x: vx.Tensor, out: vx.Tensor, add: bool = False) -> vx.Tensor:
    """x (n, ...) @ W.T into out (n, rows), or added to it: a matrix-vector product for one token, a matrix
    product for more."""
    n = x.shape[0]
    if n == 1:
        w.matvec(x.view(w.cols), out=out.view(w.rows), add=add)
    else:
        w.matmul(x.view(n, w.cols), out=out.view(n, w.rows), add=add)
    return out


class Transformer:
    def __init__(self, config: ModelConfig, weights: Weights):
        self.config, self.weights = config, weights

    def forward(self, ws: Workspace, cache: KVCache, all_logits: bool = False) -> vx.Tensor:
        """Runs the tokens that `ws` holds through the model, appending their keys and values to `cache` at
        `ws.start`; the logits of the last token (or of every token) land in `ws.logits`."""
        c, w, n = self.config, self.weights, ws.n
        rope = dict(theta=c.rope_theta, dims=c.rope_dims, neox=c.rope_neox, freq_factors=w.rope_freqs)
        scale = 1 / math.sqrt(c.head_dim)
        w.embedding.rows_of(ws.ids, out=ws.x)
        for i, layer in enumerate(w.layers):
            nn.rms_norm(ws.x, layer.attn_norm, c.norm_eps, out=ws.h)
            q, k, v = linear(layer.wq, ws.h, ws.q), linear(layer.wk, ws.h, ws.k), linear(layer.wv, ws.h, ws.v)
            if layer.bq is not None:
                q += layer.bq.view(c.n_heads, c.head_dim)
                k += layer.bk.view(c.n_kv_heads, c.head_dim)
                v += layer.bv.view(c.n_kv_heads, c.head_dim)
            if layer.q_norm is not None:                    # normalised per head, before RoPE
                q = nn.rms_norm(q, layer.q_norm, c.norm_eps, out=ws.q2)
                k = nn.rms_norm(k, layer.k_norm, c.norm_eps, out=ws.k2)
            q = nn.rope(q, ws.positions, **rope, out=ws.q2 if q is ws.q else ws.q)
            k = nn.rope(k, ws.positions, **rope, out=ws.k2 if k is ws.k else ws.k)
            write_cache(cache.k[i], k, ws.start)
            write_cache(cache.v[i], v, ws.start)
            attention(q, cache.k[i], cache.v[i], ws.start, scale=scale, out=ws.att)
            linear(layer.wo, ws.att, ws.x, add=True)          # the residual connections add in the kernel
            nn.rms_norm(ws.x, layer.ffn_norm, c.norm_eps, out=ws.h)
            nn.silu_gate(linear(layer.gate, ws.h, ws.gate), linear(layer.up, ws.h, ws.up), out=ws.act)
            linear(layer.down, ws.act, ws.x, add=True)
        tail = ws.x if all_logits else ws.x[n - 1:]
        nn.rms_norm(tail, w.output_norm, c.norm_eps, out=ws.last)
        return linear(w.output, ws.last, ws.logits)
