"""The table of operations (`khal_runtime.ir.ops`) against everything else that lists operations: `lang`, both
renderers, the interpreter, the front end and docs/IR.md. Each test fails when one of them adds or misses an entry."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

import khal_runtime.lang as lang
from hatch_khal.frontend import KernelCompileError, compile_package, vocabulary
from hatch_khal.render import cuda, glsl
from hatch_khal.render.printer import Printer
from khal_runtime import ir
from khal_runtime.interpreter import execute

ROOT = Path(__file__).resolve().parents[1]
RENDERERS = {"webgpu": glsl.TARGET, "cuda": cuda.TARGET}
PYTHON_BUILTINS = {"abs", "min", "max", "pow", "round"}      # intrinsics that kernels call by Python's names


def operands(sig: ir.Signature, t: str) -> list[ir.Expr]:
    return [ir.Const(t if a == "T" else a, True if (t if a == "T" else a) == "bool" else 1) for a in sig.args]


def probe_kernel(t: str) -> ir.Kernel:
    """A kernel with a buffer `b` and a shared array `s` of element type `t`, for the printers to refer to."""
    return ir.Kernel(name="probe", source="tests/probe.py", line=1, function="probe", template={},
                     workgroup_size=(64, 1, 1), buffers=[ir.Buffer("b", t, "read_write", 0)], scalars=[],
                     structs={}, shared={"s": f"{t}[4]"}, locals={}, body=[])


def renders(target: str, node: ir.Expr, t: str) -> bool:
    try:
        Printer(probe_kernel(t), RENDERERS[target]).emit(node)
    except ValueError:
        return False
    return True


# --- lang -----------------------------------------------------------------------------------------------------------


def test_lang_defines_a_stand_in_for_exactly_the_tables_names():
    public = {n: getattr(lang, n) for n in lang.__all__}
    functions = {n for n, v in public.items() if callable(v) and not isinstance(v, type)}
    defined = {n for n, v in vars(lang).items() if not n.startswith("_") and callable(v) and not isinstance(v, type)
               and getattr(v, "__module__", None) == lang.__name__}
    assert defined == functions
    atomics = {f"atomic_{op}" for op in ir.ATOMIC_OPS}
    declarations = {n for n in vocabulary.DECLARATIONS if not isinstance(public[n], type)}
    # abs, min, max, pow and round are Python's own builtins in kernels: lang does not shadow them
    assert functions == (set(ir.INTRINSICS) - PYTHON_BUILTINS) | set(ir.BUILTINS) | atomics | declarations | set(
        ir.VECTOR_LOADS)
    assert not PYTHON_BUILTINS & set(public)


# --- renderers ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", RENDERERS)
def test_each_renderer_renders_exactly_the_intrinsics_the_table_allows_it(target):
    for name, sig in ir.INTRINSICS.items():
        for t in ir.SCALARS:
            if sig.args[0] != "T" and t != sig.args[0]:
                continue
            node = ir.Intrinsic(sig.result_type(t), name, operands(sig, t))
            assert renders(target, node, t) == (t in sig.types[target]), f"{target}: {name} on {t}"


@pytest.mark.parametrize("target", RENDERERS)
def test_each_renderer_renders_exactly_the_atomics_the_table_allows_it(target):
    for op, nargs in ir.ATOMIC_OPS.items():
        for t in ir.SCALARS:
            allowed = any(t in ir.atomic_types(op, space, [target]) for space in ir.ops.ATOMIC_SPACES)
            node = ir.Atomic(t, op, "storage", "b", [ir.Const("u32", 0)], [ir.Const(t, 1)] * nargs)
            assert renders(target, node, t) == allowed, f"{target}: atomic {op} on {t}"


@pytest.mark.parametrize("target", RENDERERS)
def test_each_renderer_renders_every_operator_the_table_allows(target):
    for op, types in ir.UNARY.items():
        for t in types:
            assert renders(target, ir.Unary(t, op, ir.Const(t, True if t == "bool" else 1)), t)
    for op, types in ir.BINARY.items():
        for t in types:
            a = ir.Const(t, True if t == "bool" else 1)
            assert renders(target, ir.Binary(ir.ops.binary_result(op, t), op, a, a), t), f"{op} on {t}"


# --- interpreter ----------------------------------------------------------------------------------------------------


def run_expression(value: ir.Expr, arrays: dict[str, tuple[str, str]] | None = None) -> np.ndarray:
    """Run `out[local_index] = value` on one workgroup of 32 (bool values stored as u32); the output."""
    t = value.type
    stored = ir.Select("u32", value, ir.Const("u32", 1), ir.Const("u32", 0)) if t == "bool" else value
    elem = "u32" if t == "bool" else t
    lanes = ir.Builtin("u32", "local_index")
    k = ir.Kernel(name="probe", source="tests/probe.py", line=1, function="probe", template={},
                  workgroup_size=(32, 1, 1), buffers=[ir.Buffer("out", elem, "read_write", 0)], scalars=[],
                  structs={}, shared=dict(arrays or {}), locals={}, body=[ir.Store("storage", "out", [lanes], stored)])
    ir.verify(k, ["cpu"])
    out = np.zeros(32, ir.NUMPY[elem])
    execute(k, (1, 1, 1), [out], [])
    return out


def test_the_interpreter_runs_every_intrinsic_the_table_allows_it():
    for name, sig in ir.INTRINSICS.items():
        for t in sig.types["cpu"]:
            out = run_expression(ir.Intrinsic(sig.result_type(t), name, operands(sig, t)))
            assert out.dtype == np.dtype(ir.NUMPY["u32" if sig.result_type(t) == "bool" else sig.result_type(t)])


def test_verify_refuses_each_intrinsic_on_a_type_the_table_refuses():
    for name, sig in ir.INTRINSICS.items():
        for t in set(ir.SCALARS) - set(sig.types["cpu"]):
            if sig.args[0] == "T":
                with pytest.raises(ir.InvalidIR, match=f"{name} on {t}"):
                    run_expression(ir.Intrinsic(sig.result_type(t), name, operands(sig, t)))


def test_the_interpreter_runs_every_operator_and_builtin_the_table_allows():
    for op, types in ir.UNARY.items():
        for t in types:
            assert len(run_expression(ir.Unary(t, op, ir.Const(t, True if t == "bool" else 3)))) == 32
    for op, types in ir.BINARY.items():
        for t in types:
            a = ir.Const(t, True if t == "bool" else 3)
            b = ir.Const("u32", 1) if op in ir.ops.SHIFTS else a
            assert len(run_expression(ir.Binary(ir.ops.binary_result(op, t), op, a, b))) == 32
    for name, dims in ir.BUILTINS.items():
        for dim in range(dims):
            out = run_expression(ir.Builtin("u32", name, dim))
            assert out.dtype == np.uint32
    with pytest.raises(ir.InvalidIR, match="builtin 'local_index' with dim 1"):
        run_expression(ir.Builtin("u32", "local_index", 1))


def test_the_interpreter_runs_every_atomic_the_table_allows_it():
    for op, nargs in ir.ATOMIC_OPS.items():
        for space in ir.ops.ATOMIC_SPACES:
            for t in ir.SCALARS:
                node = ir.Atomic(t, op, space, "s" if space == "shared" else "out", [ir.Const("u32", 0)],
                                 [ir.Const(t, 1)] * nargs)
                wrapped = ir.Binary(t, "add", node, ir.Const(t, 0))     # the atomic's old value, 32 times
                if t in ir.atomic_types(op, space, ["cpu"]):
                    run_expression(wrapped, {"s": f"{t}[4]"} if space == "shared" else None)
                elif t in ir.NUMERIC:
                    with pytest.raises(ir.InvalidIR, match=f"atomic {op} on {t}"):
                        run_expression(wrapped, {"s": f"{t}[4]"} if space == "shared" else None)


# --- front end ------------------------------------------------------------------------------------------------------


def test_the_vocabulary_is_the_table():
    assert set(vocabulary.INTRINSICS) == set(ir.INTRINSICS)
    assert set(vocabulary.ATOMICS.values()) == set(ir.ATOMIC_OPS)
    assert set(vocabulary.VECTOR_BUILTINS) | set(vocabulary.SCALAR_BUILTINS) == set(ir.BUILTINS)


FLOAT_CALL = """
from khal_runtime.lang import *

@kernel(workgroup_size=(64,))
def k(x: MutBuf[f64]):
    i = global_id().x
    x[i] = {call}
"""


def test_the_front_end_allows_an_intrinsic_on_f64_where_every_target_has_it(tmp_path):
    (tmp_path / "pkg").mkdir()
    for name, sig in ir.INTRINSICS.items():
        if "f64" not in sig.family() or name.startswith("subgroup_shuffle"):
            continue
        result = "f64(1.0) if {} else f64(0.0)" if sig.result == "bool" else "{}"
        call = result.format(f"{name}({', '.join(['x[i]'] * len(sig.args))})")
        (tmp_path / "pkg" / "m.py").write_text(FLOAT_CALL.format(call=call))
        try:
            compile_package(tmp_path, "pkg")
            accepted = True
        except KernelCompileError as e:
            assert f"{name}() is not available for f64 (GLSL on WebGPU has no f64 {name})" in str(e)
            accepted = False
        assert accepted == ("f64" in sig.allowed()), name


# --- docs/IR.md ---------------------------------------------------------------------------------------------------

LETTERS = {"F": ir.FLOATS, "I": ir.INTS, "N": ir.NUMERIC}


def ir_md_table(heading: str) -> list[list[str]]:
    """The rows of the first table after `heading` in docs/IR.md, as lists of cells."""
    text = (ROOT / "docs" / "IR.md").read_text(encoding="utf-8").split(f"\n{heading}\n", 1)[1]
    lines = []
    for line in text[text.index("\n|") + 1:].splitlines():
        if not line.startswith("|"):
            break
        lines.append(line)
    return [[cell.strip() for cell in line.strip().strip("|").split("|")] for line in lines[2:]]


def words(cell: str) -> list[str]:
    return " ".join(re.findall(r"`([^`]*)`", cell)).split()


def types_of(cell: str) -> set[str]:
    return {t for w in words(cell) for t in LETTERS.get(w, (w,))}


def test_ir_md_lists_the_intrinsics_of_the_table_with_their_types():
    listed = {}
    for row in ir_md_table("### Intrinsics"):
        for name in words(row[0]):
            listed[name] = {target: types_of(cell) for target, cell in zip(ir.TARGETS, row[2:5])}
    assert set(listed) == set(ir.INTRINSICS)
    for name, sig in ir.INTRINSICS.items():
        assert listed[name] == {target: set(sig.types[target]) for target in ir.TARGETS}, name


def test_ir_md_lists_the_atomics_of_the_table_with_their_types():
    listed = {}
    for row in ir_md_table("### Atomics"):
        for op in words(row[0]):
            listed[op] = (len(row[1].split(",")), [types_of(cell) for cell in row[2:8]])
    assert set(listed) == set(ir.ATOMIC_OPS)
    for op, nargs in ir.ATOMIC_OPS.items():
        want = [set(ir.ATOMICS[target][space][op]) for target in ir.TARGETS for space in ir.ops.ATOMIC_SPACES]
        assert listed[op] == (nargs, want), op


def test_ir_md_lists_the_builtins_and_operators_of_the_table():
    rows = ir_md_table("### Builtins")
    assert {name: len(re.findall(r"\d", row[1])) for row in rows for name in words(row[0])} == ir.BUILTINS
    text = (ROOT / "docs" / "IR.md").read_text(encoding="utf-8")
    binary = text.split("### Arithmetic and logic (`Binary`)")[1].split("###")[0]
    assert set(ir.BINARY) <= set(words(binary))
    unary = next(line for line in text.splitlines() if line.startswith("| `Unary("))
    assert set(ir.UNARY) == set(words(unary.split("|")[2]))


# --- f64: what the language allows, through the real pipeline ---------------------------------------------------

F64_KERNEL = """
from khal_runtime.lang import Buf, MutBuf, f64, fma, global_id, isinf, isnan, kernel, rsqrt, sqrt, subgroup_add
from khal_runtime.lang import subgroup_shuffle_xor, subgroup_size, trunc, u32


@kernel(workgroup_size=(32,))
def f64_math(x: Buf[f64], out: MutBuf[f64]):
    i = global_id().x
    v = x[i]
    out[i * 8] = rsqrt(v)
    out[i * 8 + 1] = sqrt(v) + trunc(v)
    out[i * 8 + 2] = fma(v, v, v)
    out[i * 8 + 3] = min(max(v, f64(1.0)), f64(4.0)) + round(v)
    out[i * 8 + 4] = subgroup_add(v)
    out[i * 8 + 5] = subgroup_shuffle_xor(v, u32(1))
    out[i * 8 + 6] = f64(1.0) if isnan(v) or isinf(v) else f64(0.0)
    out[i * 8 + 7] = f64(subgroup_size())
"""


def test_the_f64_intrinsics_of_the_language_run_on_every_backend(backend, shader_package):
    """rsqrt and the subgroup operations on f64 are in the language because they compile, load and run on both GPU
    targets (docs/IR.md, Intrinsics): built by the real pipeline, run on each backend here, against numpy."""
    import importlib
    kernels = importlib.import_module(f"{shader_package({'f64m': F64_KERNEL})}.f64m")
    x = np.linspace(0.3, 7.7, 32)
    xs, out = backend.init_buffer(x), backend.init_buffer(np.zeros(256))
    encoder = backend.begin_encoding()
    with encoder.begin_pass() as pass_:
        kernels.F64Math(backend).call(pass_, 32, xs, out)
    backend.submit(encoder)
    got = out.read().reshape(32, 8)
    size = int(got[0, 7])
    lane = np.arange(32)
    np.testing.assert_allclose(got[:, 0], 1 / np.sqrt(x), rtol=1e-14)
    np.testing.assert_array_equal(got[:, 1], np.sqrt(x) + np.trunc(x))
    fused = np.array([float(Fraction(v) * Fraction(v) + Fraction(v)) for v in x])     # one rounding
    # Vulkan lets fma be a multiply and an add (lavapipe's is, on f32 and f64: docs/IR.md, Targets)
    assert (got[:, 2] == fused).all() or backend.name == "webgpu" and (got[:, 2] == x * x + x).all()
    np.testing.assert_array_equal(got[:, 3], np.clip(x, 1.0, 4.0) + np.rint(x))
    np.testing.assert_allclose(got[:, 4], x.reshape(-1, size).sum(axis=1).repeat(size), rtol=1e-14)
    np.testing.assert_array_equal(got[:, 5], x[lane ^ 1])
    np.testing.assert_array_equal(got[:, 6], 0.0)
