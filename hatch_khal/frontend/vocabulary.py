"""The front end's table of the kernel-language vocabulary (`khal_runtime.lang` and the Python builtins that kernels
may use), with the type rule of every callable. Builtins, intrinsics, vector loads and atomics are derived from the
IR's table of operations (`khal_runtime.ir.ops`); a kernel of the language runs on every target, so it may use what
all allow."""

from __future__ import annotations

from dataclasses import dataclass

from khal_runtime import ir

LANG_MODULE = "khal_runtime.lang"

SCALAR_TYPES = ir.NUMERIC
VECTOR_BUILTINS = tuple(name for name, dims in ir.BUILTINS.items() if dims == 3)
SCALAR_BUILTINS = tuple(name for name, dims in ir.BUILTINS.items() if dims == 1)
DECLARATIONS = ("kernel", "struct", "template", "Helper", "Const", "Buf", "MutBuf", "Array", "shared", "array",
                "static_range", "require", "bitcast", "barrier", "storage_barrier", "unpack_half2x16", "pack_half2x16")

# the families of operand types that the front end names in its messages
FAMILIES = {"float": ir.FLOATS, "int": ir.INTS, "int32": ("i32", "u32"), "numeric": ir.NUMERIC, "bool": ("bool",)}
ALLOWED_WORDS = {"float": "a float type (f16, f32, f64)", "int": "an integer type", "int32": "i32 or u32",
                 "numeric": "a numeric type", "bool": "bool"}


@dataclass(frozen=True)
class Signature:
    """How the front end types a call of an intrinsic (derived from the IR's table, `ir.INTRINSICS`). `kind`:
    - `same`: all arguments unify to one type T, the result is T (or `result` when given);
    - `fixed`: arguments and result have the listed types ("T": the first argument's).
    `allowed` names the family of T that some target allows ("float", "int", "int32", "numeric", "bool");
    `ir.ops.unavailable` says where it is missing."""
    kind: str
    arity: int
    allowed: str = "numeric"
    result: str | None = None
    args: tuple[str, ...] = ()
    variadic: bool = False


# `min(a, b, c)` is `min(min(a, b), c)`
VARIADIC = ("min", "max")


def _signature(name: str, sig: ir.Signature) -> Signature:
    family = next(word for word, types in FAMILIES.items() if types == sig.family()) if sig.args[0] == "T" \
        else "numeric"
    same = all(a == "T" for a in sig.args)
    return Signature("same" if same else "fixed", len(sig.args), family, None if sig.result == "T" else sig.result,
                     () if same else sig.args, name in VARIADIC)


INTRINSICS: dict[str, Signature] = {name: _signature(name, sig) for name, sig in ir.INTRINSICS.items()}
ATOMICS = {f"atomic_{op}": op for op in ir.ATOMIC_OPS}
VECTOR_LOADS = ir.VECTOR_LOADS

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
    frozenset(INTRINSICS) - {"abs", "min", "max", "pow", "round"}) | frozenset(ATOMICS) | frozenset(VECTOR_LOADS)


def type_allowed(t: str, allowed: str) -> bool:
    return t in FAMILIES[allowed]


def unavailable_message(name: str, t: str) -> tuple[str, str | None] | None:
    """(message, hint) when intrinsic `name` exists for the operand type `t` on some targets but not on all, which
    a kernel of the language is built for; None when every target has it."""
    missing = ir.ops.unavailable(name, t)
    if not missing:
        return None
    where = " and ".join(ir.ops.TARGET_NAMES[target] for target in missing)
    others = [o for o in ir.INTRINSICS[name].allowed() if o in ir.FLOATS or o in ir.INTS]
    return (f"{name}() is not available for {t} ({where} {'has' if len(missing) == 1 else 'have'} no {t} {name})",
            f"convert to {others[-1]} for this operation" if others else None)


def atomic_hint(op: str) -> str:
    """What atomic `op` works on in the language, and which target makes it narrower than the others."""
    words = {"storage": "buffers", "shared": "shared memory"}
    allowed = [f"{', '.join(ir.atomic_types(op, space))} in {words[space]}" for space in ir.ops.ATOMIC_SPACES]
    missing = [f"{ir.ops.TARGET_NAMES[target]} has no {t} atomic_{op} on {words[space]}"
               for space in ir.ops.ATOMIC_SPACES for target in ir.TARGETS
               for t in ir.atomic_types(op, space, [x for x in ir.TARGETS if x != target])
               if t not in ir.atomic_types(op, space, [target])]
    return f"atomic_{op} works on {'; '.join(allowed)}" + (f" ({'; '.join(missing)})" if missing else "")
