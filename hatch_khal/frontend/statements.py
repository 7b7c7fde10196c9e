"""Statements of the kernel language: the body of a kernel or helper function, lowered to IR statements.

Locals take their type from their first assignment (or an annotation) and keep it. Simple statements, assignment
and memory declarations are here; control flow is in `control_flow.py`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from khal_runtime import ir

from .control_flow import ControlFlowLowering, always_returns
from .diagnostics import KernelCompileError, Note, ir_loc
from .expressions import ExpressionLowering
from .operators import BINARY
from .package import Vocab
from .requirements import requirement
from .values import (
    BuiltinVec,
    Comptime,
    MemRef,
    Multi,
    RValue,
    TypeName,
    Value,
    as_value,
    default_type,
    describe,
    fits,
    is_pure,
    is_scalar_comptime,
    typeof,
)

if TYPE_CHECKING:
    from .kernels import KernelBuilder
    from .package import ShaderModule

_REFUSED = {
    "With": ("`with` is not supported in kernels", None),
    "AsyncWith": ("`async with` is not supported in kernels", None),
    "Try": ("exceptions do not exist in kernels", "check the condition with `if` and write a status to a buffer"),
    "TryStar": ("exceptions do not exist in kernels", None),
    "Raise": ("exceptions do not exist in kernels", "check the condition with `if` and write a status to a buffer"),
    "Assert": ("assert is not supported in kernels", "check with `if` and write a status to a buffer"),
    "Delete": ("del is not supported in kernels", None),
    "Global": ("global is not supported in kernels", "kernels write results to buffers"),
    "Nonlocal": ("nonlocal is not supported in kernels", None),
    "Import": ("imports belong at the top of the module", None),
    "ImportFrom": ("imports belong at the top of the module", None),
    "FunctionDef": ("functions cannot be defined inside kernels", "define a helper function at module level"),
    "AsyncFunctionDef": ("async functions are not supported in kernels", None),
    "ClassDef": ("classes cannot be defined inside kernels", "define a @struct at module level"),
    "AsyncFor": ("async for is not supported in kernels", None),
    "Match": ("match is not supported in kernels", "use if/elif/else"),
}


@dataclass
class LocalOrigin:
    """Where a local got its type: the statement, whether by an annotation, and the untyped literal it started from
    (`acc = 0`), whose type is the usual cause of a later mismatch."""
    name: str
    node: ast.stmt
    annotated: bool
    literal: tuple[str | None, Any] | None      # (source text, value)


class FunctionLowering(ControlFlowLowering, ExpressionLowering):
    """Lowers the body of one kernel entry or one specialisation of a helper function."""

    def __init__(self, builder: KernelBuilder, module: ShaderModule, node: ast.FunctionDef,
                 bindings: dict[str, Value], params: dict[str, str], ret: str | None, is_kernel: bool):
        super().__init__(builder, module)
        self.node, self.is_kernel, self.ret = node, is_kernel, ret
        self.bindings = dict(bindings)          # names bound to memory, parameters and builtin vectors
        self.names: dict[str, str] = {}         # user name -> IR local name
        self.locals: dict[str, str] = {}        # IR local name -> type
        for name, t in params.items():
            self.declare(name, t)
        self.params = [ir.Scalar(self.names[n], t) for n, t in params.items()]
        self.assigned = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
        self.static: dict[str, Comptime] = {}   # static_range loop variables in scope
        self.range_vars: set[str] = set()       # range loop variables in scope (read-only in their loop)
        self.loops: list[str] = []              # "dynamic" or "static", innermost last
        self.depth = 0                          # nesting of blocks, 0 = the function's top level
        self.origins: dict[str, LocalOrigin] = {}   # IR local name -> the statement that gave it its type
        self.requires: list[ir.Requirement] = []
        self.started = False                    # whether a statement other than require() has been lowered

    # --- names ----------------------------------------------------------------------------------------------

    def lookup(self, node: ast.Name) -> Value:
        name = node.id
        if name in self.static:
            return self.static[name]
        if name in self.bindings:
            return self.bindings[name]
        if name in self.names:
            ir_name = self.names[name]
            return RValue(ir.Var(self.locals[ir_name], ir_name))
        if name in self.assigned:
            raise self.error(node, f"{name!r} is read before it is first assigned",
                             hint=f"give {name} a value before this point, e.g. {name} = f32(0)")
        return self.global_value(node, name)

    def declare(self, name: str, t: str) -> str:
        ir_name = self.builder.local_name(name, self.locals)
        self.names[name], self.locals[ir_name] = ir_name, t
        return ir_name

    # --- blocks ---------------------------------------------------------------------------------------------

    def body(self) -> list[ir.Stmt]:
        stmts = self.node.body
        if stmts and isinstance(stmts[0], ast.Expr) and isinstance(stmts[0].value, ast.Constant) \
                and isinstance(stmts[0].value.value, str):
            stmts = stmts[1:]                   # the docstring
        out = self.block(stmts, nested=False)
        if self.ret is not None and not always_returns(out):
            raise self.error(self.node, f"{self.node.name} may reach its end without returning a {self.ret}",
                             hint="end every path with a return statement")
        return out

    def block(self, nodes: list[ast.stmt], nested: bool = True) -> list[ir.Stmt]:
        self.depth += nested
        try:
            out: list[ir.Stmt] = []
            for node in nodes:
                out.extend(self.stmt(node))
                self.started = self.started or not _is_require(node)
                if always_returns(out):
                    # the rest is unreachable: after `if T == u32: return ...`, it is the other instances' code
                    break
            return out
        finally:
            self.depth -= nested

    def stmt(self, node: ast.stmt) -> list[ir.Stmt]:
        method = getattr(self, "stmt_" + type(node).__name__, None)
        if method is None:
            message, hint = _REFUSED.get(type(node).__name__, (f"{type(node).__name__} is not supported", None))
            raise self.error(node, message, hint)
        return method(node)

    # --- simple statements ----------------------------------------------------------------------------------

    def stmt_Pass(self, node: ast.Pass) -> list[ir.Stmt]:
        return []

    def stmt_Expr(self, node: ast.Expr) -> list[ir.Stmt]:
        value = node.value
        if isinstance(value, ast.Constant) and (isinstance(value.value, str) or value.value is Ellipsis):
            return []
        if isinstance(value, ast.Call):
            fn = self.expr(value.func)
            if isinstance(fn, Vocab) and fn.name == "require":
                return self.require(node, value)
            if isinstance(fn, Vocab) and fn.name in ("barrier", "storage_barrier"):
                self.arity(value, fn.name, 0)
                self.builder.synchronises = True
                return [ir.Barrier("workgroup" if fn.name == "barrier" else "storage", ir_loc(node))]
            result = self.expr_Call(value)
            if isinstance(result, RValue) and isinstance(result.expr, (ir.Call, ir.Atomic)):
                return [ir.ExprStmt(result.expr, ir_loc(node))]
        raise self.error(node, "this expression has no effect", hint="assign its value to a local or a buffer")

    def require(self, node: ast.Expr, call: ast.Call) -> list[ir.Stmt]:
        if not self.is_kernel or self.depth or self.loops or self.started:
            raise self.error(node, "require() belongs at the top of a kernel body, before any other statement",
                             hint="it states a precondition that the host checks before the dispatch")
        self.requires.append(requirement(self, call))
        return []

    def stmt_Assign(self, node: ast.Assign) -> list[ir.Stmt]:
        if len(node.targets) != 1:
            raise self.error(node, "chained assignment (a = b = x) is not supported", hint="assign one at a time")
        target = node.targets[0]
        if isinstance(target, ast.Name) and isinstance(node.value, ast.Call):
            fn = self.expr(node.value.func)
            if isinstance(fn, Vocab) and fn.name in ("shared", "array"):
                return self.declare_memory(node, target.id, fn.name, node.value)
        if isinstance(target, ast.Tuple):
            return self.assign_tuple(node, target, self.expr(node.value))
        return self.assign(node, target, self.expr(node.value))

    def stmt_AnnAssign(self, node: ast.AnnAssign) -> list[ir.Stmt]:
        if not isinstance(node.target, ast.Name):
            raise self.error(node, "only a local variable can be declared with a type")
        t = self.builder.scalar_annotation(self.module, node.annotation)
        name = node.target.id
        if name in self.names and self.locals[self.names[name]] != t:
            raise self.error(node, f"{name} is a {self.locals[self.names[name]]}; it cannot become a {t}")
        value = self.expr(node.value) if node.value is not None else Comptime(0)
        return self.assign(node, node.target, value, t)

    def stmt_AugAssign(self, node: ast.AugAssign) -> list[ir.Stmt]:
        op = BINARY.get(type(node.op))
        if op is None:
            raise self.error(node, f"{type(node.op).__name__}= is not supported")
        target = node.target
        if isinstance(target, ast.Subscript):
            ref = self.memory(target)
            if any(not is_pure(i) for i in ref.index):
                raise self.error(target, "this index would be evaluated twice", hint="store it in a local first")
            current = RValue(ir.Load(ref.elem, ref.space, ref.name, list(ref.index)))
            return [self.store(node, ref, self.binary(node, op, current, self.expr(node.value)))]
        if not isinstance(target, ast.Name):
            raise self.error(target, "only locals and memory elements can be updated")
        return self.assign(node, target, self.binary(node, op, self.lookup(target), self.expr(node.value)))

    # --- assignment -----------------------------------------------------------------------------------------

    def assign(self, node: ast.stmt, target: ast.expr, value: Value, annotation: str | None = None) -> list[ir.Stmt]:
        if isinstance(target, ast.Subscript):
            return [self.store(node, self.memory(target), value)]
        if isinstance(target, ast.Attribute):
            raise self.error(target, "struct fields are read-only in kernels")
        if not isinstance(target, ast.Name):
            raise self.error(target, "this assignment target is not supported")
        name = target.id
        if name in self.bindings:
            bound = self.bindings[name]
            if isinstance(bound, RValue) and isinstance(bound.expr, ir.Param):
                raise self.error(target, f"the kernel parameter {name!r} is read-only",
                                 hint=f"copy it into a local first: my_{name} = {name}")
            raise self.error(target, f"{name!r} is {describe(bound)} and cannot be reassigned")
        if name in self.range_vars or name in self.static:
            raise self.error(target, f"{name!r} is the variable of an enclosing for loop and cannot be assigned")
        if isinstance(value, (BuiltinVec, MemRef)) or (isinstance(value, Comptime) and
                                                       isinstance(value.value, tuple)):
            if name in self.names:
                raise self.error(target, f"{name!r} is a local {self.locals[self.names[name]]}; "
                                         f"it cannot become {describe(value)}")
            self.bindings[name] = value                 # a compile-time alias: gid = global_id()
            return []
        if isinstance(value, Multi):
            raise self.error(node, f"cannot assign {len(value.values)} values to one name",
                             hint="unpack them: a, b = ...")
        value_node = node.value if getattr(node, "value", None) is not None else node
        if name not in self.names:
            t = annotation or self.local_type(node, value)
            ir_name = self.declare(name, t)
            literal = value if annotation is None and isinstance(value, Comptime) and value.type is None else None
            self.origins[ir_name] = LocalOrigin(name, node, annotation is not None, None if literal is None else (
                ast.get_source_segment(self.module.source.text, value_node), literal.value))
            return [ir.Assign(ir_name, self.as_expr(value, t, value_node), ir_loc(node))]
        ir_name = self.names[name]
        local = RValue(ir.Var(self.locals[ir_name], ir_name))
        try:
            return [ir.Assign(ir_name, self.as_expr(value, local.type, value_node), ir_loc(node))]
        except KernelCompileError as e:
            if isinstance(value, (RValue, Comptime)) and typeof(value) not in (None, local.type):
                e.notes, hint = self.type_origins(local, value)
                e.hint = hint or e.hint
            raise

    def type_origins(self, *values: Value) -> tuple[list[Note], str | None]:
        types = [typeof(v) for v in values if isinstance(v, (RValue, Comptime))]
        notes: list[Note] = []
        hint = None
        for v in values:
            origin = self.origins.get(v.expr.name) if isinstance(v, RValue) and isinstance(v.expr, ir.Var) else None
            if origin is None:
                continue
            how = "is declared" if origin.annotated else "got its type"
            notes.append(self.module.source.note(origin.node, f"{origin.name} {how} {v.type} here"))
            wanted = next((t for t in types if t and t != v.type), None)
            if origin.literal is not None and wanted and fits(origin.literal[1], wanted) and hint is None:
                hint = f"give {origin.name} its type where it starts: {origin.name} = {wanted}({origin.literal[0]})"
        return notes, hint

    def local_type(self, node: ast.AST, value: Value) -> str:
        if isinstance(value, RValue):
            if value.type in self.builder.structs:
                raise self.error(node, "a struct cannot be copied into a local", hint="read its fields directly")
            if value.type == "void":
                raise self.error(node, "this call returns nothing")
            return value.type
        if is_scalar_comptime(value):
            return value.type or default_type(value.value)
        raise self.error(node, f"a local cannot hold {describe(value)}",
                         hint="compile-time strings and types are used directly, not stored")

    def assign_tuple(self, node: ast.Assign, target: ast.Tuple, value: Value) -> list[ir.Stmt]:
        values = value.values if isinstance(value, Multi) else (
            tuple(as_value(v) for v in value.value) if isinstance(value, Comptime) and
            isinstance(value.value, tuple) else None)
        if values is None or len(values) != len(target.elts):
            raise self.error(node, f"cannot unpack {describe(value)} into {len(target.elts)} names")
        targets = {t.id for t in target.elts if isinstance(t, ast.Name)}
        reads = {n.id for n in ast.walk(node.value) if isinstance(n, ast.Name)}
        out: list[ir.Stmt] = []
        if isinstance(value, Multi) and value.vector is not None:     # one vector load, then its fields
            tmp = self.builder.local_name("loaded", self.locals)
            self.locals[tmp] = value.vector.type
            out.append(ir.Assign(tmp, value.vector, ir_loc(node)))
            loaded = ir.Var(value.vector.type, tmp)
            values = tuple(RValue(ir.Field(v.type, loaded, v.expr.field)) for v in values)
        elif targets & reads:                     # a, b = b, a: evaluate every value before assigning any
            temps = []
            for v in values:
                tmp = self.builder.local_name("tmp", self.locals)
                t = self.local_type(node, v)
                self.locals[tmp] = t
                out.append(ir.Assign(tmp, self.as_expr(v, t, node), ir_loc(node)))
                temps.append(RValue(ir.Var(t, tmp)))
            values = tuple(temps)
        for t, v in zip(target.elts, values):
            out.extend(self.assign(node, t, v))
        return out

    def memory(self, target: ast.Subscript) -> MemRef:
        base = self.expr(target.value)
        if not isinstance(base, MemRef):
            raise self.error(target, f"{describe(base)} cannot be indexed")
        ref = self.index(target, base, target.slice)
        if len(ref.index) != ref.dims:
            raise self.error(target, f"{ref.describe()} needs {ref.dims} indices to address an element")
        return ref

    def store(self, node: ast.stmt, ref: MemRef, value: Value) -> ir.Store:
        if ref.access != "read_write":
            raise self.error(node, f"{ref.describe()} is read-only",
                             hint=f"declare it MutBuf[{ref.elem}] to write to it")
        return ir.Store(ref.space, ref.name, list(ref.index), self.as_expr(value, ref.elem, node), ir_loc(node))

    def declare_memory(self, node: ast.Assign, name: str, kind: str, call: ast.Call) -> list[ir.Stmt]:
        if self.depth or self.loops:
            raise self.error(node, f"{kind}() must be declared at the top level of the function body")
        if kind == "shared" and not self.is_kernel:
            raise self.error(node, "shared memory is declared in the kernel", hint="pass it to the helper")
        if name in self.bindings or name in self.names:
            raise self.error(node, f"{name!r} is already defined")
        if len(call.args) < 2:
            raise self.error(call, f"{kind}() takes an element type and at least one size: {kind}(f32, 256)")
        elem = self.expr(call.args[0])
        if not isinstance(elem, TypeName) or elem.name == "bool":
            raise self.error(call.args[0], "the element type must be a numeric type such as f32 or u32")
        shape = []
        for dim in call.args[1:]:
            size = self.expr(dim)
            if not (isinstance(size, Comptime) and isinstance(size.value, int) and size.value > 0):
                raise self.error(dim, f"{kind}() sizes must be positive compile-time integers")
            shape.append(size.value)
        t = ir.array_type(elem.name, tuple(shape))
        if kind == "shared":
            ir_name = self.builder.add_shared(name, t)
        else:
            ir_name = self.declare(name, t)
            del self.names[name]
        self.bindings[name] = MemRef("shared" if kind == "shared" else "private", ir_name, elem.name,
                                     tuple(shape), "read_write", label=name)
        return []


def _is_require(node: ast.stmt) -> bool:
    call = node.value if isinstance(node, ast.Expr) else None
    return isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and call.func.id == "require"
