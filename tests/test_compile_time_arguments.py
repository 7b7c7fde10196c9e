"""Helpers that take functions (`Helper`) and constants (`Const[T]`) as compile-time arguments, templates whose
values are functions, and `exclude=`: what the front end makes of them (checked on the IR), and the kernels run
on the interpreter, WebGPU and CUDA against numpy. Their misuses are in frontend_cases_compile_time.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import test_render_kit as kit

from hatch_khal.frontend import compile_package
from khal_runtime import ir
from khal_runtime.interpreter import execute

PRELUDE = """\
from khal_runtime.lang import Buf, Const, Helper, MutBuf, exp, f32, global_id, i32, kernel, static_range, template
"""

MAPS = PRELUDE + """
T = template(f32, i32)


def square(x: T) -> T:
    return x * x


def halve(x: T) -> T:
    if T == i32:
        return x // 2
    return x * 0.5


def scaled(x: T, k: Const[i32]) -> T:
    if k == 1:
        return x
    return x * T(k)


def repeat(fn: Helper, x: T, times: Const[i32]) -> T:
    for _ in static_range(times):
        x = fn(x)
    return x


def apply_twice(out: MutBuf[T], a: Buf[T], fn: Helper):
    i = global_id().x
    if i < len(out):
        out[i] = scaled(repeat(fn, a[i], 2), 3) + scaled(a[i], 1)


FN = template(square, abs, exp, halve)


@kernel(workgroup_size=(64,), exclude=T == i32 and FN == exp)
def fnmap(out: MutBuf[T], a: Buf[T]):
    apply_twice(out, a, FN)


def convert_with(fn: Helper, x: i32) -> f32:
    return fn(x)


def half_of(x: i32) -> f32:
    return f32(x) * 0.5


@kernel(workgroup_size=(64,))
def fncast(out: MutBuf[f32], a: Buf[i32]):
    i = global_id().x
    if i < len(out):
        out[i] = convert_with(f32, a[i]) + convert_with(half_of, a[i])
"""

NUMPY = {"square": np.square, "abs": np.abs, "exp": np.exp,
         "halve": lambda x: x // 2 if x.dtype == np.int32 else x * np.float32(0.5)}


def compile_source(tmp_path: Path, source: str):
    (tmp_path / "pkg").mkdir(exist_ok=True)
    (tmp_path / "pkg" / "m.py").write_text(source)
    return compile_package(tmp_path, "pkg")


@pytest.fixture(scope="module")
def maps(tmp_path_factory):
    compiled = compile_source(tmp_path_factory.mktemp("maps"), MAPS)
    return {k.name: k for k in compiled["m"]}, compiled.exclusions["m"]


def test_a_template_of_functions_gives_an_instance_per_function_less_the_excluded(maps):
    kernels, (exclusion,) = maps
    assert sorted(kernels) == ["fncast", "fnmap_f32_abs", "fnmap_f32_exp", "fnmap_f32_halve", "fnmap_f32_square",
                               "fnmap_i32_abs", "fnmap_i32_halve", "fnmap_i32_square"]
    assert kernels["fnmap_f32_exp"].template == {"T": "f32", "FN": "exp"}
    assert (exclusion.function, exclusion.condition, exclusion.instances) == (
        "fnmap", "T == i32 and FN == exp", [{"T": "i32", "FN": "exp"}])
    assert exclusion.source == "pkg/m.py" and exclusion.line == MAPS.splitlines().index(
        "@kernel(workgroup_size=(64,), exclude=T == i32 and FN == exp)") + 1


def test_each_compile_time_argument_is_a_specialisation_of_its_own(maps):
    kernels, _ = maps
    functions = {f.name: f for f in kernels["fnmap_f32_square"].functions}
    # scaled(..., 3) and scaled(..., 1) are two functions; the second is `return x`, its `if` folded away
    assert sorted(functions) == ["apply_twice", "repeat", "scaled", "scaled_2", "square"]
    assert [type(s) for s in functions["scaled_2"].body] == [ir.Return]
    assert isinstance(functions["scaled_2"].body[0].value, ir.Var)
    # repeat(fn, x, 2) is unrolled: two direct calls of square, no loop
    calls = [n.func for n in ir.walk(functions["repeat"]) if isinstance(n, ir.Call)]
    assert calls == ["square", "square"] and not any(isinstance(n, ir.For) for n in ir.walk(functions["repeat"]))
    # a math intrinsic passed as the function is called as the intrinsic
    exp_calls = [n for n in ir.walk(kernels["fnmap_f32_exp"]) if isinstance(n, ir.Intrinsic) and n.name == "exp"]
    assert len(exp_calls) == 2
    # a type passed as the function is a cast; two different helpers make two specialisations of repeat
    cast = {f.name: f for f in kernels["fncast"].functions}
    assert sorted(cast) == ["convert_with", "convert_with_2", "half_of"]
    assert isinstance(cast["convert_with"].body[0].value, ir.Cast)


def test_exclude_spares_the_instances_that_would_not_compile(tmp_path):
    source = PRELUDE + """
U = template(1, 2)
T = template(f32, i32)


@kernel(workgroup_size=(64,), exclude=T == i32 and U > 0)
def ratio(out: MutBuf[T], a: Buf[T], b: Buf[T]):
    i = global_id().x
    q = a[i] / b[i]                 # float division: no i32 instance could compile this
    out[i] = q * T(U)
"""
    compiled = compile_source(tmp_path, source)
    assert [k.name for k in compiled["m"]] == ["ratio_f32_1", "ratio_f32_2"]
    # the body fails for T=i32 before it reads U, which the condition needs: the instance is split on U
    assert compiled.exclusions["m"][0].instances == [{"T": "i32", "U": 1}, {"T": "i32", "U": 2}]


def run_interpreter(k: ir.Kernel, arrays: dict[str, np.ndarray], grid: tuple[int, int, int]) -> dict:
    buffers = [arrays[b.name].copy() for b in k.buffers]
    execute(k, grid, buffers, [])
    return {b.name: buf for b, buf in zip(k.buffers, buffers)}


RUNNERS = [pytest.param(run_interpreter, id="interpreter"),
           pytest.param(kit.run_webgpu, id="webgpu", marks=pytest.mark.webgpu),
           pytest.param(kit.run_cuda, id="cuda", marks=pytest.mark.cuda)]


@pytest.mark.parametrize("run", RUNNERS)
def test_the_instances_compute_what_numpy_does(maps, run):
    kernels, _ = maps
    rng = np.random.default_rng(3)
    n = 100
    for name, k in kernels.items():
        if name == "fncast":
            a = rng.integers(-1000, 1000, n).astype(np.int32)
            out = run(k, {"out": np.zeros(n, np.float32), "a": a}, (2, 1, 1))["out"]
            np.testing.assert_array_equal(out, a.astype(np.float32) * np.float32(1.5))
            continue
        t, fn = k.template["T"], NUMPY[k.template["FN"]]
        a = rng.uniform(-2, 2, n).astype(np.float32) if t == "f32" else rng.integers(-300, 300, n).astype(np.int32)
        out = run(k, {"out": np.zeros(n, a.dtype), "a": a}, (2, 1, 1))["out"]
        want = fn(fn(a)) * a.dtype.type(3) + a
        if t == "f32":
            np.testing.assert_allclose(out, want, rtol=2e-6, err_msg=name)
        else:
            np.testing.assert_array_equal(out, want, err_msg=name)
