"""Vector loads (`load_u32x4`) and 4 x 8-bit dot products (`dot4_i8`, `dot4_u8`): their semantics in the
interpreter, on WebGPU (lavapipe here) and CUDA where present, all against numpy; how each target renders them; the
errors for misuse, from the front end and from `ir.verify`; the manifest's `int_dot4` feature."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import test_render_kit as kit

from hatch_khal.frontend import KernelCompileError, compile_package
from hatch_khal.render import render_cuda, render_glsl
from khal_runtime import ir
from khal_runtime.interpreter import KernelExecutionError, execute

ROOT = Path(__file__).resolve().parents[1]
PRELUDE = """from khal_runtime.lang import (Buf, MutBuf, dot4_i8, dot4_u8, f32, global_id, i32, kernel, load_u32x4,
                                shared, u32)
"""
KERNELS = PRELUDE + '''

@kernel(workgroup_size=(64,))
def reverse_groups(out: MutBuf[u32], words: Buf[u32], n: u32):
    i = global_id().x
    if i < n:
        a, b, c, d = load_u32x4(words, i)
        out[4 * i] = d
        out[4 * i + 1] = c
        out[4 * i + 2] = b
        out[4 * i + 3] = a


@kernel(workgroup_size=(64,))
def mixed_access(out: MutBuf[u32], words: MutBuf[u32]):
    i = global_id().x
    if i < len(words) // 4:
        a, b, c, d = load_u32x4(words, i32(i))
        out[i] = a + 3 * b + 5 * c + 7 * d


@kernel(workgroup_size=(64,))
def one_group(out: MutBuf[u32], words: Buf[u32], group: i32):
    if global_id().x == 0:
        a, b, c, d = load_u32x4(words, group)
        out[0] = a + b + c + d


@kernel(workgroup_size=(64,))
def dots(signed: MutBuf[i32], unsigned: MutBuf[u32], a: Buf[u32], b: Buf[u32], acc: Buf[u32]):
    i = global_id().x
    if i < len(signed):
        signed[i] = dot4_i8(a[i], b[i], i32(acc[i]))
        unsigned[i] = dot4_u8(a[i], b[i], acc[i])
'''
LINE_OF_ONE_GROUP_LOAD = next(i for i, line in enumerate(KERNELS.splitlines(), 1) if "load_u32x4(words, group)" in line)


def compile_source(tmp_path: Path, source: str) -> dict[str, ir.Kernel]:
    (tmp_path / "pkg").mkdir(exist_ok=True)
    (tmp_path / "pkg" / "m.py").write_text(source)
    return {k.name: k for k in compile_package(tmp_path, "pkg").get("m", [])}


@pytest.fixture(scope="module")
def kernels(tmp_path_factory) -> dict[str, ir.Kernel]:
    return compile_source(tmp_path_factory.mktemp("vectors"), KERNELS)


def run_interpreter(k: ir.Kernel, arrays: dict[str, np.ndarray], grid: tuple[int, int, int],
                    scalars: dict | None = None) -> dict[str, np.ndarray]:
    buffers = [np.array(arrays[b.name], dtype=ir.NUMPY[b.elem]) for b in k.buffers]
    execute(k, grid, buffers, [(scalars or {})[s.name] for s in k.scalars])
    return {b.name: a for b, a in zip(k.buffers, buffers)}


@pytest.fixture(params=["cpu", pytest.param("webgpu", marks=pytest.mark.webgpu),
                        pytest.param("cuda", marks=pytest.mark.cuda)])
def run(request):
    return {"cpu": run_interpreter, "webgpu": kit.run_webgpu, "cuda": kit.run_cuda}[request.param]


def words(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2**32, n, dtype=np.uint64).astype(np.uint32)


# --- semantics --------------------------------------------------------------------------------------------------------


def test_a_vector_load_reads_four_consecutive_words(run, kernels):
    w = words(4 * 50 + 2)               # a tail of two words that no whole group covers
    out = run(kernels["reverse_groups"], {"out": np.zeros(200, np.uint32), "words": w}, (1, 1, 1), {"n": 50})
    np.testing.assert_array_equal(out["out"], w[:200].reshape(50, 4)[:, ::-1].reshape(-1))


def test_a_vector_load_of_a_buffer_that_is_also_accessed_otherwise(run, kernels):
    w = words(4 * 70 + 3, seed=1)
    out = run(kernels["mixed_access"], {"out": np.zeros(70, np.uint32), "words": w}, (2, 1, 1))
    groups = w[:280].reshape(70, 4).astype(np.uint64)
    np.testing.assert_array_equal(out["out"], ((groups @ np.array([1, 3, 5, 7], np.uint64)) % 2**32))


def dot_reference(a: np.ndarray, b: np.ndarray, acc: np.ndarray, signed: bool) -> np.ndarray:
    kind = np.int8 if signed else np.uint8
    x, y = (v.view(kind).reshape(-1, 4).astype(np.int64) for v in (a, b))
    start = acc.view(np.int32).astype(np.int64) if signed else acc.astype(np.int64)
    return ((x * y).sum(axis=1) + start) % 2**32


def test_dot_products_of_packed_bytes(run, kernels):
    n = 128
    a, b, acc = words(n, 2), words(n, 3), words(n, 4) % 1000
    # extremes: -128 * -128 four times, 127 * -128, -1 * -1 (255 * 255 unsigned), and accumulators that wrap
    a[:5] = [0x80808080, 0x7F7F7F7F, 0xFFFFFFFF, 0x80808080, 0xFFFFFFFF]
    b[:5] = [0x80808080, 0x80808080, 0xFFFFFFFF, 0x80808080, 0xFFFFFFFF]
    acc[:5] = [0, 0, 0, 0x7FFFFFFF, 0xFFFFFFFF]
    out = run(kernels["dots"], {"signed": np.zeros(n, np.int32), "unsigned": np.zeros(n, np.uint32), "a": a, "b": b,
                                "acc": acc}, (2, 1, 1))
    signed, unsigned = dot_reference(a, b, acc, True), dot_reference(a, b, acc, False)
    np.testing.assert_array_equal(out["signed"].view(np.uint32), signed.astype(np.uint32))
    np.testing.assert_array_equal(out["unsigned"], unsigned.astype(np.uint32))
    assert list(out["signed"][:4]) == [65536, -65024, 4, -2**31 + 65535]     # no saturation: wraps
    assert out["unsigned"][4] == 260099


@pytest.mark.parametrize("length,group", [(10, 2), (12, 3), (12, -1)])
def test_the_interpreter_refuses_a_group_outside_the_buffer_with_its_line(kernels, length, group):
    with pytest.raises(KernelExecutionError) as caught:
        run_interpreter(kernels["one_group"], {"out": np.zeros(1, np.uint32), "words": words(length)}, (1, 1, 1),
                        {"group": group})
    text = str(caught.value)
    assert f"pkg/m.py:{LINE_OF_ONE_GROUP_LOAD}" in text
    assert f"vector read of buffer 'words' out of bounds: group {group} of 4 elements (elements {4 * group} to " \
           f"{4 * group + 3}), length {length}" in text


def test_the_last_whole_group_is_in_bounds(kernels):
    w = words(11)
    out = run_interpreter(kernels["one_group"], {"out": np.zeros(1, np.uint32), "words": w}, (1, 1, 1), {"group": 1})
    assert out["out"][0] == w[4:8].astype(np.uint64).sum() % 2**32


# --- rendering --------------------------------------------------------------------------------------------------------


def test_glsl_declares_a_buffer_read_only_by_vector_loads_as_uvec4(kernels):
    text = render_glsl(kernels["reverse_groups"])
    assert "readonly buffer khal_binding_1 { uvec4 words[]; };" in text
    assert "        uvec4 loaded = words[i];\n        uint a = loaded.x;\n" in text


def test_glsl_reads_four_words_of_a_buffer_also_accessed_otherwise(kernels):
    text = render_glsl(kernels["mixed_access"])
    assert "buffer khal_binding_1 { uint words[]; };" in text
    assert "uvec4 loaded = khal_load_u32x4_words(uint(int(i)));" in text
    assert "return uvec4(words[i + 0u], words[i + 1u], words[i + 2u], words[i + 3u]);" in text


def test_glsl_emulates_the_dot_products_and_cuda_calls_dp4a(kernels):
    glsl, cuda = render_glsl(kernels["dots"]), render_cuda(kernels["dots"])
    assert "int khal_dot4_i8(uint a, uint b, int acc)" in glsl and "uint khal_dot4_u8(" in glsl
    assert "integer_dot_product" not in glsl
    assert "__dp4a((int)(a[i]), (int)(b[i]), (int)acc[i])" in cuda and "__dp4a(a[i], b[i], acc[i])" in cuda


def test_cuda_loads_a_uint4(kernels):
    assert "reinterpret_cast<const uint4*>(words)[i]" in render_cuda(kernels["reverse_groups"])


@pytest.mark.toolchains
def test_the_ptx_has_one_128_bit_load_and_dp4a(kernels):
    from hatch_khal.toolchains import nvrtc
    try:
        ptx = {name: nvrtc.compile_cuda(render_cuda(kernels[name]), name=name)
               for name in ("reverse_groups", "mixed_access", "dots")}
    except Exception as e:          # ToolchainMissing and the like
        pytest.skip(f"NVRTC is not available: {e}")
    for name in ("reverse_groups", "mixed_access"):        # mixed_access's MutBuf is never written: .nc too
        assert len(re.findall(r"ld\.global(\.nc)?\.v4\.u32", ptx[name])) == 1, name
        assert not re.search(r"ld\.global(\.nc)?\.u32", ptx[name]), name
    assert "dp4a.s32.s32" in ptx["dots"] and "dp4a.u32.u32" in ptx["dots"]


# --- misuse -----------------------------------------------------------------------------------------------------------

MISUSE = [
    ("float buffer", "x: Buf[f32]", "a, b, c, d = load_u32x4(x, i)",
     "load_u32x4 reads a buffer of u32; buffer 'x' holds f32"),
    ("shared array", "x: Buf[u32]", "a, b, c, d = load_u32x4(tile, i)",
     "load_u32x4 reads a buffer of u32, found shared array 'tile'"),
    ("one name", "x: Buf[u32]", "v = load_u32x4(x, i)", "cannot assign 4 values to one name"),
    ("two names", "x: Buf[u32]", "a, b = load_u32x4(x, i)", "cannot unpack 4 values into 2 names"),
    ("float index", "x: Buf[u32]", "a, b, c, d = load_u32x4(x, f32(i))", "an index must be i32 or u32"),
    ("arity", "x: Buf[u32]", "a, b, c, d = load_u32x4(x)", "load_u32x4() takes 2 arguments, 1 given"),
    ("float word", "x: Buf[u32]", "out[i] = dot4_i8(f32(i), x[i], i32(0))", "f32"),
    ("unsigned accumulator", "x: Buf[u32]", "out[i] = dot4_i8(x[i], x[i], u32(0))", "u32"),
]


@pytest.mark.parametrize("name,param,line,message", MISUSE, ids=[m[0] for m in MISUSE])
def test_misuse_is_refused_with_a_located_message(tmp_path, name, param, line, message):
    source = PRELUDE + f'''

@kernel(workgroup_size=(64,))
def misuse(out: MutBuf[i32], {param}):
    tile = shared(u32, 64)
    i = global_id().x
    {line}
'''
    with pytest.raises(KernelCompileError) as caught:
        compile_source(tmp_path, source)
    assert message in str(caught.value)
    assert caught.value.line == len(source.splitlines())


def hand_built(body: list, buffers=(("w", "u32", "read"),), locals_=None, functions=()) -> ir.Kernel:
    return ir.Kernel(name="k", source="tests/k.py", line=1, function="k", template={}, workgroup_size=(64, 1, 1),
                     buffers=[ir.Buffer(n, t, a, i) for i, (n, t, a) in enumerate(buffers)], scalars=[],
                     structs={}, shared={"s": "u32[8]"}, locals=locals_ or {"v": "u32x4", "x": "u32"}, body=body,
                     functions=list(functions))


ZERO = ir.Const("u32", 0)
VEC = ir.Var("u32x4", "v")


@pytest.mark.parametrize("body,message", [
    ([ir.Assign("v", ir.Load("u32x4", "shared", "s", [ZERO]))], "a u32x4 load from shared memory"),
    ([ir.Assign("x", ir.Field("u32", VEC, "q"))], "a u32x4 vector has no field 'q', only x, y, z, w"),
    ([ir.Assign("v", ir.Select("u32x4", ir.Const("bool", True), VEC, VEC))], "select between u32x4 vectors"),
    ([ir.Assign("x", ir.Binary("u32", "add", VEC, VEC))], "binary add on u32x4"),
    ([ir.Assign("x", ir.Load("u32x4", "storage", "w", [ZERO]))], "the value assigned to 'x' is u32x4, expected u32"),
])
def test_verify_keeps_vectors_to_loads_locals_and_fields(body, message):
    with pytest.raises(ir.InvalidIR, match=message):
        ir.verify(hand_built(body))


def test_verify_refuses_a_vector_load_of_a_float_buffer_and_a_vector_parameter():
    with pytest.raises(ir.InvalidIR, match="a u32x4 load from buffer 'w' of f32: it reads a buffer of u32"):
        ir.verify(hand_built([ir.Assign("v", ir.Load("u32x4", "storage", "w", [ZERO]))], (("w", "f32", "read"),)))
    helper = ir.Function("h", [ir.Scalar("p", "u32x4")], None, {}, [])
    with pytest.raises(ir.InvalidIR, match="parameter 'p' has type 'u32x4', not a scalar type"):
        ir.verify(hand_built([], functions=[helper]))


def test_a_vector_load_survives_the_json_form(kernels):
    k = kernels["reverse_groups"]
    again = ir.from_json(ir.to_json(k))
    assert ir.to_json(again) == ir.to_json(k)
    assert any(isinstance(n, ir.Load) and n.type == "u32x4" for n in ir.walk(again))


# --- the manifest -----------------------------------------------------------------------------------------------------


def test_the_manifest_lists_int_dot4_for_the_kernels_that_use_a_dot_product():
    manifest = json.loads((ROOT / "shaders" / "_generated" / "manifest.json").read_text())["kernels"]
    features = {k.rsplit("_", 2)[-2] + "_" + k.rsplit("_", 1)[-1]: v["features"] for k, v in manifest.items()
                if k.startswith("quant.matvec.matvec_q8_")}
    assert set(features) == {"scalar_shifts", "scalar_dp4a", "vector_shifts", "vector_dp4a"}
    assert all(("int_dot4" in f) == name.endswith("dp4a") for name, f in features.items()), features
