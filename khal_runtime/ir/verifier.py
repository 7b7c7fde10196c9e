"""`verify(kernel, targets)`: checks a kernel's IR against the specification (docs/IR.md) and the table of
operations (`ops`), so that the renderers and the interpreter can trust what they get.

It checks the declarations (workgroup size, buffers, parameters, structs, shared arrays, locals, helpers), that
every name refers to something declared in its space, and every node's type by the table's rules: operand and
result types, index types and counts, access modes (no store or atomic on a `read` buffer), builtin dimensions,
arities, return types, `break` and `continue` inside loops, helpers that do not recurse, and vectors kept to
vector loads of buffers, locals and fields. The first problem found raises `InvalidIR`, whose message names the
kernel, the source file and line, and what is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from . import nodes as n
from .declarations import check_function_declarations, check_kernel_declarations
from .ops import (
    ATOMIC_OPS,
    ATOMIC_SPACES,
    BARRIER_SCOPES,
    BINARY,
    BUILTINS,
    INDEX_TYPES,
    INTRINSICS,
    SHIFTS,
    SPACES,
    SUBGROUP_GRANULE,
    SUBGROUP_OPS,
    TARGETS,
    UNARY,
    VECTOR_LOAD_TYPES,
    atomic_types,
    binary_result,
    bitcast_allowed,
    cast_allowed,
    unavailable,
)
from .types import INTS, SCALARS, VECTOR_FIELDS, VECTORS, int_range, parse_array

_FAMILIES = {name: sig.family() for name, sig in INTRINSICS.items()}


class InvalidIR(ValueError):
    """The IR breaks the specification or the table of operations: what produced it (the front end, a hand-built
    kernel, an edited artifact) made something that no target defines."""


def verify(kernel: n.Kernel, targets: Sequence[str] = TARGETS) -> None:
    """Raise InvalidIR unless `kernel` is valid IR for every one of `targets`."""
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        raise ValueError(f"unknown targets {unknown}: the targets are {', '.join(TARGETS)}")
    _Verifier(kernel, tuple(targets)).kernel()


def _on(targets: list[str]) -> str:
    return " and ".join([", ".join(targets[:-1]), targets[-1]] if len(targets) > 1 else targets)


class _Verifier:
    def __init__(self, kernel: n.Kernel, targets: tuple[str, ...]):
        self.k, self.targets = kernel, targets
        self.source, self.line = kernel.source, kernel.line
        self.buffers = {b.name: b for b in kernel.buffers}
        self.params = {s.name: s.type for s in kernel.scalars}
        self.functions = {f.name: f for f in kernel.functions}
        self.shared = {name: parse_array(t) or ("", ()) for name, t in kernel.shared.items()}
        self.scope: dict[str, str] = {}        # the current function's parameters and locals
        self.arrays: set[str] = set()           # those that are private arrays
        self.ret: str | None = None
        self.entry = True
        self.loops = 0
        self.function_name = ""
        self.calls: dict[str, set[str]] = {}    # helper -> the helpers it calls
        self.subgroup_ops = False

    def error(self, message: str) -> InvalidIR:
        return InvalidIR(f"kernel {self.k.name!r} at {self.source}:{self.line}: invalid IR: {message}")

    # --- declarations ---------------------------------------------------------------------------------------

    def kernel(self) -> None:
        k = self.k
        check_kernel_declarations(k, self.error)
        for f in k.functions:
            self.source, self.line, self.function_name = f.source or k.source, f.line or k.line, f.name
            self.function({p.name: p.type for p in f.params}, f.locals, f.ret, f.body, entry=False)
        self.source, self.line, self.function_name = k.source, k.line, ""
        self.function({}, k.locals, None, k.body, entry=True)
        self.no_recursion()
        self.subgroup_granule()

    def subgroup_granule(self) -> None:
        invocations = math.prod(self.k.workgroup_size)
        for target, granule in SUBGROUP_GRANULE.items():
            if self.subgroup_ops and target in self.targets and invocations % granule:
                raise self.error(f"subgroup operations on {target} need a workgroup of a multiple of {granule} "
                                 f"invocations, not {invocations}")

    def function(self, params: dict[str, str], locals_: dict[str, str], ret: str | None, body: list,
                 entry: bool) -> None:
        check_function_declarations(self.k, params, locals_, ret, self.error)
        self.scope, self.ret, self.entry, self.loops = {**params, **locals_}, None if ret == "void" else ret, entry, 0
        self.arrays = {name for name, t in locals_.items() if "[" in t}
        self.block(body)

    def no_recursion(self) -> None:
        calls, done = self.calls, set()

        def visit(name: str, path: list[str]) -> None:
            if name in path:
                raise self.error(f"helpers recurse: {' -> '.join(path[path.index(name):] + [name])}")
            if name not in done:
                for callee in sorted(calls.get(name, ())):
                    visit(callee, path + [name])
                done.add(name)
        for f in self.k.functions:
            visit(f.name, [])

    # --- statements -----------------------------------------------------------------------------------------

    def block(self, stmts: list) -> None:
        if not isinstance(stmts, list):
            raise self.error(f"a block is a list of statements, not {type(stmts).__name__}")
        for s in stmts:
            outer = self.line
            loc = getattr(s, "loc", None)
            self.line = loc[0] if loc and loc[0] else self.line
            check = getattr(self, "s_" + type(s).__name__, None)
            if check is None:
                raise self.error(f"unknown statement {type(s).__name__}")
            check(s)
            self.line = outer

    def local(self, name: str) -> str:
        t = self.scope.get(name)
        if t is None:
            raise self.error(f"unknown local variable {name!r}")
        if name in self.arrays:
            raise self.error(f"private array {name!r} used as a value; index it")
        return t

    def expect(self, e: n.Expr, t: str, what: str) -> None:
        got = self.expr(e)
        if got != t:
            raise self.error(f"{what} is {got}, expected {t}")

    def s_Assign(self, s: n.Assign) -> None:
        self.expect(s.value, self.local(s.name), f"the value assigned to {s.name!r}")

    def s_Store(self, s: n.Store) -> None:
        elem = self.memory(s.space, s.name, s.index, "store to")
        self.expect(s.value, elem, f"the value stored to {s.space} {s.name!r}")

    def s_If(self, s: n.If) -> None:
        self.expect(s.cond, "bool", "the condition of if")
        self.block(s.then)
        self.block(s.orelse)

    def s_For(self, s: n.For) -> None:
        t = self.local(s.var)
        if t not in INTS:
            raise self.error(f"for loop variable {s.var!r} is {t}, not an integer")
        for what, e in (("start", s.start), ("stop", s.stop), ("step", s.step)):
            self.expect(e, t, f"the {what} of the loop over {s.var!r}")
        if isinstance(s.step, n.Const) and s.step.value == 0:
            raise self.error("for loop with step 0")
        self.loop(s.body)

    def s_While(self, s: n.While) -> None:
        self.expect(s.cond, "bool", "the condition of while")
        self.loop(s.body)

    def loop(self, body: list) -> None:
        self.loops += 1
        self.block(body)
        self.loops -= 1

    def s_Break(self, s: n.Break) -> None:
        if not self.loops:
            raise self.error("break outside a loop")

    def s_Continue(self, s: n.Continue) -> None:
        if not self.loops:
            raise self.error("continue outside a loop")

    def s_Return(self, s: n.Return) -> None:
        if s.value is None:
            if self.ret is not None:
                raise self.error(f"return without a value in a helper that returns {self.ret}")
        elif self.entry or self.ret is None:
            where = "the kernel entry" if self.entry else "a helper without a result"
            raise self.error(f"return of a value from {where}")
        else:
            self.expect(s.value, self.ret, "the returned value")

    def s_ExprStmt(self, s: n.ExprStmt) -> None:
        self.expr(s.value)

    def s_Barrier(self, s: n.Barrier) -> None:
        if s.scope not in BARRIER_SCOPES:
            raise self.error(f"barrier scope {s.scope!r}, not one of {', '.join(BARRIER_SCOPES)}")

    # --- memory ---------------------------------------------------------------------------------------------

    def memory(self, space: str, name: str, index: list, access: str | None) -> str:
        """The element type of `space name[index]`, checked; `access` names a write ("store to", "atomic on")."""
        if space == "storage":
            b = self.buffers.get(name)
            if b is None:
                raise self.error(f"unknown buffer {name!r}")
            if access and b.access != "read_write":
                raise self.error(f"{access} read-only buffer {name!r}")
            elem, dims = b.elem, 1
        elif space == "shared" and name in self.shared:
            elem, shape = self.shared[name]
            dims = len(shape)
        elif space == "private" and name in self.arrays:
            elem, shape = parse_array(self.scope[name])  # type: ignore[misc]
            dims = len(shape)
        elif space not in SPACES:
            raise self.error(f"unknown memory space {space!r}")
        else:
            raise self.error(f"unknown {space} memory {name!r}")
        if len(index) != dims:
            raise self.error(f"{space} {name!r} of {dims} dimension{'s' if dims > 1 else ''} indexed with "
                             f"{len(index)} indices")
        for i in index:
            t = self.expr(i)
            if t not in INDEX_TYPES:
                raise self.error(f"an index of {space} {name!r} is {t}, not {' or '.join(INDEX_TYPES)}")
        return elem

    # --- expressions ----------------------------------------------------------------------------------------

    def expr(self, e: n.Expr) -> str:
        """Check `e` and return its type."""
        check = getattr(self, "e_" + type(e).__name__, None)
        if check is None:
            raise self.error(f"unknown expression {type(e).__name__}")
        check(e)
        return e.type

    def typed(self, e: n.Expr, t: str) -> None:
        if e.type != t:
            raise self.error(f"{type(e).__name__} has type {e.type}, but its value is {t}")

    def e_Const(self, e: n.Const) -> None:
        v, t = e.value, e.type
        if t == "bool":
            ok = isinstance(v, bool)
        elif t in INTS:
            ok = isinstance(v, int) and not isinstance(v, bool) and int_range(t)[0] <= v <= int_range(t)[1]
        else:
            ok = t in SCALARS and isinstance(v, (int, float)) and not isinstance(v, bool)
        if not ok:
            raise self.error(f"constant {v!r} is not a value of type {t!r}")

    def e_Var(self, e: n.Var) -> None:
        self.typed(e, self.local(e.name))

    def e_Param(self, e: n.Param) -> None:
        if e.name not in self.params:
            raise self.error(f"unknown parameter {e.name!r}")
        self.typed(e, self.params[e.name])

    def e_Field(self, e: n.Field) -> None:
        struct = self.expr(e.value)
        if struct in VECTORS:
            elem, lanes = VECTORS[struct]
            if e.field not in VECTOR_FIELDS[:lanes]:
                raise self.error(f"a {struct} vector has no field {e.field!r}, only {', '.join(VECTOR_FIELDS[:lanes])}")
            self.typed(e, elem)
            return
        if struct not in self.k.structs:
            raise self.error(f"field {e.field!r} of a {struct} value, which is not a struct")
        fields = dict(self.k.structs[struct])
        if e.field not in fields:
            raise self.error(f"struct {struct} has no field {e.field!r}")
        self.typed(e, fields[e.field])

    def e_Builtin(self, e: n.Builtin) -> None:
        if e.name not in BUILTINS:
            raise self.error(f"unknown builtin {e.name!r}")
        if not isinstance(e.dim, int) or not 0 <= e.dim < BUILTINS[e.name]:
            raise self.error(f"builtin {e.name!r} with dim {e.dim}")
        self.typed(e, "u32")

    def e_Len(self, e: n.Len) -> None:
        if e.name not in self.buffers:
            raise self.error(f"len of unknown buffer {e.name!r}")
        self.typed(e, "u32")

    def e_Unary(self, e: n.Unary) -> None:
        if e.op not in UNARY:
            raise self.error(f"unknown unary operator {e.op!r}")
        t = self.expr(e.a)
        if t not in UNARY[e.op]:
            raise self.error(f"unary {e.op} on {t}")
        self.typed(e, t)

    def e_Binary(self, e: n.Binary) -> None:
        if e.op not in BINARY:
            raise self.error(f"unknown binary operator {e.op!r}")
        ta, tb = self.expr(e.a), self.expr(e.b)
        if ta not in BINARY[e.op]:
            raise self.error(f"binary {e.op} on {ta}")
        if e.op in SHIFTS:
            if tb not in INTS:
                raise self.error(f"the amount of {e.op} is {tb}, not an integer")
        elif tb != ta:
            raise self.error(f"binary {e.op} of {ta} and {tb}: the operands have one type")
        self.typed(e, binary_result(e.op, ta))

    def e_Select(self, e: n.Select) -> None:
        self.expect(e.cond, "bool", "the condition of a select")
        ta, tb = self.expr(e.a), self.expr(e.b)
        if ta != tb:
            raise self.error(f"select between {ta} and {tb}: both sides have one type")
        if ta in VECTORS:
            raise self.error(f"select between {ta} vectors: vectors are only loaded, assigned and read by field")
        self.typed(e, ta)

    def e_Cast(self, e: n.Cast) -> None:
        src = self.expr(e.value)
        if not cast_allowed(src, e.type):
            raise self.error(f"cast {src} -> {e.type}" + (": write `x != 0`" if e.type == "bool" else ""))

    def e_Bitcast(self, e: n.Bitcast) -> None:
        src = self.expr(e.value)
        if not bitcast_allowed(src, e.type):
            raise self.error(f"bitcast {src} -> {e.type}: bit casts are between numeric types of one size")

    def e_Call(self, e: n.Call) -> None:
        f = self.functions.get(e.func)
        if f is None:
            raise self.error(f"call of unknown function {e.func!r}")
        if len(e.args) != len(f.params):
            raise self.error(f"{e.func} takes {len(f.params)} arguments, {len(e.args)} given")
        for a, p in zip(e.args, f.params):
            self.expect(a, p.type, f"argument {p.name!r} of {e.func}")
        if self.function_name:
            self.calls.setdefault(self.function_name, set()).add(e.func)
        self.typed(e, f.ret if f.ret not in (None, "void") else "void")

    def e_Intrinsic(self, e: n.Intrinsic) -> None:
        sig = INTRINSICS.get(e.name)
        if sig is None:
            raise self.error(f"unknown intrinsic {e.name!r}")
        if len(e.args) != len(sig.args):
            raise self.error(f"{e.name} takes {len(sig.args)} arguments, {len(e.args)} given")
        types = [self.expr(a) for a in e.args]
        operand = types[0]
        for i, (want, got) in enumerate(zip(sig.args, types)):
            if got != (operand if want == "T" else want):
                raise self.error(f"argument {i + 1} of {e.name} is {got}, expected {operand if want == 'T' else want}")
        if operand not in _FAMILIES[e.name]:
            raise self.error(f"{e.name} on {operand}: it takes {', '.join(_FAMILIES[e.name])}")
        missing = unavailable(e.name, operand, self.targets)
        if missing:
            raise self.error(f"{e.name} on {operand} is not available on {_on(missing)}")
        self.subgroup_ops = self.subgroup_ops or e.name in SUBGROUP_OPS
        self.typed(e, sig.result_type(operand))

    def e_Load(self, e: n.Load) -> None:
        if e.type not in VECTORS:
            self.typed(e, self.memory(e.space, e.name, e.index, None))
            return
        elem, lanes = VECTORS[e.type]
        if e.space != "storage":
            raise self.error(f"a {e.type} load from {e.space} memory: vector loads read buffers")
        got = self.memory(e.space, e.name, e.index, None)
        if got != elem:
            raise self.error(f"a {e.type} load from buffer {e.name!r} of {got}: it reads a buffer of {elem}")
        missing = [t for t in self.targets if e.type not in VECTOR_LOAD_TYPES[t]]
        if missing:
            raise self.error(f"{e.type} loads are not available on {_on(missing)}")

    def e_Atomic(self, e: n.Atomic) -> None:
        if e.op not in ATOMIC_OPS:
            raise self.error(f"unknown atomic {e.op!r}")
        if e.space not in ATOMIC_SPACES:
            raise self.error(f"atomic on {e.space} memory")
        elem = self.memory(e.space, e.name, e.index, "atomic on")
        if len(e.args) != ATOMIC_OPS[e.op]:
            raise self.error(f"atomic {e.op} with {len(e.args)} arguments, not {ATOMIC_OPS[e.op]}")
        for a in e.args:
            self.expect(a, elem, f"an argument of atomic {e.op}")
        missing = [t for t in self.targets if elem not in atomic_types(e.op, e.space, (t,))]
        if missing:
            raise self.error(f"atomic {e.op} on {elem} in {e.space} memory is not available on {_on(missing)}")
        self.typed(e, elem)
