"""The example kernels as differential-test cases (`khal_runtime.testing.Case`): inputs, a numpy reference and
the grid of each. The test suite runs them on every backend; `python examples/demo.py` shows them."""

from __future__ import annotations

import numpy as np

from khal_runtime.testing import Args, Case
from shaders._generated.examples.add_assign import AddAssign
from shaders._generated.examples.elementwise import (
    BinaryOp_f32_add,
    BinaryOp_f32_max,
    BinaryOp_i32_add,
    BinaryOp_i32_max,
)
from shaders._generated.examples.half import AxpyF16, WidenF16
from shaders._generated.examples.matmul import MatmulShape, MatmulTiled
from shaders._generated.examples.reduction import SumU32
from shaders._generated.examples.subgroup_sum import SubgroupSum
from shaders._generated.examples.unpack import UnpackHalves, UnpackNibbles, UnpackSignedBytes

CASES: list[Case] = []


def register(case: Case) -> Case:
    CASES.append(case)
    return case


def uniform(rng: np.random.Generator, n: int, dtype=np.float32, low=-4.0, high=4.0) -> np.ndarray:
    return rng.uniform(low, high, n).astype(dtype)


def integers(rng: np.random.Generator, n: int, dtype, low=None, high=None) -> np.ndarray:
    info = np.iinfo(dtype)
    return rng.integers(info.min if low is None else low, info.max if high is None else high, n, dtype=dtype,
                        endpoint=high is None)


# WebGPU binds whole 4-byte words, so f16 storage buffers have an even length there
F16_SIZES = (2, 64, 1000, 4098)


def threads(name: str):
    return lambda args: len(args[name])


# --- examples ------------------------------------------------------------------------------------------------------

register(Case(
    AddAssign,
    inputs=lambda rng, n: {"a": uniform(rng, n), "b": uniform(rng, n)},
    reference=lambda a: {"a": a["a"] + a["b"]},
    grid=threads("a")))

register(Case(
    SumU32,
    inputs=lambda rng, n: {"total": np.zeros(1, np.uint32), "values": integers(rng, n, np.uint32)},
    reference=lambda a: {"total": np.array([a["values"].sum(dtype=np.uint64) % 2**32], np.uint32)},
    grid=threads("values"),
    sizes=(1, 255, 256, 70_000)))

register(Case(
    SubgroupSum,
    inputs=lambda rng, n: {"total": np.zeros(1, np.float32), "values": uniform(rng, n)},
    reference=lambda a: {"total": np.array([a["values"].sum(dtype=np.float64)], np.float32)},
    grid=threads("values"),
    sizes=(1, 127, 128, 10_000),
    tolerance={"total": 1e-5}))


def _matmul_inputs(rng: np.random.Generator, n: int) -> Args:
    m, k, cols = max(1, n // 7), max(1, n // 5), max(1, n // 3)
    return {"c": np.zeros(m * cols, np.float32), "a": uniform(rng, m * k), "b": uniform(rng, k * cols),
            "shape": MatmulShape(m=m, k=k, n=cols)}


def _matmul_reference(a: Args) -> dict[str, np.ndarray]:
    s = a["shape"]
    product = a["a"].reshape(s.m, s.k).astype(np.float64) @ a["b"].reshape(s.k, s.n)
    return {"c": product.astype(np.float32).reshape(-1)}


register(Case(
    MatmulTiled,
    inputs=_matmul_inputs,
    reference=_matmul_reference,
    grid=lambda a: (a["shape"].n, a["shape"].m),
    sizes=(1, 17, 100, 250),
    tolerance={"c": 1e-5}))

for cls, dtype, op in ((BinaryOp_f32_add, np.float32, np.add), (BinaryOp_f32_max, np.float32, np.maximum),
                       (BinaryOp_i32_add, np.int32, np.add), (BinaryOp_i32_max, np.int32, np.maximum)):
    def _inputs(rng, n, dtype=dtype):
        make = uniform if dtype == np.float32 else integers
        return {"out": np.zeros(n, dtype), "a": make(rng, n, dtype), "b": make(rng, n, dtype)}

    register(Case(cls, inputs=_inputs, reference=lambda a, op=op: {"out": op(a["a"], a["b"])},
                  grid=threads("out")))

register(Case(
    AxpyF16,
    inputs=lambda rng, n: {"y": uniform(rng, n, np.float16), "x": uniform(rng, n, np.float16), "a": 0.75},
    reference=lambda a: {"y": np.float16(a["a"]) * a["x"] + a["y"]},
    grid=threads("y"),
    sizes=F16_SIZES,
    tolerance={"y": 1e-3}))             # a GPU may fuse the multiply-add (one rounding instead of two)

register(Case(
    WidenF16,
    inputs=lambda rng, n: {"out": np.zeros(n, np.float32), "x": uniform(rng, n, np.float16)},
    reference=lambda a: {"out": a["x"].astype(np.float32)},
    grid=threads("out"),
    sizes=F16_SIZES))


def _nibbles(a: Args) -> dict[str, np.ndarray]:
    q = (a["words"][:, None] >> (4 * np.arange(8, dtype=np.uint32))) & 0xF
    return {"out": ((q.astype(np.int32) - 8).astype(np.float32) * np.float32(a["scale"])).reshape(-1)}


register(Case(
    UnpackNibbles,
    inputs=lambda rng, n: {"out": np.zeros(8 * n, np.float32), "words": integers(rng, n, np.uint32),
                           "scale": 0.125},
    reference=_nibbles,
    grid=threads("words")))

register(Case(
    UnpackSignedBytes,
    inputs=lambda rng, n: {"out": np.zeros(4 * n, np.int32), "words": integers(rng, n, np.uint32)},
    reference=lambda a: {"out": a["words"].view(np.int8).astype(np.int32)},
    grid=threads("words")))

register(Case(
    UnpackHalves,
    inputs=lambda rng, n: {"out": np.zeros(2 * n, np.float32),
                           "words": uniform(rng, 2 * n, np.float16).view(np.uint32)},
    reference=lambda a: {"out": a["words"].view(np.float16).astype(np.float32)},
    grid=threads("words")))
