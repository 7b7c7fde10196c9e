"""What the GLSL and CUDA renderers share besides the printer: C's precedence levels, the lookup of per-type table
entries, exact literals, the `Target` that holds everything that differs between the two languages (type names,
literals, casts, memory access, operator and intrinsic templates, prelude snippets; defined in `glsl.py` and
`cuda.py`), and the header of a generated file.

Templates are strings with `{0}`, `{1}`, ... for the operands, each printed as a complete expression: a template must
put every operand inside parentheses or a call's argument list, and use it once. A template whose result is not a
primary expression is written `(text, precedence)`. An entry without `{` names an operator instead (`"!="`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from khal_runtime import ir

if TYPE_CHECKING:
    from .printer import Printer


# C precedence levels, higher binds tighter. TOP is a complete expression (assignment and comma excluded).
PRIMARY, UNARY, MUL, ADD, SHIFT, REL, EQ, BAND, BXOR, BOR, LAND, LOR, COND, TOP = (
    16, 15, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 0)
SYMBOLS = {"*": MUL, "/": MUL, "%": MUL, "+": ADD, "-": ADD, "<<": SHIFT, ">>": SHIFT, "<": REL, "<=": REL, ">": REL,
           ">=": REL, "==": EQ, "!=": EQ, "&": BAND, "^": BXOR, "|": BOR, "&&": LAND, "||": LOR}
OPERATORS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "bit_and": "&", "bit_or": "|", "bit_xor": "^",
             "shl": "<<", "shr": ">>", "eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=",
             "and": "&&", "or": "||"}
# Writing `a & b == c` or `a << b + c` is legal but misleading: operands of bitwise and shift operators that are
# themselves other binary operators get parentheses even where precedence makes them redundant.
BITWISE = {BAND, BXOR, BOR, SHIFT}
# Operations whose f16 result is exact given f16 operands: no rounding needed where f16 lives in f32 registers.
F16_EXACT = {"abs", "min", "max", "clamp", "floor", "ceil", "trunc", "round"} | {
    f"subgroup_{op}" for op in ("min", "max", "shuffle", "shuffle_xor", "shuffle_down", "shuffle_up",
                                "broadcast_first")}
# a call of a prelude helper in generated text
HELPER_CALL = re.compile(r"\b(khal_\w+)\(")


def type_class(t: str) -> str:
    return "sint" if t in ir.SIGNED else "uint" if t in ir.INTS else "float" if t in ir.FLOATS else t


def lookup(table: dict, key: str, t: str) -> Any:
    """A table entry for `key` and type `t`: entries are keyed `key`, or `(key, t)`, `(key, class)` or
    `(key, "int")` where they differ by type; the most specific one wins."""
    keys = [(key, t), (key, type_class(t))] + ([(key, "int")] if t in ir.INTS else []) + [key]
    return next((table[k] for k in keys if k in table), None)


def over(types: tuple[str, ...], **templates: Any) -> dict[tuple[str, str], Any]:
    """The table entries `(name, t)` of every template for each of `types` (types or type classes)."""
    return {(name, t): template for name, template in templates.items() for t in types}


NUMBERS = ("int", "float")      # type classes: every numeric type
INTS32 = ("i32", "u32")


def shortest_float(value: Any, t: str) -> str | None:
    """The shortest decimal text that a compiler parsing it as a double and rounding that to the nearest `t` (f32
    or f64) turns back into exactly `value` as a `t`; None for inf and NaN."""
    x = ir.round_float(float(value), t)
    if not math.isfinite(x):
        return None
    if t == "f64":
        return repr(x)
    # the fewest digits whose double rounds back to x as an f32 (nine always do)
    text = next(s for s in (f"{x:.{d}g}" for d in range(1, 10)) if ir.round_float(float(s), "f32") == x)
    return text if "." in text or "e" in text else text + ".0"


def literal(target: Target, t: str, value: Any) -> tuple[str, int]:
    """A literal that the target's compiler turns back into exactly `value` of type `t`."""
    if t == "bool":
        return ("true" if value else "false"), PRIMARY
    suffix = target.suffix[t]
    if ir.is_int(t):
        value = int(value)
        if t in ir.SIGNED and value == ir.int_range(t)[0]:   # the positive half of -2147483648 does not fit
            return f"{value + 1}{suffix} - 1{suffix}", ADD
        return f"{value}{suffix}", UNARY if value < 0 else PRIMARY
    if t == "f16":
        value = ir.round_float(float(value), "f16")
    text = shortest_float(value, target.f16_digits if t == "f16" else t)
    if text is None:
        text = target.non_finite(t, value != value)
        return ("-" + text, UNARY) if value < 0 else (text, PRIMARY)
    return text + suffix, UNARY if text.startswith("-") else PRIMARY


# ---------------------------------------------------------------------------------------------------------------
# Targets

@dataclass
class Target:
    """What differs between GLSL and CUDA. The callables get the printer and already printed operands."""
    types: dict[str, str]                              # IR scalar type -> the type of values
    memory_types: dict[str, str]                       # element types of buffers and shared arrays, where different
    suffix: dict[str, str]                             # literal suffixes
    f16_digits: str                                    # f16 literals: printed exactly ("f64") or as f32 values
    non_finite: Callable[[str, bool], str]             # (type, NaN rather than inf) -> an expression of that value
    cast: Callable[[str, str, Printer, ir.Expr], tuple[str, int]]   # (to, from, printer, value)
    bitcasts: dict[tuple[str, str], Any]               # (from, to) -> template
    binary: dict[Any, Any]                             # op, or (op, type or class) -> template or operator
    rewrites: dict[Any, Callable[[ir.Binary], ir.Expr]]   # like `binary`: an equivalent expression to print instead
    unary: dict[Any, Any]
    intrinsics: dict[Any, Any]
    atomics: dict[Any, Any]
    builtin: Callable[[ir.Kernel, str, int], tuple[str, int]]
    length: str                                        # template of Len over the buffer's name
    load: dict[str, str]                               # element type -> template that reads memory of that type
    vector_load: Callable[[Printer, ir.Load], tuple[str, int]]   # a vector load (`ir.VECTORS`) from a buffer
    vector_zero: str                                   # template of a vector type's zero over its type name
    store: dict[str, str]                              # element type -> template that converts a value to store
    f16_round: str | None                              # template rounding a value to f16 (where f16 lives in f32)
    zero_array: Callable[[Printer, str, str, str], list[str]]   # (printer, type, name, indent) -> lines
    zero_struct: Callable[[Printer, str], str]
    struct_param: Callable[[Printer, str, str], str] | None   # (printer, name, struct): a struct parameter's value
    pass_globals: bool                                 # helpers get the buffers and parameters they use as arguments
    snippets: Sequence[tuple[str, str, tuple[str, ...] | None]]   # (helper, text with {T}, IR types it serves)
    barrier: dict[str, str]
    generated: frozenset[str]                          # global identifiers the target itself declares

def vector_buffers(kernel: ir.Kernel) -> dict[str, str]:
    """The buffers that a kernel reads with vector loads and accesses no other way (no scalar load, store, atomic
    or `len`), each with its vector type: GLSL declares those as arrays of the vector type."""
    vector: dict[str, str] = {}
    other: set[str] = set()
    for n in ir.walk(kernel):
        if isinstance(n, ir.Load) and n.space == "storage" and n.type in ir.VECTORS:
            vector[n.name] = n.type
        elif isinstance(n, (ir.Load, ir.Store, ir.Atomic)) and n.space == "storage" or isinstance(n, ir.Len):
            other.add(n.name)
    return {name: t for name, t in vector.items() if name not in other}


def header(kernel: ir.Kernel, target: str) -> list[str]:
    """The comment that opens a generated file: where the kernel comes from and what it was instantiated with."""
    template = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(kernel.template.items())) or "none"
    return [f"// khal kernel {kernel.name}: {target}",
            f"// from {kernel.source}:{kernel.line}, function {kernel.function}; template: {template}; "
            f"workgroup size {'x'.join(map(str, kernel.workgroup_size))}",
            "// Generated by hatch_khal.render: edit the Python source, not this file."]
