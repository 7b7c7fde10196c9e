"""The khal IR: typed, structured, serialisable as plain JSON. `docs/IR.md` is the specification;
`khal_runtime.interpreter` is its executable reference.

    types.py       scalar, array and vector types, sizes, value rules (rounding, bit casts, integer ranges)
    nodes.py       expressions, statements, functions and kernels, and `walk`
    json_form.py   the `.kir.json` text of a kernel (`to_json`, `from_json`)
    ops.py         the table of operations: operators, intrinsics, subgroup operations, atomics, builtins, and
                   the types each target allows
    verifier.py    `verify(kernel, targets)`: the IR checked against the specification and the table
    declarations.py  the part of `verify` that checks declarations

Everything is importable from here (`from khal_runtime import ir; ir.Kernel, ir.walk, ir.INTRINSICS`). Nothing
here imports numpy: the compiler builds IR in environments without it.
"""

from __future__ import annotations

from . import ops
from .json_form import IR_VERSION, from_json, to_json
from .nodes import (
    NODES,
    Assign,
    Atomic,
    Barrier,
    Binary,
    Bitcast,
    Break,
    Buffer,
    Builtin,
    Call,
    Cast,
    Const,
    Continue,
    Expr,
    ExprStmt,
    Field,
    For,
    Function,
    If,
    Intrinsic,
    Kernel,
    Len,
    Load,
    Loc,
    Param,
    Requirement,
    Return,
    Scalar,
    Select,
    Stmt,
    Store,
    Unary,
    Var,
    While,
    walk,
)
from .ops import (
    ATOMIC_OPS,
    ATOMICS,
    BINARY,
    BUILTINS,
    COMPARISONS,
    INTRINSICS,
    SUBGROUP_OPS,
    TARGETS,
    UNARY,
    VECTOR_LOADS,
    Signature,
    atomic_types,
)
from .types import (
    BITS,
    FLOATS,
    INTS,
    NUMERIC,
    NUMPY,
    SCALARS,
    SIGNED,
    SIZE,
    STRUCT_CODE,
    VECTOR_FIELDS,
    VECTORS,
    array_type,
    bitcast_value,
    int_range,
    is_int,
    parse_array,
    round_float,
)
from .verifier import InvalidIR, verify

__all__ = [
    "ATOMICS", "ATOMIC_OPS", "BINARY", "BITS", "BUILTINS", "COMPARISONS", "FLOATS", "INTRINSICS", "INTS",
    "IR_VERSION", "NODES", "NUMERIC", "NUMPY", "SCALARS", "SIGNED", "SIZE", "STRUCT_CODE", "SUBGROUP_OPS",
    "TARGETS", "UNARY", "VECTORS", "VECTOR_FIELDS", "VECTOR_LOADS", "Assign", "Atomic", "Barrier", "Binary",
    "Bitcast", "Break", "Buffer", "Builtin", "Call",
    "Cast", "Const", "Continue", "Expr", "ExprStmt", "Field", "For", "Function", "If", "Intrinsic", "InvalidIR",
    "Kernel", "Len", "Load", "Loc", "Param", "Requirement", "Return", "Scalar", "Select", "Signature", "Stmt",
    "Store", "Unary", "Var", "While", "array_type", "atomic_types", "bitcast_value", "from_json", "int_range",
    "is_int", "ops", "parse_array", "round_float", "to_json", "verify", "walk",
]
