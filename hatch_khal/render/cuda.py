"""CUDA C++ for NVRTC (-> PTX, loaded by PyCUDA): the target's tables and the file around the body.

f16 values live in `float` registers, are rounded to f16 after every inexact operation and are stored as
`unsigned short`; the conversions are inline PTX because NVRTC ships no cuda_fp16.h. Signed `+ - *`, negation and
`<<` go through unsigned arithmetic, because signed overflow is undefined in C++ and wraps in the IR. Subgroups are
warps of 32 lanes, all present (the front end requires workgroup sizes that are multiples of 32 for them). A vector
load reads a `uint4` through the buffer's pointer (16-byte aligned: buffers start their allocations, and the index
counts groups of four words), one `ld.global.v4.u32`; the 4 x 8-bit dot products are `__dp4a` (sm_61 and later).
"""

from __future__ import annotations

from typing import Any

from khal_runtime import ir

from .common import ADD, BAND, EQ, INTS32, NUMBERS, PRIMARY, SHIFT, UNARY, Target, header, over
from .printer import Printer

TYPES = {"bool": "bool", "i32": "int", "u32": "unsigned int", "i64": "long long", "u64": "unsigned long long",
         "f16": "float", "f32": "float", "f64": "double", "u32x4": "uint4"}
SUFFIX = {"i32": "", "u32": "u", "i64": "ll", "u64": "ull", "f16": "f", "f32": "f", "f64": ""}
FULL = "0xffffffffu"
XYZ = "xyz"


def non_finite(t: str, nan: bool) -> str:
    if t == "f64":
        return f"__longlong_as_double({'0x7ff8000000000000ll' if nan else '0x7ff0000000000000ll'})"
    return f"__int_as_float({'0x7fc00000' if nan else '0x7f800000'})"


def cast(to: str, frm: str, p: Printer, value: ir.Expr) -> tuple[str, int]:
    if frm == "f16" and to == "f32":
        return p.emit(value)
    if to == "f16" and frm != "bool":
        # f64 converts in one rounding; integers are exact in f32 up to 2^24, beyond f16's range anyway
        fn = {"f64": "khal_f64_to_f16"}.get(frm, "khal_f16")
        inner = p.expr(value) if frm in ("f32", "f64") else f"(float){p.expr(value, UNARY)}"
        return f"{fn}({inner})", PRIMARY
    return f"({TYPES[to]}){p.expr(value, UNARY)}", UNARY


def local_index(kernel: ir.Kernel) -> tuple[str, int]:
    x, y, z = kernel.workgroup_size
    if y == z == 1:
        return "threadIdx.x", PRIMARY
    if z == 1:
        return f"threadIdx.x + threadIdx.y * {x}u", ADD
    return f"threadIdx.x + (threadIdx.y + threadIdx.z * {y}u) * {x}u", ADD


def builtin(kernel: ir.Kernel, name: str, dim: int) -> tuple[str, int]:
    d = XYZ[dim]
    li, li_prec = local_index(kernel)
    li = f"({li})" if li_prec < PRIMARY else li
    lanes = -(-kernel.workgroup_size[0] * kernel.workgroup_size[1] * kernel.workgroup_size[2] // 32)
    table = {"global_id": (f"blockIdx.{d} * {kernel.workgroup_size[dim]}u + threadIdx.{d}", ADD),
             "workgroup_id": (f"blockIdx.{d}", PRIMARY), "num_workgroups": (f"gridDim.{d}", PRIMARY),
             "local_id": (f"threadIdx.{d}", PRIMARY), "workgroup_size": (f"{kernel.workgroup_size[dim]}u", PRIMARY),
             "local_index": local_index(kernel), "subgroup_size": ("32u", PRIMARY),
             "subgroup_invocation_id": (f"{li} & 31u", BAND), "subgroup_id": (f"{li} >> 5u", SHIFT),
             "num_subgroups": (f"{lanes}u", PRIMARY)}
    return table[name]


def vector_load(p: Printer, e: ir.Load) -> tuple[str, int]:
    return f"reinterpret_cast<const {TYPES[e.type]}*>({p.globals[e.name]})[{p.expr(e.index[0])}]", PRIMARY


def _math(name: str, cname: str) -> dict:
    return {(name, "f16"): f"{cname}f({{0}})", (name, "f32"): f"{cname}f({{0}})", (name, "f64"): f"{cname}({{0}})"}


INTRINSICS = {
    **{k: v for name in "sqrt rsqrt exp exp2 log log2 sin cos tan tanh floor ceil trunc".split()
       for k, v in _math(name, name).items()},
    **_math("round", "rint"), **_math("abs", "fabs"),
    ("abs", "i32"): "abs({0})", ("abs", "i64"): "llabs({0})",
    ("pow", "f64"): "pow({0}, {1})", ("pow", "float"): "powf({0}, {1})",
    ("fma", "f64"): "fma({0}, {1}, {2})", ("fma", "float"): "fmaf({0}, {1}, {2})",
    # fminf and fmaxf return the other operand where one is NaN (docs/IR.md, Targets); CUDA overloads min/max
    ("min", "float"): "fminf({0}, {1})", ("max", "float"): "fmaxf({0}, {1})",
    ("min", "f64"): "fmin({0}, {1})", ("max", "f64"): "fmax({0}, {1})",
    ("min", "int"): "min({0}, {1})", ("max", "int"): "max({0}, {1})",
    ("clamp", "float"): "fminf(fmaxf({0}, {1}), {2})", ("clamp", "f64"): "fmin(fmax({0}, {1}), {2})",
    ("clamp", "int"): "min(max({0}, {1}), {2})",
    ("isnan", "float"): "isnan({0})", ("isinf", "float"): "isinf({0})",
    **over(INTS32, count_ones=("(unsigned int)__popc({0})", UNARY),
            leading_zeros=("(unsigned int)__clz({0})", UNARY),
            trailing_zeros=("(unsigned int)__clz(__brev({0}))", UNARY),    # __ffs counts from 1 and gives 0 for 0
            extract_bits="khal_extract_bits({0}, {1}, {2})",
            insert_bits="khal_insert_bits({0}, {1}, {2}, {3})"),
    ("half_to_f32", "u32"): "khal_f16_to_f32((unsigned short)({0}))",
    ("f32_to_half", "f32"): ("(unsigned int)khal_f32_to_f16({0})", UNARY),
    ("dot4_i8", "u32"): "__dp4a((int)({0}), (int)({1}), {2})",          # acc + products, wrapping
    ("dot4_u8", "u32"): "__dp4a({0}, {1}, {2})",
    **over(NUMBERS, **{f"subgroup_{op}": f"khal_subgroup_{op}({{0}})" for op in (
        "add", "mul", "min", "max", "inclusive_add", "exclusive_add", "broadcast_first")},
            subgroup_shuffle=f"__shfl_sync({FULL}, {{0}}, {{1}})",
            subgroup_shuffle_xor=f"__shfl_xor_sync({FULL}, {{0}}, {{1}})",
            subgroup_shuffle_down=f"__shfl_down_sync({FULL}, {{0}}, {{1}})",
            subgroup_shuffle_up=f"__shfl_up_sync({FULL}, {{0}}, {{1}})"),
    **over(("int",), **{f"subgroup_{op}": f"khal_subgroup_{op}({{0}})" for op in ("and", "or", "xor")}),
    ("subgroup_any", "bool"): (f"__any_sync({FULL}, {{0}}) != 0", EQ),
    ("subgroup_all", "bool"): (f"__all_sync({FULL}, {{0}}) != 0", EQ),
}
BINARY = {
    **{(op, "sint"): f"khal_{name}({{0}}, {{1}})" for op, name in (("add", "add"), ("sub", "sub"), ("mul", "mul"),
                                                                 ("shl", "shl"), ("floordiv", "floordiv"))},
    ("floordiv", "float"): "khal_floordiv({0}, {1})",
    ("mod", "sint"): "khal_floor_mod({0}, {1})", ("mod", "float"): "khal_floor_mod({0}, {1})",
}
ATOMICS = {**over(INTS32, add="atomicAdd(&{0}, {1})", sub="atomicSub(&{0}, {1})", min="atomicMin(&{0}, {1})",
                   max="atomicMax(&{0}, {1})", exchange="atomicExch(&{0}, {1})",
                   compare_exchange="atomicCAS(&{0}, {1}, {2})",
                   **{"and": "atomicAnd(&{0}, {1})", "or": "atomicOr(&{0}, {1})", "xor": "atomicXor(&{0}, {1})"}),
           ("add", "f32"): "atomicAdd(&{0}, {1})"}
BITCASTS: dict[tuple[str, str], Any] = {
    ("f32", "i32"): "__float_as_int({0})", ("f32", "u32"): "__float_as_uint({0})",
    ("i32", "f32"): "__int_as_float({0})", ("u32", "f32"): "__uint_as_float({0})",
    ("f64", "i64"): "__double_as_longlong({0})", ("i64", "f64"): "__longlong_as_double({0})",
    ("f64", "u64"): ("(unsigned long long)__double_as_longlong({0})", UNARY),
    ("u64", "f64"): "__longlong_as_double((long long)({0}))",
}

_DEVICE = "__device__ __forceinline__"
_SNIPPETS = [
    ("khal_f32_to_f16", """// f16 <-> f32 through PTX (NVRTC has no cuda_fp16.h); f16 values live in floats
DEVICE unsigned short khal_f32_to_f16(float x) {
    unsigned short h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x));
    return h;
}
"""),
    ("khal_f16_to_f32", """DEVICE float khal_f16_to_f32(unsigned short h) {
    float x;
    asm("cvt.f32.f16 %0, %1;" : "=f"(x) : "h"(h));
    return x;
}
"""),
    ("khal_f16", """// rounds a float to the nearest f16: f16 arithmetic is f32 arithmetic rounded after each operation
DEVICE float khal_f16(float x) {
    return khal_f16_to_f32(khal_f32_to_f16(x));
}
"""),
    ("khal_f64_to_f16", """DEVICE float khal_f64_to_f16(double x) {
    unsigned short h;
    asm("cvt.rn.f16.f64 %0, %1;" : "=h"(h) : "d"(x));
    return khal_f16_to_f32(h);
}
"""),
    # signed overflow is undefined behaviour in C++ but wraps in the IR: compute in unsigned
    ("khal_add", """template <typename T> DEVICE T khal_add(T a, T b) { return a + b; }
DEVICE int khal_add(int a, int b) { return (int)((unsigned int)a + (unsigned int)b); }
DEVICE long long khal_add(long long a, long long b) {
    return (long long)((unsigned long long)a + (unsigned long long)b);
}
"""),
    ("khal_sub", """DEVICE int khal_sub(int a, int b) { return (int)((unsigned int)a - (unsigned int)b); }
DEVICE long long khal_sub(long long a, long long b) {
    return (long long)((unsigned long long)a - (unsigned long long)b);
}
"""),
    ("khal_mul", """template <typename T> DEVICE T khal_mul(T a, T b) { return a * b; }
DEVICE int khal_mul(int a, int b) { return (int)((unsigned int)a * (unsigned int)b); }
DEVICE long long khal_mul(long long a, long long b) {
    return (long long)((unsigned long long)a * (unsigned long long)b);
}
"""),
    ("khal_neg", """DEVICE int khal_neg(int a) { return (int)(0u - (unsigned int)a); }
DEVICE long long khal_neg(long long a) { return (long long)(0ull - (unsigned long long)a); }
"""),
    ("khal_shl", """DEVICE int khal_shl(int a, unsigned int n) { return (int)((unsigned int)a << n); }
DEVICE long long khal_shl(long long a, unsigned int n) { return (long long)((unsigned long long)a << n); }
"""),
    ("khal_floordiv", """// Python's floor division: C's truncating quotient, less one where it was rounded up
// (inexact, and the signs differ)
template <typename T> DEVICE T khal_floordiv(T a, T b) {
    T q = a / b;
    return (q * b != a && (a ^ b) < 0) ? q - 1 : q;
}
DEVICE float khal_floordiv(float a, float b) { return floorf(a / b); }
DEVICE double khal_floordiv(double a, double b) { return floor(a / b); }
"""),
    ("khal_floor_mod", """// Python's %: the sign of the divisor; floats as the IR writes it, the product unfused
template <typename T> DEVICE T khal_floor_mod(T a, T b) { return a - b * khal_floordiv(a, b); }
DEVICE float khal_floor_mod(float a, float b) { return a - __fmul_rn(b, floorf(a / b)); }
DEVICE double khal_floor_mod(double a, double b) { return a - __dmul_rn(b, floor(a / b)); }
"""),
    ("khal_extract_bits", """// bits [offset, offset + count) to bit 0, sign-extended for int (offset + count <= 32)
DEVICE unsigned int khal_extract_bits(unsigned int x, unsigned int offset, unsigned int count) {
    return count == 0u ? 0u : x << (32u - offset - count) >> (32u - count);
}
DEVICE int khal_extract_bits(int x, unsigned int offset, unsigned int count) {
    return count == 0u ? 0 : (int)((unsigned int)x << (32u - offset - count)) >> (32u - count);
}
"""),
    ("khal_insert_bits", """DEVICE unsigned int khal_insert_bits(unsigned int base, unsigned int insert,
                                                            unsigned int offset, unsigned int count) {
    unsigned int mask = count == 0u ? 0u : 0xffffffffu >> (32u - count) << offset;
    return (base & ~mask) | (insert << offset & mask);
}
DEVICE int khal_insert_bits(int base, int insert, unsigned int offset, unsigned int count) {
    return (int)khal_insert_bits((unsigned int)base, (unsigned int)insert, offset, count);
}
"""),
    ("khal_lane", """DEVICE unsigned int khal_lane() {
    unsigned int lane;
    asm("mov.u32 %0, %%laneid;" : "=r"(lane));
    return lane;
}
"""),
    ("khal_subgroup_add", """// subgroup reductions: a butterfly over the 32 lanes of a warp
template <typename T> DEVICE T khal_subgroup_add(T x) {
    for (int m = 16; m > 0; m >>= 1) x = khal_add(x, __shfl_xor_sync(0xffffffffu, x, m));
    return x;
}
"""),
    *[(f"khal_subgroup_{op}", f"""template <typename T> DEVICE T khal_subgroup_{op}(T x) {{
    for (int m = 16; m > 0; m >>= 1) x = {expr};
    return x;
}}
""") for op, expr in (("mul", "khal_mul(x, __shfl_xor_sync(0xffffffffu, x, m))"),
                      ("min", "min(x, __shfl_xor_sync(0xffffffffu, x, m))"),
                      ("max", "max(x, __shfl_xor_sync(0xffffffffu, x, m))"),
                      ("and", "x & __shfl_xor_sync(0xffffffffu, x, m)"),
                      ("or", "x | __shfl_xor_sync(0xffffffffu, x, m)"),
                      ("xor", "x ^ __shfl_xor_sync(0xffffffffu, x, m)"))],
    ("khal_subgroup_inclusive_add", """// prefix sums in lane order (Hillis-Steele)
template <typename T> DEVICE T khal_subgroup_inclusive_add(T x) {
    unsigned int lane = khal_lane();
    for (unsigned int d = 1u; d < 32u; d <<= 1) {
        T y = __shfl_up_sync(0xffffffffu, x, d);
        if (lane >= d) x = khal_add(x, y);
    }
    return x;
}
"""),
    ("khal_subgroup_exclusive_add", """template <typename T> DEVICE T khal_subgroup_exclusive_add(T x) {
    T y = __shfl_up_sync(0xffffffffu, khal_subgroup_inclusive_add(x), 1);
    return khal_lane() == 0u ? (T)0 : y;
}
"""),
    ("khal_subgroup_broadcast_first", """template <typename T> DEVICE T khal_subgroup_broadcast_first(T x) {
    unsigned int active = __activemask();
    return __shfl_sync(active, x, __ffs(active) - 1);
}
"""),
]
SNIPPETS = [(name, text.replace("DEVICE", _DEVICE), None) for name, text in _SNIPPETS]

TARGET = Target(
    types=TYPES, memory_types={"f16": "unsigned short"}, suffix=SUFFIX, non_finite=non_finite,
    f16_digits="f32",       # f16 values live in floats: an f16 literal is an f32 one
    cast=cast, bitcasts=BITCASTS,
    binary=BINARY, rewrites={}, unary={("neg", "sint"): "khal_neg({0})"}, intrinsics=INTRINSICS, atomics=ATOMICS,
    builtin=builtin, length="{len}", load={"f16": "khal_f16_to_f32({})"}, store={"f16": "khal_f32_to_f16({})"},
    vector_load=vector_load, vector_zero="{}{{}}",
    f16_round="khal_f16({})", zero_array=lambda p, t, name, indent: [f"{indent}{p.declarator(t, name)} = {{}};"],
    zero_struct=lambda p, s: "{}", struct_param=None, pass_globals=True, snippets=SNIPPETS,
    barrier={"workgroup": "__syncthreads();", "storage": "__syncthreads();"}, generated=frozenset(),
)


def _param_decl(p: Printer, kind: str, name: str) -> str:
    if kind == "len":
        return f"unsigned int {p.lens[name]}"
    if kind == "buf":
        b = p.buffers[name]
        elem = TARGET.memory_types.get(b.elem, TYPES[b.elem])
        return f"{'const ' if b.access == 'read' else ''}{elem}* __restrict__ {p.globals[name]}"
    return f"{p.type(p.abi_type(p.params[name]))} {p.globals[name]}"


def render_cuda(kernel: ir.Kernel) -> str:
    p = Printer(kernel, TARGET, entry_name=kernel.name)
    functions = []
    for f in p.ordered_functions():
        names, body = p.function_body(f.params, f.locals, f.body)
        params = [p.declarator(q.type, n) for q, n in zip(f.params, names)]
        params += [_param_decl(p, kind, name) for kind, name in p.global_args(f.name)]
        functions += [f"{_DEVICE} {p.type(f.ret) if f.ret else 'void'} {p.globals[f.name]}({', '.join(params)}) {{",
                      *body, "}", ""]
    _, body = p.function_body([], kernel.locals, kernel.body)
    # the order of abi.cuda_params: each buffer's pointer and length on one line, then one line per parameter
    lines = [", ".join(_param_decl(p, kind, b.name) for kind in ("buf", "len")) for b in kernel.buffers]
    lines += [_param_decl(p, "param", s.name) for s in kernel.scalars]
    threads = kernel.workgroup_size[0] * kernel.workgroup_size[1] * kernel.workgroup_size[2]
    head = f'extern "C" __global__ void __launch_bounds__({threads}) {kernel.name}('
    entry = [head + ") {"] if not lines else [head] + [f"    {q}," for q in lines[:-1]] + [f"    {lines[-1]}) {{"]
    entry += [*body, "}"]
    code = functions + entry

    out = header(kernel, "CUDA C++ for NVRTC")
    out += [""] + p.prelude("\n".join(code))
    out += p.struct_decls()
    out += [f"__shared__ {p.declarator(t, p.globals[name], memory=True)};" for name, t in kernel.shared.items()]
    out += [""] if kernel.shared else []
    return "\n".join(out + code) + "\n"
