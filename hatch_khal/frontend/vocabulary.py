"""The front end's table of the kernel-language vocabulary (`khal_runtime.lang` and the Python builtins that kernels
may use), with the type rule of every callable."""

from __future__ import annotations

from dataclasses import dataclass

from khal_runtime import ir

LANG_MODULE = "khal_runtime.lang"

SCALAR_TYPES = ir.NUMERIC
VECTOR_BUILTINS = ("global_id", "local_id", "workgroup_id", "num_workgroups", "workgroup_size")
SCALAR_BUILTINS = ("local_index", "subgroup_size", "subgroup_invocation_id", "subgroup_id", "num_subgroups")
DECLARATIONS = ("kernel", "struct", "template", "Buf", "MutBuf", "Array", "shared", "array", "static_range", "require",
                "bitcast", "barrier", "storage_barrier", "unpack_half2x16", "pack_half2x16")


@dataclass(frozen=True)
class Signature:
    """How an intrinsic types its arguments. `kind` names the rule:
    - `same`: all arguments unify to one type T, the result is T (or `result` when given);
    - `fixed`: arguments and result have the listed types.
    `allowed` restricts T: "float", "int", "int32", "numeric", "bool"."""
    kind: str
    arity: int
    allowed: str = "numeric"
    result: str | None = None
    args: tuple[str, ...] = ()
    variadic: bool = False


_F = Signature("same", 1, "float")
_SUBGROUP_T = Signature("same", 1, "numeric")
_SHUFFLE = Signature("fixed", 2, "numeric", args=("T", "u32"))

INTRINSICS: dict[str, Signature] = {
    **{name: _F for name in "sqrt rsqrt exp exp2 log log2 sin cos tan tanh floor ceil trunc round".split()},
    "pow": Signature("same", 2, "float"),
    "fma": Signature("same", 3, "float"),
    "abs": Signature("same", 1, "numeric"),
    "min": Signature("same", 2, "numeric", variadic=True),
    "max": Signature("same", 2, "numeric", variadic=True),
    "clamp": Signature("same", 3, "numeric"),
    "isnan": Signature("same", 1, "float", result="bool"),
    "isinf": Signature("same", 1, "float", result="bool"),
    "count_ones": Signature("same", 1, "int32", result="u32"),
    "leading_zeros": Signature("same", 1, "int32", result="u32"),
    "trailing_zeros": Signature("same", 1, "int32", result="u32"),
    "extract_bits": Signature("fixed", 3, "int32", args=("T", "u32", "u32")),
    "insert_bits": Signature("fixed", 4, "int32", args=("T", "T", "u32", "u32")),
    "half_to_f32": Signature("fixed", 1, args=("u32",), result="f32"),
    "f32_to_half": Signature("fixed", 1, args=("f32",), result="u32"),
    **{f"subgroup_{op}": _SUBGROUP_T for op in ("add", "mul", "min", "max", "inclusive_add", "exclusive_add",
                                               "broadcast_first")},
    **{f"subgroup_{op}": Signature("same", 1, "int") for op in ("and", "or", "xor")},
    **{f"subgroup_{op}": _SHUFFLE for op in ("shuffle", "shuffle_xor", "shuffle_down", "shuffle_up")},
    "subgroup_any": Signature("same", 1, "bool"),
    "subgroup_all": Signature("same", 1, "bool"),
}

# f64 has no transcendental functions in GLSL, so the language offers only these on f64
F64_INTRINSICS = {"sqrt", "floor", "ceil", "trunc", "round", "abs", "min", "max", "clamp", "fma", "isnan", "isinf"}

ATOMICS = {f"atomic_{op}": op for op in
           ("add", "sub", "min", "max", "and", "or", "xor", "exchange", "compare_exchange")}

# Python builtins that mean something inside a kernel; `round` and `pow` are the intrinsics of the same name.
PYTHON_BUILTINS = ("abs", "min", "max", "pow", "round", "len", "range", "bool")

# Helpful refusals for builtins people reach for.
REFUSED_BUILTINS = {
    "int": "use an explicit type: i32(x), u32(x) or i64(x)",
    "float": "use an explicit type: f32(x), f16(x) or f64(x)",
    "print": "kernels cannot print; write to a debug buffer instead",
    "sum": "sum a range with a loop, or use subgroup_add / a shared-memory reduction",
    "enumerate": "loop over range(len(buf)) and index",
    "zip": "loop over range(n) and index each buffer",
    "list": "use array(T, n) for a private array or shared(T, n) for workgroup memory",
    "divmod": "write a // b and a % b",
}

LANG_NAMES = frozenset(SCALAR_TYPES + VECTOR_BUILTINS + SCALAR_BUILTINS + DECLARATIONS) | (
    frozenset(INTRINSICS) - {"abs", "min", "max", "pow", "round"}) | frozenset(ATOMICS)


def type_allowed(t: str, allowed: str) -> bool:
    return {
        "float": t in ir.FLOATS,
        "int": t in ir.INTS,
        "int32": t in ("i32", "u32"),
        "numeric": t in SCALAR_TYPES,
        "bool": t == "bool",
    }[allowed]


ALLOWED_WORDS = {"float": "a float type (f16, f32, f64)", "int": "an integer type", "int32": "i32 or u32",
                 "numeric": "a numeric type", "bool": "bool"}
