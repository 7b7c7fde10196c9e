"""Differential-test cases of every reduction kernel instance (`khal_runtime.testing.Case`): one pass, whose
output is the partial of each piece of the reduced axis.

The views have an offset and gaps: `reduce_run` reduces 3 rows and `reduce_rows` 11 (two workgroups, the second
partly idle) with a row pitch larger than the row, and
`reduce_axis` an (outer=2, n, inner=37) view (two tiles of inner indices) with padded strides. Even sizes read
the reduced axis (reduce_run, reduce_rows) or the inner indices (reduce_axis) with stride 1, odd sizes with stride 2.
"""

from __future__ import annotations

import numpy as np

from khal_runtime import workgroups
from khal_runtime.testing import Args, Case
from shaders._generated.vortx.reduce import REDUCE_AXIS, REDUCE_ROWS, REDUCE_RUN, Axis
from shaders.vortx.reduce import AXIS_CHUNK, ROW_CHUNK, ROWS, RUN_CHUNK, TILE

NP = {"f32": np.float32, "i32": np.int32, "u32": np.uint32}
UFUNC = {"sum": np.add, "prod": np.multiply, "min": np.minimum, "max": np.maximum, "sqnorm": np.add}
INNER = 37

CASES: list[Case] = []


def values(rng: np.random.Generator, n: int, t: str, op: str) -> np.ndarray:
    if t == "f32":
        if op == "prod":    # magnitudes near 1, either sign: products of thousands stay in range
            return (rng.uniform(0.9, 1.1, n) * rng.choice([-1, 1], n)).astype(np.float32)
        return rng.uniform(-4, 4, n).astype(np.float32)
    info = np.iinfo(NP[t])
    x = rng.integers(info.min, info.max, n, dtype=NP[t], endpoint=True)
    return x | 1 if op == "prod" else x     # odd factors: a wrapped product of even ones is soon 0


def partials(args: Args, op: str, chunk: int) -> dict[str, np.ndarray]:
    """The (outer, chunks, inner) partials of the view `args["v"]` of `args["x"]`: floats in float64."""
    v, x = args["v"], args["x"]
    o, k, j = np.ix_(np.arange(v.outer), np.arange(v.n), np.arange(v.inner))
    view = x[v.offset + o * v.s_outer + k * v.s_n + j * v.s_inner]
    if x.dtype == np.float32:
        view = view.astype(np.float64)
    if op == "sqnorm":
        view = view * view                  # integers wrap, like the kernel's
    out = UFUNC[op].reduceat(view, np.arange(0, v.n, chunk), axis=1, dtype=view.dtype)
    return {"out": out.astype(x.dtype).reshape(-1)}


def run_inputs(rng: np.random.Generator, n: int, t: str, op: str, outer: int, chunk: int) -> Args:
    s_n = 1 if n % 2 == 0 else 2
    s_outer, offset, chunks = n * s_n + 5, 2, -(-n // chunk)
    return {"out": np.zeros(outer * chunks, NP[t]), "x": values(rng, offset + outer * s_outer, t, op),
            "v": Axis(outer, n, 1, offset, s_outer, s_n, 0, chunks)}


def axis_inputs(rng: np.random.Generator, n: int, t: str, op: str) -> Args:
    outer, s_inner = 2, 1 if n % 2 == 0 else 2
    s_n = INNER * s_inner + 3
    s_outer, offset, chunks = n * s_n + 1, 3, -(-n // AXIS_CHUNK)
    return {"out": np.zeros(outer * chunks * INNER, NP[t]), "x": values(rng, offset + outer * s_outer, t, op),
            "v": Axis(outer, n, INNER, offset, s_outer, s_n, s_inner, chunks)}


def tolerance(t: str, op: str) -> dict[str, float]:
    if t != "f32" or op in ("min", "max"):
        return {}
    return {"out": 1e-4 if op == "prod" else 1e-5}     # another order of float operations


for cls in REDUCE_RUN:
    t, op = cls.TEMPLATE["T"], cls.TEMPLATE["OP"]
    CASES.append(Case(
        cls,
        inputs=lambda rng, n, t=t, op=op: run_inputs(rng, n, t, op, 3, RUN_CHUNK),
        reference=lambda a, op=op: partials(a, op, RUN_CHUNK),
        grid=lambda a: workgroups(a["v"].outer * a["v"].chunks),
        sizes=(1, 63, 64, 1000, 4097, 9000),
        tolerance=tolerance(t, op)))

for cls in REDUCE_ROWS:
    t, op = cls.TEMPLATE["T"], cls.TEMPLATE["OP"]
    CASES.append(Case(
        cls,
        inputs=lambda rng, n, t=t, op=op: run_inputs(rng, n, t, op, 11, ROW_CHUNK),
        reference=lambda a, op=op: partials(a, op, ROW_CHUNK),
        grid=lambda a: workgroups(-(-a["v"].outer * a["v"].chunks // ROWS)),
        sizes=(1, 31, 32, 33, 1024, 2500),
        tolerance=tolerance(t, op)))

for cls in REDUCE_AXIS:
    t, op = cls.TEMPLATE["T"], cls.TEMPLATE["OP"]
    CASES.append(Case(
        cls,
        inputs=lambda rng, n, t=t, op=op: axis_inputs(rng, n, t, op),
        reference=lambda a, op=op: partials(a, op, AXIS_CHUNK),
        grid=lambda a: workgroups(a["v"].outer * a["v"].chunks * -(-INNER // TILE)),
        sizes=(1, 63, 128, 129, 1000),
        tolerance=tolerance(t, op)))
