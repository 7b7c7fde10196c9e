"""Differential-test cases of the selection kernels (`khal_runtime.testing.Case`): one pass over ROWS rows of n
candidates at an offset and a row pitch wider than the row, whose output is each piece's best (argmax) or best K
in rank order (top-k), padded with (-inf, NO_ID) where a piece holds fewer than K.

Values are small integers, so ties are everywhere, with -inf and -0.0 among them (NaN is left to
tests/test_vortx_select.py: the harness compares with `!=`). The merge kernels read candidates with ids that are
not positions: distinct, shuffled, and some of them padding.
"""

from __future__ import annotations

import numpy as np

from khal_runtime import workgroups
from khal_runtime.testing import Args, Case
from shaders._generated.vortx.select import ArgmaxMerge, ArgmaxRows, Rows, TopKMerge, TopKRows
from shaders.vortx.select import NO_ID, PIECE, SORT

ROWS = 3
OFFSET = 5
K = 100


def values(rng: np.random.Generator, size: int) -> np.ndarray:
    x = rng.integers(-8, 8, size).astype(np.float32)
    x[rng.random(size) < 0.05] = -np.inf
    x[x == 0] = np.where(rng.random(int(np.count_nonzero(x == 0))) < 0.5, -0.0, 0.0)
    return x


def inputs(rng: np.random.Generator, n: int, piece: int, k: int, merge: bool) -> Args:
    stride = n + 3
    size = OFFSET + ROWS * stride
    chunks = -(-n // piece)
    args = {"values": np.zeros(ROWS * chunks * k, np.float32), "ids": np.zeros(ROWS * chunks * k, np.uint32),
            "x": values(rng, size), "v": Rows(ROWS, n, OFFSET, stride, chunks, k)}
    if merge:
        ids = rng.permutation(np.arange(10 * size, dtype=np.uint32))[:size]
        padding = rng.random(size) < 0.02
        ids[padding] = NO_ID
        args["x"][padding] = -np.inf
        args["x_ids"] = ids
    return args


def best(args: Args, piece: int) -> dict[str, np.ndarray]:
    """Each piece's first k candidates in rank order (value descending, id ascending), padded."""
    v, x = args["v"], args["x"]
    out_values, out_ids = [], []
    for row in range(v.rows):
        at = v.offset + row * v.stride
        vals = x[at:at + v.n]
        ids = args["x_ids"][at:at + v.n] if "x_ids" in args else np.arange(v.n, dtype=np.uint32)
        for begin in range(0, v.n, piece):
            pv, pi = vals[begin:begin + piece], ids[begin:begin + piece]
            order = np.lexsort((pi, -pv))[:v.k]
            pad = v.k - order.size
            out_values.append(np.concatenate([pv[order], np.full(pad, -np.inf, np.float32)]))
            out_ids.append(np.concatenate([pi[order], np.full(pad, NO_ID, np.uint32)]))
    return {"values": np.concatenate(out_values), "ids": np.concatenate(out_ids)}


def grid(args: Args) -> object:
    return workgroups(args["v"].rows * args["v"].chunks)


CASES: list[Case] = []
for cls, piece, k in ((ArgmaxRows, PIECE, 1), (ArgmaxMerge, PIECE, 1), (TopKRows, SORT, K), (TopKMerge, SORT, K)):
    CASES.append(Case(
        cls,
        inputs=lambda rng, n, cls=cls, piece=piece, k=k: inputs(rng, n, piece, k, cls in (ArgmaxMerge, TopKMerge)),
        reference=lambda a, piece=piece: best(a, piece),
        grid=grid,
        sizes=(1, 63, 256, 257, 2048, 2049, 5000)))
