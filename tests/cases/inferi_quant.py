"""The kernels on GGUF weights (`shaders/inferi/quant.py`) as differential-test cases: every format's matvec
(GPU and CPU shapes), matmul and rows_of instance on test blocks (`benchmarks.inferi_matvec.make_raw`:
`gguf.quants.quantize` where the gguf package has a quantizer, random blocks with sane scales where it has none),
against `gguf.quants.dequantize` in numpy."""

from __future__ import annotations

import gguf
import numpy as np

from benchmarks.inferi_matvec import dequantized, make_raw
from inferi.quant import CPU_ROWS, FORMATS, THREADS, TILE_N, TILE_R, layout, matvec_grid, pad_blocks
from khal_runtime import workgroups
from khal_runtime.testing import Case
from shaders._generated.inferi.quant import MATMUL, MATVEC, MATVEC_CPU, ROWS_OF, Out

T = gguf.GGMLQuantizationType


def _weights(rng: np.random.Generator, type: T, rows: int) -> dict:
    cols = 37 if FORMATS[type].qk <= 8 else 512     # F32, F16, BF16: an odd row; else 16 or 2 blocks
    raw = make_raw(rng, type, rows, cols)
    return {"w": pad_blocks("w", type, (rows, cols), raw), "s": layout(type, rows, cols),
            "_w": dequantized(type, rows, raw)}


def _matvec_inputs(type: T):
    """Three variants by size: an odd n adds into y; an even one normalises x (RMS norm with factors g) and, when
    n % 4 == 2, gates (silu of the first half of the rows times the second) into y at column 3."""
    def inputs(rng: np.random.Generator, n: int) -> dict:
        a = _weights(rng, type, n)
        cols = a["s"].cols
        norm, gated = n % 2 == 0, n % 4 == 2
        at = 3 if gated else 0
        o = Out(at, at + (n >> gated) + 2, int(n % 2), int(norm), int(gated), 1e-5)
        return {**a, "y": rng.standard_normal(o.stride).astype(np.float32),
                "x": rng.standard_normal(cols).astype(np.float32),
                "g": rng.uniform(0.5, 1.5, cols).astype(np.float32), "o": o}
    return inputs


def _matvec_reference(a: dict) -> dict:
    o, x = a["o"], a["x"].astype(np.float64)
    if o.norm:
        x = x / np.sqrt(np.mean(x * x) + o.eps) * a["g"]
    y = a["_w"].astype(np.float64) @ x
    if o.gated:
        gate, up = np.split(y, 2)
        y = gate / (1 + np.exp(-np.clip(gate, -80, 80))) * up
    out = a["y"].astype(np.float64).copy()
    out[o.at:o.at + len(y)] = y + (out[o.at:o.at + len(y)] if o.add else 0)
    return {"y": out.astype(np.float32)}


def _matmul_inputs(type: T, rows: int = 33):
    def inputs(rng: np.random.Generator, n: int) -> dict:
        a = _weights(rng, type, rows)
        cols = a["s"].cols
        # n = 1: added into columns 2 .. rows + 2 of rows of rows + 3 values; else y = x W^T
        o = Out(2, rows + 3, 1, 0, 0, 0.0) if n == 1 else Out(0, rows, 0, 0, 0, 0.0)
        return {**a, "y": rng.standard_normal(n * o.stride).astype(np.float32),
                "x": rng.standard_normal((n, cols)).astype(np.float32).reshape(-1), "n": np.uint32(n), "o": o}
    return inputs


def _cpu_inputs(type: T):
    return _matmul_inputs(type, THREADS * CPU_ROWS + 7)


def _rows_inputs(type: T):
    def inputs(rng: np.random.Generator, n: int) -> dict:
        a = _weights(rng, type, 7)
        ids = rng.integers(0, 9, n).astype(np.uint32)          # 7 and 8 are past the end: zeros
        return {**a, "out": np.zeros(n * a["s"].cols, np.float32), "ids": ids, "n": np.uint32(n)}
    return inputs


def _matmul_reference(a: dict) -> dict:
    x = a["x"].reshape(int(a["n"]), -1).astype(np.float64)
    o = a["o"]
    y = a["y"].astype(np.float64).reshape(len(x), o.stride).copy()
    cols = slice(o.at, o.at + a["s"].rows)
    y[:, cols] = x @ a["_w"].T.astype(np.float64) + (y[:, cols] if o.add else 0)
    return {"y": y.astype(np.float32).reshape(-1)}


def _rows_reference(a: dict) -> dict:
    table = np.concatenate([a["_w"], np.zeros((2, a["_w"].shape[1]), np.float32)])
    return {"out": table[a["ids"]].reshape(-1)}


CASES: list[Case] = []
for _type, _fmt in FORMATS.items():
    _pick = {"DECODE": _fmt.decoder}
    for _lanes, _sizes in ((64, (1, 8, 10)), (1, (70, 72, 74))):
        CASES.append(Case(MATVEC.pick(**_pick, LANES=_lanes), inputs=_matvec_inputs(_type),
                          reference=_matvec_reference, sizes=_sizes, tolerance={"y": 2e-5},
                          grid=lambda a, lanes=_lanes: matvec_grid(-(-(a["s"].rows >> a["o"].gated) * lanes
                                                                     // THREADS))))
    # the CPU devices' product: 1 or 3 tokens (along z), rows past one workgroup's THREADS * CPU_ROWS
    CASES.append(Case(MATVEC_CPU.pick(**_pick), inputs=_cpu_inputs(_type), reference=_matmul_reference,
                      sizes=(1, 3), tolerance={"y": 2e-5},
                      grid=lambda a: workgroups(-(-a["s"].rows // (THREADS * CPU_ROWS)), 1, int(a["n"]))))
    CASES.append(Case(MATMUL.pick(**_pick), inputs=_matmul_inputs(_type), reference=_matmul_reference,
                      grid=lambda a: workgroups(-(-a["s"].rows // TILE_R), -(-int(a["n"]) // TILE_N)),
                      sizes=(1, 17), tolerance={"y": 2e-5}))
    CASES.append(Case(ROWS_OF.pick(**_pick), inputs=_rows_inputs(_type), reference=_rows_reference,
                      grid=lambda a: workgroups(-(-int(a["n"]) * -(-a["s"].cols // 8) // 64)), sizes=(1, 5)))
