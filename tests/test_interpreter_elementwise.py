"""Tests of the CPU interpreter (khal_runtime.interpreter) against numpy and Python, on kernels built by hand with
interpreter_kit.py's builder: elementwise kernels on grids of every shape, builtins, parameters, the checks
of arguments and IR, and the speed of a large elementwise kernel.
"""

from __future__ import annotations

import time

import interpreter_kit
import numpy as np
import pytest
from interpreter_kit import (
    SRC,
    X,
    buf,
    builtin,
    const,
    gid,
    groups,
    if_,
    intr,
    kernel,
    land,
    let,
    lidx,
    lor,
    map_kernel,
    param,
    run_map,
    select,
    var,
)

from khal_runtime import ir
from khal_runtime.interpreter import InvalidIR, execute

# the kit's fixtures: numpy's floating-point warnings off in every test (autouse), small batches
quiet_references = interpreter_kit.quiet_references
small_batches = interpreter_kit.small_batches


# ---------------------------------------------------------------------------------------------------------------
# Elementwise kernels, builtins, parameters

def add_assign_kernel():
    a, b = buf("a", "f32"), buf("b", "f32", "read")
    i = var("i", "u32")
    return kernel("add_assign", [let("i", gid()), if_(i < a.len(), [a.set(i, a[i] + b[i])])], buffers=[a, b])


@pytest.mark.parametrize("n", [1, 1000, 300_001])
def test_add_assign_with_tail(n):
    rng = np.random.default_rng(n)
    a, b = rng.random(n, np.float32), rng.random(n, np.float32)
    want = a + b
    execute(add_assign_kernel(), groups(n), [a, b], [])
    assert np.array_equal(a, want)


def test_add_assign_across_small_batches(small_batches):
    n = 1000
    a, b = np.arange(n, dtype=np.float32), np.full(n, 0.5, np.float32)
    execute(add_assign_kernel(), groups(n), [a, b], [])
    assert np.array_equal(a, np.arange(n) + 0.5)


def test_2d_grid_and_builtins(small_batches):
    """Every builtin of every lane, on a 3-D workgroup and grid, with small batches that split grid rows."""
    ws, grid, sg = (4, 2, 2), (3, 2, 2), 4
    names = [("global_id", d) for d in range(3)] + [("local_id", d) for d in range(3)] + \
            [("workgroup_id", d) for d in range(3)] + [("num_workgroups", d) for d in range(3)] + \
            [("local_index", 0), ("subgroup_size", 0), ("subgroup_invocation_id", 0), ("subgroup_id", 0),
             ("num_subgroups", 0), ("workgroup_size", 1)]
    out = buf("out", "u32")
    lanes, total = 16, 16 * 12
    wlin = (builtin("workgroup_id", 2) * 6 + builtin("workgroup_id", 1) * 3 + builtin("workgroup_id", 0))
    slot = (wlin * lanes + lidx()) * len(names)
    body = [out.set(slot + j, builtin(n, d)) for j, (n, d) in enumerate(names)]
    got = np.zeros(total * len(names), np.uint32)
    execute(kernel("builtins", body, buffers=[out], ws=ws), grid, [got], [], subgroup_size=sg)
    got = got.reshape(3 * 2 * 2, lanes, len(names))
    for g in range(12):
        w = (g % 3, g // 3 % 2, g // 6)
        for li in range(lanes):
            loc = (li % 4, li // 4 % 2, li // 8)
            want = [w[d] * ws[d] + loc[d] for d in range(3)] + list(loc) + list(w) + list(grid) + \
                   [li, sg, li % sg, li // sg, lanes // sg, ws[1]]
            assert list(got[g, li]) == want, (g, li)


def test_struct_and_bool_params_select_and_short_circuit():
    out, src = buf("out", "i32"), buf("src", "i32", "read")
    p = X(ir.Param("Shape", "shape"))
    n, scale = X(ir.Field("u32", p.node, "n")), X(ir.Field("i32", p.node, "scale"))
    flag, i = param("flag", "bool"), var("i", "u32")
    # `i < n and src[i] > 0` must not read src out of bounds where i >= n
    positive = land(i < n, src[i] > 0)
    body = [let("i", gid()),
            if_(i < out.len(), [out.set(i, select(lor(positive, ~flag), src[select(i < n, i, 0)] * scale,
                                                  const("i32", -1)))])]
    k = kernel("params", body, buffers=[out, src], scalars=[("shape", "Shape"), ("flag", "bool")],
               structs={"Shape": [("n", "u32"), ("scale", "i32")]})
    s = np.array([3, -2, 5, 0, 7], np.int32)
    got = np.zeros(8, np.int32)
    execute(k, (1, 1, 1), [got, s], [{"n": 5, "scale": 10}, True])
    assert list(got) == [30, -1, 50, -1, 70, -1, -1, -1]
    execute(k, (1, 1, 1), [got, s], [{"n": 5, "scale": 10}, False])
    assert list(got) == [30, -20, 50, 0, 70, 30, 30, 30]


def test_wrapping_and_float_exceptions_do_not_warn():
    k = map_kernel("noisy", "f32", lambda v: (v.cast("i32") * 65536 * 65536).cast("f32") + v / 0.0 + intr("log", -v))
    with np.errstate(all="raise"):
        got = run_map(k, "f32", np.array([1.0, -1.0, 0.0, np.nan], np.float32))
    assert np.isnan(got[[0, 2, 3]]).all() and got[1] == -np.inf   # inf + log(-1), -inf + 0, 0/0, NaN


def test_json_round_trip_executes_the_same():
    k = ir.from_json(ir.to_json(add_assign_kernel()))
    a, b = np.ones(100, np.float32), np.full(100, 2, np.float32)
    execute(k, groups(100), [a, b], [])
    assert np.all(a == 3)


def test_argument_errors():
    k = add_assign_kernel()
    with pytest.raises(TypeError, match="buffer 'b' must be a 1-D float32 array"):
        execute(k, (1, 1, 1), [np.zeros(4, np.float32), np.zeros(4, np.float64)], [])
    with pytest.raises(TypeError, match="takes 0 scalars"):
        execute(k, (1, 1, 1), [np.zeros(4, np.float32)] * 2, [1])
    k = kernel("s", [], scalars=[("n", "u32")])
    with pytest.raises(ValueError, match="does not fit in u32"):
        execute(k, (1, 1, 1), [], [-1])


def test_subgroup_size_must_fit_the_workgroup():
    k = map_kernel("sgsize", "i32", lambda v: intr("subgroup_add", v), ["i32"])
    x = np.zeros(64, np.int32)
    with pytest.raises(ValueError, match="power of two"):
        execute(k, (1, 1, 1), [x, x], [], subgroup_size=24)
    with pytest.raises(ValueError, match="multiple of subgroup_size 128"):
        execute(k, (1, 1, 1), [x, x], [], subgroup_size=128)


def test_invalid_ir_names_the_line():
    k = kernel("bad", [let("x", var("nope", "u32"), at=42)])
    with pytest.raises(InvalidIR, match=rf"{SRC}:42: invalid IR: unknown local variable 'nope'"):
        execute(k, (1, 1, 1), [], [])


# ---------------------------------------------------------------------------------------------------------------
# Speed (printed, not asserted)

def test_timing_elementwise_add_16m(capsys):
    n = 1 << 24
    a, b = np.random.default_rng(0).random((2, n), np.float32)
    k = add_assign_kernel()
    execute(k, groups(n), [a, b], [])   # warm-up: compile and first-touch

    def best(fn, reps=3):
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)
    t_interp = best(lambda: execute(k, groups(n), [a, b], []))
    t_numpy = best(lambda: np.add(a, b, out=a))
    with capsys.disabled():
        print(f"\n16M-element f32 add_assign: interpreter {t_interp * 1e3:.1f} ms, numpy `a += b` "
              f"{t_numpy * 1e3:.1f} ms ({t_interp / t_numpy:.1f}x)")
