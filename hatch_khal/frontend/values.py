"""What an expression of the kernel language can evaluate to while it is compiled.

A run-time value (`RValue`) wraps an IR expression. A compile-time value (`Comptime`) is a Python number, bool,
string, tuple or type, folded by the compiler; numbers without a type (`Comptime.type is None`) are literals that
take the type of whatever they meet. Memory (`MemRef`), builtin vectors and callables are values of their own
that only some contexts accept; a function used as a compile-time value (a template's value, a helper's `Helper`
argument) is a `Callee`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Union

from khal_runtime import ir


@dataclass(frozen=True)
class TypeName:
    """A scalar type used as a value: a cast (`f32(x)`), a template value, an argument of `shared`."""
    name: str


@dataclass
class Comptime:
    value: Any                          # int | float | bool | str | tuple | TypeName
    type: str | None = None             # the scalar type of a typed number or bool; None for untyped literals


@dataclass
class RValue:
    expr: ir.Expr

    @property
    def type(self) -> str:
        return self.expr.type


@dataclass
class MemRef:
    """A buffer, shared array or private array, possibly indexed along its leading dimensions."""
    space: str                          # storage | shared | private
    name: str                           # the IR name
    elem: str
    shape: tuple[int, ...]              # () for a buffer (one run-time sized dimension)
    access: str                         # read | read_write
    index: tuple[ir.Expr, ...] = ()
    label: str = ""                     # the name the user wrote, for messages

    @property
    def dims(self) -> int:
        return max(1, len(self.shape))

    def describe(self) -> str:
        kinds = {"storage": "buffer", "shared": "shared array", "private": "private array"}
        return f"{kinds[self.space]} {self.label or self.name!r}"


@dataclass(frozen=True)
class BuiltinVec:
    name: str                           # global_id, local_id, workgroup_id, num_workgroups


@dataclass(frozen=True)
class Callee:
    """A function used as a compile-time value: a helper or a math intrinsic, chosen by a template
    (`OP = template(add, max)`) or passed to a helper's `Helper` parameter. Two callees are equal when they are the
    same function (`key`); `name` is how instance names and the manifest spell it."""
    name: str
    key: tuple                          # ("helper", module, name) or ("intrinsic", name)
    target: Any = field(compare=False)  # the package.Function or the package.Vocab that a call lowers


@dataclass(frozen=True)
class Multi:
    """Several values from one expression: `lo, hi = unpack_half2x16(w)` or `a, b = b, a`. `vector` is the vector
    load whose fields the values are (`a, b, c, d = load_u32x4(w, i)`): unpacking loads it once, into a local."""
    values: tuple
    vector: ir.Load | None = None


Value = Union[TypeName, Comptime, RValue, MemRef, BuiltinVec, Callee, Multi, Any]


def typeof(value: Value) -> str | None:
    """The scalar type of a value usable in arithmetic; None for an untyped literal."""
    if isinstance(value, RValue):
        return value.type
    if isinstance(value, Comptime):
        return value.type
    raise TypeError(value)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_scalar_comptime(value: Value) -> bool:
    """Whether `value` is a compile-time number or bool (typed or an untyped literal)."""
    return isinstance(value, Comptime) and (is_number(value.value) or isinstance(value.value, bool))


# ---------------------------------------------------------------------------------------------------------------
# Compile-time arithmetic with the IR's semantics

def wrap(value: Any, t: str) -> Any:
    """`value` converted to the IR type `t` as a cast would: integers wrap, floats round."""
    if t == "bool":
        return bool(value)
    if t in ir.INTS:
        v = int(value) if not isinstance(value, float) else _float_to_int(value, t)
        lo, hi = ir.int_range(t)
        return (v - lo) % (hi - lo + 1) + lo
    return ir.round_float(float(value), t)


def _float_to_int(v: float, t: str) -> int:
    lo, hi = ir.int_range(t)
    if math.isnan(v):
        return 0
    return max(lo, min(hi, int(v))) if math.isfinite(v) else (hi if v > 0 else lo)


def fits(value: Any, t: str) -> bool:
    """Whether an untyped literal can take the type `t` without changing its value."""
    if isinstance(value, bool):
        return t == "bool"
    if t in ir.INTS:
        if isinstance(value, float):
            return False
        lo, hi = ir.int_range(t)
        return lo <= value <= hi
    return t in ir.FLOATS


def fold_binary(op: str, a: Any, b: Any, t: str | None) -> Any:
    """`a op b` on compile-time numbers with Python semantics, then wrapped to `t` when typed."""
    if op in ("floordiv", "mod", "div") and b == 0:
        raise ZeroDivisionError
    result = {
        "add": lambda: a + b, "sub": lambda: a - b, "mul": lambda: a * b, "div": lambda: a / b,
        "floordiv": lambda: a // b, "mod": lambda: a % b, "pow": lambda: a ** b,
        "bit_and": lambda: a & b, "bit_or": lambda: a | b, "bit_xor": lambda: a ^ b,
        "shl": lambda: a << (b % ir.BITS[t] if t else b), "shr": lambda: a >> (b % ir.BITS[t] if t else b),
    }[op]()
    return wrap(result, t) if t else result


def fold_compare(op: str, a: Any, b: Any) -> bool:
    return {"eq": a == b, "ne": a != b, "lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]


def default_type(value: Any) -> str:
    """The type of an untyped literal that meets nothing typed: i32, f32 or bool."""
    if isinstance(value, bool):
        return "bool"
    return "f32" if isinstance(value, float) else "i32"


def as_value(item: Any) -> Value:
    """An element of a compile-time tuple as a value."""
    return item if isinstance(item, (TypeName, Callee)) else Comptime(item)


def is_pure(e: ir.Expr) -> bool:
    """Whether evaluating `e` twice is harmless (no calls, no atomics)."""
    return not any(isinstance(n, (ir.Call, ir.Atomic)) for n in ir.walk(e))


def const(t: str, value: Any) -> ir.Const:
    return ir.Const(t, wrap(value, t))


def describe(value: Value) -> str:
    """A value as a message names it."""
    if isinstance(value, RValue):
        return f"a {value.type} value"
    if isinstance(value, Comptime):
        if isinstance(value.value, TypeName):
            return f"the type {value.value.name}"
        if value.type:
            return f"a {value.type} constant"
        return {str: "a string", tuple: "a tuple"}.get(type(value.value), "a literal")
    if isinstance(value, TypeName):
        return f"the type {value.name}"
    if isinstance(value, MemRef):
        return value.describe()
    if isinstance(value, BuiltinVec):
        return f"the vector {value.name}()"
    if isinstance(value, Multi):
        return f"{len(value.values)} values"
    if isinstance(value, Callee):
        return f"the function {value.name}"
    if type(value).__name__ == "Foreign":
        return value.what
    if getattr(value, "kernel", None) is not None:
        return f"the kernel {value.name}"
    kind = {"Vocab": "the built-in", "Function": "the function", "Struct": "the struct", "ModuleRef": "the module"}
    name = getattr(value, "name", "")
    return f"{kind.get(type(value).__name__, type(value).__name__)} {name}".rstrip()
