"""Tests of the CPU interpreter (khal_runtime.interpreter) against numpy and Python, on kernels built by hand with
interpreter_kit.py's builder: what the lanes of a workgroup share. Shared memory and barriers (a reduction, a
tiled matmul), subgroup operations, and atomics in their defined order.
"""

from __future__ import annotations

import interpreter_kit
import numpy as np
import pytest
from interpreter_kit import (
    barrier,
    buf,
    builtin,
    const,
    do,
    for_,
    gid,
    groups,
    if_,
    intr,
    kernel,
    land,
    let,
    lidx,
    map_kernel,
    param,
    run_map,
    select,
    shared,
    var,
    while_,
)

from khal_runtime import ir
from khal_runtime.interpreter import execute

# the kit's fixtures: numpy's floating-point warnings off in every test (autouse), small batches
quiet_references = interpreter_kit.quiet_references
small_batches = interpreter_kit.small_batches


# ---------------------------------------------------------------------------------------------------------------
# Shared memory, barriers, atomics: reduction and tiled matmul

def reduction_kernel(t: str, ws: int = 256) -> ir.Kernel:
    src, out, part = buf("src", t, "read"), buf("out", t), shared("part", f"{t}[{ws}]")
    li, g, s = var("li", "u32"), var("g", "u32"), var("s", "u32")
    body = [let("li", lidx()), let("g", gid()),
            part.set(li, select(g < src.len(), src[select(g < src.len(), g, 0)], const(t, 0))),
            barrier(),
            let("s", const("u32", ws // 2)),
            while_(s > 0, [if_(li < s, [part.set(li, part[li] + part[li + s])]), barrier(), let("s", s >> 1)]),
            if_(li.eq(0), [do(out.atomic("add", 0, part[0]))])]
    return kernel(f"reduce_{t}", body, buffers=[src, out], shared_=[part], ws=(ws, 1, 1))


@pytest.mark.parametrize("check", [False, True])
def test_workgroup_reduction_u32(check):
    n = 100_003
    src = np.random.default_rng(1).integers(0, 1000, n, dtype=np.uint32)
    out = np.zeros(1, np.uint32)
    execute(reduction_kernel("u32"), groups(n, 256), [src, out], [], check=check)
    assert out[0] == src.sum(dtype=np.uint32)


def test_workgroup_reduction_f32(small_batches):
    n = 5000
    src = np.random.default_rng(2).random(n, np.float32)
    out = np.zeros(1, np.float32)
    execute(reduction_kernel("f32", 64), groups(n, 64), [src, out], [])
    assert out.dtype == np.float32 and out[0] == pytest.approx(src.sum(dtype=np.float64), rel=1e-5)


def matmul_kernel(tile: int = 8) -> ir.Kernel:
    a, b, c = buf("a", "f32", "read"), buf("b", "f32", "read"), buf("c", "f32")
    at, bt = shared("at", f"f32[{tile}][{tile + 1}]"), shared("bt", f"f32[{tile}][{tile + 1}]")
    m, n, kk = param("m", "u32"), param("n", "u32"), param("k", "u32")
    row, col, lx, ly = var("row", "u32"), var("col", "u32"), var("lx", "u32"), var("ly", "u32")
    t, j, acc = var("t", "u32"), var("j", "u32"), var("acc", "f32")
    zero = const("f32", 0.0)
    body = [
        let("row", gid(1)), let("col", gid(0)), let("lx", builtin("local_id", 0)), let("ly", builtin("local_id", 1)),
        let("acc", zero),
        for_("t", const("u32", 0), kk, tile, [
            # the loads are only evaluated where they are in bounds (Select evaluates one side per lane)
            at.set((ly, lx), select(land(row < m, t + lx < kk), a[select(row < m, row, 0) * kk + t + lx], zero)),
            bt.set((ly, lx), select(land(t + ly < kk, col < n), b[(t + ly) * n + col], zero)),
            barrier(),
            for_("j", const("u32", 0), tile, 1, [let("acc", acc + at[ly, j] * bt[j, lx])]),
            barrier(),
        ]),
        if_(land(row < m, col < n), [c.set(row * n + col, acc)]),
    ]
    return kernel("matmul", body, buffers=[a, b, c], scalars=[("m", "u32"), ("n", "u32"), ("k", "u32")],
                  shared_=[at, bt], ws=(tile, tile, 1))


@pytest.mark.parametrize("check", [False, True])
def test_tiled_matmul(check):
    m, n, k, tile = 37, 45, 50, 8
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((m, k), np.float32), rng.standard_normal((k, n), np.float32)
    c = np.zeros(m * n, np.float32)
    grid = (-(-n // tile), -(-m // tile), 1)
    execute(matmul_kernel(tile), grid, [a.ravel(), b.ravel(), c], [m, n, k], check=check)
    np.testing.assert_allclose(c.reshape(m, n), a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# Subgroups

SUBGROUP_REDUCTIONS = {
    "subgroup_add": lambda r: r.sum(1, dtype=r.dtype), "subgroup_mul": lambda r: r.prod(1, dtype=r.dtype),
    "subgroup_min": lambda r: r.min(1), "subgroup_max": lambda r: r.max(1),
    "subgroup_and": lambda r: np.bitwise_and.reduce(r, 1), "subgroup_or": lambda r: np.bitwise_or.reduce(r, 1),
    "subgroup_xor": lambda r: np.bitwise_xor.reduce(r, 1), "subgroup_broadcast_first": lambda r: r[:, 0],
}


@pytest.mark.parametrize("sg", [32, 8])
@pytest.mark.parametrize("name", sorted(SUBGROUP_REDUCTIONS))
def test_subgroup_reductions(name, sg):
    n = 256
    x = np.random.default_rng(4).integers(-50, 50, n, dtype=np.int32)
    ref = SUBGROUP_REDUCTIONS[name]
    got = run_map(map_kernel(name, "i32", lambda v: intr(name, v), ["i32"]), "i32", x, subgroup_size=sg)
    rows = x.reshape(-1, sg)
    assert np.array_equal(got, np.repeat(ref(rows), sg))


@pytest.mark.parametrize("sg", [32, 16])
def test_subgroup_scans_votes_and_shuffles(sg):
    n = 128
    x = np.random.default_rng(5).integers(-1000, 1000, n, dtype=np.int32)
    rows, lane = x.reshape(-1, sg), np.arange(sg)

    def run(fn, out_t="i32"):
        return run_map(map_kernel("sg", out_t, fn, ["i32"]), out_t, x, subgroup_size=sg).reshape(-1, sg)

    sid = builtin("subgroup_invocation_id")
    assert np.array_equal(run(lambda v: intr("subgroup_inclusive_add", v)), np.cumsum(rows, 1, dtype=np.int32))
    excl = np.cumsum(rows, 1, dtype=np.int32) - rows
    assert np.array_equal(run(lambda v: intr("subgroup_exclusive_add", v)), excl)
    src = (lane * 5 + 3) % sg
    assert np.array_equal(run(lambda v: intr("subgroup_shuffle", v, (sid * 5 + 3) % builtin("subgroup_size"))),
                          rows[:, src])
    assert np.array_equal(run(lambda v: intr("subgroup_shuffle_xor", v, const("u32", 5))), rows[:, lane ^ 5])
    down = np.where(lane + 3 < sg, lane + 3, lane)
    assert np.array_equal(run(lambda v: intr("subgroup_shuffle_down", v, const("u32", 3))), rows[:, down])
    up = np.where(lane >= 3, lane - 3, lane)
    assert np.array_equal(run(lambda v: intr("subgroup_shuffle_up", v, const("u32", 3))), rows[:, up])
    votes = run(lambda v: select(intr("subgroup_any", v > 900), 1, 0, "i32")
                + select(intr("subgroup_all", v > -1001), 2, 0, "i32"))
    assert np.array_equal(votes[:, 0], (rows > 900).any(1) + 2)


def test_subgroup_float_add_stays_f32():
    x = np.random.default_rng(6).random(64, np.float32)
    got = run_map(map_kernel("sgf", "f32", lambda v: intr("subgroup_add", v)), "f32", x)
    np.testing.assert_allclose(got, np.repeat(x.reshape(2, 32).sum(1), 32), rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Atomics: the defined order, with duplicates

ATOMIC_REF = {"add": lambda o, v: o + v, "sub": lambda o, v: o - v, "min": min, "max": max,
              "and": lambda o, v: o & v, "or": lambda o, v: o | v, "xor": lambda o, v: o ^ v,
              "exchange": lambda o, v: v}


def atomic_kernel(op: str, t: str, space: str):
    """olds[g] = atomic op on mem[idx[g]] with val[g] (cmp[g] for compare_exchange); for shared memory the
    array is copied to storage, one slice per workgroup, after a barrier."""
    mem, idx, val, cmp, olds = (buf("mem", t), buf("idx", "u32", "read"), buf("val", t, "read"),
                                buf("cmp", t, "read"), buf("olds", t))
    g, li = var("g", "u32"), var("li", "u32")
    args = [cmp[g], val[g]] if op == "compare_exchange" else [val[g]]
    body = [let("g", gid()), let("li", lidx())]
    if space == "storage":
        body.append(olds.set(g, mem.atomic(op, idx[g], *args)))
    else:
        sh = shared("sh", f"{t}[8]")
        body += [if_(li < 8, [sh.set(li, mem[builtin("workgroup_id") * 8 + li])]), barrier(),
                 olds.set(g, sh.atomic(op, idx[g], *args)), barrier(),
                 if_(li < 8, [mem.set(builtin("workgroup_id") * 8 + li, sh[li])])]
    return kernel(f"atomic_{op}_{space}", body, buffers=[mem, idx, val, cmp, olds], ws=(32, 1, 1),
                  shared_=[] if space == "storage" else [sh])


@pytest.mark.parametrize("space", ["storage", "shared"])
@pytest.mark.parametrize("spread", [3, 8])
@pytest.mark.parametrize("op", list(ATOMIC_REF) + ["compare_exchange"])
def test_atomics_apply_in_lane_order_with_duplicates(op, spread, space, small_batches):
    n, t = 128, "i32"
    rng = np.random.default_rng(11)
    idx = rng.integers(0, spread, n).astype(np.uint32)
    val = rng.integers(-20, 20, n).astype(np.int32)
    cmp = rng.integers(-3, 3, n).astype(np.int32)
    mem0 = rng.integers(-3, 3, 8 * (n // 32)).astype(np.int32)
    mem, olds = mem0.copy(), np.zeros(n, np.int32)
    execute(atomic_kernel(op, t, space), groups(n, 32), [mem, idx, val, cmp, olds], [])
    ref, want_olds = mem0.copy().tolist(), []
    for g in range(n):   # workgroups in order, lanes in order: the global id order of a 1-D grid
        loc = (g // 32 * 8 if space == "shared" else 0) + int(idx[g])
        old = ref[loc]
        want_olds.append(old)
        if op == "compare_exchange":
            ref[loc] = int(val[g]) if old == cmp[g] else old
        else:
            ref[loc] = ATOMIC_REF[op](old, int(val[g]))
    assert list(olds) == want_olds
    assert list(mem) == ref


def test_atomic_counter_and_f32_add_order():
    """Every lane takes a slot from one counter (olds are 0..n-1 in lane order); f32 adds accumulate in that
    order in f32, inside a divergent branch."""
    cnt, slot, acc, val = buf("cnt", "u32"), buf("slot", "u32"), buf("acc", "f32"), buf("val", "f32", "read")
    g = var("g", "u32")
    body = [let("g", gid()), slot.set(g, cnt.atomic("add", 0, 1)),
            if_((g % 3).ne(0), [do(acc.atomic("add", g % 2, val[g]))])]
    k = kernel("counter", body, buffers=[cnt, slot, acc, val])
    n = 64 * 40
    v = (np.random.default_rng(12).standard_normal(n) * 1e4).astype(np.float32)
    c, s, a = np.zeros(1, np.uint32), np.zeros(n, np.uint32), np.zeros(2, np.float32)
    execute(k, groups(n), [c, s, a, v], [])
    assert c[0] == n and np.array_equal(s, np.arange(n))
    want = [np.float32(0), np.float32(0)]
    for j in range(n):
        if j % 3:
            want[j % 2] = np.float32(want[j % 2] + v[j])
    assert list(a) == want
