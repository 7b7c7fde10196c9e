"""Differential-test cases of the kernels of shaders/vortx/nn.py, every instance: rows of n elements read at an offset
with a row pitch larger than the row (rms_norm, softmax, silu_gate, embedding), heads with gaps between them and a
rotated part shorter than the head (rope), against float64 numpy references. `n` is the row length (for rope, the
number of tokens)."""

from __future__ import annotations

import numpy as np

from khal_runtime import workgroups
from khal_runtime.testing import Args, Case
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

ROWS = 5
EPS = 1e-5
ROW_SIZES = (1, 63, 256, 257, 576, 1537)
NP = {"f32": np.float32, "f16": np.float16, "u32": np.uint32, "i32": np.int32}

CASES: list[Case] = []


def row_layout(n: int) -> Rows:
    return Rows(ROWS, n, 3, n + 7, 1, n + 2)


def rows_of(buf: np.ndarray, off: int, stride: int, n: int) -> np.ndarray:
    return np.stack([buf[off + r * stride: off + r * stride + n] for r in range(ROWS)]).astype(np.float64)


def put_rows(buf: np.ndarray, off: int, stride: int, values: np.ndarray) -> np.ndarray:
    buf = buf.copy()
    for r in range(ROWS):
        buf[off + r * stride: off + r * stride + values.shape[1]] = values[r]
    return buf


def rms(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + EPS) * w


def soft(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def row_inputs(rng: np.random.Generator, n: int, in_place: bool, weight: bool) -> Args:
    v = row_layout(n)
    x = rng.uniform(-6, 6, v.x_off + ROWS * v.x_stride).astype(np.float32)
    args: Args = {"x": x, "v": v if not in_place else v._replace(o_off=v.x_off, o_stride=v.x_stride)}
    if not in_place:
        args["out"] = np.zeros(v.o_off + ROWS * v.o_stride, np.float32)
    if weight:
        args["weight"] = rng.uniform(-2, 2, n).astype(np.float32)
        args["eps"] = EPS
    return args


def row_reference(a: Args, fn, name: str) -> dict[str, np.ndarray]:
    v = a["v"]
    x = rows_of(a["x"], v.x_off, v.x_stride, v.n)
    y = fn(x, a["weight"].astype(np.float64)) if "weight" in a else fn(x)
    target = "out" if "out" in a else "x"
    return {target: put_rows(a[target], v.o_off, v.o_stride, y.astype(np.float32))}


for kernel, in_place, weight, fn in ((RmsNorm, False, True, rms), (RmsNormInPlace, True, True, rms),
                                     (Softmax, False, False, soft), (SoftmaxInPlace, True, False, soft)):
    CASES.append(Case(kernel, inputs=lambda rng, n, p=in_place, w=weight: row_inputs(rng, n, p, w),
                      reference=lambda a, fn=fn: row_reference(a, fn, ""), grid=lambda a: workgroups(ROWS),
                      sizes=ROW_SIZES, tolerance={"out": 2e-6, "x": 2e-6}))


# --- rope -------------------------------------------------------------------------------------------------------

HEADS, HEAD_DIM, DIMS, THETA = 3, 12, 8, 10000.0


def rope_inputs(rng: np.random.Generator, n: int, t: str, in_place: bool) -> Args:
    pitch = HEADS * (HEAD_DIM + 2)          # two unused elements after each head
    x = rng.uniform(-2, 2, 1 + n * pitch).astype(np.float32)
    # every other one is the token's; below 300, where lavapipe's cos and sin err by at most 1e-5 (shaders/vortx/nn.py)
    positions = rng.integers(0, 300, 2 * n).astype(NP[t])
    inv = (THETA ** (-np.arange(0, DIMS, 2) / DIMS)).astype(np.float32)
    v = Rope(n, HEADS, HEAD_DIM, DIMS, 1, pitch, HEAD_DIM + 2, 1 if in_place else 0,
             pitch if in_place else HEADS * HEAD_DIM, HEAD_DIM + 2 if in_place else HEAD_DIM, 1, 2)
    neox, scaled = bool(n % 2), n % 3 == 0
    args: Args = {"x": x, "positions": positions, "inv_freq": inv, "factors": rng.uniform(1, 8, DIMS // 2)
                  .astype(np.float32), "v": v, "neox": neox, "scaled": scaled}
    if not in_place:
        args = {"out": np.zeros(n * HEADS * HEAD_DIM, np.float32), **args}
    return args


def rope_reference(a: Args) -> dict[str, np.ndarray]:
    v, x = a["v"], a["x"]
    t, h, d = np.ix_(np.arange(v.tokens), np.arange(v.heads), np.arange(v.head_dim))
    heads = x[v.x_off + t * v.x_s0 + h * v.x_s1 + d].astype(np.float64)
    angle = a["positions"][v.p_off + np.arange(v.tokens) * v.p_stride].astype(np.float32)[:, None] * a["inv_freq"]
    if a["scaled"]:
        angle = angle / a["factors"]
    c, s = np.cos(angle.astype(np.float64))[:, None], np.sin(angle.astype(np.float64))[:, None]
    half = v.dims // 2
    i = np.arange(half)
    first, second = (i, i + half) if a["neox"] else (2 * i, 2 * i + 1)
    y = heads.copy()
    y[..., first] = heads[..., first] * c - heads[..., second] * s
    y[..., second] = heads[..., first] * s + heads[..., second] * c
    target = "out" if "out" in a else "x"
    buf = a[target].copy()
    buf[v.o_off + t * v.o_s0 + h * v.o_s1 + d] = y.astype(np.float32)
    return {target: buf}


for family, in_place in ((ROPE, False), (ROPE_IN_PLACE, True)):
    for kernel in family:
        t = kernel.TEMPLATE["ID"]
        CASES.append(Case(kernel, inputs=lambda rng, n, t=t, p=in_place: rope_inputs(rng, n, t, p),
                          reference=rope_reference,
                          grid=lambda a: a["v"].tokens * HEADS * (DIMS // 2 + HEAD_DIM - DIMS),
                          sizes=(1, 2, 3, 40), tolerance={"out": 3e-5, "x": 3e-5}))


# --- silu_gate --------------------------------------------------------------------------------------------------

def pair_inputs(rng: np.random.Generator, n: int, in_place: bool) -> Args:
    v = Pair(ROWS, n, 2, n + 3, 1, n + 5, 0, n)
    gate = rng.uniform(-8, 8, v.g_off + ROWS * v.g_stride).astype(np.float32)
    up = rng.uniform(-2, 2, v.u_off + ROWS * v.u_stride).astype(np.float32)
    if in_place:
        return {"x": gate, "other": up, "v": v, "x_is_gate": bool(n % 2)}
    return {"out": np.zeros(ROWS * n, np.float32), "gate": gate, "up": up, "v": v}


def within_inputs(rng: np.random.Generator, n: int) -> Args:
    """gate and up as the halves of each row of a fused (ROWS, 2n + 1) projection, out over the gate."""
    x = rng.uniform(-8, 8, ROWS * (2 * n + 1)).astype(np.float32)
    return {"x": x, "v": Pair(ROWS, n, 0, 2 * n + 1, n + 1, 2 * n + 1, 0, 2 * n + 1)}


def within_reference(a: Args) -> dict[str, np.ndarray]:
    v = a["v"]
    gate, up = rows_of(a["x"], v.g_off, v.g_stride, v.n), rows_of(a["x"], v.u_off, v.u_stride, v.n)
    return {"x": put_rows(a["x"], v.o_off, v.o_stride, (gate / (1 + np.exp(-gate)) * up).astype(np.float32))}


def pair_reference(a: Args) -> dict[str, np.ndarray]:
    v = a["v"]
    first = rows_of(a["x"] if "x" in a else a["gate"], v.g_off, v.g_stride, v.n)
    second = rows_of(a["other"] if "other" in a else a["up"], v.u_off, v.u_stride, v.n)
    gate, up = (second, first) if "x" in a and not a["x_is_gate"] else (first, second)
    y = (gate / (1 + np.exp(-gate)) * up).astype(np.float32)
    if "x" in a:
        return {"x": put_rows(a["x"], v.g_off, v.g_stride, y)}
    return {"out": y.reshape(-1)}


for kernel, in_place in ((SiluGate, False), (SiluGateInPlace, True)):
    CASES.append(Case(kernel, inputs=lambda rng, n, p=in_place: pair_inputs(rng, n, p), reference=pair_reference,
                      grid=lambda a: ROWS * a["v"].n, sizes=(1, 2, 63, 576, 1537), tolerance={"out": 2e-6, "x": 2e-6}))


CASES.append(Case(SiluGateWithin, inputs=within_inputs, reference=within_reference, grid=lambda a: ROWS * a["v"].n,
                  sizes=(1, 2, 63, 576, 1537), tolerance={"x": 2e-6}))


# --- embedding --------------------------------------------------------------------------------------------------

VOCAB = 37


def gather_inputs(rng: np.random.Generator, n: int, e: str, t: str) -> Args:
    dim = n
    size = 4 + VOCAB * (dim + 2)
    table = rng.uniform(-3, 3, size + size % 2).astype(NP[e])        # WebGPU binds f16 in pairs
    # ids in range only: the comparison cannot tell NaN from NaN (tests/test_vortx_nn.py checks ids outside)
    ids = rng.integers(0, VOCAB, 2 * ROWS).astype(NP[t])
    v = Gather(ROWS, dim, VOCAB, 4, dim + 2, 0, 2, 1, dim + 1)
    return {"out": np.zeros(1 + ROWS * (dim + 1), np.float32), "table": table, "ids": ids, "v": v}


def gather_reference(a: Args) -> dict[str, np.ndarray]:
    v, out = a["v"], a["out"].copy()
    for r in range(v.n):
        row = int(a["ids"][v.i_off + r * v.i_stride])
        out[v.o_off + r * v.o_stride: v.o_off + r * v.o_stride + v.dim] = \
            a["table"][v.t_off + row * v.t_stride: v.t_off + row * v.t_stride + v.dim]
    return {"out": out}


for kernel in EMBEDDING:
    e, t = kernel.TEMPLATE["E"], kernel.TEMPLATE["ID"]
    CASES.append(Case(kernel, inputs=lambda rng, n, e=e, t=t: gather_inputs(rng, n, e, t), reference=gather_reference,
                      grid=lambda a: a["v"].n * a["v"].dim, sizes=(1, 2, 64, 577)))
