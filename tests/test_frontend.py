"""The front end: what it accepts (checked on the IR it produces) and what it refuses (with located messages)."""

from __future__ import annotations

from pathlib import Path

import pytest
from frontend_cases import INVALID, PRELUDE
from frontend_cases_barriers import ACCEPTED, BARRIER_PRELUDE, DIVERGENT
from frontend_cases_guidance import GUIDANCE

import khal_runtime.lang as lang
from hatch_khal.frontend import KernelCompileError, compile_package
from hatch_khal.frontend.vocabulary import LANG_NAMES
from khal_runtime import ir


def compile_source(tmp_path: Path, body: str, prelude: str = PRELUDE) -> dict[str, ir.Kernel]:
    (tmp_path / "pkg").mkdir(exist_ok=True)
    (tmp_path / "pkg" / "m.py").write_text(prelude + body)
    kernels = compile_package(tmp_path, "pkg").get("m", [])
    return {k.name: k for k in kernels}


CORPUS = [(*case, PRELUDE) for case in INVALID + GUIDANCE] + [(*case, BARRIER_PRELUDE) for case in DIVERGENT]


@pytest.mark.parametrize("name,body,message,prelude", CORPUS, ids=[c[0] for c in CORPUS])
def test_invalid_kernel_is_refused_with_a_located_message(tmp_path, name, body, message, prelude):
    with pytest.raises(KernelCompileError) as caught:
        compile_source(tmp_path, body, prelude)
    error = caught.value
    text = str(error)
    for part in (message,) if isinstance(message, str) else message:
        assert part in text, f"{part!r} is not in:\n{text}"
    source = prelude + body
    marked = next(i for i, line in enumerate(source.splitlines(), 1) if "# <-" in line)
    assert error.line == marked, f"error at line {error.line}, expected {marked}:\n{text}"
    assert error.path == "pkg/m.py"
    assert text.startswith(f"pkg/m.py:{marked}:{error.col + 1}: error: ")
    shown = text.splitlines()
    assert shown[1].strip() == source.splitlines()[marked - 1].strip()
    assert shown[2].strip().startswith("^")


def test_the_corpus_is_large():
    assert len(INVALID) >= 30
    assert len({message for _, _, message, _ in CORPUS}) == len(CORPUS)
    assert len({name for name, _, _, _ in CORPUS}) == len(CORPUS)


def test_barriers_and_subgroup_operations_that_every_invocation_reaches_compile(tmp_path):
    kernels = compile_source(tmp_path, ACCEPTED, BARRIER_PRELUDE)
    assert sorted(kernels) == ["subgroups_in_varying_ifs", "uniform_barriers"]
    assert sum(isinstance(n, ir.Barrier) for n in ir.walk(kernels["uniform_barriers"])) == 7


def test_vocabulary_matches_the_lang_module():
    assert set(lang.__all__) == set(LANG_NAMES)


ADD = """
@kernel(workgroup_size=(64,))
def add(a: MutBuf[f32], b: Buf[f32]):
    require(len(b) >= len(a))
    i = global_id().x
    if i < len(a):
        a[i] += b[i]
"""


def test_a_simple_kernel(tmp_path):
    k = compile_source(tmp_path, ADD)["add"]
    assert k.workgroup_size == (64, 1, 1)
    assert [(b.name, b.elem, b.access, b.binding) for b in k.buffers] == [("a", "f32", "read_write", 0),
                                                                           ("b", "f32", "read", 1)]
    assert k.locals == {"i": "u32"}
    assert [r.text for r in k.requires] == ["len(b) >= len(a)"]
    assert k.params == ["a", "b"]
    (stmt,) = [s for s in k.body if isinstance(s, ir.If)]
    (store,) = stmt.then
    assert isinstance(store, ir.Store) and store.value.op == "add" and store.value.type == "f32"
    assert ir.from_json(ir.to_json(k)) == k


def test_literals_take_the_type_they_meet(tmp_path):
    k = compile_source(tmp_path, """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f16], n: u32, x: f64):
    i = global_id().x + 1
    h = a[0] * 2
    d = x / 3
    j = 7
""")["k"]
    assert k.locals == {"i": "u32", "h": "f16", "d": "f64", "j": "i32"}
    operands = [s.value.b if isinstance(s.value, ir.Binary) else s.value for s in k.body]
    assert [(c.type, c.value) for c in operands] == [("u32", 1), ("f16", 2.0), ("f64", 3.0), ("i32", 7)]


def test_templates_make_one_instance_per_value_used(tmp_path):
    kernels = compile_source(tmp_path, """
T = template(f32, i32)
OP = template("add", "max")
UNUSED = template(1, 2, 3)

def combine(x: T, y: T) -> T:
    if OP == "add":
        return x + y
    return max(x, y)

@kernel(workgroup_size=(64,))
def k(out: MutBuf[T], a: Buf[T]):
    i = global_id().x
    out[i] = combine(out[i], a[i])
""")
    assert sorted(kernels) == ["k_f32_add", "k_f32_max", "k_i32_add", "k_i32_max"]
    k = kernels["k_i32_max"]
    assert k.template == {"T": "i32", "OP": "max"}
    (fn,) = k.functions
    assert fn.ret == "i32" and isinstance(fn.body[0], ir.Return)
    assert fn.body[0].value.name == "max"        # the compile-time `if` kept only its taken branch


def test_static_range_unrolls_and_range_loops(tmp_path):
    k = compile_source(tmp_path, """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32], n: u32):
    for j in static_range(3):
        a[j] = f32(j)
    for i in range(n - 1, 0, 2):
        a[i] = 0.0
""")["k"]
    stores = [s for s in k.body if isinstance(s, ir.Store)]
    assert [s.value.value for s in stores] == [0.0, 1.0, 2.0]
    (loop,) = [s for s in k.body if isinstance(s, ir.For)]
    assert loop.var == "i" and k.locals["i"] == "u32" and loop.step.value == 2


def test_helpers_are_specialised_per_buffer(tmp_path):
    k = compile_source(tmp_path, """
def scale(buf: MutBuf[f32], i: u32, s: f32):
    buf[i] = buf[i] * s

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32], b: MutBuf[f32]):
    i = global_id().x
    scale(a, i, 2.0)
    scale(b, i, 3.0)
    scale(a, i, 4.0)
""")["k"]
    assert [f.name for f in k.functions] == ["scale", "scale_2"]
    stores = [n for f in k.functions for n in ir.walk(f.body) if isinstance(n, ir.Store)]
    assert [s.name for s in stores] == ["a", "b"]
    calls = [n.func for n in ir.walk(k.body) if isinstance(n, ir.Call)]
    assert calls == ["scale", "scale_2", "scale"]


def test_helper_locals_do_not_shadow_kernel_buffers(tmp_path):
    k = compile_source(tmp_path, """
def load(x: Buf[f32], i: u32) -> f32:
    a = x[i]
    return a

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32], b: Buf[f32]):
    i = global_id().x
    a[i] = load(b, i)
""")["k"]
    (fn,) = k.functions
    assert "a" not in fn.locals and fn.locals["a_2"] == "f32"


def test_shared_memory_atomics_barriers_and_subgroups(tmp_path):
    k = compile_source(tmp_path, """
@kernel(workgroup_size=(64,))
def k(total: MutBuf[u32], x: Buf[u32]):
    tile = shared(u32, 8, 8)
    lid = local_id().x
    tile[lid // 8, lid % 8] = x[global_id().x]
    barrier()
    atomic_add(total, 0, tile[lid % 8][lid // 8])
    s = subgroup_add(x[lid])
""")["k"]
    assert k.shared == {"tile": "u32[8][8]"}
    kinds = [type(s).__name__ for s in k.body]
    assert kinds == ["Assign", "Store", "Barrier", "ExprStmt", "Assign"]
    atomic = k.body[3].value
    assert isinstance(atomic, ir.Atomic) and atomic.space == "storage" and atomic.args[0].type == "u32"


def test_tuple_assignment_swaps_and_unpacks(tmp_path):
    k = compile_source(tmp_path, """
from khal_runtime.lang import unpack_half2x16

@kernel(workgroup_size=(64,))
def k(out: MutBuf[f32], w: Buf[u32]):
    word = w[0]
    lo, hi = unpack_half2x16(word)
    lo, hi = hi, lo
    out[0] = lo
""")["k"]
    assert {"lo", "hi", "tmp", "tmp_2"} <= set(k.locals)
    halves = [n for n in ir.walk(k.body) if isinstance(n, ir.Intrinsic) and n.name == "half_to_f32"]
    assert len(halves) == 2


def test_errors_inside_a_helper_name_the_call(tmp_path):
    with pytest.raises(KernelCompileError) as caught:
        compile_source(tmp_path, """
T = template(f32, u32)

def halve(x: T) -> T:
    return x / 2

@kernel(workgroup_size=(64,))
def k(a: MutBuf[T]):
    a[0] = halve(a[0])
""")
    text = str(caught.value)
    assert "/ is float division and the operands are u32" in text
    assert "in halve, called from pkg/m.py:" in text


def test_example_package_compiles():
    root = Path(__file__).resolve().parents[1]
    modules = compile_package(root, "shaders")
    names = {k.name for ks in modules.values() for k in ks}
    assert {"add_assign", "sum_u32", "matmul_tiled", "subgroup_sum", "axpy_f16", "unpack_nibbles",
            "binary_op_f32_add", "binary_op_i32_max"} <= names
