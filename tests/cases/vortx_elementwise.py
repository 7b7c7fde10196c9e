"""Differential-test cases of every elementwise kernel instance (`khal_runtime.testing.Case`).

Even sizes run the dense path. Odd sizes run the strided one over 1-D views: the output at offset 1 with stride
2, `a` at offset 2 with stride 3, and `b` broadcast from one element (stride 0); the elements the views skip must
come back untouched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from khal_runtime.testing import Case
from shaders._generated.vortx.elementwise import (
    BINARY,
    BINARY_SCALAR,
    CONVERT,
    FILL,
    UNARY,
    UPDATE,
    UPDATE_SCALAR,
    Strided,
)
from shaders.vortx.elementwise import GELU_C
from vortx.ops import threads

SIZES = (2, 64, 1000, 1, 63, 1001)
NP = {"f32": np.float32, "f16": np.float16, "i32": np.int32, "u32": np.uint32}
ARITH = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "max": np.maximum, "min": np.minimum}
FLOAT_OPS = {"div": np.divide, "pow": np.power}
FLOAT_UNARY = {
    "copy": lambda x: x, "neg": np.negative, "abs": np.abs, "inv": lambda x: 1 / x, "exp": np.exp, "log": np.log,
    "sqrt": np.sqrt, "silu": lambda x: x / (1 + np.exp(-x)), "relu": lambda x: np.maximum(x, 0),
    "gelu": lambda x: 0.5 * x * (1 + np.tanh(GELU_C * (x + 0.044715 * x ** 3))),
}
INT_UNARY = {"copy": lambda x: x, "neg": lambda x: np.negative(x) if x.dtype == np.int32 else (0 - x).astype(x.dtype),
             "abs": lambda x: np.abs(x) if x.dtype == np.int32 else x}
# where a float result is not exact on the GPU targets (transcendentals, division)
TOLERANCE = {"div": 1e-6, "pow": 1e-5, "inv": 1e-6, "exp": 1e-5, "log": 1e-5, "sqrt": 1e-6, "silu": 1e-5,
             "gelu": 1e-5}

CASES: list[Case] = []


def values(rng: np.random.Generator, n: int, t: str, positive: bool = False) -> np.ndarray:
    if t in ("f32", "f16"):
        return rng.uniform(0.25 if positive else -4, 4, n).astype(NP[t])
    info = np.iinfo(NP[t])
    return rng.integers(info.min, info.max, n, dtype=NP[t], endpoint=True)


def views(n: int) -> tuple[bool, dict[str, tuple[int, int, int]]]:
    """Whether size `n` runs the dense path, and each tensor's (offset, stride, buffer length); lengths are even
    (WebGPU binds f16 buffers in whole words)."""
    if n % 2 == 0:
        return True, {name: (0, 1, n) for name in ("out", "a", "b")}
    return False, {"out": (1, 2, 2 * n + 2), "a": (2, 3, 3 * n + 3), "b": (0, 0, 2)}


def strided(n: int, geometry: dict[str, tuple[int, int, int]]) -> Strided:
    (oo, os, _), (ao, as_, _), (bo, bs, _) = geometry["out"], geometry["a"], geometry["b"]
    return Strided(1, 1, 1, n, oo, 0, 0, 0, os, ao, 0, 0, 0, as_, bo, 0, 0, 0, bs)


def view(buffer: np.ndarray, geometry: tuple[int, int, int], n: int) -> np.ndarray:
    offset, stride, _ = geometry
    return np.broadcast_to(buffer[offset], (n,)) if stride == 0 else buffer[offset::stride][:n]


def register(kernel: type, make: Callable[[np.random.Generator, int], dict[str, Any]],
             compute: Callable[[dict[str, Any]], np.ndarray], tolerance: float = 0, written: str = "out") -> None:
    """A case whose output is the buffer `written` (`x` for the in-place kernels): `compute` gives the values of
    the output view, which the reference writes into the buffer the kernel started from."""

    def inputs(rng: np.random.Generator, n: int) -> dict[str, Any]:
        dense, geometry = views(n)
        args = make(rng, n)
        args.update(lay=strided(n, geometry), n=n, dense=dense)
        args["_geometry"] = geometry
        return args

    def reference(args: dict[str, Any]) -> dict[str, np.ndarray]:
        geometry, n = args["_geometry"], args["n"]
        out = args[written].copy()
        view(out, geometry["out"], n)[:] = compute({**args, "n": n, "geometry": geometry})
        return {written: out}

    CASES.append(Case(kernel, inputs, reference, lambda args: threads(args["n"], args["dense"]), sizes=SIZES,
                      tolerance={written: tolerance} if tolerance else {}))


def buffers(rng: np.random.Generator, n: int, out: str, inputs: dict[str, str], positive: bool = False,
            out_type: str | None = None) -> dict[str, Any]:
    """Random buffers for the views of size `n`: the output buffer (initial contents random too, so that skipped
    elements are checked) and each input."""
    _, geometry = views(n)
    t = out_type or next(iter(inputs.values()))
    args = {out: values(rng, geometry["out"][2], t)}
    for name, tt in inputs.items():
        args[name] = values(rng, geometry[name][2], tt, positive)
    return args


def a(args: dict[str, Any]) -> np.ndarray:
    return view(args["a"], args["geometry"]["a"], args["n"])


def b(args: dict[str, Any]) -> np.ndarray:
    return view(args["b"], args["geometry"]["b"], args["n"])


def x(args: dict[str, Any]) -> np.ndarray:
    return view(args["x"], args["geometry"]["out"], args["n"])


def _register_all() -> None:
    for cls in BINARY:
        t, op = cls.TEMPLATE["T"], cls.TEMPLATE["OP"]
        if op in FLOAT_OPS:
            register(cls, lambda rng, n: buffers(rng, n, "out", {"a": "f32", "b": "f32"}, positive=True),
                     lambda g, op=op: FLOAT_OPS[op](a(g), b(g)), TOLERANCE[op])
        else:
            register(cls, lambda rng, n, t=t: buffers(rng, n, "out", {"a": t, "b": t}),
                     lambda g, op=op: ARITH[op](a(g), b(g)))
    for cls in BINARY_SCALAR:
        t, op = cls.TEMPLATE["T"], cls.TEMPLATE["OP"]
        for reverse in (False, True):
            if op in FLOAT_OPS:
                register(cls, lambda rng, n, r=reverse: {**buffers(rng, n, "out", {"a": "f32"}, positive=True),
                                                         "s": 1.5, "reverse": r},
                         lambda g, op=op: (FLOAT_OPS[op](np.float32(g["s"]), a(g)) if g["reverse"]
                                           else FLOAT_OPS[op](a(g), np.float32(g["s"]))), TOLERANCE[op])
            else:
                register(cls, lambda rng, n, t=t, r=reverse: {**buffers(rng, n, "out", {"a": t}),
                                                              "s": values(rng, 1, t)[0].item(), "reverse": r},
                         lambda g, op=op, t=t: (ARITH[op](NP[t](g["s"]), a(g)) if g["reverse"]
                                                else ARITH[op](a(g), NP[t](g["s"]))))
    for cls in UNARY:
        t, op = cls.TEMPLATE["T"], cls.TEMPLATE["FN"]
        if t == "f32":
            register(cls, lambda rng, n, op=op: buffers(rng, n, "out", {"a": "f32"}, positive=op in ("log", "sqrt")),
                     lambda g, op=op: FLOAT_UNARY[op](a(g)).astype(np.float32), TOLERANCE.get(op, 0))
        else:
            register(cls, lambda rng, n, t=t: buffers(rng, n, "out", {"a": t}), lambda g, op=op: INT_UNARY[op](a(g)))
    for cls in CONVERT:
        src, dst = cls.TEMPLATE["SRC"], cls.TEMPLATE["DST"]
        # float sources stay in range of every destination (and non-negative for u32): conversions of
        # out-of-range values are unspecified on GPUs (docs/IR.md)
        def make(rng: np.random.Generator, n: int, s: str = src, d: str = dst) -> dict[str, Any]:
            return {**buffers(rng, n, "out", {"a": s}, out_type=d), "a": _convertible(rng, views(n)[1]["a"][2], s)}
        register(cls, make, lambda g, d=dst: _cast(a(g), NP[d]))
    for cls in UPDATE:
        t, op = cls.TEMPLATE["T"], cls.TEMPLATE["OP"]
        if op in FLOAT_OPS:
            register(cls, lambda rng, n: {"x": np.abs(buffers(rng, n, "out", {"b": "f32"})["out"]) + np.float32(0.25),
                                          "b": buffers(rng, n, "out", {"b": "f32"}, positive=True)["b"]},
                     lambda g, op=op: FLOAT_OPS[op](x(g), b(g)), TOLERANCE[op], written="x")
        else:
            register(cls, lambda rng, n, t=t: {"x": buffers(rng, n, "out", {"b": t})["out"],
                                               "b": buffers(rng, n, "out", {"b": t})["b"]},
                     lambda g, op=op: ARITH[op](x(g), b(g)), written="x")
    for cls in UPDATE_SCALAR:
        t, op = cls.TEMPLATE["T"], cls.TEMPLATE["OP"]
        if op in FLOAT_OPS:
            register(cls, lambda rng, n: {"x": np.abs(buffers(rng, n, "x", {}, out_type="f32")["x"]) + np.float32(1),
                                          "s": 0.75},
                     lambda g, op=op: FLOAT_OPS[op](x(g), np.float32(g["s"])), TOLERANCE[op], written="x")
        else:
            register(cls, lambda rng, n, t=t: {**buffers(rng, n, "x", {}, out_type=t),
                                               "s": values(rng, 1, t)[0].item()},
                     lambda g, op=op, t=t: ARITH[op](x(g), NP[t](g["s"])), written="x")
    for cls in FILL:
        t = cls.TEMPLATE["T"]
        register(cls, lambda rng, n, t=t: {**buffers(rng, n, "x", {}, out_type=t), "s": 7},
                 lambda g, t=t: np.full(g["n"], 7, NP[t]), written="x")


def _cast(values: np.ndarray, dtype: type) -> np.ndarray:
    with np.errstate(over="ignore"):            # large integers become f16 infinities, on every target too
        return values.astype(dtype)


def _convertible(rng: np.random.Generator, n: int, t: str) -> np.ndarray:
    if t in ("f32", "f16"):
        return rng.uniform(0, 60000, n).astype(NP[t])
    return values(rng, n, t)


_register_all()
