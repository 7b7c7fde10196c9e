"""Whole programs, shaped like the example kernels, that the tests/test_render*.py modules render, compile and run:
an elementwise add, reductions in shared memory, a tiled matmul, subgroup scans, f16 math, the unpacking of
quantized words and 64-bit math; built by hand with the IR builder of test_render_kit.py."""

from __future__ import annotations

from test_render_kit import (
    RO,
    RW,
    assign,
    atomic,
    barrier,
    bstore,
    buf,
    builtin,
    const,
    do,
    for_,
    gid,
    if_,
    intr,
    kernel,
    land,
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


def add_assign() -> ir.Kernel:
    i = var("u32", "i")
    return kernel("add_assign", [
        assign("i", gid()),
        if_(i < length("a"), [bstore("a", i, buf("f32", "a", i) + buf("f32", "b", i))]),
    ], [("a", "f32", RW), ("b", "f32", RO)])


def reduce_sum(t: str = "u32") -> ir.Kernel:
    """Shared-memory tree reduction of each workgroup, then one atomic add per workgroup."""
    li, i, stride = var("u32", "li"), var("u32", "i"), var("u32", "stride")
    s = lambda j: load("shared", t, "partial", j)
    return kernel(f"reduce_sum_{t}", [
        assign("li", lid()), assign("i", gid()),
        store("shared", "partial", [li], select(i < length("x"), buf(t, "x", i), const(t, 0)), t),
        barrier(),
        assign("stride", 32),
        while_(stride > 0, [
            if_(li < stride, [store("shared", "partial", [li], s(li) + s(li + stride), t)]),
            barrier(),
            assign("stride", stride >> 1),
        ]),
        if_(li.eq(0), [do(atomic(t, "add", "storage", "out", [0], s(0)))]),
    ], [("x", t, RO), ("out", t, RW)], shared={"partial": f"{t}[64]"}, template={"T": t})


def matmul(tile: int = 8) -> ir.Kernel:
    """C = A @ B through TILE x TILE shared tiles; A is m x k, B is k x n, row-major."""
    row, col, tx, ty, t, j = (var("u32", x) for x in ("row", "col", "tx", "ty", "t", "j"))
    m, nn, kk = param("u32", "m"), param("u32", "n"), param("u32", "k")
    ka, kb, acc = var("u32", "ka"), var("u32", "kb"), var("f32", "acc")
    return kernel("matmul", [
        assign("row", gid(1)), assign("col", gid(0)), assign("tx", lid(0)), assign("ty", lid(1)),
        assign("acc", const("f32", 0.0)),
        for_("t", 0, (kk + (tile - 1)) // tile, 1, [
            assign("ka", t * tile + tx), assign("kb", t * tile + ty),
            store("shared", "a_tile", [ty, tx], select(land(row < m, ka < kk), buf("f32", "a", row * kk + ka), 0.0),
                  "f32"),
            store("shared", "b_tile", [ty, tx], select(land(kb < kk, col < nn), buf("f32", "b", kb * nn + col), 0.0),
                  "f32"),
            barrier(),
            for_("j", 0, tile, 1, [
                assign("acc", acc + load("shared", "f32", "a_tile", ty, j) * load("shared", "f32", "b_tile", j, tx))]),
            barrier(),
        ]),
        if_(land(row < m, col < nn), [bstore("c", row * nn + col, acc)]),
    ], [("a", "f32", RO), ("b", "f32", RO), ("c", "f32", RW)], scalars=[("m", "u32"), ("n", "u32"), ("k", "u32")],
        wg=(tile, tile, 1), shared={"a_tile": f"f32[{tile}][{tile + 1}]", "b_tile": f"f32[{tile}][{tile}]"},
        template={"TILE": tile})


def subgroup_scan() -> ir.Kernel:
    """Subgroup sums (one atomic per subgroup), prefix sums, and the subgroup size the device used."""
    i, v, total = var("u32", "i"), var("u32", "v"), var("u32", "total")
    return kernel("subgroup_scan", [
        assign("i", gid()),
        assign("v", select(i < length("x"), buf("u32", "x", i), const("u32", 0))),
        assign("total", intr("u32", "subgroup_add", v)),
        if_(builtin("subgroup_invocation_id").eq(0), [do(atomic("u32", "add", "storage", "out", [0], total))]),
        if_(i.eq(0), [bstore("out", 1, builtin("subgroup_size"), "u32"),
                      bstore("out", 2, builtin("num_subgroups"), "u32")]),
        if_(i < length("x"), [
            bstore("inclusive", i, intr("u32", "subgroup_inclusive_add", v), "u32"),
            bstore("exclusive", i, intr("u32", "subgroup_exclusive_add", v), "u32"),
            bstore("first", i, intr("u32", "subgroup_broadcast_first", v) + builtin("subgroup_id") * 1000, "u32"),
        ]),
    ], [("x", "u32", RO), ("out", "u32", RW), ("inclusive", "u32", RW), ("exclusive", "u32", RW),
        ("first", "u32", RW)])


def f16_math() -> ir.Kernel:
    """f16 loads, arithmetic (rounded after each operation), shared f16 memory, conversions and stores."""
    i, h = var("u32", "i"), var("f16", "h")
    x = buf("f16", "x", i)
    return kernel("f16_math", [
        assign("i", gid()),
        store("shared", "stage", [lid()], select(i < length("x"), x, const("f16", 0.0)), "f16"),
        barrier(),
        if_(i < length("x"), [
            assign("h", load("shared", "f16", "stage", lid())),
            # no `a * b + c` shape, which GLSL may fuse (docs/IR.md, Targets)
            bstore("y", i, (h + const("f16", 1.5)) * h * (h - const("f16", 3.0)), "f16"),
            bstore("wide", i, (h * const("f16", 0.1)).cast("f32") + buf("f32", "w", i).cast("f16").cast("f32"), "f32"),
        ]),
    ], [("x", "f16", RO), ("y", "f16", RW), ("w", "f32", RO), ("wide", "f32", RW)], shared={"stage": "f16[64]"})


def unpack_words() -> ir.Kernel:
    """Quantized-weight style decoding of u32 words: two halves, nibbles, signed bytes, shifts."""
    i, w = var("u32", "i"), var("u32", "w")
    o = i * 4
    return kernel("unpack_words", [
        assign("i", gid()),
        if_(i >= length("words"), [ret()]),
        assign("w", buf("u32", "words", i)),
        bstore("out", o, intr("f32", "half_to_f32", w)),
        bstore("out", o + 1, intr("f32", "half_to_f32", w >> 16)),
        bstore("out", o + 2, intr("u32", "extract_bits", w, 4, 4).cast("f32") + ((w >> 28) & 15).cast("f32") * 100.0),
        bstore("out", o + 3, intr("i32", "extract_bits", w.bitcast("i32"), 8, 8).cast("f32")),
        bstore("packed", i, intr("u32", "f32_to_half", buf("f32", "floats", i)), "u32"),
    ], [("words", "u32", RO), ("out", "f32", RW), ("floats", "f32", RO), ("packed", "u32", RW)])


def wide_math() -> ir.Kernel:
    """i64, u64 and f64 arithmetic, conversions and bit casts."""
    i, l, d, u = var("u32", "i"), var("i64", "l"), var("f64", "d"), var("u64", "u")
    return kernel("wide_math", [
        assign("i", gid()),
        if_(i >= length("l"), [ret()]),
        assign("l", buf("i64", "l", i)), assign("d", buf("f64", "d", i)), assign("u", buf("u64", "u", i)),
        bstore("l", i, l * 3 - (l >> 2) + d.cast("i64") + l // 7 + l % 5, "i64"),
        bstore("d", i, d * 0.5 + l.cast("f64") + intr("f64", "sqrt", intr("f64", "abs", d))
               + intr("f64", "floor", d / 3.0), "f64"),
        bstore("u", i, (u >> 33) | (i.cast("u64") << 40) | (l.bitcast("u64") & 0xFF) + d.bitcast("u64") % 1000,
               "u64"),
    ], [("l", "i64", RW), ("d", "f64", RW), ("u", "u64", RW)])

