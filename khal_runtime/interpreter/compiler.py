"""The interpreter's compiler: IR nodes to nested closures, compiled once per kernel so that a run does no dispatch
on node types. A statement compiles to `run(frame, mask) -> mask` (the lanes that go on), an expression to
`run(frame, mask) -> value`.

Divergence is masks: a statement runs under the mask of its active lanes and returns the mask of those that go on
to the next statement; `If` runs each side under its own lanes, `continue` and `return` park lanes in the frame
(`cont`, `ret`), and a loop runs while any lane is active. The kernel has been verified (`ir.verify`): names,
types, arities and memory spaces are those the specification allows, and nothing here checks them again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from khal_runtime import ir

from . import arithmetic as ops
from .atomics import atomic_apply
from .memory import PrivateRef, SharedRef, StorageRef, VectorRef, barrier_passed
from .state import Frame, check_together, error
from .subgroups import subgroup_op
from .values import (
    DTYPE,
    EMPTY,
    Affine,
    affine,
    affine_binary,
    const,
    dense,
    is_uniform,
    mask_and,
    mask_minus,
    mask_or,
    merge,
)

if TYPE_CHECKING:
    from .program import Program


Run = Callable[[Frame, Any], Any]
_AFFINE_OPS = ("add", "sub", "mul") + ir.COMPARISONS
# expressions whose value is never Affine, so that `dense_expr` needs no wrapper for them
_NEVER_AFFINE = (ir.Const, ir.Param, ir.Field, ir.Unary, ir.Bitcast, ir.Intrinsic, ir.Load, ir.Len, ir.Atomic)


def _binary_apply(op: str, t: str) -> Callable[[Any, Any], Any]:
    """`a op b` on values of type `t`, kept symbolic for Affine operands where possible."""
    fn = ops.binary_fn(op, t)
    if op not in _AFFINE_OPS or t not in ir.INTS:
        return lambda a, b: fn(dense(a), dense(b))

    def apply(a, b):
        if type(a) is Affine or type(b) is Affine:
            r = affine_binary(op, t, a, b)
            if r is not None:
                return r
            a, b = dense(a), dense(b)
        return fn(a, b)
    return apply


def _block(stmts: list[Run]) -> Run:
    if not stmts:
        return lambda f, m: m
    if len(stmts) == 1:
        return stmts[0]

    def run(f, m):
        for s in stmts:
            m = s(f, m)
            if m is EMPTY:
                break
        return m
    return run


def _run_loop(f: Frame, m, cond: Run, body: Run, advance: Callable[[Frame, Any], None] | None):
    """Iterate while any lane is active. Lanes that `break` simply drop out of `body`'s result; lanes that
    `continue` come back from `f.cont`; the loop's result is its lanes minus those that returned."""
    saved, active = f.cont, m
    while True:
        active = mask_and(active, cond(f, active))
        if active is EMPTY:
            break
        f.cont = EMPTY
        active = mask_or(body(f, active), f.cont)
        if active is EMPTY:
            break
        if advance is not None:
            advance(f, active)
    f.cont = saved
    return mask_minus(m, f.ret)


class Compiler:
    def __init__(self, prog: Program):
        self.prog, self.kernel = prog, prog.kernel
        self.line = prog.kernel.line
        self.scope: dict[str, str] = {}    # the current function's parameters and locals: name -> type

    def compile(self) -> None:
        k = self.kernel
        for fn in k.functions:
            self.prog.functions[fn.name].body = self.function(fn.params, fn.locals, fn.body, fn.line)
        self.prog.entry.body = self.function([], k.locals, k.body, k.line)

    def function(self, params: list[ir.Scalar], locals_: dict[str, str], body: list[ir.Stmt], line: int) -> Run:
        self.scope = {p.name: p.type for p in params} | dict(locals_)
        self.line = line
        return self.block(body)

    # --- statements ---------------------------------------------------------------------------------------------

    def block(self, stmts: list[ir.Stmt]) -> Run:
        return _block([self.stmt(s) for s in stmts])

    def stmt(self, s: ir.Stmt) -> Run:
        outer, self.line = self.line, s.loc[0] or self.line
        try:
            return getattr(self, "s_" + type(s).__name__)(s)
        finally:
            self.line = outer

    def s_Assign(self, s: ir.Assign) -> Run:
        value, name = self.expr(s.value), s.name

        def run(f, m):
            f.vars[name] = merge(m, value(f, m), f.vars[name])
            return m
        return run

    def s_Store(self, s: ir.Store) -> Run:
        ref, value = self.ref(s.space, s.name, s.index), self.expr(s.value)

        def run(f, m):
            ref.store(f, m, value(f, m))
            return m
        return run

    def s_ExprStmt(self, s: ir.ExprStmt) -> Run:
        value = self.expr(s.value)

        def run(f, m):
            value(f, m)
            return m
        return run

    def s_If(self, s: ir.If) -> Run:
        cond, then, orelse = self.dense_expr(s.cond), self.block(s.then), self.block(s.orelse)

        def run(f, m):
            c = cond(f, m)
            if is_uniform(c):
                return then(f, m) if c else orelse(f, m)
            mt, me = mask_and(m, c), mask_and(m, ~c)
            return mask_or(EMPTY if mt is EMPTY else then(f, mt), EMPTY if me is EMPTY else orelse(f, me))
        return run

    def s_While(self, s: ir.While) -> Run:
        cond, body = self.dense_expr(s.cond), self.block(s.body)
        return lambda f, m: _run_loop(f, m, cond, body, None)

    def s_For(self, s: ir.For) -> Run:
        var, line = s.var, self.line
        t = self.scope[var]
        start, stop, step = self.expr(s.start), self.expr(s.stop), self.expr(s.step)
        const_step = s.step.value if isinstance(s.step, ir.Const) else None
        test = _binary_apply("gt" if const_step is not None and const_step < 0 else "lt", t)
        add = _binary_apply("add", t)
        body = self.block(s.body)

        def run(f, m):
            # all three before the loop variable changes, as in Python's `for i in range(i, i + 4)`
            first, bound, inc = start(f, m), stop(f, m), step(f, m)
            f.vars[var] = merge(m, first, f.vars[var])
            if const_step is None:
                inc = dense(inc)
                p = f.batch.first_active(inc <= 0, m)
                if p is not None:
                    raise error(f, line, f"for loop step {f.batch.at(inc, p)} is not positive (only a constant "
                                         "step may be negative)", p)

            def advance(f, active):
                f.vars[var] = merge(active, add(f.vars[var], inc), f.vars[var])
            return _run_loop(f, m, lambda f, active: test(f.vars[var], bound), body, advance)
        return run

    def s_Break(self, s: ir.Break) -> Run:
        return lambda f, m: EMPTY

    def s_Continue(self, s: ir.Continue) -> Run:
        def run(f, m):
            f.cont = mask_or(f.cont, m)
            return EMPTY
        return run

    def s_Return(self, s: ir.Return) -> Run:
        value = None if s.value is None else self.expr(s.value)

        def run(f, m):
            if value is not None:
                f.retval = merge(m, value(f, m), f.retval)
            f.ret = mask_or(f.ret, m)
            return EMPTY
        return run

    def s_Barrier(self, s: ir.Barrier) -> Run:
        line, storage = self.line, s.scope == "storage"

        def run(f, m):
            b = f.batch
            reached = None if m is None else check_together(f, m, b.lanes, line, "barrier", "workgroup")
            if b.check:
                barrier_passed(b, reached, storage)
            return m
        return run

    # --- expressions --------------------------------------------------------------------------------------------

    def expr(self, e) -> Run:
        """An expression's closure; its values may be Affine."""
        return getattr(self, "e_" + type(e).__name__)(e)

    def dense_expr(self, e) -> Run:
        """An expression's closure whose values are never Affine."""
        run = self.expr(e)
        if isinstance(e, _NEVER_AFFINE):
            return run
        return lambda f, m: dense(run(f, m))

    def e_Const(self, e: ir.Const) -> Run:
        value = const(e.type, e.value)
        return lambda f, m: value

    def e_Var(self, e: ir.Var) -> Run:
        name = e.name
        return lambda f, m: f.vars[name]

    def e_Param(self, e: ir.Param) -> Run:
        name = e.name
        return lambda f, m: f.batch.params[name]

    def e_Field(self, e: ir.Field) -> Run:
        value, name = self.expr(e.value), e.field
        return lambda f, m: value(f, m)[name]

    def e_Builtin(self, e: ir.Builtin) -> Run:
        name, dim = e.name, e.dim
        return lambda f, m: f.batch.builtin(name, dim)

    def e_Len(self, e: ir.Len) -> Run:
        name = e.name
        return lambda f, m: f.batch.lengths[name]

    def e_Unary(self, e: ir.Unary) -> Run:
        fn, a = ops.UNARY[e.op], self.dense_expr(e.a)
        return lambda f, m: fn(a(f, m))

    def e_Binary(self, e: ir.Binary) -> Run:
        if e.op in ("and", "or"):
            return self.short_circuit(e)
        op, line = e.op, self.line
        apply = _binary_apply(op, e.a.type)   # the operands' type (the shifted one for shifts)
        a, b = self.expr(e.a), self.expr(e.b)
        if not ops.divides_integers(op, e.a.type):
            return lambda f, m: apply(a(f, m), b(f, m))

        def divide(f, m):
            x, y = a(f, m), dense(b(f, m))
            p = f.batch.first_active(y == 0, m)
            if p is not None:
                raise error(f, line, f"integer division by zero ({op})", p)
            return apply(x, y)
        return divide

    def short_circuit(self, e: ir.Binary) -> Run:
        a, b, conj = self.dense_expr(e.a), self.dense_expr(e.b), e.op == "and"

        def run(f, m):
            x = a(f, m)
            need = mask_and(m, x if conj else ~x)   # the lanes where `b` decides
            if need is EMPTY:
                return x
            return (np.logical_and if conj else np.logical_or)(x, b(f, need))
        return run

    def e_Select(self, e: ir.Select) -> Run:
        cond, a, b = self.dense_expr(e.cond), self.expr(e.a), self.expr(e.b)

        def run(f, m):
            c = cond(f, m)
            if is_uniform(c):
                return a(f, m) if c else b(f, m)
            ma, mb = mask_and(m, c), mask_and(m, ~c)
            if mb is EMPTY:
                return a(f, ma)
            if ma is EMPTY:
                return b(f, mb)
            return merge(ma, a(f, ma), b(f, mb))
        return run

    def e_Cast(self, e: ir.Cast) -> Run:
        src, dst, value = e.value.type, e.type, self.expr(e.value)
        fn = ops.cast_fn(src, dst)
        keep_affine = src in ir.INTS and dst in ir.INTS

        def run(f, m):
            x = value(f, m)
            if type(x) is Affine:
                kept = affine(dst, x.start, x.stride, x.shape) if keep_affine else None
                if kept is not None:
                    return kept
                x = x.dense()
            return fn(x)
        return run

    def e_Bitcast(self, e: ir.Bitcast) -> Run:
        fn, value = ops.bitcast_fn(e.type), self.dense_expr(e.value)
        return lambda f, m: fn(value(f, m))

    def e_Call(self, e: ir.Call) -> Run:
        callee = self.prog.functions[e.func]
        args, line = [self.expr(a) for a in e.args], self.line

        def run(f, m):
            values = [a(f, m) for a in args]
            frame = Frame(f.batch, callee, f, line)
            frame.vars.update(zip(callee.params, values))
            callee.body(frame, m)
            return frame.retval
        return run

    def e_Intrinsic(self, e: ir.Intrinsic) -> Run:
        if e.name.startswith("subgroup_"):
            return self.subgroup(e)
        fn = ops.intrinsic_fn(e.name, e.args[0].type)
        args, name, line = [self.dense_expr(a) for a in e.args], e.name, self.line

        def run(f, m):
            values = [a(f, m) for a in args]
            faults = ops.bits_faults(name, values)
            p = None if faults is None else f.batch.first_active(faults, m)
            if p is not None:
                raise error(f, line, f"{name}: offset + count exceeds 32", p)
            return fn(*values)
        return run

    def subgroup(self, e: ir.Intrinsic) -> Run:
        arg = self.dense_expr(e.args[1]) if len(e.args) > 1 else None
        return subgroup_op(e.name, e.args[0].type, self.dense_expr(e.args[0]), arg, self.line)

    def e_Load(self, e: ir.Load) -> Run:
        if e.type in ir.VECTORS:
            return VectorRef(e.name, self.expr(e.index[0]), ir.VECTOR_FIELDS[:ir.VECTORS[e.type][1]], self.line).load
        ref = self.ref(e.space, e.name, e.index)
        return ref.load

    def e_Atomic(self, e: ir.Atomic) -> Run:
        ref, op, dt = self.ref(e.space, e.name, e.index), e.op, DTYPE[e.type]
        args = [self.dense_expr(a) for a in e.args]

        def run(f, m):
            b = f.batch
            mem, loc = ref.atomic_target(f, m)
            active = b.active(m)
            values = [b.full(a(f, m))[active] for a in args]
            old = atomic_apply(op, mem, b.full(loc)[active], values[-1],
                               values[0] if op == "compare_exchange" else None)
            if m is None:
                return old.reshape(b.shape)
            out = np.zeros(b.n, dt)
            out[active] = old
            return out.reshape(b.shape)
        return run

    def ref(self, space: str, name: str, index: list):
        """The compiled memory location `space name[index]`."""
        if space == "storage":
            return StorageRef(name, self.expr(index[0]), self.line)
        cls, t = (SharedRef, self.kernel.shared[name]) if space == "shared" else (PrivateRef, self.scope[name])
        _, shape = ir.parse_array(t)  # type: ignore[misc]
        return cls(space, name, shape, [self.dense_expr(i) for i in index], self.line)
