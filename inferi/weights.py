"""A GGUF file's tensors, uploaded to a device as the model wants them: matrices stay in their block format
(`QuantizedWeight`), vectors (norms, biases, RoPE factors) become f32 tensors. Every tensor is checked for its
presence, shape and type before anything is uploaded, so that a wrong file fails at once, naming the tensor (and a
block_count of 2^31 fails at the first missing layer, not after building 2^31 layers' names).

Tensor data is read from the file's memory map a tensor at a time (a fused projection's few at once), and each
tensor's pages leave resident memory once it is on the device (`GGUFFile.release`): loading adds to the host's
resident memory about one tensor and its padded copy, not the file (on a device whose memory is the host's, the
weights' copy on the device too). The projections that run on one input are stacked by rows: q | k | v and gate |
up, each run of one type one weight, so that one kernel computes the run.
"""

from __future__ import annotations

import numpy as np
from gguf.quants import dequantize
from tqdm import tqdm

import vortx as vx

from .config import ModelConfig
from .gguf import GGUFFile
from .model import Layer, Weights
from .quant import SUPPORTED, QuantizedWeight


class WeightsError(ValueError):
    """A tensor that the model needs is missing or has the wrong shape or type; the message names the file and
    tensor."""


def expected_shapes(c: ModelConfig, names: set[str]) -> dict[str, tuple[int, ...]]:
    """Every tensor the model reads, with its (rows, cols) or (length,) shape."""
    q, kv = c.n_heads * c.head_dim, c.n_kv_heads * c.head_dim
    shapes: dict[str, tuple[int, ...]] = {"token_embd.weight": (c.vocab_size, c.dim), "output_norm.weight": (c.dim,)}
    if "output.weight" in names:                    # absent in a model that ties it to the embedding
        shapes["output.weight"] = (c.vocab_size, c.dim)
    if "rope_freqs.weight" in names:
        shapes["rope_freqs.weight"] = (c.rope_dims // 2,)
    for i in range(c.n_layers):
        b = f"blk.{i}."
        shapes |= {b + "attn_norm.weight": (c.dim,), b + "attn_q.weight": (q, c.dim), b + "attn_k.weight": (kv, c.dim),
                   b + "attn_v.weight": (kv, c.dim), b + "attn_output.weight": (c.dim, q),
                   b + "ffn_norm.weight": (c.dim,), b + "ffn_gate.weight": (c.ffn_dim, c.dim),
                   b + "ffn_up.weight": (c.ffn_dim, c.dim), b + "ffn_down.weight": (c.dim, c.ffn_dim)}
        if c.has_qkv_bias:
            shapes |= {b + "attn_q.bias": (q,), b + "attn_k.bias": (kv,), b + "attn_v.bias": (kv,)}
        if c.qk_norm:
            shapes |= {b + "attn_q_norm.weight": (c.head_dim,), b + "attn_k_norm.weight": (c.head_dim,)}
    return shapes


def check_tensors(file: GGUFFile, config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """The expected shapes of the tensors the model reads, once each is known to be in the file with that shape and
    a type the device keeps (matrices) or gguf.quants dequantizes (vectors)."""
    # the layers first, in time bounded by the file's tensor count (not by a block_count of 2^31)
    missing = next((i for i in range(config.n_layers) if f"blk.{i}.attn_norm.weight" not in file.tensors), None)
    if missing is not None:
        raise WeightsError(f"{file.path}: tensor blk.{missing}.attn_norm.weight is missing ({config.arch}.block_count "
                           f"is {config.n_layers})")
    shapes = expected_shapes(config, set(file.tensors))
    for name, shape in shapes.items():
        info = file.tensors.get(name)
        if info is None:
            raise WeightsError(f"{file.path}: tensor {name} is missing ({config.arch} needs it)")
        if info.shape != shape:
            raise WeightsError(f"{file.path}: tensor {name} has shape {info.shape}, not {shape}")
        if info.type not in SUPPORTED:
            kind = "matrix" if len(shape) == 2 else "vector"
            raise WeightsError(f"{file.path}: tensor {name} is of type {info.type.name}, which inferi does not read "
                               f"for a {kind} (types: {', '.join(sorted(t.name for t in SUPPORTED))})")
    return shapes


def load_weights(file: GGUFFile, config: ModelConfig, device: vx.Device, progress: bool = True) -> Weights:
    shapes = check_tensors(file, config)

    bar = tqdm(total=sum(file.tensors[n].nbytes for n in shapes), unit="B", unit_scale=True, desc="loading",
               disable=not progress, leave=False)

    def matrix(name: str) -> QuantizedWeight:
        return stacked([name])[0]

    def stacked(names: list[str]) -> list[QuantizedWeight]:
        """The matrices `names` stacked by rows, a run of one type into one weight (one kernel computes it)."""
        runs: list[list[str]] = []
        for name in names:
            if runs and file.tensors[runs[-1][0]].type == file.tensors[name].type:
                runs[-1].append(name)
            else:
                runs.append([name])
        parts = []
        for run in runs:
            infos = [file.tensors[n] for n in run]
            parts.append(QuantizedWeight.stack(device, [(n, t.type, t.shape, file.data(n))
                                                        for n, t in zip(run, infos)]))
            for n in run:
                file.release(n)
            bar.update(sum(t.nbytes for t in infos))
        return parts

    def biases(names: list[str]) -> vx.Tensor | None:
        if names[0] not in shapes:
            return None
        values = [dequantize(np.asarray(file.data(n)), file.tensors[n].type).reshape(-1) for n in names]
        bar.update(sum(file.tensors[n].nbytes for n in names))
        return vx.tensor(np.concatenate(values).astype(np.float32), vx.f32, device)

    def vector(name: str) -> vx.Tensor | None:
        if name not in shapes:
            return None
        info = file.tensors[name]
        values = dequantize(np.asarray(file.data(name)), info.type).reshape(-1).astype(np.float32)
        file.release(name)
        bar.update(info.nbytes)
        return vx.tensor(values, vx.f32, device)

    layers = []
    for i in range(config.n_layers):
        b = f"blk.{i}."
        layers.append(Layer(
            attn_norm=vector(b + "attn_norm.weight"),
            qkv=stacked([b + "attn_q.weight", b + "attn_k.weight", b + "attn_v.weight"]),
            wo=matrix(b + "attn_output.weight"), ffn_norm=vector(b + "ffn_norm.weight"),
            gate_up=stacked([b + "ffn_gate.weight", b + "ffn_up.weight"]), down=matrix(b + "ffn_down.weight"),
            bqkv=biases([b + "attn_q.bias", b + "attn_k.bias", b + "attn_v.bias"]),
            q_norm=vector(b + "attn_q_norm.weight"), k_norm=vector(b + "attn_k_norm.weight")))
    embedding = matrix("token_embd.weight")
    weights = Weights(embedding=embedding, layers=layers, output_norm=vector("output_norm.weight"),
                      output=matrix("output.weight") if "output.weight" in shapes else embedding,
                      rope_freqs=vector("rope_freqs.weight"))
    bar.close()
    return weights
