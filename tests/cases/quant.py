"""The quantized matvec kernels (`shaders/quant/matvec.py`) as differential-test cases: every instance on Q8_0
weights and activations, against numpy (the benchmark's quantizer and reference, which the benchmark also checks
its results with)."""

from __future__ import annotations

import numpy as np

from benchmarks.quant_matvec import BLOCK, quantize, reference
from khal_runtime import workgroups
from khal_runtime.testing import Case
from shaders._generated.quant.matvec import MATVEC_Q8

CASES: list[Case] = []


def _inputs(rng: np.random.Generator, n: int) -> dict:
    rows, blocks = n, (n % 7) * 20 + 1          # 130 rows of 121 blocks: more blocks than the 64 invocations
    qw, dw = quantize(rng.standard_normal((rows, blocks * BLOCK), dtype=np.float32))
    qx, dx = quantize(rng.standard_normal(blocks * BLOCK, dtype=np.float32))
    return {"y": np.zeros(rows, np.float32), "qw": qw, "dw": dw, "qx": qx, "dx": dx, "rows": np.uint32(rows),
            "blocks": np.uint32(blocks)}


def _reference(a: dict) -> dict:
    return {"y": reference(a["qw"], a["dw"], a["qx"], a["dx"], int(a["rows"])).astype(np.float32)}


for _kernel in MATVEC_Q8:
    CASES.append(Case(_kernel, inputs=_inputs, reference=_reference, grid=lambda a: workgroups(int(a["rows"])),
                      sizes=(1, 63, 130), tolerance={"y": 1e-5}))
