"""Differential-test cases of every gemm kernel instance (`khal_runtime.testing.Case`).

Size n gives C of n x (2n/3) over K = n/2 + 3, in a batch of (N, C) = (2, 3) where A broadcasts over C and B over
N (batch strides 0). Both operands sit at an offset in their buffers; odd sizes read A transposed (its row stride
is 1), sizes with n % 4 >= 2 read B transposed, so every load path of every kernel runs.
"""

from __future__ import annotations

import numpy as np

from khal_runtime import workgroups
from khal_runtime.testing import Args, Case
from shaders._generated.vortx.gemm import GEMM_BLOCKED, Gemm, GemmNaive, GemmTiled
from vortx.gemm import block

BATCH = (2, 3)
A_OFF, B_OFF = 3, 5

CASES: list[Case] = []


def inputs(rng: np.random.Generator, n: int) -> Args:
    m, cols, k = n, max(1, 2 * n // 3), n // 2 + 3
    a = rng.uniform(-4, 4, (BATCH[0], m, k)).astype(np.float32)            # A[zn], broadcast over zc
    b = rng.uniform(-4, 4, (BATCH[1], k, cols)).astype(np.float32)         # B[zc], broadcast over zn
    a_t, b_t = n % 2 == 1, n % 4 >= 2
    a_store = a.transpose(0, 2, 1) if a_t else a
    b_store = b.transpose(0, 2, 1) if b_t else b
    g = Gemm(m=m, n=cols, k=k, batch=BATCH[0] * BATCH[1], batch_c=BATCH[1], z0=0,
             a_off=A_OFF, a_sn=m * k, a_sc=0, a_rs=1 if a_t else k, a_cs=m if a_t else 1,
             b_off=B_OFF, b_sn=0, b_sc=k * cols, b_rs=1 if b_t else cols, b_cs=k if b_t else 1)
    return {"c": np.zeros(BATCH[0] * BATCH[1] * m * cols, np.float32),
            "a": np.concatenate([np.zeros(A_OFF, np.float32), a_store.reshape(-1)]),
            "b": np.concatenate([np.zeros(B_OFF, np.float32), b_store.reshape(-1)]), "g": g, "_a": a, "_b": b}


def reference(args: Args) -> dict[str, np.ndarray]:
    product = args["_a"][:, None].astype(np.float64) @ args["_b"][None]
    return {"c": product.astype(np.float32).reshape(-1)}


def grid(block_m: int, block_n: int):
    return lambda a: workgroups(-(-a["g"].n // block_n), -(-a["g"].m // block_m), a["g"].batch)


for cls in (GemmNaive, GemmTiled, *GEMM_BLOCKED):
    CASES.append(Case(cls, inputs=inputs, reference=reference, grid=grid(*block(cls)),
                      sizes=(1, 2, 17, 64, 130, 203), tolerance={"c": 1e-5}))
