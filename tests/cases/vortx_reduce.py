"""Differential-test cases of every reduction kernel instance (`khal_runtime.testing.Case`): one pass, whose
output is the partial of each piece of the reduced axis.

The views have an offset and gaps: `reduce_rows` reduces 11 rows with a row pitch larger than the row, cut into
pieces of PIECE elements, with 2^lane_bits threads per piece taken from the size (a thread per piece for the
shortest rows, a workgroup per piece for the longest: the last workgroup is partly idle but for that);
`reduce_axis` an (outer=2, n, inner=37) view (two tiles of inner indices) with padded strides, in pieces of
AXIS_PIECE rows. Even sizes read the reduced axis (reduce_rows) or the inner indices (reduce_axis) with stride 1,
odd sizes with stride 2.
"""

from __future__ import annotations

import numpy as np

from khal_runtime import workgroups
from khal_runtime.testing import Args, Case
from shaders._generated.vortx.reduce import REDUCE_AXIS, REDUCE_ROWS, Axis
from shaders.vortx.reduce import LANES, LOADS, MAX_LANE_BITS, TILE, WORKGROUP

NP = {"f32": np.float32, "i32": np.int32, "u32": np.uint32}
UFUNC = {"sum": np.add, "prod": np.multiply, "min": np.minimum, "max": np.maximum, "sqnorm": np.add}
INNER = 37
OUTER = 11
PIECE = 2 * WORKGROUP * LOADS         # rows longer than this are cut, and take two steps of a workgroup per piece
AXIS_PIECE = 2 * LANES * LOADS

CASES: list[Case] = []


def values(rng: np.random.Generator, n: int, t: str, op: str) -> np.ndarray:
    if t == "f32":
        if op == "prod":    # magnitudes near 1, either sign: products of thousands stay in range
            return (rng.uniform(0.9, 1.1, n) * rng.choice([-1, 1], n)).astype(np.float32)
        return rng.uniform(-4, 4, n).astype(np.float32)
    info = np.iinfo(NP[t])
    x = rng.integers(info.min, info.max, n, dtype=NP[t], endpoint=True)
    return x | 1 if op == "prod" else x     # odd factors: a wrapped product of even ones is soon 0


def partials(args: Args, op: str) -> dict[str, np.ndarray]:
    """The (outer, chunks, inner) partials of the view `args["v"]` of `args["x"]`: floats in float64."""
    v, x = args["v"], args["x"]
    o, k, j = np.ix_(np.arange(v.outer), np.arange(v.n), np.arange(v.inner))
    view = x[v.offset + o * v.s_outer + k * v.s_n + j * v.s_inner]
    if x.dtype == np.float32:
        view = view.astype(np.float64)
    if op == "sqnorm":
        view = view * view                  # integers wrap, like the kernel's
    out = UFUNC[op].reduceat(view, np.arange(0, v.n, v.piece), axis=1, dtype=view.dtype)
    return {"out": out.astype(x.dtype).reshape(-1)}


def lane_bits(n: int) -> int:
    """Threads per piece as the planner takes them: about LOADS elements each."""
    return min(MAX_LANE_BITS, max(0, -(-min(n, PIECE) // LOADS) - 1).bit_length())


def rows_inputs(rng: np.random.Generator, n: int, t: str, op: str) -> Args:
    s_n = 1 if n % 2 == 0 else 2
    s_outer, offset = n * s_n + 5, 2
    piece, chunks = (PIECE, -(-n // PIECE)) if n > PIECE else (n, 1)
    return {"out": np.zeros(OUTER * chunks, NP[t]), "x": values(rng, offset + OUTER * s_outer, t, op),
            "v": Axis(OUTER, n, 1, offset, s_outer, s_n, 0, chunks, piece, lane_bits(n))}


def rows_grid(args: Args) -> object:
    v = args["v"]
    return workgroups(-(-v.outer * v.chunks // (WORKGROUP >> v.lane_bits)))


def axis_inputs(rng: np.random.Generator, n: int, t: str, op: str) -> Args:
    outer, s_inner = 2, 1 if n % 2 == 0 else 2
    s_n = INNER * s_inner + 3
    s_outer, offset, chunks = n * s_n + 1, 3, -(-n // AXIS_PIECE)
    return {"out": np.zeros(outer * chunks * INNER, NP[t]), "x": values(rng, offset + outer * s_outer, t, op),
            "v": Axis(outer, n, INNER, offset, s_outer, s_n, s_inner, chunks, AXIS_PIECE, 0)}


def tolerance(t: str, op: str) -> dict[str, float]:
    if t != "f32" or op in ("min", "max"):
        return {}
    return {"out": 1e-4 if op == "prod" else 1e-5}     # another order of float operations


for cls in REDUCE_ROWS:
    t, op = cls.TEMPLATE["T"], cls.TEMPLATE["OP"]
    CASES.append(Case(
        cls,
        inputs=lambda rng, n, t=t, op=op: rows_inputs(rng, n, t, op),
        reference=lambda a, op=op: partials(a, op),
        grid=rows_grid,
        sizes=(1, 3, 8, 63, 64, 65, 1000, 2047, 4097, 9000),
        tolerance=tolerance(t, op)))

for cls in REDUCE_AXIS:
    t, op = cls.TEMPLATE["T"], cls.TEMPLATE["OP"]
    CASES.append(Case(
        cls,
        inputs=lambda rng, n, t=t, op=op: axis_inputs(rng, n, t, op),
        reference=lambda a, op=op: partials(a, op),
        grid=lambda a: workgroups(a["v"].outer * a["v"].chunks * -(-INNER // TILE)),
        sizes=(1, 63, 64, 65, 128, 129, 1000),
        tolerance=tolerance(t, op)))
