"""`ir.verify`: a corpus of invalid IR kernels, each refused with a message naming the kernel, the source file and
line and what is wrong; every shipped kernel and every hand-built test kernel verifies; where IR enters (the build,
the CPU backend, the interpreter) it is verified."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import test_render_kernels as kernels
from test_render_kit import (
    BREAK,
    RO,
    RW,
    E,
    assign,
    atomic,
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
    param,
    ret,
    store,
    var,
    while_,
)

from hatch_khal.cache import Cache
from hatch_khal.frontend import compile_package
from khal_runtime import ir
from khal_runtime.interpreter import execute

ROOT = Path(__file__).resolve().parents[1]
i = var("u32", "i")
x = buf("f32", "x", i)


def at(stmt, line: int):
    stmt.loc = (line, 1)
    return stmt


def simple(body, buffers=(("x", "f32", RW),), **kw) -> ir.Kernel:
    return kernel("bad", [assign("i", gid()), *body], list(buffers), **kw)


def with_decl(k: ir.Kernel, **changes) -> ir.Kernel:
    return dataclasses.replace(k, **changes)


GOOD = simple([bstore("x", i, x * 2.0)])

# (name, kernel, message after "invalid IR: ")
INVALID = [
    ("unknown local", simple([at(bstore("x", i, var("f32", "nope")), 42)]), "unknown local variable 'nope'"),
    ("assign of the wrong type", with_decl(simple([at(assign("j", const("f32", 1.5)), 7)]),
                                           locals={"i": "u32", "j": "u32"}),
     "the value assigned to 'j' is f32, expected u32"),
    ("store to a read buffer", simple([bstore("x", i, x)], buffers=[("x", "f32", RO)]),
     "store to read-only buffer 'x'"),
    ("atomic on a read buffer", simple([do(atomic("u32", "add", "storage", "c", [0], 1))], buffers=[("c", "u32", RO)]),
     "atomic on read-only buffer 'c'"),
    ("unknown buffer", simple([bstore("y", i, x)]), "unknown buffer 'y'"),
    ("two indices for a buffer", simple([ir.Store("storage", "x", [i.node, i.node], x.node)]),
     "storage 'x' of 1 dimension indexed with 2 indices"),
    ("float index", simple([bstore("x", const("f32", 1.0), x)]), "an index of storage 'x' is f32, not i32 or u32"),
    ("shared array indexed with too few", simple([store("shared", "t", [0], 1.0, "f32")], shared={"t": "f32[4][4]"}),
     "shared 't' of 2 dimensions indexed with 1 indices"),
    ("unknown shared array", simple([store("shared", "t", [0], 1.0, "f32")]), "unknown shared memory 't'"),
    ("private array as a value", simple([assign("a", var("f32[4]", "a"))], arrays={"a": "f32[4]"}),
     "private array 'a' used as a value; index it"),
    ("mixed operand types", simple([bstore("x", i, E(ir.Binary("f32", "add", x.node, ir.Const("f64", 1.0))))]),
     "binary add of f32 and f64: the operands have one type"),
    ("integer div", simple([bstore("x", i, E(ir.Binary("u32", "div", i.node, i.node)), "u32")],
                           buffers=[("x", "u32", RW)]), "binary div on u32"),
    ("comparison typed as its operands", simple([assign("i", E(ir.Binary("u32", "lt", i.node, i.node)))]),
     "Binary has type u32, but its value is bool"),
    ("shift by a float", simple([assign("i", E(ir.Binary("u32", "shl", i.node, ir.Const("f32", 1.0))))]),
     "the amount of shl is f32, not an integer"),
    ("unary not on a number", simple([assign("i", E(ir.Unary("u32", "not", i.node)))]), "unary not on u32"),
    ("unknown operator", simple([assign("i", E(ir.Binary("u32", "pow", i.node, i.node)))]),
     "unknown binary operator 'pow'"),
    ("intrinsic on the wrong family", simple([assign("i", intr("u32", "sqrt", i))]),
     "sqrt on u32: it takes f16, f32, f64"),
    ("intrinsic arity", simple([bstore("x", i, intr("f32", "fma", x, x))]), "fma takes 3 arguments, 2 given"),
    ("intrinsic argument types", simple([bstore("x", i, intr("f32", "pow", x, const("f64", 2.0)))]),
     "argument 2 of pow is f64, expected f32"),
    ("intrinsic result type", simple([bstore("x", i, intr("f32", "isnan", x))]),
     "Intrinsic has type f32, but its value is bool"),
    ("unknown intrinsic", simple([bstore("x", i, intr("f32", "erf", x))]), "unknown intrinsic 'erf'"),
    ("f64 transcendental for webgpu", simple([bstore("d", i, intr("f64", "exp", buf("f64", "d", i)), "f64")],
                                             buffers=[("d", "f64", RW)]), "exp on f64 is not available on webgpu"),
    ("f32 atomic min", simple([do(atomic("f32", "min", "storage", "x", [0], 1.0))]),
     "atomic min on f32 in storage memory is not available on webgpu, cuda and cpu"),
    ("atomic on private memory", simple([do(E(ir.Atomic("u32", "add", "private", "a", [ir.Const("u32", 0)],
                                                         [ir.Const("u32", 1)])))], arrays={"a": "u32[4]"}),
     "atomic on private memory"),
    ("atomic arity", simple([do(E(ir.Atomic("u32", "compare_exchange", "storage", "c", [ir.Const("u32", 0)],
                                            [ir.Const("u32", 1)])))], buffers=[("c", "u32", RW)]),
     "atomic compare_exchange with 1 arguments, not 2"),
    ("builtin dim", simple([assign("i", builtin("local_index", 1))]), "builtin 'local_index' with dim 1"),
    ("unknown builtin", simple([assign("i", builtin("lane_id"))]), "unknown builtin 'lane_id'"),
    ("len of unknown buffer", simple([assign("i", length("y"))]), "len of unknown buffer 'y'"),
    ("unknown parameter", simple([bstore("x", i, param("f32", "scale"))]), "unknown parameter 'scale'"),
    ("unknown struct field", simple([bstore("x", i, param("S", "s").field("f32", "w"))], scalars=[("s", "S")],
                                    structs={"S": [("v", "f32")]}), "struct S has no field 'w'"),
    ("cast to bool", simple([assign("b", i.cast("bool"))]), "cast u32 -> bool: write `x != 0`"),
    ("bitcast of another size", simple([bstore("x", i, i.cast("u64").bitcast("f32"))]),
     "bitcast u64 -> f32: bit casts are between numeric types of one size"),
    ("select of two types", simple([bstore("x", i, E(ir.Select("f32", (i < 1).node, x.node, ir.Const("f64", 0.0))))]),
     "select between f32 and f64: both sides have one type"),
    ("condition not bool", simple([if_(i, [])]), "the condition of if is u32, expected bool"),
    ("break outside a loop", simple([at(BREAK, 9)]), "break outside a loop"),
    ("continue outside a loop", simple([ir.Continue((3, 1))]), "continue outside a loop"),
    ("return of a value from the entry", simple([ret(i)]), "return of a value from the kernel entry"),
    ("for over a float", simple([for_("f", 0.0, 4.0, 1.0, [], t="f32")]),
     "for loop variable 'f' is f32, not an integer"),
    ("for with step 0", simple([for_("k", 0, 4, 0, [])]), "for loop with step 0"),
    ("loop bound of another type", simple([ir.For("k", ir.Const("u32", 0), ir.Const("i32", 4), ir.Const("u32", 1),
                                                  [])], arrays={"k": "u32"}),
     "the stop of the loop over 'k' is i32, expected u32"),
    ("barrier scope", simple([ir.Barrier("device")]), "barrier scope 'device', not one of workgroup, storage"),
    ("constant out of range", simple([assign("i", const("u32", -1))]), "constant -1 is not a value of type 'u32'"),
    ("unknown statement", simple([ir.Len("u32", "x")]), "unknown statement Len"),
    ("unknown helper", simple([do(call("void", "helper"))]), "call of unknown function 'helper'"),
    ("helper argument type", simple([bstore("x", i, call("f32", "h", x))],
                                    functions=[function("h", [("v", "u32")], "f32", [ret(const("f32", 0.0))])]),
     "argument 'v' of h is f32, expected u32"),
    ("helper returns nothing", simple([do(call("void", "h"))],
                                      functions=[function("h", [], "f32", [ret()])]),
     "return without a value in a helper that returns f32"),
    ("recursion", simple([do(call("void", "h"))], functions=[function("h", [], None, [do(call("void", "h"))])]),
     "helpers recurse: h -> h"),
    ("buffer of bool", simple([], buffers=[("b", "bool", RW)]), "buffer 'b' has element type 'bool'"),
    ("buffer bound out of order", with_decl(GOOD, buffers=[ir.Buffer("x", "f32", "read_write", 1)]),
     "buffer 'x' is bound at 1, but it is buffer 0"),
    ("buffer access", with_decl(GOOD, buffers=[ir.Buffer("x", "f32", "write", 0)]),
     "buffer 'x' has access 'write', not one of read, read_write"),
    ("f16 parameter", simple([], scalars=[("h", "f16")]), "parameter 'h' has type 'f16', not a parameter scalar type"),
    ("workgroup too large", with_decl(GOOD, workgroup_size=(64, 32, 1)),
     "workgroup size (64, 32, 1) has 2048 invocations, more than 1024"),
    ("subgroups on a partial warp", simple([bstore("x", i, intr("f32", "subgroup_add", x))], wg=(16, 1, 1)),
     "subgroup operations on cuda need a workgroup of a multiple of 32 invocations, not 16"),
    ("names clash", simple([], buffers=[("x", "f32", RW)], scalars=[("x", "u32")]),
     "parameter 'x' has the name of a buffer"),
    ("while over a number", simple([while_(i, [])]), "the condition of while is u32, expected bool"),
]


@pytest.mark.parametrize("name,k,message", INVALID, ids=[c[0] for c in INVALID])
def test_invalid_ir_is_refused_with_a_located_message(name, k, message):
    with pytest.raises(ir.InvalidIR) as caught:
        ir.verify(k)
    text = str(caught.value)
    assert text.startswith("kernel 'bad' at tests/kernels/bad.py:"), text
    assert f"invalid IR: {message}" in text, text


def test_the_corpus_is_large_and_distinct():
    assert len(INVALID) >= 50 and len({m for _, _, m in INVALID}) == len(INVALID)


def test_errors_name_the_statements_line():
    with pytest.raises(ir.InvalidIR, match=r"kernel 'bad' at tests/kernels/bad.py:42: invalid IR: unknown local"):
        ir.verify(INVALID[0][1])


def test_errors_in_a_helper_name_its_file_and_line():
    h = function("h", [], "u32", [at(ret(var("u32", "nope")), 12)])
    h.source, h.line = "tests/kernels/helpers.py", 10
    with pytest.raises(ir.InvalidIR, match=r"at tests/kernels/helpers.py:12: invalid IR: unknown local variable"):
        ir.verify(simple([assign("i", call("u32", "h"))], functions=[h]))


def test_verify_takes_the_targets():
    exp = simple([bstore("d", i, intr("f64", "exp", buf("f64", "d", i)), "f64")], buffers=[("d", "f64", RW)])
    ir.verify(exp, ("cuda", "cpu"))
    with pytest.raises(ir.InvalidIR, match="exp on f64 is not available on webgpu"):
        ir.verify(exp, ("webgpu",))
    with pytest.raises(ValueError, match="unknown targets"):
        ir.verify(exp, ("metal",))


def test_every_shipped_kernel_verifies():
    shipped = [k for ks in compile_package(ROOT, "shaders").values() for k in ks]
    assert len(shipped) > 100
    for k in shipped:
        ir.verify(k)


def test_every_hand_built_test_kernel_verifies():
    for k in kernels.catalogue().values():
        ir.verify(k)


def test_the_interpreter_verifies_what_it_runs():
    k = INVALID[0][1]
    with pytest.raises(ir.InvalidIR, match="unknown local variable 'nope'"):
        execute(k, (1, 1, 1), [np.zeros(64, np.float32)], [])


def test_the_cpu_backend_verifies_the_ir_it_loads():
    from khal_runtime.backends.cpu import CpuBackend
    text = ir.to_json(INVALID[0][1]).encode()
    with pytest.raises(ir.InvalidIR, match="unknown local variable 'nope'"):
        CpuBackend().load_kernel({}, lambda kind: text)


def test_the_build_reports_invalid_ir_as_an_internal_error(tmp_path, monkeypatch):
    from hatch_khal import build

    (tmp_path / "pkg").mkdir()
    monkeypatch.setattr(build, "compile_package", lambda root, package: {"m": [INVALID[0][1]]})
    with pytest.raises(build.BuildError, match="(?s)internal compiler error: the front end made invalid IR.*nope"):
        build.build_package(tmp_path, "pkg", build.Options(packages=("pkg",)), Cache(None), False, {}, "")

