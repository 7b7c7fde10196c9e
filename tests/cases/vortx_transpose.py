"""Differential-test cases of the tiled transposing copy (`khal_runtime.testing.Case`).

Size n copies a (3, n, 2, n/2 + 5) source in a padded buffer, at an offset, into the contiguous layout of its
permutation (axes 1, 3, 0, 2): the source's unit-stride axis 3 becomes axis 1 (`a`), its axis 2 the output's last
(`b`, only 2 long: partial tiles), and axes 1 and 0 are batched.
"""

from __future__ import annotations

import numpy as np

from khal_runtime import workgroups
from khal_runtime.testing import Args, Case
from shaders._generated.vortx.transpose import TRANSPOSE_TILES, Tiles
from vortx.ops import tile_groups

PERM = (1, 3, 0, 2)
OFFSET = 7
NP = {"f32": np.float32, "i32": np.int32, "u32": np.uint32}

CASES: list[Case] = []


def inputs(rng: np.random.Generator, n: int, t: str) -> Args:
    shape = (3, n, 2, n // 2 + 5)
    x = rng.integers(0, 1 << 20, shape).astype(NP[t])
    pitch = shape[3] + 1                            # a padded last axis: the source is not contiguous
    padded = np.zeros((*shape[:3], pitch), NP[t])
    padded[..., :shape[3]] = x
    s = (shape[1] * shape[2] * pitch, shape[2] * pitch, pitch, 1)
    view = tuple(shape[i] for i in PERM)            # (n, n/2 + 5, 3, 2)
    d = (view[1] * view[2] * view[3], view[2] * view[3], view[3], 1)
    # a = source axis 3 (output axis 1), b = source axis 2 (output axis 3); p = source axis 1, q = source axis 0
    tiles = Tiles(shape[3], shape[2], s[2], d[1], shape[1], s[1], d[0], shape[0], s[0], d[2], OFFSET)
    return {"out": np.zeros(x.size, NP[t]), "x": np.concatenate([np.zeros(OFFSET, NP[t]), padded.reshape(-1)]),
            "v": tiles, "_x": x}


def grid(args: Args) -> object:
    return workgroups(tile_groups(args["v"]))


for cls in TRANSPOSE_TILES:
    t = cls.TEMPLATE["T"]
    CASES.append(Case(
        cls,
        inputs=lambda rng, n, t=t: inputs(rng, n, t),
        reference=lambda a: {"out": np.ascontiguousarray(a["_x"].transpose(PERM)).reshape(-1)},
        grid=grid,
        sizes=(1, 31, 64, 77)))
