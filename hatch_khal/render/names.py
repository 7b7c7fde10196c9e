"""Identifiers in generated source: user names made legal for GLSL and CUDA, and scopes that keep them apart."""

from __future__ import annotations

import re

# Words that GLSL or CUDA C++ keep for themselves, and the built-in functions the renderers call (a local of that name
# would hide the function). One set for both targets, so that a name is spelt the same in both renderings.
RESERVED = frozenset("""
    attribute const uniform varying buffer shared coherent volatile restrict readonly writeonly atomic_uint layout
    centroid flat smooth noperspective patch sample invariant precise break continue do for while switch case default
    if else subroutine in out inout int void bool true false float double discard return struct lowp mediump highp
    precision common partition active asm class union enum typedef template this resource goto inline noinline public
    static extern external interface long short half fixed unsigned superp input output filter sizeof cast namespace
    using main demote terminateInvocation
    alignas alignof and and_eq auto bitand bitor catch char char8_t char16_t char32_t compl concept consteval
    constexpr constinit const_cast co_await co_return co_yield decltype delete dynamic_cast explicit export friend
    mutable new noexcept not not_eq nullptr operator or or_eq private protected register reinterpret_cast requires
    signed static_assert static_cast thread_local throw try typeid typename virtual wchar_t xor xor_eq
    threadIdx blockIdx blockDim gridDim warpSize dim3 printf malloc free memcpy memset assert
    int8_t int16_t int32_t int64_t uint8_t uint16_t uint32_t uint64_t float16_t float32_t float64_t
    radians degrees sin cos tan asin acos atan sinh cosh tanh asinh acosh atanh pow exp log exp2 log2 sqrt
    inversesqrt rsqrt abs sign floor trunc round roundEven rint ceil fract mod modf min max clamp mix step smoothstep
    isnan isinf fma frexp ldexp length distance dot cross normalize any all equal notEqual lessThan greaterThan
    lessThanEqual greaterThanEqual floatBitsToInt floatBitsToUint intBitsToFloat uintBitsToFloat packHalf2x16
    unpackHalf2x16 doubleBitsToInt64 doubleBitsToUint64 int64BitsToDouble uint64BitsToDouble bitfieldExtract
    bitfieldInsert bitfieldReverse bitCount findLSB findMSB uaddCarry usubBorrow umulExtended imulExtended
    atomicAdd atomicSub atomicMin atomicMax atomicAnd atomicOr atomicXor atomicExchange atomicExch atomicCompSwap
    atomicCAS barrier memoryBarrier memoryBarrierShared memoryBarrierBuffer groupMemoryBarrier
    sqrtf rsqrtf expf exp2f logf log2f sinf cosf tanf tanhf floorf ceilf truncf rintf powf fmaf fabsf fabs fminf
    fmaxf fmin fmax llabs isfinite
""".split())
# GLSL vector, matrix, sampler and image types, CUDA vector types, GLSL subgroup functions.
RESERVED_PATTERN = re.compile(r"([biudh]|f16|f32|f64|i8|i16|i32|i64|u8|u16|u32|u64)?vec[234]|d?mat[234](x[234])?|"
                              r"(f16|f32|f64)mat\w*|[iu]?(sampler|image|texture|subpassInput)\w*|subgroup[A-Z]\w*|"
                              r"u?(char|short|int|long|longlong)[1-4]|float[1-4]|double[1-4]")

def template_text(value: object) -> str:
    """A template value as it appears in generated identifiers: a type or string as written (`f32`, `q4_0`), a bool
    as `true`/`false`, a number with `m` for its minus sign and `p` for its point (`-0.5` -> `m0p5`)."""
    if isinstance(value, bool):
        return str(value).lower()
    text = str(value).replace("-", "m").replace(".", "p")
    return re.sub(r"\W", "_", text)


def legal_name(name: str) -> str:
    """A user's name as a target identifier: reserved words and names the targets keep for themselves (`gl_`,
    double or leading underscores, non-ASCII) get the `khal_` prefix, which user names never carry."""
    if name.isascii() and not (name in RESERVED or RESERVED_PATTERN.fullmatch(name) or name.startswith(("gl_", "_"))
                               or "__" in name):
        return name
    return "khal_" + "".join(c if c.isascii() and (c.isalnum() or c == "_") else f"u{ord(c):x}" for c in name
                             ).lstrip("_").replace("__", "_")


class Scope:
    """Names of one scope. A child scope starts with every name of its parent taken, so a local never shadows a
    global that the function (or, on CUDA, a helper it passes the global on to) needs."""

    def __init__(self, parent: Scope | None = None):
        self.taken: set[str] = set(parent.taken) if parent else set()
        self.names: dict[str, str] = {}

    def add(self, name: str) -> str:
        base = candidate = legal_name(name)
        n = 0
        while candidate in self.taken:
            n += 1
            candidate = f"{base}_{n}"
        self.taken.add(candidate)
        self.names[name] = candidate
        return candidate

    def __getitem__(self, name: str) -> str:
        if name not in self.names:
            raise ValueError(f"the IR refers to {name!r}, which is not declared")
        return self.names[name]
