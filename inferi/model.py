"""The decoder family inferi runs (Llama, Qwen2, Qwen3), on vortx tensors and quantized weights.

A forward pass, for n new tokens at positions start .. start+n-1:

    x = embedding rows of the tokens                             (n, dim)
    for each layer:
        h = rms_norm(x) * attn_norm
        q, k, v = h @ Wq, h @ Wk, h @ Wv  (+ biases: Qwen2)       (n, heads, head_dim), (n, kv_heads, head_dim) x2
                                                                 (one matrix, q | k | v stacked: one kernel)
        q, k = rms_norm per head (Qwen3)
        q, k = rope(q, k at their positions)                     adjacent pairs (Llama) or NEOX halves (Qwen)
        append k, v to the layer's f16 cache; attend q over positions 0 .. start+n-1 (causal, grouped-query)
        x += attention @ Wo
        h = rms_norm(x) * ffn_norm
        x += (silu(h @ Wgate) * (h @ Wup)) @ Wdown               (gate | up stacked likewise)
    logits = (rms_norm(x) * output_norm) @ Woutput               (the token embedding when tied)

Every intermediate lives in a `Workspace` made once for a number of tokens, and every operation writes into it
(`out=`): a decode step then allocates nothing, so that it can be captured once and replayed for every token, the
token id and its position travelling in device buffers (`Workspace.ids`, `positions`, `start`). A decode step's
time is mostly the launches of its kernels, so one token runs few: each norm inside the projection after it, the
residual adds inside the projections before them, SwiGLU inside the gate | up product, q and k rotated together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import vortx as vx
from vortx import nn
from vortx.attention import attention, write_kv

from .config import ModelConfig
from .quant import QuantizedWeight


@dataclass
class Layer:
    attn_norm: vx.Tensor
    qkv: list[QuantizedWeight]          # q | k | v stacked by rows, as few matrices as their types allow
    wo: QuantizedWeight
    ffn_norm: vx.Tensor
    gate_up: list[QuantizedWeight]      # gate | up, stacked likewise
    down: QuantizedWeight
    bqkv: vx.Tensor | None = None       # Qwen2: the q | k | v biases
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
    """Each layer's keys and values, f16, (ctx, kv_heads, head_dim)."""

    def __init__(self, config: ModelConfig, ctx: int, device: vx.Device):
        shape = (ctx, config.n_kv_heads, config.head_dim)
        self.ctx, self.nbytes = ctx, self.bytes_for(config, ctx)
        self.k = [vx.empty(shape, vx.f16, device) for _ in range(config.n_layers)]
        self.v = [vx.empty(shape, vx.f16, device) for _ in range(config.n_layers)]

    @staticmethod
    def bytes_for(config: ModelConfig, ctx: int) -> int:
        """The memory of a cache of `ctx` positions: keys and values, 2 bytes each."""
        return 2 * 2 * config.n_layers * ctx * config.n_kv_heads * config.head_dim


class Workspace:
    """The buffers of a forward pass over `n` tokens: inputs (ids, positions, start) and every intermediate."""

    def __init__(self, config: ModelConfig, n: int, device: vx.Device, all_logits: bool = False):
        c, e = config, lambda *shape: vx.empty(shape, vx.f32, device)
        self.n = n
        self.ids = vx.empty((n,), vx.u32, device)
        self.positions = vx.empty((n,), vx.u32, device)
        self.start = self.positions if n == 1 else vx.empty((1,), vx.u32, device)     # the first position
        self.holds: tuple[tuple[int, ...], int] | None = None      # (ids, start) on the device, when known
        self.x, self.h = e(n, c.dim), e(n, c.dim)
        self.qkv = e(n, c.n_heads + 2 * c.n_kv_heads, c.head_dim)
        self.att = e(n, c.n_heads, c.head_dim)
        self.gate_up, self.act = e(n, 2 * c.ffn_dim), e(n, c.ffn_dim)
        self.last = e(1, c.dim)
        self.logits = e(n if all_logits else 1, c.vocab_size)

    def set_inputs(self, ids: list[int], start: int) -> None:
        """Writes the token ids and their positions into the device buffers (before a run or a replay), unless
        they hold them already (a greedy decode step leaves its next token and position there)."""
        if self.holds != (tuple(ids), start):
            self.ids.write(ids)
            self.positions.write(range(start, start + len(ids)))
            if self.start is not self.positions:
                self.start.write([start])
            self.holds = (tuple(ids), start)


def project(parts: list[QuantizedWeight], x: vx.Tensor, out: vx.Tensor, ws: Workspace, norm: vx.Tensor | None = None,
            eps: float = 0.0, add: bool = False) -> vx.Tensor:
    """x (n, cols) times the stacked matrices `parts` into the columns of out (n, their rows), in order (added with
    `add`); with `norm`, x is RMS-normalised first: in the matrix-vector kernel itself for one token, into ws.h
    for more (each token's work is then one kernel a projection, which is what a decode step's time depends on)."""
    n, at = x.shape[0], 0
    if norm is not None and not fuses_norm(ws):
        x, norm = nn.rms_norm(x, norm, eps, out=ws.h), None
    rows = out.view(n, -1)
    for w in parts:
        if n == 1:
            w.matvec(x.view(w.cols), out=rows.view(-1), at=at, add=add, norm=norm, eps=eps)
        else:
            w.matmul(x, out=rows, at=at, add=add)
        at += w.rows
    return out


def fuses_norm(ws: Workspace) -> bool:
    """Whether the norms run inside the matrix-vector kernels: for one token on a GPU, where launches are the time;
    not on a CPU (lavapipe), where applying the norm's factors in the kernel made the projections 3x slower."""
    return ws.n == 1 and not ws.x.device.on_cpu


class Transformer:
    def __init__(self, config: ModelConfig, weights: Weights):
        self.config, self.weights = config, weights

    def forward(self, ws: Workspace, cache: KVCache, all_logits: bool = False) -> vx.Tensor:
        """Runs the tokens that `ws` holds through the model, appending their keys and values to `cache` at
        `ws.start`; the logits of the last token (or of every token) land in `ws.logits`."""
        c, w, n = self.config, self.weights, ws.n
        rope = dict(theta=c.rope_theta, dims=c.rope_dims, neox=c.rope_neox, freq_factors=w.rope_freqs)
        scale, heads, kv = 1 / math.sqrt(c.head_dim), c.n_heads, c.n_kv_heads
        w.embedding.rows_of(ws.ids, out=ws.x)
        for i, layer in enumerate(w.layers):
            qkv = project(layer.qkv, ws.x, ws.qkv, ws, layer.attn_norm, c.norm_eps)    # (n, heads + 2 kv, head_dim)
            if layer.bqkv is not None:
                qkv += layer.bqkv.view(heads + 2 * kv, c.head_dim)
            q, k, v = qkv[:, :heads], qkv[:, heads:heads + kv], qkv[:, heads + kv:]
            if layer.q_norm is None:                        # q and k rotated together, in place
                nn.rope(qkv[:, :heads + kv], ws.positions, **rope, out=qkv[:, :heads + kv])
            if n > 1:                                       # the cache and attention take rows without gaps
                q, k, v = q.contiguous(), k.contiguous(), v.contiguous()
            if layer.q_norm is not None:                    # normalised per head, before RoPE
                for t, norm in ((q, layer.q_norm), (k, layer.k_norm)):
                    nn.rope(nn.rms_norm(t, norm, c.norm_eps, out=t), ws.positions, **rope, out=t)
            write_kv(cache.k[i], cache.v[i], k, v, ws.start)
            attention(q, cache.k[i], cache.v[i], ws.start, scale=scale, out=ws.att)
            project([layer.wo], ws.att.view(n, -1), ws.x, ws, add=True)       # the residual adds in the kernel
            if fuses_norm(ws) and len(layer.gate_up) == 1:      # SwiGLU in the kernel: silu(gate) * up
                layer.gate_up[0].matvec(ws.x.view(-1), out=ws.act.view(-1), norm=layer.ffn_norm, eps=c.norm_eps,
                                        gated=True)
            else:
                project(layer.gate_up, ws.x, ws.gate_up, ws, layer.ffn_norm, c.norm_eps)
                nn.silu_gate(ws.gate_up[:, :c.ffn_dim], ws.gate_up[:, c.ffn_dim:], out=ws.act)
            project([layer.down], ws.act, ws.x, ws, add=True)
        # the final norm runs on its own: inside the vocabulary-wide product, each of its many workgroups would
        # redo it (twice the product's time on an H200)
        last = nn.rms_norm(ws.x if all_logits else ws.x[n - 1:], w.output_norm, c.norm_eps,
                           out=ws.h if all_logits else ws.last)
        return project([w.output], last, ws.logits, ws)
