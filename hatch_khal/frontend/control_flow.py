"""Control flow of the kernel language: `if`, `while`, `for` over `range` (a run-time loop) or `static_range`
(unrolled, the loop variable a compile-time constant), `break`, `continue` and `return`.

`if` on a compile-time condition compiles only the branch taken, which is how templates specialise code.
"""

from __future__ import annotations

import ast

from khal_runtime import ir

from .diagnostics import ir_loc
from .package import Vocab
from .values import Comptime, RValue, Value, describe, typeof


class ControlFlowLowering:
    """The control-flow part of `FunctionLowering` (a mixin: it uses that class's `block`, `expr`, `as_expr`,
    `declare` and its scopes)."""

    def condition(self, node: ast.expr) -> Value:
        cond = self.expr(node)
        if isinstance(cond, Comptime) and isinstance(cond.value, bool):
            return cond
        e = self.as_expr(cond, None, node)
        if e.type != "bool":
            raise self.error(node, f"the condition must be a bool, found {e.type}",
                             hint="compare explicitly, e.g. `if x != 0:`")
        return RValue(e)

    def stmt_If(self, node: ast.If) -> list[ir.Stmt]:
        cond = self.condition(node.test)
        if isinstance(cond, Comptime):
            return self.block(node.body if cond.value else node.orelse)
        return [ir.If(cond.expr, self.block(node.body), self.block(node.orelse), ir_loc(node))]

    def stmt_While(self, node: ast.While) -> list[ir.Stmt]:
        if node.orelse:
            raise self.error(node, "while ... else is not supported")
        cond = self.condition(node.test)
        if isinstance(cond, Comptime) and not cond.value:
            return []
        body = self.loop_body(node.body, "dynamic")
        expr = cond.expr if isinstance(cond, RValue) else ir.Const("bool", True)
        return [ir.While(expr, body, ir_loc(node))]

    def loop_body(self, body: list[ast.stmt], kind: str) -> list[ir.Stmt]:
        self.loops.append(kind)
        try:
            return self.block(body)
        finally:
            self.loops.pop()

    def stmt_For(self, node: ast.For) -> list[ir.Stmt]:
        if node.orelse:
            raise self.error(node, "for ... else is not supported")
        it = node.iter
        fn = self.expr(it.func) if isinstance(it, ast.Call) else None
        if not (isinstance(fn, Vocab) and fn.name in ("range", "static_range")):
            raise self.error(it, "kernels loop over range(...) or static_range(...)",
                             hint="to visit a buffer, loop over range(len(buf)) and index it")
        if not isinstance(node.target, ast.Name):
            raise self.error(node.target, "the loop variable must be a single name")
        if not 1 <= len(it.args) <= 3:
            raise self.error(it, f"{fn.name}() takes 1 to 3 arguments")
        args = [self.expr(a) for a in it.args]
        start, stop, step = (Comptime(0), args[0], Comptime(1)) if len(args) == 1 else (
            args[0], args[1], args[2] if len(args) == 3 else Comptime(1))
        if fn.name == "static_range":
            return self.static_loop(node, start, stop, step)
        return self.range_loop(node, start, stop, step)

    def static_loop(self, node: ast.For, start: Value, stop: Value, step: Value) -> list[ir.Stmt]:
        bounds = [start, stop, step]
        if not all(isinstance(b, Comptime) and isinstance(b.value, int) for b in bounds):
            raise self.error(node.iter, "static_range() bounds must be compile-time integers",
                             hint="use range() for a loop whose bounds are known only at run time")
        values = range(start.value, stop.value, step.value) if step.value else None
        if values is None:
            raise self.error(node.iter, "the step of static_range() cannot be 0")
        if len(values) > 256:
            raise self.error(node.iter, f"static_range() would unroll {len(values)} iterations (at most 256)",
                             hint="use range() instead")
        name = node.target.id
        out: list[ir.Stmt] = []
        for v in values:
            self.static[name] = Comptime(v, start.type or stop.type)
            out.extend(self.loop_body(node.body, "static"))
        self.static.pop(name, None)
        return out

    def range_loop(self, node: ast.For, start: Value, stop: Value, step: Value) -> list[ir.Stmt]:
        name = node.target.id
        for v, what in ((start, "start"), (stop, "stop"), (step, "step")):
            if not isinstance(v, RValue) and not (isinstance(v, Comptime) and isinstance(v.value, int)):
                raise self.error(node.iter, f"the {what} of range() must be an integer, found {describe(v)}")
        known = self.locals[self.names[name]] if name in self.names else None
        t = known or next((typeof(v) for v in (start, stop, step) if typeof(v)), None) or "i32"
        if t not in ir.INTS:
            raise self.error(node.iter, f"range() needs integer bounds, found {t}")
        if isinstance(step, Comptime):
            if step.value == 0:
                raise self.error(node.iter, "the step of range() cannot be 0")
            if step.value < 0 and t not in ir.SIGNED:
                raise self.error(node.iter, f"a negative step needs a signed loop variable, not {t}",
                                 hint="loop over i32: range(i32(n) - 1, -1, -1)")
        exprs = [self.as_expr(v, t, node.iter) for v in (start, stop, step)]
        ir_name = self.names[name] if known else self.declare(name, t)
        self.range_vars.add(name)
        try:
            body = self.loop_body(node.body, "dynamic")
        finally:
            self.range_vars.discard(name)
        return [ir.For(ir_name, exprs[0], exprs[1], exprs[2], body, ir_loc(node))]

    def stmt_Break(self, node: ast.Break) -> list[ir.Stmt]:
        return [ir.Break(ir_loc(self.jump(node, "break")))]

    def stmt_Continue(self, node: ast.Continue) -> list[ir.Stmt]:
        return [ir.Continue(ir_loc(self.jump(node, "continue")))]

    def jump(self, node: ast.stmt, word: str) -> ast.stmt:
        if not self.loops:
            raise self.error(node, f"{word} outside a loop")
        if self.loops[-1] == "static":
            raise self.error(node, f"{word} is not allowed directly in a static_range loop, which is unrolled",
                             hint="use range() for this loop")
        return node

    def stmt_Return(self, node: ast.Return) -> list[ir.Stmt]:
        if self.is_kernel:
            if node.value is not None:
                raise self.error(node, "kernels return nothing", hint="write results to a MutBuf parameter")
            return [ir.Return(None, ir_loc(node))]
        if node.value is None:
            if self.ret is not None:
                raise self.error(node, f"{self.node.name} must return a {self.ret}")
            return [ir.Return(None, ir_loc(node))]
        value = self.expr(node.value)
        if self.ret is None:
            if self.builder.returns_nothing(self.node):
                raise self.error(node, f"{self.node.name} is declared to return None")
            self.ret = self.local_type(node, value)
        return [ir.Return(self.as_expr(value, self.ret, node.value), ir_loc(node))]


def always_returns(stmts: list[ir.Stmt]) -> bool:
    if not stmts:
        return False
    last = stmts[-1]
    if isinstance(last, ir.Return):
        return True
    if isinstance(last, ir.If):
        return always_returns(last.then) and always_returns(last.orelse)
    return False
