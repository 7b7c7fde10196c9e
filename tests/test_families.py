"""Template families (`khal_runtime.Family`): choosing an instance by its template values, the errors that list
what exists, and the generated stub that tells a type checker which class `pick` gives."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from khal_runtime import Family, Kernel, KernelArgumentError
from khal_runtime.lang import exp, f16, f32, i32
from shaders._generated.vortx.elementwise import (
    BINARY,
    CONVERT,
    UNARY,
    Binary_f32_add,
    Binary_f32_max,
    Binary_i32_max,
    Convert_f16_u32,
    Unary_f32_silu,
)
from shaders._generated.vortx.gemm import GEMM_BLOCKED, GemmBlocked_8_4
from shaders.vortx import elementwise

ROOT = Path(__file__).resolve().parents[1]


def test_pick_by_type_or_name():
    assert BINARY.pick(T=f32, OP="add") is Binary_f32_add
    assert BINARY.pick(T="f32", OP="add") is Binary_f32_add
    assert BINARY.pick(OP="max", T=np.int32) is Binary_i32_max
    assert BINARY.pick(T=np.dtype(np.int32), OP="max") is Binary_i32_max
    assert CONVERT.pick(SRC="u32", DST="f16") is Convert_f16_u32       # class names list values in DST, SRC order
    assert GEMM_BLOCKED.pick(TM=8, TN=4) is GemmBlocked_8_4
    assert GEMM_BLOCKED.pick(TM=np.int64(8), TN=4) is GemmBlocked_8_4


def test_a_family_is_a_sequence_of_its_instances():
    assert len(BINARY) == len(list(BINARY)) == 17 and BINARY[0] is Binary_f32_add and Binary_i32_max in BINARY
    assert {cls.TEMPLATE["T"] for cls in BINARY} == {"f32", "i32", "u32"}
    assert BINARY.params == {"T": ("f32", "i32", "u32"), "OP": ("add", "sub", "mul", "max", "min", "div", "pow")}
    assert repr(BINARY) == ("<Family vortx.elementwise.binary: 17 instances, T in ('f32', 'i32', 'u32'), "
                            "OP in ('add', 'sub', 'mul', 'max', 'min', 'div', 'pow')>")


def test_pick_errors_list_the_values_there_are():
    with pytest.raises(KernelArgumentError, match="vortx.elementwise.binary has no instance with T='f16'; T is one "
                                                  "of 'f32', 'i32', 'u32'"):
        BINARY.pick(T=f16, OP="add")
    with pytest.raises(KernelArgumentError, match="no instance with OP='mod'; OP is one of 'add', 'sub', "
                                                  "'mul', 'max', 'min', 'div', 'pow'"):
        BINARY.pick(T=f32, OP="mod")
    with pytest.raises(KernelArgumentError, match=r"the template parameters are T, OP \(missing OP\)"):
        BINARY.pick(T=f32)
    with pytest.raises(KernelArgumentError, match=r"the template parameters are T, OP \(unknown FN\)"):
        BINARY.pick(T=f32, OP="add", FN="exp")
    with pytest.raises(KernelArgumentError, match="no instance with T=\\['f32'\\]"):
        BINARY.pick(T=["f32"], OP="add")


def test_an_excluded_combination_is_refused_with_the_condition():
    with pytest.raises(KernelArgumentError, match=re.escape(
            "vortx.elementwise.binary excludes T='i32', OP='div': its exclude= condition FLOAT_ONLY = T != f32 and "
            "OP in (div, pow) (shaders/vortx/elementwise.py:") + r"\d+\) holds for it; with T='i32' OP is one of "
            "'add', 'sub', 'mul', 'max', 'min'"):
        BINARY.pick(T=i32, OP="div")
    assert UNARY.excluded[0] == {"T": "i32", "FN": "inv"} and len(UNARY.excluded) == 2 * 7
    # the manifest lists the same combinations, with the same condition
    manifest = json.loads((ROOT / "shaders/_generated/manifest.json").read_text())
    entry = manifest["excluded"]["vortx.elementwise.unary"]
    assert [dict(e) for e in entry["instances"]] == list(UNARY.excluded)
    assert UNARY.condition == f"{entry['condition']} ({entry['source']}:{entry['line']})"
    assert entry["condition"] == "T != f32 and FN not in (copy, neg, abs)"


def test_function_valued_templates_pick_by_name_or_function():
    assert BINARY.pick(T=f32, OP=max) is Binary_f32_max                 # Python's max: the builtin the kernel uses
    assert UNARY.pick(T=f32, FN=elementwise.silu) is Unary_f32_silu     # a helper of the shader module
    assert UNARY.pick(T=f32, FN=exp) is UNARY.pick(T="f32", FN="exp")   # an intrinsic of khal_runtime.lang


def test_values_of_one_parameter_given_others():
    assert BINARY.values("T", OP="div") == ("f32",)
    assert BINARY.values("OP", T=np.int32) == ("add", "sub", "mul", "max", "min")
    assert UNARY.values("T") == ("f32", "i32", "u32")
    with pytest.raises(KernelArgumentError, match=r"the template parameters are T, OP \(unknown ARITH\)"):
        BINARY.values("T", ARITH="add")


def test_a_combination_that_was_not_compiled():
    wide = type("Wide", (Kernel,), {"TEMPLATE": {"T": "f32", "N": 1}})
    narrow = type("Narrow", (Kernel,), {"TEMPLATE": {"T": "i32", "N": 2}})
    family = Family("m.f", (wide, narrow))
    assert family.pick(T=i32, N=2) is narrow
    with pytest.raises(KernelArgumentError, match=r"m.f was not compiled for T='f32', N=2: the instances are "
                                                  r"\(T='f32', N=1\), \(T='i32', N=2\)"):
        family.pick(T=f32, N=2)


SCRIPT = """\
from khal_runtime import Backend, Pass
from khal_runtime.lang import f32
from shaders._generated.vortx.elementwise import BINARY, Strided


def run(backend: Backend, pass_: Pass, op: str) -> None:
    a = backend.uninit_buffer(f32, 4)
    lay = Strided(*([0] * 19))
    BINARY.pick(T=f32, OP="add")(backend).call(pass_, 4, a, a, a, lay, 4, True)
    BINARY.pick(T="f32", OP="max")(backend).call(pass_, 4, a, a, a, lay, 4, True)
    BINARY.pick(T="i32", OP="add")(backend).call(pass_, 4, a, a, a, lay, 4, True)  # an i32 kernel
    BINARY.pick(T=f32, OP=op)   # a value known only at run time: any kernel class
"""


def test_mypy_knows_the_class_pick_gives(tmp_path, monkeypatch):
    api = pytest.importorskip("mypy.api")
    monkeypatch.setenv("MYPYPATH", str(ROOT))
    script = tmp_path / "picks.py"
    script.write_text(SCRIPT)
    out, err, _ = api.run([str(script), "--follow-imports=silent", "--no-error-summary",
                           "--cache-dir", str(tmp_path / "cache"), "--python-version", "3.10"])
    flagged = {int(line.split(":")[1]) for line in out.splitlines() if ": error:" in line}
    wanted = {i + 1 for i, line in enumerate(SCRIPT.splitlines()) if line.endswith("# an i32 kernel")}
    assert flagged == wanted, out + err
    assert 'Argument 3 to "call" of "Binary_i32_add" has incompatible type "Buffer[f32]"' in out
