"""The GLSL and CUDA renderers and the parameter ABI: every kernel of the catalogue compiles (glslang + SPIR-V
validation + naga through wgpu-py; NVRTC for compute_75), and the text follows the rules a reader relies on."""

from __future__ import annotations

import json
import re
import struct

import pytest
import render_kernels_rules as rules
import test_render_kernels as kernels
import test_render_kit as kit
from test_render_kit import (
    RO,
    RW,
    assign,
    bstore,
    buf,
    call,
    do,
    for_,
    function,
    gid,
    if_,
    kernel,
    land,
    length,
    param,
    ret,
    select,
    var,
)

from hatch_khal import abi
from hatch_khal.render import common, cuda, glsl, names, render_cuda, render_glsl
from khal_runtime import ir

CATALOGUE = kernels.catalogue()


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_glsl_compiles_and_validates(name):
    kit.spirv(CATALOGUE[name])


@pytest.mark.webgpu
@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_naga_accepts_the_spirv(name):
    kit.pipeline(CATALOGUE[name])


@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_cuda_compiles_with_nvrtc(name):
    ptx = kit.cuda_ptx(CATALOGUE[name])
    assert f".entry {name}(" in ptx and ".target sm_75" in ptx


def test_rendering_is_deterministic():
    for k in CATALOGUE.values():
        assert render_glsl(k) == render_glsl(kernels.catalogue()[k.name])
        assert render_cuda(k) == render_cuda(kernels.catalogue()[k.name])


def test_header_names_source_function_and_template():
    text = render_glsl(CATALOGUE["matmul"])
    assert text.startswith("// khal kernel matmul: GLSL")
    assert "// from tests/kernels/matmul.py:1, function matmul; template: TILE=8; workgroup size 8x8x1" in text
    assert render_cuda(CATALOGUE["reduce_sum_f32"]).splitlines()[1].endswith('template: T="f32"; workgroup size 64x1x1')


# --- names ------------------------------------------------------------------------------------------------------


def clashing() -> ir.Kernel:
    """Names that GLSL or CUDA keep for themselves, and a helper local named like a buffer its callee uses."""
    i, sample = var("u32", "i"), var("f32", "sample")
    inner = function("min", [("i", "u32")], "f32", [ret(buf("f32", "y", i) + param("f32", "texture2D"))])
    outer = function("outer", [("i", "u32")], "f32", [assign("y", call("f32", "min", i)), ret(var("f32", "y"))])
    return kernel("clashing", [
        assign("i", gid()), assign("out_len", length("out")),
        if_(i >= var("u32", "out_len"), [ret()]),
        assign("sample", call("f32", "outer", i) + param("Input", "input").field("f32", "in")),
        bstore("out", i, sample + buf("f32", "__x", i)),
    ], [("out", "f32", RW), ("y", "f32", RO), ("__x", "f32", RO)], scalars=[("texture2D", "f32"), ("input", "Input")],
        structs={"Input": [("in", "f32")]}, functions=[inner, outer])


def test_reserved_and_clashing_names_are_renamed():
    k = clashing()
    g, c = render_glsl(k), render_cuda(k)
    for text in (g, c):
        assert "khal_out[i] = khal_sample + khal_x[i];" in text and "khal_input.khal_in" in text
        assert "khal_texture2D" in text
    assert "float khal_min(uint i) {" in g and "float khal_min(unsigned int i, const float* __restrict__ y" in c
    assert "float y_1 = khal_min(i, y, khal_texture2D);" in c            # the local makes room for the buffer
    assert "unsigned int out_len_1 = out_len;" in c                       # and for the length parameter
    kit.spirv(k)
    kit.cuda_ptx(k)


def test_generated_names_are_apart_from_renamed_ones():
    for target in (glsl.TARGET, cuda.TARGET):
        generated = {name for name, _, _ in target.snippets} | target.generated
        assert not {name[len("khal_"):] for name in generated} & names.RESERVED


# --- declarations -------------------------------------------------------------------------------------------------


def test_declarations_sit_close_to_their_use():
    body = render_glsl(rules.declarations()).split("void main() {")[1]
    lines = [line.strip() for line in body.splitlines()]
    loop = lines.index("for (uint k = 0u; k < 8u; ++k) {")
    assert lines.index("uint x = 0u;") < loop and lines.index("uint w = 0u;") < loop
    assert lines[loop + 4] == "uint y = x * 2u;" and "w += y;" in lines
    assert lines[lines.index("uint z = 0u;") + 1] == "if (i > 3u) {"
    assert "uint i = khal_global_id.x;" in lines


def test_loop_variable_read_after_the_loop_is_declared_outside():
    text = render_cuda(CATALOGUE["loops"])
    assert "int k = 0;\n    for (k = 0; k < 20; ++k) {" in text
    assert "for (k = 10; k > 0; k = khal_add(k, -2)) {" in text


def test_stop_is_evaluated_once():
    n = var("u32", "n")
    k = kernel("stop_once", [
        assign("n", 4),
        for_("k", 0, n, 1, [assign("n", n + 1)]),
        for_("j", 0, length("out") - 1, 1, [bstore("out", var("u32", "j"), 1, "u32")]),
    ], [("out", "u32", RW)])
    text = render_glsl(k)
    assert "uint khal_stop = n;" in text and "k < khal_stop;" in text
    assert "j < uint(out_1.length()) - 1u;" in text.replace("khal_out", "out_1")  # invariant: stays inline
    kit.spirv(k)


# --- expressions --------------------------------------------------------------------------------------------------


def test_parentheses_follow_precedence_and_clarity():
    a, b, c = (buf("i32", "x", j) for j in range(3))
    p, q, r = (buf("u32", "u", j) for j in range(3))
    exprs = {
        "(x[0u] + x[1u]) * x[2u]": (a + b) * c, "x[0u] - (x[1u] - x[2u])": a - (b - c),
        "x[0u] - x[1u] - x[2u]": a - b - c, "u[0u] << (u[1u] & 31u)": p << q,
        "(u[0u] & u[1u]) == u[2u]": (p & q).eq(r), "(u[0u] >> 8u) & 255u": (p >> 8) & 255,
        "-(-x[0u])": -(-a),  # noqa: B002 "(x[0u] < x[1u] && x[1u] < x[2u]) || x[0u] == 0": lor(land(a < b, b < c), a.eq(0)),
        "(x[0u] < x[1u] && x[1u] < x[2u]) ? x[0u] : x[1u]": select(land(a < b, b < c), a, b),
        "x[0u] * x[1u] + x[2u]": a * b + c, "-x[0u] * x[1u]": -a * b, "-(x[0u] * x[1u])": -(a * b),
    }
    k = kernel("parens", [bstore("x", j, e, e.t) for j, e in enumerate(exprs.values())],
               [("x", "i32", RW), ("u", "u32", RW)])
    text = render_glsl(k)
    for j, expected in enumerate(exprs):
        assert f"x[{j}u] = {expected};" in text


def test_float_literals_are_shortest_and_exact():
    lit = lambda t, v: common.literal(glsl.TARGET, t, v)[0]
    assert [lit("f32", v) for v in (0.1, 1.0, 1e10, 1 / 3, -0.0)] == ["0.1", "1.0", "1e+10", "0.33333334", "-0.0"]
    assert lit("f64", 0.1) == "0.1lf" and lit("f16", 0.1) == "0.0999755859375hf" and lit("f16", 65504) == "65504.0hf"
    assert lit("f32", float("inf")) == "uintBitsToFloat(0x7f800000u | (khal_grid.w >> 31u))" and \
        lit("f16", 1e6) == "float16_t(uintBitsToFloat(0x7f800000u | (khal_grid.w >> 31u)))"
    assert lit("i32", -2**31) == "-2147483647 - 1" and lit("u64", 2**64 - 1) == "18446744073709551615ul"
    assert common.literal(cuda.TARGET, "f16", 0.1)[0] == "0.099975586f"
    assert common.literal(cuda.TARGET, "f64", float("-inf"))[0] == "-__longlong_as_double(0x7ff0000000000000ll)"


def test_cuda_f16_uses_inline_ptx_and_rounds_each_operation():
    text = render_cuda(CATALOGUE["f16_math"])
    assert "#include" not in text and 'asm("cvt.rn.f16.f32 %0, %1;"' in text
    assert "khal_f16(khal_f16(khal_f16(h + 1.5f) * h) * khal_f16(h - 3.0f))" in text
    assert "const unsigned short* __restrict__ x" in text and "__shared__ unsigned short stage[64];" in text


def test_f32_atomics_on_shared_memory_are_refused_for_webgpu_only():
    k = kernel("shared_float_atomic", [do(kit.atomic("f32", "add", "shared", "s", [0], 1.0))], [],
               shared={"s": "f32[1]"})
    with pytest.raises(ir.InvalidIR, match="atomic add on f32 in shared memory is not available on webgpu"):
        ir.verify(k)
    ir.verify(k, ("cuda", "cpu"))
    kit.cuda_ptx(k)


# --- ABI ----------------------------------------------------------------------------------------------------------


def test_push_constant_layout():
    entries, size = abi.push_constants(CATALOGUE["parameters"])
    assert [(e["name"], e["offset"], e["size"], e["format"]) for e in entries] == [
        ("khal_grid", 0, 16, "4I"), ("on", 16, 4, "I"), ("offset", 20, 4, "i"), ("shape", 24, 24, "I4xdIf"),
        ("big", 48, 8, "d")]
    assert size == 56 and struct.calcsize(abi.pack_format(entries, size)) == 56
    assert entries[3]["fields"] == [{"name": "rows", "type": "u32", "offset": 0}, {"name": "scale", "type": "f64",
                                    "offset": 8}, {"name": "flip", "type": "bool", "offset": 16},
                                   {"name": "bias", "type": "f32", "offset": 20}]
    assert json.loads(json.dumps(entries)) == entries
    glsl_offsets = [int(o) for o in re.findall(r"layout\(offset = (\d+)\)", render_glsl(CATALOGUE["parameters"]))]
    assert glsl_offsets == [e["offset"] for e in entries[1:]]


def test_cuda_parameter_layout_matches_nvrtc():
    for k in CATALOGUE.values():
        entries, size = abi.cuda_params(k)
        ptx = kit.cuda_ptx(k)
        declared = re.findall(r"\.param (?:\.align (\d+) \.b8 \w+\[(\d+)\]|\.(?:u|s|b|f)(\d+) \w+)",
                              ptx.split(f".entry {k.name}(")[1].split(")")[0])
        offset, ptx_offsets = 0, []
        for align, nbytes, bits in declared:
            width, alignment = (int(nbytes), int(align)) if nbytes else (int(bits) // 8, int(bits) // 8)
            offset = -(-offset // alignment) * alignment
            ptx_offsets.append(offset)
            offset += width
        assert ptx_offsets == [e["offset"] for e in entries], k.name
        assert size == offset
    assert [(e["name"], e["kind"], e["offset"]) for e in abi.cuda_params(CATALOGUE["helpers"])[0]] == [
        ("x", "buffer", 0), ("x_len", "len", 8), ("y", "buffer", 16), ("y_len", "len", 24), ("scale", "scalar", 28)]
