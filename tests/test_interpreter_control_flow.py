"""Tests of the CPU interpreter (khal_runtime.interpreter) against numpy and Python, on kernels built by hand with
interpreter_kit.py's builder: helper functions, loops, branches, private arrays, and divergence between the
lanes and workgroups of a grid.
"""

from __future__ import annotations

import itertools

import interpreter_kit
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from interpreter_kit import (
    SRC,
    barrier,
    brk,
    buf,
    builtin,
    call,
    const,
    cont,
    failure,
    for_,
    func,
    gid,
    groups,
    if_,
    kernel,
    land,
    let,
    lidx,
    private,
    ret,
    select,
    shared,
    var,
    while_,
)

from khal_runtime import interpreter
from khal_runtime.interpreter import execute

# the kit's fixtures: numpy's floating-point warnings off in every test (autouse)
quiet_references = interpreter_kit.quiet_references


def test_helper_with_early_returns_in_divergent_lanes():
    x, j, y = var("x", "i32"), var("j", "u32"), var("y", "i32")
    shape = func("shape", [("x", "i32")], "i32", [
        if_(x < 0, [ret(-x * 2)]),
        if_(x > 100, [ret(const("i32", 100))]),
        let("y", x + 1),
        ret(y * 3)])
    lowest = func("lowest_bit", [("x", "i32")], "u32", [
        for_("j", const("u32", 0), 32, 1, [if_(((x >> j) & 1).ne(0), [ret(j)])]),
        ret(const("u32", 99))])
    out, out2, src = buf("out", "i32"), buf("out2", "u32"), buf("src", "i32", "read")
    i = var("i", "u32")
    body = [let("i", gid()),
            if_(i < src.len(), [out.set(i, call("shape", "i32", src[i])),
                                out2.set(i, call("lowest_bit", "u32", src[i]))])]
    k = kernel("helpers", body, buffers=[out, out2, src], functions=[shape, lowest])
    s = np.array([-5, 0, 7, 150, 100, 101, -1, 64, 12, 0], np.int32)
    o, o2 = np.zeros_like(s), np.zeros(len(s), np.uint32)
    execute(k, (1, 1, 1), [o, o2, s], [])

    def py_shape(v):
        return -v * 2 if v < 0 else 100 if v > 100 else (v + 1) * 3
    assert list(o) == [py_shape(v) for v in s]
    assert list(o2) == [next((b for b in range(32) if (int(v) >> b) & 1), 99) for v in s]


def test_loops_break_continue_negative_step():
    src = buf("src", "i32", "read")
    o1, o2, o3, o4, o5 = (buf(f"o{k}", "i32") for k in range(1, 6))
    x, j, tot, k_, a, b, c, s = (var(n, "i32") for n in ("x", "j", "tot", "k", "a", "b", "c", "s"))
    i = var("i", "u32")
    body = [
        let("i", gid()),
        if_(i >= src.len(), [ret()]),
        let("x", src[i]),
        # for j in range(x, -1, -1): skip multiples of 3, stop once tot > 50
        let("tot", const("i32", 0)),
        for_("j", x, -1, -1, [if_((j % 3).eq(0), [cont()]), if_(tot > 50, [brk()]), let("tot", tot + j)]),
        o1.set(i, tot), o2.set(i, j),
        # while k*k < x: k += 1
        let("k", const("i32", 0)),
        while_(k_ * k_ < x, [let("k", k_ + 1)]),
        o3.set(i, k_),
        # nested loops with an inner break: count pairs a <= b < 4 with b != 2 before the break
        let("c", const("i32", 0)),
        for_("a", const("i32", 0), 4, 1, [for_("b", a, 4, 1, [if_(b.eq(2), [brk()]), let("c", c + 1)])]),
        o4.set(i, c + x),
        # a per-lane (non-constant) positive step
        let("s", x % 4 + 1), let("c", const("i32", 0)),
        for_("j", const("i32", 0), 20, s, [let("c", c + j)]),
        o5.set(i, c),
    ]
    k = kernel("loops", body, buffers=[src, o1, o2, o3, o4, o5])
    xs = np.array([0, 1, 2, 5, 9, 10, 17, 30, 40, -3, 100], np.int32)
    outs = [np.zeros_like(xs) for _ in range(5)]
    execute(k, (1, 1, 1), [xs, *outs], [])

    def py(x):
        tot, j = 0, x
        while j > -1:
            if j % 3 != 0:
                if tot > 50:
                    break
                tot += j
            j -= 1
        k = 0
        while k * k < x:
            k += 1
        c = sum(1 for a in range(4) for b in itertools.takewhile(lambda b: b != 2, range(a, 4)))
        return [tot, j, k, c + x, sum(range(0, 20, x % 4 + 1))]
    assert [list(o) for o in zip(*outs)] == [py(int(v)) for v in xs]


def test_loop_bounds_are_evaluated_once_before_the_variable_changes():
    out = buf("out", "i32")
    i, n, c = var("i", "i32"), var("n", "i32"), var("c", "i32")
    body = [let("n", const("i32", 3)), let("i", const("i32", 10)), let("c", const("i32", 0)),
            # range(i, i + n): 10, 11, 12 although the body changes n and the loop changes i
            for_("i", i, i + n, 1, [let("n", const("i32", 100)), let("c", c * 100 + i)]),
            out.set(0, c), out.set(1, i)]
    got = np.zeros(2, np.int32)
    execute(kernel("once", body, buffers=[out], ws=(1, 1, 1)), (1, 1, 1), [got], [])
    assert list(got) == [101112, 13]


def test_non_constant_step_must_be_positive():
    out, src = buf("out", "i32"), buf("src", "i32", "read")
    j = var("j", "i32")
    k = kernel("step0", [for_("j", const("i32", 0), 10, src[lidx()], [out.set(lidx(), j)], at=88)],
               buffers=[out, src], ws=(4, 1, 1))
    msg = failure(k, (1, 1, 1), [np.zeros(4, np.int32), np.array([1, 2, 0, 1], np.int32)])
    assert f"{SRC}:88" in msg and "for loop step 0 is not positive" in msg and "local_index 2" in msg


def test_private_arrays_with_per_lane_indices_and_per_call_zeroing():
    out = buf("out", "u32")
    hist, tmp = private("hist", "u32[4]"), private("tmp", "u32[2]")
    li, j, x = var("li", "u32"), var("j", "u32"), var("x", "u32")
    # the helper's private array starts at zero on every call, even after the first call wrote to it
    bump = func("bump", [("x", "u32")], "u32", [tmp.set(x % 2, tmp[x % 2] + x), ret(tmp[0] + tmp[1])],
                arrays=[tmp])
    body = [let("li", lidx()),
            for_("j", const("u32", 0), li % 5, 1, [hist.set((li + j) % 4, hist[(li + j) % 4] + 1)]),
            out.set(li * 6, hist[0]), out.set(li * 6 + 1, hist[1]), out.set(li * 6 + 2, hist[2]),
            out.set(li * 6 + 3, hist[3]),
            out.set(li * 6 + 4, call("bump", "u32", li)), out.set(li * 6 + 5, call("bump", "u32", li + 1))]
    got = np.zeros(6 * 64, np.uint32)
    execute(kernel("private", body, buffers=[out], arrays=[hist], functions=[bump]), (1, 1, 1), [got], [])
    for li_ in range(64):
        h = [0] * 4
        for j_ in range(li_ % 5):
            h[(li_ + j_) % 4] += 1
        assert list(got[li_ * 6:li_ * 6 + 6]) == h + [li_, li_ + 1], li_


def test_error_inside_a_helper_names_the_call_site():
    src = buf("src", "f32", "read")
    x = var("x", "u32")
    get = func("get", [("x", "u32")], "f32", [ret(src[x * 2], at=91)])
    out = buf("out", "f32")
    k = kernel("chain", [out.set(lidx(), call("get", "f32", lidx()), at=95)], buffers=[out, src], functions=[get])
    msg = failure(k, (1, 1, 1), [np.zeros(64, np.float32), np.zeros(64, np.float32)])
    assert f"{SRC}:91" in msg and f"called from {SRC}:95" in msg and "index 64, length 64" in msg


def test_workgroup_uniform_divergence_with_barriers_and_last_lane_wins():
    sh, out = shared("sh", "u32[2]"), buf("out", "u32")
    w, li = var("w", "u32"), var("li", "u32")
    body = [let("w", builtin("workgroup_id")), let("li", lidx()),
            if_((w % 2).eq(0),
                # every lane stores to one element: the last lane in order wins (a race, unchecked here)
                [sh.set(0, li * 10 + w), barrier(), out.set(w * 64 + li, sh[0])],
                [sh.set(1, li), barrier(), out.set(w * 64 + li, sh[1] + 1000)])]
    got = np.zeros(64 * 5, np.uint32)
    execute(kernel("uniform_div", body, buffers=[out], shared_=[sh]), (5, 1, 1), [got], [])
    want = [630 + w if w % 2 == 0 else 1063 for w in range(5) for _ in range(64)]
    assert list(got) == want


@settings(max_examples=40, deadline=None)
@given(mul=st.sampled_from([0, 1, 3, 1 << 28]), add=st.integers(-300, 300), bound=st.integers(0, 3000),
       n=st.integers(1, 2000), lanes=st.sampled_from([64, 512]))
def test_symbolic_global_id_matches_plain_arithmetic(mul, add, bound, n, lanes):
    """Arithmetic, comparisons, casts and slices on global_id.x, in batches of `lanes` lanes, against numpy."""
    out, src = buf("out", "u32"), buf("src", "u32", "read")
    i, j = var("i", "u32"), var("j", "u32")
    off = (i.cast("i32") + add).cast("u32")
    body = [let("i", gid()), let("j", i * mul + add % 2**32),
            if_(land(i < out.len(), off < src.len()),
                [out.set(i, select(j < bound, j, src[off] + select(j.eq(add % 2**32), 1, 0)))])]
    old = interpreter.BATCH_LANES
    interpreter.BATCH_LANES = lanes
    try:
        k = kernel("affine", body, buffers=[out, src], ws=(32, 1, 1))
    finally:
        interpreter.BATCH_LANES = old
    s = np.arange(5000, dtype=np.uint32) * 7
    got = np.zeros(n, np.uint32)
    execute(k, groups(n, 32), [got, s], [])
    ii = np.arange(n, dtype=np.int64)
    jj = (ii * mul + add) % 2**32
    o = ii + add
    ok = (o >= 0) & (o < len(s))
    want = np.where(jj < bound, jj, s[np.where(ok, o, 0)] + (jj == add % 2**32))
    assert np.array_equal(got, np.where(ok, want, 0))
