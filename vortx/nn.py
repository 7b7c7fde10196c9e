"""Neural-network operations on f32 tensors, on the kernels of shaders/vortx/nn.py: `rms_norm`, `softmax`, `rope`,
`silu_gate` and `embedding`. Each takes `out=` (a tensor of the result's shape, f32) so that a captured graph
(`device.capture()`) writes buffers that exist before it; without it the result is a new contiguous tensor.

Layouts and broadcasting:
- rms_norm and softmax work on rows of the last axis, of a tensor of any rank: every leading axis is a batch of
  rows. `weight` is one (n,) vector for every row (the only broadcast).
- rope takes x (tokens, heads, head_dim) and positions (tokens,) (u32 or i32), one position per token for all of
  its heads; freq_factors (dims / 2,) divides the angle of each pair (Llama 3's `rope_freqs`; a linear RoPE scaling
  by a factor f is freq_factors of f everywhere).
- silu_gate takes gate and up of one shape (no broadcasting).
- embedding takes a (vocab, dim) f32 or f16 table and ids (n,) (u32 or i32): (n, dim) f32. An id outside the
  table gives a row of NaN (the ids stay on the device; checking them would read them back).
Inputs are read in place when their last axis has stride 1 and their rows are evenly spaced (views of a row-major
tensor, such as a slice of a fused projection); other views are copied first. `out` must have that form too.
`out` may be the input itself (the same view of `x`, or of `gate` or `up` for silu_gate): the operation then runs
in place; any other overlap of `out` with an input is refused.

RoPE angles are position * inv_freq[k], with inv_freq = theta^(-2k / dims) computed in float64 on the host and
kept per device, theta and dims (a small table uploaded on first use: inside a capture, call rope once with the
same theta and dims before the capture opens). Adjacent pairs (2k, 2k + 1) are GGUF's Llama layout (the q and k
rows are already permuted); `neox=True` pairs (k, k + dims / 2), as Qwen2 and Qwen3 do.

Shapes that do not fit raise ShapeError, element types TypeError, both naming the operation and the argument.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from khal_runtime import workgroups
from khal_runtime.backends.base import CaptureError
from khal_runtime.lang import f16, f32, i32, u32
from shaders._generated.vortx.nn import (
    EMBEDDING,
    ROPE,
    ROPE_IN_PLACE,
    Gather,
    Pair,
    RmsNorm,
    RmsNormInPlace,
    Rope,
    Rows,
    SiluGate,
    SiluGateInPlace,
    SiluGateWithin,
    Softmax,
    SoftmaxInPlace,
)

from .devices import Device
from .ops import ShapeError, same_device
from .tensor import Tensor

IDS = (u32, i32)
_FREQUENCIES: dict[tuple[Device, float, int], Tensor] = {}


def rms_norm(x: Tensor, weight: Tensor, eps: float, out: Tensor | None = None) -> Tensor:
    """x / sqrt(mean(x^2) + eps) * weight over the last axis; weight (n,) for every row."""
    op = "rms_norm"
    _check(op, "x", x, (f32,), rank=(1, 4))
    _check(op, "weight", weight, (f32,), rank=(1, 1))
    if weight.shape != x.shape[-1:]:
        raise ShapeError(f"vortx.{op}: weight has shape {weight.shape}; x of shape {x.shape} needs "
                         f"({x.shape[-1]},), one factor per element of its last axis")
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not 0 <= eps < math.inf:
        raise ValueError(f"vortx.{op}: eps must be a finite number >= 0, not {eps!r}")
    same_device(op, x, weight)
    x, weight = _rows_view(x), _flat(weight)
    out, in_place = _output(op, out, x, {"x": x, "weight": weight}, ("x",))
    rows, xs = _rows(x)
    _, os = _rows(out)
    if rows and x.shape[-1]:
        v = Rows(rows, x.shape[-1], x.offset, xs, out.offset, os)
        if in_place:
            x.device.dispatch(RmsNormInPlace, workgroups(rows), out.buffer, weight.buffer, v, float(eps))
        else:
            x.device.dispatch(RmsNorm, workgroups(rows), out.buffer, x.buffer, weight.buffer, v, float(eps))
    return out


def softmax(x: Tensor, out: Tensor | None = None) -> Tensor:
    """exp(x - max) / sum(exp(x - max)) over the last axis (numerically stable)."""
    op = "softmax"
    _check(op, "x", x, (f32,), rank=(1, 4))
    x = _rows_view(x)
    out, in_place = _output(op, out, x, {"x": x}, ("x",))
    rows, xs = _rows(x)
    _, os = _rows(out)
    if rows and x.shape[-1]:
        v = Rows(rows, x.shape[-1], x.offset, xs, out.offset, os)
        if in_place:
            x.device.dispatch(SoftmaxInPlace, workgroups(rows), out.buffer, v)
        else:
            x.device.dispatch(Softmax, workgroups(rows), out.buffer, x.buffer, v)
    return out


def rope(x: Tensor, positions: Tensor, *, theta: float, dims: int | None = None, neox: bool = False,
         freq_factors: Tensor | None = None, out: Tensor | None = None) -> Tensor:
    """Rotary position embeddings of x (tokens, heads, head_dim) at positions (tokens,): the leading `dims` of
    each head (all of it by default) rotate in pairs, adjacent or, with `neox`, split in halves."""
    op = "rope"
    _check(op, "x", x, (f32,), rank=(3, 3))
    _check(op, "positions", positions, IDS, rank=(1, 1))
    tokens, heads, head_dim = x.shape
    if positions.shape != (tokens,):
        raise ShapeError(f"vortx.{op}: positions has shape {positions.shape}; x of shape {x.shape} needs "
                         f"({tokens},), one position per token")
    dims = head_dim if dims is None else dims
    if isinstance(dims, bool) or not isinstance(dims, (int, np.integer)) or not (0 < dims <= head_dim
                                                                                  and dims % 2 == 0):
        raise ValueError(f"vortx.{op}: dims must be an even number from 2 to head_dim ({head_dim}), not {dims!r}")
    if isinstance(theta, bool) or not isinstance(theta, (int, float)) or not 0 < theta < math.inf:
        raise ValueError(f"vortx.{op}: theta must be a finite number > 0, not {theta!r}")
    dims, theta = int(dims), float(theta)
    tensors = {"x": x, "positions": positions}
    if freq_factors is not None:
        _check(op, "freq_factors", freq_factors, (f32,), rank=(1, 1))
        if freq_factors.shape != (dims // 2,):
            raise ShapeError(f"vortx.{op}: freq_factors has shape {freq_factors.shape}; rotating {dims} dims needs "
                             f"({dims // 2},), one factor per pair")
        tensors["freq_factors"] = freq_factors = _flat(freq_factors)
    same_device(op, *tensors.values())
    if x.shape[-1] > 1 and x.strides[-1] != 1:
        x = tensors["x"] = x.contiguous()
    out, in_place = _output(op, out, x, tensors, ("x",), rows=False)
    if out.shape[-1] > 1 and out.strides[-1] != 1:
        raise ShapeError(f"vortx.{op}: out is a view with strides {out.strides}; its last axis needs stride 1")
    inv_freq = _frequencies(x.device, theta, dims)
    half = dims // 2
    n = tokens * heads * (half + head_dim - dims)
    if n:
        v = Rope(tokens, heads, head_dim, dims, x.offset, x.strides[0], x.strides[1], out.offset, out.strides[0],
                 out.strides[1], positions.offset, positions.strides[0])
        factors = inv_freq if freq_factors is None else freq_factors
        flags = (neox, freq_factors is not None)
        if in_place:
            x.device.dispatch(ROPE_IN_PLACE.pick(ID=positions.dtype.ir), n, out.buffer, positions.buffer,
                              inv_freq.buffer, factors.buffer, v, *flags)
        else:
            x.device.dispatch(ROPE.pick(ID=positions.dtype.ir), n, out.buffer, x.buffer, positions.buffer,
                              inv_freq.buffer, factors.buffer, v, *flags)
    return out


def silu_gate(gate: Tensor, up: Tensor, out: Tensor | None = None) -> Tensor:
    """silu(gate) * up, elementwise (gate and up of one shape)."""
    op = "silu_gate"
    _check(op, "gate", gate, (f32,), rank=(1, 4))
    _check(op, "up", up, (f32,), rank=(1, 4))
    if up.shape != gate.shape:
        raise ShapeError(f"vortx.{op}: up has shape {up.shape} and gate {gate.shape}; they must be equal")
    same_device(op, gate, up)
    gate, up = _rows_view(gate), _rows_view(up)
    out, in_place = _output(op, out, gate, {"gate": gate, "up": up}, ("gate", "up"))
    rows, gs = _rows(gate)
    _, us = _rows(up)
    _, os = _rows(out)
    n = gate.shape[-1]
    if rows and n:
        if in_place and gate.storage is up.storage:
            if _overlap(gate, up):
                raise ValueError(f"vortx.{op}: gate and up overlap, and out={in_place} is one of them; pass a tensor "
                                 "of its own as out")
            v = Pair(rows, n, gate.offset, gs, up.offset, us, out.offset, os)
            gate.device.dispatch(SiluGateWithin, rows * n, out.buffer, v)
        elif in_place == "up":        # the kernel writes the tensor it is given as the gate's binding
            v = Pair(rows, n, up.offset, us, gate.offset, gs, out.offset, os)
            gate.device.dispatch(SiluGateInPlace, rows * n, out.buffer, gate.buffer, v, False)
        elif in_place == "gate":
            v = Pair(rows, n, gate.offset, gs, up.offset, us, out.offset, os)
            gate.device.dispatch(SiluGateInPlace, rows * n, out.buffer, up.buffer, v, True)
        else:
            v = Pair(rows, n, gate.offset, gs, up.offset, us, out.offset, os)
            gate.device.dispatch(SiluGate, rows * n, out.buffer, gate.buffer, up.buffer, v)
    return out


def embedding(table: Tensor, ids: Tensor, out: Tensor | None = None) -> Tensor:
    """The rows table[ids] of a (vocab, dim) f32 or f16 table, as (n, dim) f32."""
    op = "embedding"
    _check(op, "table", table, (f32, f16), rank=(2, 2))
    _check(op, "ids", ids, IDS, rank=(1, 1))
    same_device(op, table, ids)
    table = _rows_view(table)
    shape = (ids.shape[0], table.shape[1])
    out, _ = _output(op, out, table, {"table": table, "ids": ids}, (), shape=shape)
    _, ts = _rows(table)
    _, os = _rows(out)
    if out.size:
        v = Gather(shape[0], shape[1], table.shape[0], table.offset, ts, ids.offset, ids.strides[0], out.offset, os)
        table.device.dispatch(EMBEDDING.pick(E=table.dtype.ir, ID=ids.dtype.ir), out.size, out.buffer,
                              table.buffer, ids.buffer, v)
    return out


# --- arguments --------------------------------------------------------------------------------------------------

def _check(op: str, name: str, t: Any, types: tuple, rank: tuple[int, int]) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"vortx.{op}: {name} must be a vortx tensor, not {type(t).__name__}")
    if t.dtype not in types:
        raise TypeError(f"vortx.{op}: {name} holds {t.dtype.ir}; expected {' or '.join(x.ir for x in types)}"
                        + ("; convert with .to(vortx.f32)" if f32 in types else ""))
    low, high = rank
    if not low <= t.ndim <= high:
        wanted = f"{low}" if low == high else f"{low} to {high}"
        raise ShapeError(f"vortx.{op}: {name} has shape {t.shape} (rank {t.ndim}); it needs {wanted} dimensions")


def _rows(t: Tensor) -> tuple[int, int] | None:
    """(rows, elements between rows) of `t` seen as evenly spaced rows of its last axis with stride 1, or None."""
    if t.shape[-1] > 1 and t.strides[-1] != 1:
        return None
    rows, stride = 1, t.shape[-1]
    for n, s in reversed(list(zip(t.shape[:-1], t.strides[:-1]))):
        if n == 0:
            return 0, stride
        if n == 1:
            continue
        if rows == 1:
            rows, stride = n, s
        elif s == stride * rows:
            rows *= n
        else:
            return None
    return rows, stride


def _rows_view(t: Tensor) -> Tensor:
    """`t`, or a contiguous copy when its rows are not evenly spaced."""
    return t if _rows(t) is not None else t.contiguous()


def _flat(t: Tensor) -> Tensor:
    """A 1-D tensor that kernels read from its storage's start, copied when it is a view at an offset."""
    return t if t.offset == 0 and t.is_contiguous() else t.copy()


def _output(op: str, out: Tensor | None, like: Tensor, inputs: dict[str, Tensor], in_place: tuple[str, ...],
            shape: tuple[int, ...] | None = None, rows: bool = True) -> tuple[Tensor, str | None]:
    """The output tensor (a new one when `out` is None) and the name of the input it is (in place), if any; `rows`:
    a given `out` must be evenly spaced rows (rope checks its own layout)."""
    shape = like.shape if shape is None else shape
    if out is None:
        return like.device.empty(shape, f32), None
    _check(op, "out", out, (f32,), rank=(1, 4))
    same_device(op, like, out)
    if out.shape != shape:
        raise ShapeError(f"vortx.{op}: out has shape {out.shape}; the result has shape {shape}")
    if rows and _rows(out) is None:
        raise ShapeError(f"vortx.{op}: out is a view with strides {out.strides} whose rows are not evenly spaced "
                         "with a last axis of stride 1; pass a contiguous tensor")
    sharing = [name for name, t in inputs.items() if t.storage is out.storage]
    same = next((name for name in sharing if name in in_place and (inputs[name].shape, inputs[name].strides,
                                                                   inputs[name].offset)
                 == (out.shape, out.strides, out.offset)), None)
    for name in sharing:
        # in place, another input that may be (gate and up of one fused projection) shares the memory too
        if name != same and not (same is not None and name in in_place):
            hint = f"pass out={name} itself to work in place, or" if name in in_place else "pass"
            raise ValueError(f"vortx.{op}: out shares its memory with {name} (another view of the same tensor); "
                             f"{hint} a tensor of its own")
    return out, same


def _overlap(a: Tensor, b: Tensor) -> bool:
    """Whether two views of one storage share an element (views of rank 4 at most: a few index arrays)."""
    def elements(t: Tensor) -> np.ndarray:
        index = np.full((), t.offset, np.int64)
        for n, s in zip(t.shape, t.strides):
            index = index[..., None] + np.arange(n) * s
        return index.reshape(-1)
    return np.intersect1d(elements(a), elements(b)).size > 0


def _frequencies(device: Device, theta: float, dims: int) -> Tensor:
    """inv_freq[k] = theta^(-2k / dims), in float64 then rounded: the table of a device, made on first use."""
    key = (device, theta, dims)
    table = _FREQUENCIES.get(key)
    if table is None:
        if device.capturing is not None:
            raise CaptureError(f"vortx.rope cannot be captured the first time it runs with theta={theta}, "
                               f"dims={dims}: its frequency table is uploaded on first use; run rope once with them "
                               "before the capture")
        from . import tensor
        inv = theta ** (-np.arange(0, dims, 2, dtype=np.float64) / dims)
        table = _FREQUENCIES[key] = tensor(inv.astype(np.float32), device=device)
    return table
