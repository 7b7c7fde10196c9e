"""Expressions of the kernel language, lowered to typed IR expressions (or folded at compile time): names,
literals, attributes and memory accesses here; operators in `operators.py`, calls in `calls.py`.

Typing rules: operands of an operator have one type (no silent int/float or signed/unsigned mixing); an untyped
literal takes the type of what it meets; casts are explicit (`f32(i)`).
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from khal_runtime import ir

from .calls import CallLowering
from .diagnostics import Note
from .operators import OperatorLowering
from .package import Constant, Foreign, Function, ModuleRef, Struct, Template, Vocab, callee
from .refusals import math_refusal
from .values import (
    BuiltinVec,
    Comptime,
    MemRef,
    Multi,
    RValue,
    TypeName,
    Value,
    as_value,
    const,
    default_type,
    describe,
    fits,
    is_number,
    is_scalar_comptime,
)
from .vocabulary import LANG_MODULE, LANG_NAMES, PYTHON_BUILTINS, REFUSED_BUILTINS, SCALAR_TYPES

if TYPE_CHECKING:
    from .kernels import KernelBuilder
    from .package import ShaderModule

DIMS = {"x": 0, "y": 1, "z": 2}


class ExpressionLowering(OperatorLowering, CallLowering):
    """Lowers expressions in the scope of one function (or of a module, for constants)."""

    builder: KernelBuilder
    module: ShaderModule

    def __init__(self, builder: KernelBuilder, module: ShaderModule):
        self.builder, self.module = builder, module

    def error(self, node, message, hint=None, notes=None):
        return self.module.error(node, message, hint, notes=notes)

    # --- names ----------------------------------------------------------------------------------------------

    def lookup(self, node: ast.Name) -> Value:
        """Resolve a name that is not local to the function (subclasses look at locals first)."""
        return self.global_value(node, node.id)

    def global_value(self, node: ast.AST, name: str, module: ShaderModule | None = None) -> Value:
        module = module or self.module
        found = module.lookup(name)
        if isinstance(found, Template):
            return self.builder.template_value(found)
        if isinstance(found, Constant):
            return self.builder.constant(found)
        if isinstance(found, (Struct, Function, ModuleRef)):
            return found
        if isinstance(found, Vocab):
            return TypeName(found.name) if found.name in SCALAR_TYPES else found
        if isinstance(found, Foreign):
            if found.python_module == "math":
                if found.attr:
                    raise math_refusal(module, node, found.attr)
                return found                    # `math` itself: its attribute says what to write instead
            raise self.error(node, f"{name!r} is {found.what}; kernels cannot use it",
                             hint="kernels see compile-time constants, templates, structs, helper functions and "
                                  "the names of khal_runtime.lang")
        if name in PYTHON_BUILTINS:
            return TypeName("bool") if name == "bool" else Vocab(name)
        if name in REFUSED_BUILTINS:
            raise self.error(node, f"{name}() is not available in kernels", hint=REFUSED_BUILTINS[name])
        raise self.error(node, f"name {name!r} is not defined")

    def type_origins(self, *values: Value) -> tuple[list[Note], str | None]:
        """Notes on where the locals among `values` got their types, and a hint to fix a mismatch at the source
        (none outside a function: module constants have no locals)."""
        return [], None

    # --- entry ----------------------------------------------------------------------------------------------

    def expr(self, node: ast.expr) -> Value:
        method = getattr(self, "expr_" + type(node).__name__, None)
        if method is None:
            raise self.error(node, f"{_describe_node(node)} is not supported in kernels",
                             hint=_NODE_HINTS.get(type(node).__name__))
        return method(node)

    def value(self, node: ast.expr, t: str | None = None) -> ir.Expr:
        """Lower `node` to a run-time IR expression, of type `t` when given."""
        return self.as_expr(self.expr(node), t, node)

    def as_expr(self, v: Value, t: str | None, node: ast.AST) -> ir.Expr:
        if isinstance(v, RValue):
            if t is not None and v.type != t:
                raise self.error(node, f"expected a {t} value, found {describe(v)}",
                                 hint=f"convert explicitly: {t}(...)")
            return v.expr
        if is_scalar_comptime(v):
            target = t or v.type or default_type(v.value)
            if v.type is not None and v.type != target:
                raise self.error(node, f"expected a {target} value, found {describe(v)}",
                                 hint=f"convert explicitly: {target}(...)")
            if v.type is None and not fits(v.value, target):
                if isinstance(v.value, float) and target in ir.INTS:
                    raise self.error(node, f"the float literal {v.value!r} cannot be a {target}")
                raise self.error(node, f"the literal {v.value!r} does not fit in {target}",
                                 hint="write it with an explicit wider type, e.g. i64(...) or u32(...)")
            return const(target, v.value)
        if isinstance(v, MemRef):
            raise self.error(node, f"{v.describe()} is memory, not a value", hint="index it: buf[i]")
        raise self.error(node, f"{describe(v)} cannot be used as a run-time value")

    # --- literals, names, attributes -----------------------------------------------------------------------

    def expr_Constant(self, node: ast.Constant) -> Value:
        if isinstance(node.value, bool):
            return Comptime(node.value, "bool")
        if isinstance(node.value, (int, float, str)):
            return Comptime(node.value)
        raise self.error(node, f"the constant {node.value!r} has no meaning in a kernel")

    def expr_Name(self, node: ast.Name) -> Value:
        return self.lookup(node)

    def expr_Tuple(self, node: ast.Tuple) -> Value:
        items = [self.expr(e) for e in node.elts]
        functions = [callee(i) for i in items]
        if all(isinstance(i, (Comptime, TypeName)) or f is not None for i, f in zip(items, functions)):
            return Comptime(tuple(i.value if isinstance(i, Comptime) else f or i for i, f in zip(items, functions)))
        return Multi(tuple(items))

    def expr_Attribute(self, node: ast.Attribute) -> Value:
        base = self.expr(node.value)
        if isinstance(base, BuiltinVec) and node.attr in DIMS:
            return RValue(ir.Builtin("u32", base.name, DIMS[node.attr]))
        if isinstance(base, Comptime) and isinstance(base.value, tuple) and node.attr in DIMS:
            return Comptime(base.value[DIMS[node.attr]], "u32")
        if isinstance(base, RValue) and base.type in self.builder.structs:
            fields = dict(self.builder.structs[base.type])
            if node.attr not in fields:
                raise self.error(node, f"struct {base.type} has no field {node.attr!r}",
                                 hint="its fields are " + ", ".join(fields))
            return RValue(ir.Field(fields[node.attr], base.expr, node.attr))
        if isinstance(base, ModuleRef):
            if base.name == LANG_MODULE:
                if node.attr not in LANG_NAMES:
                    raise self.error(node, f"khal_runtime.lang has no name {node.attr!r}")
                return TypeName(node.attr) if node.attr in SCALAR_TYPES else Vocab(node.attr)
            return self.global_value(node, node.attr, self.builder.package.module(base.name))
        if isinstance(base, Foreign):
            raise math_refusal(self.module, node, node.attr)
        raise self.error(node, f"{describe(base)} has no attribute {node.attr!r}")

    # --- memory ---------------------------------------------------------------------------------------------

    def expr_Subscript(self, node: ast.Subscript) -> Value:
        base = self.expr(node.value)
        if isinstance(base, Comptime) and isinstance(base.value, tuple):
            index = self.expr(node.slice)
            if not (isinstance(index, Comptime) and is_number(index.value)):
                raise self.error(node.slice, "a compile-time tuple is indexed by a compile-time integer")
            return as_value(base.value[index.value])
        if not isinstance(base, MemRef):
            raise self.error(node, f"{describe(base)} cannot be indexed")
        ref = self.index(node, base, node.slice)
        if len(ref.index) < ref.dims:
            return ref
        return RValue(ir.Load(ref.elem, ref.space, ref.name, list(ref.index)))

    def index(self, node: ast.AST, ref: MemRef, slice_node: ast.expr) -> MemRef:
        if isinstance(slice_node, ast.Slice):
            raise self.error(slice_node, "slices are not supported in kernels", hint="index one element: buf[i]")
        items = slice_node.elts if isinstance(slice_node, ast.Tuple) else [slice_node]
        index = list(ref.index)
        for item in items:
            if len(index) >= ref.dims:
                raise self.error(node, f"too many indices for {ref.describe()}, which has {ref.dims} "
                                       f"dimension{'s' if ref.dims > 1 else ''}")
            v = self.expr(item)
            if isinstance(v, Comptime) and is_number(v.value) and v.type is None:
                if isinstance(v.value, float):
                    raise self.error(item, "an index must be an integer")
                size = ref.shape[len(index)] if ref.shape else None
                if v.value < 0 or (size is not None and v.value >= size):
                    raise self.error(item, f"index {v.value} is out of bounds for {ref.describe()}"
                                           + (f" of size {size}" if size is not None else ""),
                                     hint="negative indices do not count from the end in kernels")
                index.append(const("u32", v.value))
                continue
            e = self.as_expr(v, None, item)
            if e.type not in ("i32", "u32"):
                raise self.error(item, f"an index must be i32 or u32, found {e.type}",
                                 hint="convert it: u32(...)")
            index.append(e)
        return MemRef(ref.space, ref.name, ref.elem, ref.shape, ref.access, tuple(index), ref.label)


def _describe_node(node: ast.AST) -> str:
    names = {"ListComp": "a list comprehension", "GeneratorExp": "a generator expression",
             "DictComp": "a dict comprehension", "SetComp": "a set comprehension", "Lambda": "a lambda",
             "JoinedStr": "an f-string", "List": "a list", "Dict": "a dict", "Set": "a set",
             "NamedExpr": "the := operator", "Await": "await", "Yield": "yield", "YieldFrom": "yield from",
             "Starred": "*unpacking", "Slice": "a slice"}
    return names.get(type(node).__name__, type(node).__name__)


_NODE_HINTS = {
    "List": "use array(T, n) for a private array",
    "ListComp": "write a for loop over range(n)",
    "GeneratorExp": "write a for loop over range(n)",
    "JoinedStr": "kernels have no strings at run time",
    "Lambda": "define a helper function at module level",
}
