"""GLSL 450 compute for Vulkan (glslang -> SPIR-V -> naga in wgpu): the target's tables and the file around the body.

Choices made for naga, which reads the SPIR-V on WebGPU: unsigned negation is printed `0u - x`; `findMSB` and
`findLSB` results are converted to `uint` at once (naga types them like their operand); float `a != b` is printed
`!(a == b)` (naga writes `!=` as an ordered comparison, false with NaN); a struct parameter used whole is rebuilt
from its fields (naga rejects OpCopyLogical); f32 atomics only on buffers (naga rejects them on shared memory, and
`ir.verify` refuses them for webgpu); no 8/16-bit integer types, `subgroupElect` or `subgroupBallotBitCount`.

Vector loads: a buffer read by vector loads only is declared as an array of `uvec4`, so that each is one 128-bit
load; naga refuses a second block declared at the same binding ("Bindings ... conflict with other resource"), so
a buffer also accessed otherwise keeps its `uint[]` and a generated function reads the four words. The 4 x 8-bit
dot products are bit operations: glslang 13 has no GL_EXT_integer_dot_product, and naga refuses SPIR-V's
DotProductInput4x8BitPacked capability.
"""

from __future__ import annotations

from typing import Any

from khal_runtime import ir

from .. import abi
from .common import ADD, INTS32, NUMBERS, PRIMARY, Target, header, over
from .printer import Printer

TYPES = {"bool": "bool", "i32": "int", "u32": "uint", "i64": "int64_t", "u64": "uint64_t", "f16": "float16_t",
         "f32": "float", "f64": "double", "u32x4": "uvec4"}
SUFFIX = {"i32": "", "u32": "u", "i64": "l", "u64": "ul", "f16": "hf", "f32": "", "f64": "lf"}
XYZ = "xyz"


def non_finite(t: str, nan: bool) -> str:
    # inf and NaN have no GLSL literal, and naga refuses the infinite constant that `uintBitsToFloat(0x7f800000u)`
    # becomes. The fold width khal_grid.w is below 65,536, so `khal_grid.w >> 31u` is 0, but neither glslang nor
    # SPIRV-Tools can prove it: the value stays a run-time expression, which the driver's compiler folds
    bits = f"uintBitsToFloat({'0x7fc00000u' if nan else '0x7f800000u'} | (khal_grid.w >> 31u))"
    return bits if t == "f32" else f"{TYPES[t]}({bits})"


def cast(to: str, frm: str, p: Printer, value: ir.Expr) -> tuple[str, int]:
    # GLSL's constructors convert as IR.md says (integers wrap or extend by the source's signedness)
    return f"{TYPES[to]}({p.expr(value)})", PRIMARY


def builtin(kernel: ir.Kernel, name: str, dim: int) -> tuple[str, int]:
    table = {"global_id": f"khal_global_id.{XYZ[dim]}", "workgroup_id": f"khal_workgroup_id.{XYZ[dim]}",
             "num_workgroups": f"(khal_grid.w == 0u ? gl_NumWorkGroups.{XYZ[dim]} : khal_grid.{XYZ[dim]})",
             "local_id": f"gl_LocalInvocationID.{XYZ[dim]}",
             "workgroup_size": f"{kernel.workgroup_size[dim]}u", "local_index": "gl_LocalInvocationIndex",
             "subgroup_size": "gl_SubgroupSize", "subgroup_invocation_id": "gl_SubgroupInvocationID",
             "subgroup_id": "gl_SubgroupID", "num_subgroups": "gl_NumSubgroups"}
    return table[name], PRIMARY


def vector_load(p: Printer, e: ir.Load) -> tuple[str, int]:
    index = p.expr(e.index[0])
    if e.name in p.vector_buffers:
        return f"{p.globals[e.name]}[{index}]", PRIMARY
    return f"{vector_loader(p, e.name, e.type)}({index if e.index[0].type == 'u32' else f'uint({index})'})", PRIMARY


def vector_loader(p: Printer, buffer: str, vector: str) -> str:
    """The function that reads a `vector` from `buffer` word by word (a generated name: user names never start
    with `khal_`)."""
    return f"khal_load_{vector}_{p.globals[buffer]}"


def vector_loaders(p: Printer) -> list[str]:
    """The functions that read vectors from buffers that are also accessed otherwise (one per buffer and type)."""
    used = sorted({(n.name, n.type) for n in ir.walk(p.k) if isinstance(n, ir.Load) and n.type in ir.VECTORS
                   and n.name not in p.vector_buffers})
    out = []
    for buffer, vector in used:
        elem, lanes = ir.VECTORS[vector]
        words = ", ".join(f"{p.globals[buffer]}[i + {k}u]" for k in range(lanes))
        out += [f"{TYPES[vector]} {vector_loader(p, buffer, vector)}(uint group) {{",
                f"    uint i = group * {lanes}u;", f"    return {TYPES[vector]}({words});", "}", ""]
    return out


def zero_array(p: Printer, t: str, name: str, indent: str) -> list[str]:
    elem, dims = ir.parse_array(t) or (t, ())
    loops = "".join(f"for (int khal_i{d} = 0; khal_i{d} < {n}; ++khal_i{d}) " for d, n in enumerate(dims))
    index = "".join(f"[khal_i{d}]" for d in range(len(dims)))
    return [f"{indent}{p.declarator(t, name)};", f"{indent}{loops}{name}{index} = {p.zero(elem)};"]


def zero_struct(p: Printer, struct: str) -> str:
    return f"{p.globals[struct]}({', '.join(p.zero(p.abi_type(t)) for _, t in p.k.structs[struct])})"


def struct_param(p: Printer, name: str, struct: str) -> str:
    """A push-constant struct as a value, field by field: naga rejects the OpCopyLogical of a whole copy."""
    return f"{p.globals[struct]}({', '.join(f'{name}.{p.fields[struct][f]}' for f, _ in p.k.structs[struct])})"


SUBGROUP = {"add": "subgroupAdd", "mul": "subgroupMul", "min": "subgroupMin", "max": "subgroupMax",
            "and": "subgroupAnd", "or": "subgroupOr", "xor": "subgroupXor", "inclusive_add": "subgroupInclusiveAdd",
            "exclusive_add": "subgroupExclusiveAdd", "broadcast_first": "subgroupBroadcastFirst",
            "any": "subgroupAny", "all": "subgroupAll", "shuffle": "subgroupShuffle",
            "shuffle_xor": "subgroupShuffleXor", "shuffle_down": "subgroupShuffleDown",
            "shuffle_up": "subgroupShuffleUp"}
# operand types of the subgroup operations (the extended-types extensions give f16, i64, u64 and f64)
_SUBGROUP_TYPES = {"and": ("int",), "or": ("int",), "xor": ("int",), "any": ("bool",), "all": ("bool",)}
F16_F32 = ("f16", "f32")        # GLSL has no double transcendentals (exp, log, sin, pow, ...)


INTRINSICS: dict[Any, Any] = {
    **over(("float",), sqrt="sqrt({0})", floor="floor({0})", ceil="ceil({0})", trunc="trunc({0})",
            rsqrt="inversesqrt({0})", round="roundEven({0})", fma="fma({0}, {1}, {2})", isnan="isnan({0})",
            isinf="isinf({0})"),
    **over(F16_F32, **{name: f"{name}({{0}})" for name in "exp exp2 log log2 sin cos tan tanh".split()},
            pow="pow({0}, {1})"),
    **over(NUMBERS, abs="abs({0})", min="min({0}, {1})", max="max({0}, {1})",
            clamp="min(max({0}, {1}), {2})"),        # GLSL's clamp is undefined for lo > hi; the IR defines it
    **over(INTS32, count_ones="uint(bitCount({0}))",
            trailing_zeros="min(uint(findLSB({0})), 32u)",                 # findLSB(0) == -1 gives 32
            extract_bits="bitfieldExtract({0}, int({1}), int({2}))",
            insert_bits="bitfieldInsert({0}, {1}, int({2}), int({3}))"),
    ("leading_zeros", "u32"): ("31u - uint(findMSB({0}))", ADD),      # findMSB(0) == -1 gives 32
    ("leading_zeros", "i32"): ("31u - uint(findMSB(uint({0})))", ADD),  # findMSB(int) counts from the sign
    ("half_to_f32", "u32"): "unpackHalf2x16({0}).x",
    ("f32_to_half", "f32"): "packHalf2x16(vec2({0}, 0.0))",
    ("dot4_i8", "u32"): "khal_dot4_i8({0}, {1}, {2})",
    ("dot4_u8", "u32"): "khal_dot4_u8({0}, {1}, {2})",
    **{(f"subgroup_{op}", t): f"{fn}({{0}}, {{1}})" if op.startswith("shuffle") else f"{fn}({{0}})"
       for op, fn in SUBGROUP.items() for t in _SUBGROUP_TYPES.get(op, NUMBERS)},
}
BINARY = {
    ("floordiv", "sint"): "khal_floordiv({0}, {1})", ("mod", "sint"): "khal_floor_mod({0}, {1})",
    ("floordiv", "f32"): "khal_floordiv({0}, {1})", ("floordiv", "f64"): "khal_floordiv({0}, {1})",
    ("mod", "float"): "mod({0}, {1})",        # GLSL's mod is x - y * floor(x / y)
    # f16 floordiv and mod are one operation each: computed in f32, rounded once
    ("floordiv", "f16"): "float16_t(floor(float({0}) / float({1})))",
    ("mod", "f16"): "float16_t(mod(float({0}), float({1})))",
    # GLSL has no & and | on bool; both operands are evaluated, as for C's & on bool
    ("bit_and", "bool"): "all(bvec2({0}, {1}))", ("bit_or", "bool"): "any(bvec2({0}, {1}))",
    ("bit_xor", "bool"): "!=",
}
REWRITES: dict[Any, Any] = {("ne", "float"): lambda e: ir.Unary("bool", "not", ir.Binary("bool", "eq", e.a, e.b))}
# GLSL has no atomicSub: the printer adds the negation. f32: only add (naga: on storage buffers only)
ATOMICS = {**over(INTS32, add="atomicAdd({0}, {1})", min="atomicMin({0}, {1})", max="atomicMax({0}, {1})",
                   exchange="atomicExchange({0}, {1})", compare_exchange="atomicCompSwap({0}, {1}, {2})",
                   **{"and": "atomicAnd({0}, {1})", "or": "atomicOr({0}, {1})", "xor": "atomicXor({0}, {1})"}),
           ("add", "f32"): "atomicAdd({0}, {1})"}
BITCASTS = {("f32", "i32"): "floatBitsToInt({0})", ("f32", "u32"): "floatBitsToUint({0})",
            ("i32", "f32"): "intBitsToFloat({0})", ("u32", "f32"): "uintBitsToFloat({0})",
            ("f64", "i64"): "doubleBitsToInt64({0})", ("f64", "u64"): "doubleBitsToUint64({0})",
            ("i64", "f64"): "int64BitsToDouble({0})", ("u64", "f64"): "uint64BitsToDouble({0})"}
SNIPPETS: list[tuple[str, str, tuple[str, ...] | None]] = [
    ("khal_floordiv", """// Python's floor division: the truncating quotient, less one where it was rounded up
// (inexact, and the signs differ)
{T} khal_floordiv({T} a, {T} b) {
    {T} q = a / b;
    return (q * b != a && (a ^ b) < 0) ? q - 1 : q;
}
""", ("i32", "i64")),
    ("khal_floordiv", """{T} khal_floordiv({T} a, {T} b) {
    return floor(a / b);
}
""", ("f32", "f64")),
    ("khal_floor_mod", """{T} khal_floor_mod({T} a, {T} b) {
    return a - b * khal_floordiv(a, b);
}
""", ("i32", "i64")),
    # bitfieldExtract sign-extends. In the quant_matvec benchmark on lavapipe this form ran as fast as shifts written
    # in the kernel, where shifting ivec4 lanes was 1.6x slower (once, on a shared machine)
    ("khal_dot4_i8", """// acc + the dot product of the signed bytes of a and b (wrapping): naga has no dot product
int khal_dot4_i8(uint a, uint b, int acc) {
    int x = int(a);
    int y = int(b);
    return acc + bitfieldExtract(x, 0, 8) * bitfieldExtract(y, 0, 8)
        + bitfieldExtract(x, 8, 8) * bitfieldExtract(y, 8, 8)
        + bitfieldExtract(x, 16, 8) * bitfieldExtract(y, 16, 8)
        + bitfieldExtract(x, 24, 8) * bitfieldExtract(y, 24, 8);
}
""", None),
    ("khal_dot4_u8", """// acc + the dot product of the four unsigned bytes of a and b (wrapping)
uint khal_dot4_u8(uint a, uint b, uint acc) {
    return acc + bitfieldExtract(a, 0, 8) * bitfieldExtract(b, 0, 8)
        + bitfieldExtract(a, 8, 8) * bitfieldExtract(b, 8, 8)
        + bitfieldExtract(a, 16, 8) * bitfieldExtract(b, 16, 8)
        + bitfieldExtract(a, 24, 8) * bitfieldExtract(b, 24, 8);
}
""", None),
]

TARGET = Target(
    types=TYPES, memory_types={}, suffix=SUFFIX, non_finite=non_finite,
    f16_digits="f64",       # glslang rounds an `hf` literal's double toward zero: print f16 values exactly
    cast=cast, bitcasts=BITCASTS, binary=BINARY, rewrites=REWRITES,
    unary={},
    intrinsics=INTRINSICS, atomics=ATOMICS, builtin=builtin, length="uint({name}.length())", load={}, store={},
    vector_load=vector_load, vector_zero="{}(0u)",
    f16_round=None, zero_array=zero_array,
    zero_struct=zero_struct, struct_param=struct_param,
    pass_globals=False, snippets=SNIPPETS,
    # glslang's barrier() in a compute shader also makes shared-memory writes visible
    barrier={"workgroup": "barrier();", "storage": "memoryBarrierBuffer();\nbarrier();"},
    generated=frozenset({"khal_params", "khal_grid", "khal_workgroup_id", "khal_global_id"}),
)


def extensions(kernel: ir.Kernel, types: set[str], uses: set[str], sub_types: set[str]) -> list[str]:
    """The #extension lines; `types` and `uses` are the kernel's, `sub_types` the operand types of its subgroup
    intrinsics."""
    sub = {n[len("subgroup_"):] for n in uses if n.startswith("subgroup_")} | (
        uses & {"subgroup_size", "subgroup_invocation_id", "subgroup_id", "num_subgroups"})
    wanted = [
        ("GL_EXT_shader_explicit_arithmetic_types_float16", "f16" in types),
        ("GL_EXT_shader_16bit_storage", any(b.elem == "f16" for b in kernel.buffers)),
        ("GL_EXT_shader_explicit_arithmetic_types_int64", bool(types & {"i64", "u64"})),
        ("GL_KHR_shader_subgroup_basic", bool(sub)),
        ("GL_KHR_shader_subgroup_arithmetic", bool(sub & {"add", "mul", "min", "max", "and", "or", "xor",
                                                           "inclusive_add", "exclusive_add"})),
        ("GL_KHR_shader_subgroup_shuffle", bool(sub & {"shuffle", "shuffle_xor"})),
        ("GL_KHR_shader_subgroup_shuffle_relative", bool(sub & {"shuffle_up", "shuffle_down"})),
        ("GL_KHR_shader_subgroup_ballot", "broadcast_first" in sub),
        ("GL_KHR_shader_subgroup_vote", bool(sub & {"any", "all"})),
        ("GL_EXT_shader_subgroup_extended_types_float16", "f16" in sub_types),
        ("GL_EXT_shader_subgroup_extended_types_int64", bool(sub_types & {"i64", "u64"})),
        ("GL_EXT_shader_atomic_float", "atomic_f32" in uses),
    ]
    return [f"#extension {name} : require" for name, on in wanted if on]


def render_glsl(kernel: ir.Kernel) -> str:
    p = Printer(kernel, TARGET)
    subgroup_ops = []
    for n in ir.walk(kernel):
        if isinstance(n, ir.Intrinsic) and n.name.startswith("subgroup_"):
            subgroup_ops.append(n)
    functions = []
    for f in p.ordered_functions():
        names, body = p.function_body(f.params, f.locals, f.body)
        params = ", ".join(p.declarator(q.type, n) for q, n in zip(f.params, names))
        functions += [f"{p.type(f.ret) if f.ret else 'void'} {p.globals[f.name]}({params}) {{", *body, "}", ""]
    _, body = p.function_body([], kernel.locals, kernel.body)
    types, uses = kernel.types(), kernel.uses()
    uses_global_id = "global_id" in uses
    x, y, z = kernel.workgroup_size
    main = [
        "void main() {",
        "    // the logical workgroup id: past 65,535 workgroups in x the runtime folds x into z (docs/IR.md, ABI)",
        "    khal_workgroup_id = uvec3(gl_WorkGroupID.x + gl_WorkGroupID.z * khal_grid.w, gl_WorkGroupID.y,",
        "                              khal_grid.w == 0u ? gl_WorkGroupID.z : 0u);",
        "    if (khal_workgroup_id.x >= khal_grid.x) {",
        "        return;",
        "    }",
        *([f"    khal_global_id = khal_workgroup_id * uvec3({x}u, {y}u, {z}u) + gl_LocalInvocationID;"]
          if uses_global_id else []),
        *body, "}"]
    code = functions + main

    out = header(kernel, "GLSL 450 compute for Vulkan / WebGPU")
    out += ["#version 450", *extensions(kernel, types, uses, {n.args[0].type for n in subgroup_ops}), "",
            f"layout(local_size_x = {x}, local_size_y = {y}, local_size_z = {z}) in;", ""]
    out += p.struct_decls()
    for b in kernel.buffers:
        access = "readonly " if b.access == "read" else ""
        elem = TYPES[p.vector_buffers.get(b.name, b.elem)]
        out.append(f"layout(std430, set = 0, binding = {b.binding}) {access}buffer khal_binding_{b.binding} "
                   f"{{ {elem} {p.globals[b.name]}[]; }};")
    loaders = vector_loaders(p)
    out += ["", *loaders[:-1]] if loaders else []
    out += ["", "// (x, y, z, fold): the logical grid in workgroups and the fold width, 0 when not folded",
            "layout(push_constant, std430) uniform khal_params {", "    uvec4 khal_grid;"]
    for e in abi.push_constants(kernel)[0][1:]:
        out.append(f"    layout(offset = {e['offset']}) {p.type(p.abi_type(e['type']))} {p.globals[e['name']]};")
    out += ["};", ""]
    out += [f"shared {p.declarator(t, p.globals[name])};" for name, t in kernel.shared.items()]
    out += ["uvec3 khal_workgroup_id;"] + (["uvec3 khal_global_id;"] if uses_global_id else []) + [""]
    out += p.prelude("\n".join(code))
    return "\n".join(out + code) + "\n"
