"""Kernels that each pin down rules of the IR, for the tests/test_render*.py modules to render, compile and run:
every intrinsic on every operand type, helpers, loops, division, shifts, the grid, literals, parameters, private
arrays, atomics, declarations and conversions; built by hand with the IR builder of test_render_kit.py."""

from __future__ import annotations

from test_render_kit import (
    BREAK,
    CONTINUE,
    RO,
    RW,
    assign,
    atomic,
    barrier,
    bstore,
    buf,
    builtin,
    call,
    const,
    do,
    for_,
    function,
    gid,
    if_,
    intr,
    kernel,
    length,
    lid,
    load,
    param,
    ret,
    select,
    store,
    var,
    while_,
)

from khal_runtime import ir

# every intrinsic on every operand type that both GPU targets allow (the table of operations)
INTRINSIC_TYPES = {name: sig.allowed(("webgpu", "cuda")) for name, sig in ir.INTRINSICS.items()}
RESULT = {name: sig.result for name, sig in ir.INTRINSICS.items() if sig.result != "T"}


def intrinsic_slots(t: str) -> list[tuple[str, str, int]]:
    """(intrinsic, output type, index) of the results `every_intrinsic(t)` writes: lane i stores result `index`
    at `out_<type>[i * 64 + index]` (bool results as u32)."""
    slots, count = [], {}
    for name, types in INTRINSIC_TYPES.items():
        if t in types:
            out = {"bool": "u32"}.get(RESULT.get(name, t), RESULT.get(name, t))
            count[out] = count.get(out, -1) + 1
            slots.append((name, out, count[out]))
    return slots


def every_intrinsic(t: str) -> ir.Kernel:
    """Every intrinsic that takes a `t` (bool: the subgroup votes), on arguments x[4 i + j] (bool: x != 0; the bit
    offset and count of extract/insert_bits: x[4 i + 2] & 15 and 8; shuffles: lane 1, lane ^ 1, +-1; other arguments of
    a fixed type: x[4 i + j] converted to it)."""
    elem = "u32" if t == "bool" else t
    i = var("u32", "i")
    x = lambda j: buf(elem, "x", i * 4 + j)
    arg = lambda j: x(j).ne(0) if t == "bool" else x(j)
    body = [assign("i", gid())]
    for name, out, index in intrinsic_slots(t):
        sig_args = ir.INTRINSICS[name].args
        args = [arg(j) for j, a in enumerate(sig_args) if j == 0 or a == "T"]
        if name in ("extract_bits", "insert_bits"):
            args += [x(2).cast("u32") & 15, const("u32", 8)]
        elif name.startswith("subgroup_shuffle"):
            args.append(const("u32", 1))
        else:                   # the other arguments of a fixed signature (dot4_i8's b and acc): x[4 i + j] cast
            args += [x(j).cast(a) for j, a in enumerate(sig_args) if j > 0 and a != "T"]
        value = intr(RESULT.get(name, t), name, *args)
        value = select(value, const("u32", 1), const("u32", 0)) if value.t == "bool" else value
        body.append(bstore(f"out_{out}", i * 64 + index, value, out))
    outs = sorted({out for _, out, _ in intrinsic_slots(t)})
    return kernel(f"every_intrinsic_{t}", body, [("x", elem, RO)] + [(f"out_{o}", o, RW) for o in outs])


def helpers() -> ir.Kernel:
    """Helpers that use buffers, a length and a parameter (CUDA passes them on), call each other and return early."""
    i, j = var("u32", "i"), var("u32", "j")
    clamp_index = function("clamp_index", [("i", "u32")], "u32", [
        if_(i >= length("x"), [ret(length("x") - 1)]),
        ret(i),
    ])
    scaled = function("scaled", [("i", "u32")], "f32", [
        assign("j", call("u32", "clamp_index", i)),
        ret(buf("f32", "x", j) * param("f32", "scale")),
    ])
    write = function("write", [("i", "u32"), ("v", "f32")], None, [
        if_(var("f32", "v") < 0.0, [ret()]),
        bstore("y", i, var("f32", "v")),
    ])
    return kernel("helpers", [
        assign("i", gid()),
        if_(i >= length("y"), [ret()]),
        do(call("void", "write", i, call("f32", "scaled", i + 1))),
    ], [("x", "f32", RO), ("y", "f32", RW)], scalars=[("scale", "f32")], functions=[write, scaled, clamp_index])


def loops() -> ir.Kernel:
    """For (up, down, with the variable read after the loop), While, Break and Continue."""
    i, k, acc, j, last = var("u32", "i"), var("i32", "k"), var("i32", "acc"), var("i32", "j"), var("i32", "last")
    return kernel("loops", [
        assign("i", gid()),
        if_(i >= length("out"), [ret()]),
        assign("acc", const("i32", 0)),
        for_("k", 0, 20, 1, [
            if_((k % 3).eq(0), [CONTINUE]),
            if_(acc > i.cast("i32") * 4, [BREAK]),
            assign("acc", acc + k),
        ], "i32"),
        assign("last", k),
        for_("k", 10, 0, -2, [assign("acc", acc - k)], "i32"),
        assign("j", const("i32", 10)),
        while_(j > 0, [
            assign("j", j - 3),
            if_(j.eq(4), [CONTINUE]),
            assign("acc", acc * 2 - j),
        ]),
        bstore("out", i, acc * 100 + last + k, "i32"),
    ], [("out", "i32", RW)])


def division() -> ir.Kernel:
    """Python's // and % on signed, unsigned and float operands."""
    i = var("u32", "i")
    a, b = buf("i32", "a", i), buf("i32", "b", i)
    fa, fb = a.cast("f32"), b.cast("f32")
    return kernel("division", [
        assign("i", gid()),
        if_(i >= length("a"), [ret()]),
        bstore("q", i, a // b, "i32"), bstore("r", i, a % b, "i32"),
        bstore("uq", i, a.bitcast("u32") // b.bitcast("u32"), "u32"),
        bstore("ur", i, a.bitcast("u32") % b.bitcast("u32"), "u32"),
        bstore("fq", i, fa // fb), bstore("fr", i, fa % fb),
    ], [("a", "i32", RO), ("b", "i32", RO), ("q", "i32", RW), ("r", "i32", RW), ("uq", "u32", RW),
        ("ur", "u32", RW), ("fq", "f32", RW), ("fr", "f32", RW)])


def shifts() -> ir.Kernel:
    """Shift amounts taken modulo the bit width; signed right shifts are arithmetic."""
    i = var("u32", "i")
    x, s = buf("i32", "x", i), buf("u32", "s", i)
    return kernel("shifts", [
        assign("i", gid()),
        if_(i >= length("x"), [ret()]),
        bstore("shl", i, x << s, "i32"), bstore("shr", i, x >> s, "i32"),
        bstore("ushr", i, x.bitcast("u32") >> s.bitcast("i32"), "u32"),
        bstore("wide", i, x.cast("i64") << s >> 3, "i64"),
        bstore("fixed", i, (x << 33) + (x >> 65), "i32"),
    ], [("x", "i32", RO), ("s", "u32", RO), ("shl", "i32", RW), ("shr", "i32", RW), ("ushr", "u32", RW),
        ("wide", "i64", RW)] + [("fixed", "i32", RW)])


def grid_ids() -> ir.Kernel:
    """Each workgroup writes its logical id and the logical grid size (the folded-grid test)."""
    w = builtin("workgroup_id")
    return kernel("grid_ids", [
        if_(lid().eq(0), [bstore("out", w, w * 100 + builtin("num_workgroups"), "u32")]),
        bstore("gid", gid(), gid() + 1, "u32"),
    ], [("out", "u32", RW), ("gid", "u32", RW)], wg=(4, 1, 1))


LITERALS_F32 = [0.1, 1 / 3, 1e-45, 1.17549435e-38, 3.4028234663852886e38, -0.0, 16777217.0, 2.5, -7.0,
                0.30000001192092896, 1e10, float("inf"), float("-inf"), float("nan")]
LITERALS_F64 = [0.1, 1 / 3, 5e-324, 1.7976931348623157e308, -2.0, float("inf"), float("nan")]
LITERALS_I64 = [-(1 << 63), (1 << 63) - 1, -1, 1 << 40]


def literals() -> ir.Kernel:
    body = [bstore("f", j, const("f32", v)) for j, v in enumerate(LITERALS_F32)]
    body += [bstore("d", j, const("f64", v), "f64") for j, v in enumerate(LITERALS_F64)]
    body += [bstore("l", j, const("i64", v), "i64") for j, v in enumerate(LITERALS_I64)]
    body += [bstore("u", 0, const("u64", (1 << 64) - 1), "u64"), bstore("u", 1, const("u64", 1 << 63), "u64"),
             bstore("i", 0, const("i32", -(1 << 31)), "i32"), bstore("i", 1, -const("i32", -5), "i32"),
             bstore("h", 0, const("f16", 0.1), "f16"), bstore("h", 1, const("f16", 65504.0), "f16"),
             bstore("h", 2, const("f16", float("-inf")), "f16"), bstore("h", 3, const("f16", 6e-8), "f16")]
    return kernel("literals", [if_(gid().eq(0), body)],
                  [("f", "f32", RW), ("d", "f64", RW), ("l", "i64", RW), ("u", "u64", RW), ("i", "i32", RW),
                   ("h", "f16", RW)], wg=(1, 1, 1))


STRUCTS = {"Shape": [("rows", "u32"), ("scale", "f64"), ("flip", "bool"), ("bias", "f32")]}


def parameters() -> ir.Kernel:
    """Scalars and a struct (with a bool, and an f64 that needs padding) in push constants / kernel arguments; a
    struct local, and a helper that takes a struct by value."""
    shape, copy, s = param("Shape", "shape"), var("Shape", "copy"), var("Shape", "s")
    area = function("area", [("s", "Shape")], "f64",
                    [ret(s.field("u32", "rows").cast("f64") * s.field("f64", "scale"))])
    return kernel("parameters", [
        assign("copy", shape),
        if_(gid().eq(0), [
            bstore("out", 7, call("f64", "area", copy), "f64"),
            bstore("out", 0, param("i32", "offset").cast("f64"), "f64"),
            bstore("out", 1, shape.field("u32", "rows").cast("f64"), "f64"),
            bstore("out", 2, shape.field("f64", "scale"), "f64"),
            bstore("out", 3, select(shape.field("bool", "flip"), const("f64", 1.0), const("f64", -1.0)), "f64"),
            bstore("out", 4, shape.field("f32", "bias").cast("f64"), "f64"),
            bstore("out", 5, select(param("bool", "on"), const("f64", 1.0), const("f64", -1.0)), "f64"),
            bstore("out", 6, param("f64", "big"), "f64"),
        ]),
    ], [("out", "f64", RW)], scalars=[("on", "bool"), ("offset", "i32"), ("shape", "Shape"), ("big", "f64")],
        structs=STRUCTS, functions=[area])


def private_arrays() -> ir.Kernel:
    """A private array that starts at zero and keeps its contents across loop iterations."""
    i, k = var("u32", "i"), var("u32", "k")
    hist = lambda j: load("private", "u32", "hist", j)
    return kernel("private_arrays", [
        assign("i", gid()),
        for_("k", 0, i % 5, 1, [store("private", "hist", [k % 4], hist(k % 4) + k + 1)]),
        bstore("out", i, hist(0) + hist(1) * 10 + hist(2) * 100 + hist(3) * 1000, "u32"),
    ], [("out", "u32", RW)], arrays={"hist": "u32[4]"})


def atomics(space: str) -> ir.Kernel:
    """Every atomic operation on i32 and u32, on a buffer or a shared array."""
    ops = ("add", "sub", "min", "max", "and", "or", "xor", "exchange")
    body: list = [assign("li", lid())]
    if space == "shared":
        body += [if_(var("u32", "li").eq(0), [store("shared", "cells", [j], const("i32", 0), "i32")
                                              for j in range(len(ops) + 1)]), barrier()]
    li = var("u32", "li")
    for j, op in enumerate(ops):
        body.append(do(atomic("i32", op, space, "cells", [j], li.cast("i32") - 3)))
    body.append(do(atomic("i32", "compare_exchange", space, "cells", [len(ops)], 0, li.cast("i32") + 1)))
    body.append(do(atomic("u32", "max", "storage", "ucells", [0], li)))
    if space == "shared":
        body += [barrier(), if_(li.eq(0), [bstore("ucells", j + 1, load("shared", "i32", "cells", j).bitcast("u32"),
                                                  "u32") for j in range(len(ops) + 1)])]
    buffers = [("ucells", "u32", RW)] + ([("cells", "i32", RW)] if space == "storage" else [])
    return kernel(f"atomics_{space}", body, buffers, wg=(32, 1, 1),
                  shared={"cells": f"i32[{len(ops) + 1}]"} if space == "shared" else None)


def declarations() -> ir.Kernel:
    i, k, x, y, z, w = (var(t, name) for t, name in (("u32", "i"), ("u32", "k"), ("u32", "x"), ("u32", "y"),
                                                      ("u32", "z"), ("u32", "w")))
    return kernel("declarations", [
        assign("i", gid()),
        for_("k", 0, 8, 1, [
            if_(k.eq(i % 8), [assign("x", k)]),         # x carries over iterations: zero, declared before the loop
            assign("y", x * 2),                          # y is written first in each iteration: declared inside
            assign("w", w + y),
        ]),
        if_(i > 3, [assign("z", 1)], [assign("z", 2)]),  # z is written in both branches: zero before the if
        bstore("out", i, x + z + w, "u32"),
    ], [("out", "u32", RW)])


def conversions() -> ir.Kernel:
    """The IR's casts (integers wrap or extend by the source's signedness, floats round to nearest even, floats
    truncate toward zero) and its comparisons (false with NaN, except `ne`)."""
    i = var("u32", "i")
    x, f, l = buf("i32", "x", i), buf("f32", "f", i), buf("i64", "l", i)
    compare = lambda a, b: sum(((select(c, const("u32", 1 << j), const("u32", 0))) for j, c in enumerate(
        [a < b, a <= b, a > b, a >= b, a.eq(b), a.ne(b)])), const("u32", 0))
    return kernel("conversions", [
        assign("i", gid()),
        if_(i >= length("x"), [ret()]),
        bstore("u", i, x.cast("u32"), "u32"), bstore("ul", i, x.cast("u64"), "u64"),
        bstore("lu", i, x.cast("u32").cast("i64"), "i64"), bstore("trunc", i, l.cast("i32"), "i32"),
        bstore("ftoi", i, f.cast("i32"), "i32"), bstore("itof", i, x.cast("f32")),
        bstore("utof", i, x.cast("u32").cast("f32")), bstore("ltod", i, l.cast("f64"), "f64"),
        bstore("dtof", i, l.cast("f64").cast("f32")), bstore("half", i, f.cast("f16"), "f16"),
        bstore("flags", i, (f > 0.0).cast("u32") + (x < 0).cast("f32").cast("u32") * 2, "u32"),
        bstore("cmp", i, compare(f, f * 2.0), "u32"),
    ], [("x", "i32", RO), ("f", "f32", RO), ("l", "i64", RO), ("u", "u32", RW), ("ul", "u64", RW),
        ("lu", "i64", RW), ("trunc", "i32", RW), ("ftoi", "i32", RW), ("itof", "f32", RW), ("utof", "f32", RW),
        ("ltod", "f64", RW), ("dtof", "f32", RW), ("half", "f16", RW), ("flags", "u32", RW), ("cmp", "u32", RW)])

