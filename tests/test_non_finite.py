"""The language's infinities and NaN, `f32("inf")`, `f32("-inf")`, `f32("nan")` (and f16, f64), compiled and run on
every backend present: as stored values, as the start of a max reduction, and as module-level constants."""

from __future__ import annotations

import importlib

import numpy as np

NON_FINITE = """
from khal_runtime.lang import Buf, MutBuf, f16, f32, f64, global_id, kernel, u32

NEG_INF = f32("-inf")


@kernel(workgroup_size=(64,))
def write_non_finite(out: MutBuf[f32], half: MutBuf[f16], wide: MutBuf[f64]):
    if global_id().x == 0:
        out[0] = f32("inf")
        out[1] = NEG_INF
        out[2] = f32("nan")
        half[0] = f16("inf")
        half[1] = f16("-inf")
        half[2] = f16("nan")
        wide[0] = f64("inf")
        wide[1] = f64("-inf")
        wide[2] = f64("nan")


@kernel(workgroup_size=(64,))
def row_max(out: MutBuf[f32], x: Buf[f32], n: u32):
    row = global_id().x
    if row < len(out):
        best = NEG_INF
        for j in range(n):
            best = max(best, x[row * n + j])
        out[row] = best
"""


def test_infinities_and_nan_are_constants_on_every_backend(backend, shader_package):
    module = importlib.import_module(f"{shader_package({'nonfinite': NON_FINITE})}.nonfinite")
    out, half = backend.init_buffer(np.zeros(4, np.float32)), backend.init_buffer(np.zeros(4, np.float16))
    wide = backend.init_buffer(np.zeros(4, np.float64))
    rows, n = 5, 7
    x = np.random.default_rng(3).standard_normal((rows, n)).astype(np.float32) - 10
    x[2] = -np.inf                                   # a row of -inf keeps -inf: the start value is no larger
    xs, maxima = backend.init_buffer(x.reshape(-1)), backend.init_buffer(np.zeros(rows, np.float32))
    encoder = backend.begin_encoding()
    with encoder.begin_pass() as pass_:
        module.WriteNonFinite(backend).call(pass_, 1, out, half, wide)
        module.RowMax(backend).call(pass_, rows, maxima, xs, n)
    backend.submit(encoder)
    for got in (out.read(), half.read(), wide.read()):
        assert got[0] == np.inf and got[1] == -np.inf and np.isnan(got[2]) and got[3] == 0, got
    np.testing.assert_array_equal(maxima.read(), x.max(axis=1))
