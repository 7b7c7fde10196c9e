"""Tests of the CPU interpreter (khal_runtime.interpreter) against numpy and Python, on kernels built by hand with
interpreter_kit.py's builder: the errors of a kernel that runs. Out-of-bounds accesses, barriers and subgroup
operations that only part of a group reaches, division by zero, and check mode's data races and poisoned shared
memory.
"""

from __future__ import annotations

import interpreter_kit
import numpy as np
from interpreter_kit import (
    SRC,
    barrier,
    buf,
    builtin,
    const,
    do,
    failure,
    gid,
    groups,
    if_,
    intr,
    kernel,
    let,
    lidx,
    map_kernel,
    private,
    ret,
    run_map,
    shared,
    var,
)

from khal_runtime.interpreter import execute

# the kit's fixtures: numpy's floating-point warnings off in every test (autouse)
quiet_references = interpreter_kit.quiet_references


def test_out_of_bounds_read_and_write():
    out, src = buf("out", "f32"), buf("src", "f32", "read")
    i = var("i", "u32")
    k = kernel("oob_read", [let("i", gid()), if_(i < out.len(), [out.set(i, src[i] * 2.0, at=17)])],
               buffers=[out, src])
    msg = failure(k, groups(100), [np.zeros(100, np.float32), np.zeros(90, np.float32)])
    for part in ["kernel 'oob_read'", f"{SRC}:17", "read of buffer 'src'", "index 90", "length 90",
                 "workgroup (1, 0, 0), local_index 26"]:
        assert part in msg, (part, msg)
    k = kernel("oob_write", [let("i", gid()), out.set(i + 3, 1.0, at=23)], buffers=[out])
    msg = failure(k, (2, 1, 1), [np.zeros(100, np.float32)])
    for part in ["kernel 'oob_write'", f"{SRC}:23", "write of buffer 'out'", "index 100", "length 100",
                 "workgroup (1, 0, 0), local_index 33"]:
        assert part in msg, (part, msg)


def test_out_of_bounds_shared_and_private():
    sh, pa = shared("sh", "f32[4][8]"), private("pa", "i32[3]")
    li = var("li", "u32")
    k = kernel("oob_sh", [let("li", lidx()), sh.set((li // 8, li % 8), 1.0, at=31)], ws=(64, 1, 1), shared_=[sh])
    assert "index 4 of dimension 0, size 4" in failure(k, (1, 1, 1), [])
    k = kernel("oob_pa", [let("li", lidx()), pa.set(li % 4, const("i32", 1), at=32)], arrays=[pa])
    msg = failure(k, (1, 1, 1), [])
    assert f"{SRC}:32" in msg and "private array 'pa'" in msg and "local_index 3" in msg


def test_barrier_reached_by_part_of_a_workgroup():
    li = var("li", "u32")
    k = kernel("bad_barrier", [let("li", lidx()), if_(li < 16, [barrier(at=41)])])
    msg = failure(k, (2, 1, 1), [])
    assert f"{SRC}:41" in msg and "barrier reached by 16 of the 64" in msg and "control flow" in msg
    k = kernel("returned", [let("li", lidx()), if_(li.eq(5), [ret()]), barrier(at=44)])
    msg = failure(k, (1, 1, 1), [])
    assert f"{SRC}:44" in msg and "returned before it" in msg and "local_index 5" in msg
    # a barrier that whole workgroups skip is fine
    k = kernel("uniform", [if_(builtin("workgroup_id").eq(1), [barrier()])])
    execute(k, (3, 1, 1), [], [])


def test_subgroup_op_reached_by_part_of_a_subgroup():
    out = buf("out", "i32")
    li = var("li", "u32")
    k = kernel("bad_sg", [let("li", lidx()),
                          if_(li < 40, [out.set(li, intr("subgroup_add", const("i32", 1)), at=52)])],
               buffers=[out])
    msg = failure(k, (1, 1, 1), [np.zeros(64, np.int32)])
    assert f"{SRC}:52" in msg and "subgroup_add reached by 8 of the 32" in msg
    execute(k, (1, 1, 1), [np.zeros(64, np.int32)], [], subgroup_size=8)   # whole subgroups of 8: fine
    k = kernel("bad_shuffle", [out.set(lidx(), intr("subgroup_shuffle", const("i32", 1), lidx()), at=55)],
               buffers=[out])
    assert "subgroup_shuffle reads lane 32 of a subgroup of 32" in failure(k, (1, 1, 1), [np.zeros(64, np.int32)])


def test_integer_division_by_zero():
    k = map_kernel("div0", "i32", lambda a, b: a // b, ["i32", "i32"])
    msg = failure(k, (1, 1, 1), [np.zeros(4, np.int32), np.ones(4, np.int32), np.array([1, 2, 0, 3], np.int32)])
    assert "integer division by zero (floordiv)" in msg and "local_index 2" in msg
    # inactive lanes may divide by zero: only lanes 0..3 run the division
    k = map_kernel("mod0", "i32", lambda a, b: a % b, ["i32", "i32"])
    got = run_map(k, "i32", np.array([7, 8], np.int32), np.array([2, 3], np.int32))
    assert list(got) == [1, 2]


def test_shared_race_detected_in_check_mode():
    sh, out = shared("sh", "u32[64]"), buf("out", "u32")
    li = var("li", "u32")
    # each lane writes its slot, then reads its neighbour's without a barrier
    body = [let("li", lidx()), sh.set(li, li, at=61), out.set(li, sh[(li + 1) % 64], at=62)]
    k = kernel("sh_race", body, buffers=[out], shared_=[sh])
    msg = failure(k, (1, 1, 1), [np.zeros(64, np.uint32)], check=True)
    assert "data race on shared array 'sh' element [1]" in msg
    assert f"{SRC}:62" in msg and f"wrote it at {SRC}:61" in msg
    execute(k, (1, 1, 1), [np.zeros(64, np.uint32)], [])   # not checked: runs
    fixed = kernel("sh_ok", body[:2] + [barrier()] + body[2:], buffers=[out], shared_=[sh])
    got = np.zeros(64, np.uint32)
    execute(fixed, (1, 1, 1), [got], [], check=True)
    assert np.array_equal(got, (np.arange(64) + 1) % 64)
    # two lanes writing one location in one statement
    k = kernel("sh_ww", [sh.set(lidx() // 2, 1, at=66)], shared_=[sh])
    assert "element [0]" in failure(k, (1, 1, 1), [], check=True)


def test_storage_races_detected_in_check_mode():
    out = buf("out", "u32")
    g = var("g", "u32")
    k = kernel("st_ww", [let("g", gid()), if_(lidx().eq(0), [out.set(0, g, at=71)])], buffers=[out])
    msg = failure(k, (3, 1, 1), [np.zeros(1, np.uint32)], check=True)
    assert "data race on buffer 'out' element 0" in msg and "workgroup (1, 0, 0)" in msg and "wrote it" in msg
    # a read of an element that a lane of another workgroup writes
    k = kernel("st_rw", [let("g", gid()), let("x", out[g], at=74), out.set((g + 64) % 128, 5, at=75)],
               buffers=[out])
    msg = failure(k, (2, 1, 1), [np.zeros(128, np.uint32)], check=True)
    assert f"{SRC}:75" in msg and f"read it at {SRC}:74" in msg
    # inside one workgroup, a storage barrier orders the accesses
    body = [let("g", gid()), out.set(g, g), barrier("storage"), let("x", out[(g + 1) % 64])]
    execute(kernel("st_ok", body, buffers=[out]), (1, 1, 1), [np.zeros(64, np.uint32)], [], check=True)
    # and atomics do not race
    k = kernel("st_atomic", [do(out.atomic("add", 0, 1))], buffers=[out])
    execute(k, (4, 1, 1), [np.zeros(1, np.uint32)], [], check=True)


def test_check_mode_poisons_shared_memory():
    sh, out = shared("sh", "f32[64]"), buf("out", "f32")
    shi, outi = shared("shi", "u32[64]"), buf("outi", "u32")
    k = kernel("poison", [out.set(lidx(), sh[lidx()]), outi.set(lidx(), shi[lidx()])], buffers=[out, outi],
               shared_=[sh, shi])
    f, u = np.zeros(64, np.float32), np.zeros(64, np.uint32)
    execute(k, (1, 1, 1), [f, u], [], check=True)
    assert np.isnan(f).all() and (u == 0xDEADBEEF).all()
    execute(k, (1, 1, 1), [f, u], [])
    assert (f == 0).all() and (u == 0).all()
