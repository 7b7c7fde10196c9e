"""`require(...)`: preconditions on a kernel's arguments, checked by the host before each dispatch.

    @kernel(workgroup_size=(64,))
    def add_assign(a: MutBuf[f32], b: Buf[f32]):
        require(len(b) >= len(a))

The condition is kept as a Python expression over the arguments (len() of buffers, scalar parameters, struct
fields), with module constants replaced by their values; the generated binding evaluates it in `call()`.
"""

from __future__ import annotations

import ast

from khal_runtime import ir

from .values import Comptime, MemRef, RValue

_ARITHMETIC = (ast.Add, ast.Sub, ast.Mult, ast.FloorDiv, ast.Mod)
_WHAT = "len() of a buffer parameter, scalar parameters, struct fields, constants and integer arithmetic"


def requirement(lowering, node: ast.Call) -> ir.Requirement:
    """The Requirement of a `require(cond)` call, validated against the kernel's parameters."""
    if len(node.args) != 1 or node.keywords:
        raise lowering.error(node, "require() takes one condition")
    cond = node.args[0]
    if not isinstance(cond, (ast.Compare, ast.BoolOp)) and not (
            isinstance(cond, ast.UnaryOp) and isinstance(cond.op, ast.Not)):
        raise lowering.error(cond, "require() needs a comparison, e.g. require(len(out) >= n)")
    return ir.Requirement(_text(_rewrite(lowering, cond)), node.lineno)


def _text(node: ast.expr) -> str:
    """Python source of the condition; `ast.unparse` would parenthesise the third operand of `a and b and c`."""
    if isinstance(node, ast.BoolOp):
        word = " and " if isinstance(node.op, ast.And) else " or "
        return word.join(f"({_text(v)})" if isinstance(v, ast.BoolOp) else _text(v) for v in node.values)
    return ast.unparse(node)


def _rewrite(lowering, node: ast.expr) -> ast.expr:
    def refuse(n: ast.AST, detail: str = ""):
        return lowering.error(n, f"require() can use only {_WHAT}" + (f"; {detail}" if detail else ""))

    def visit(n: ast.expr) -> ast.expr:
        if isinstance(n, ast.Compare):
            if any(isinstance(op, (ast.In, ast.NotIn, ast.Is, ast.IsNot)) for op in n.ops):
                raise refuse(n, "compare with == != < <= > >=")
            return ast.Compare(visit(n.left), n.ops, [visit(c) for c in n.comparators])
        if isinstance(n, ast.BoolOp):
            return ast.BoolOp(n.op, [visit(v) for v in n.values])
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, (ast.Not, ast.USub)):
            return ast.UnaryOp(n.op, visit(n.operand))
        if isinstance(n, ast.BinOp) and isinstance(n.op, _ARITHMETIC):
            return ast.BinOp(visit(n.left), n.op, visit(n.right))
        if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id in ("len", "min", "max"):
            if n.func.id == "len":
                target = lowering.bindings.get(n.args[0].id) if len(n.args) == 1 and isinstance(
                    n.args[0], ast.Name) else None
                if not (isinstance(target, MemRef) and target.space == "storage"):
                    raise refuse(n, "len() takes a buffer parameter here")
                return ast.Call(ast.Name("len"), [ast.Name(n.args[0].id)], [])
            return ast.Call(ast.Name(n.func.id), [visit(a) for a in n.args], [])
        if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name):
            bound = lowering.bindings.get(n.value.id)
            if isinstance(bound, RValue) and isinstance(bound.expr, ir.Param):
                lowering.expr(n)                    # checks that the struct has the field
                return ast.Attribute(ast.Name(n.value.id), n.attr)
        if isinstance(n, ast.Name):
            bound = lowering.bindings.get(n.id)
            if isinstance(bound, RValue) and isinstance(bound.expr, ir.Param):
                if bound.type not in ir.INTS:
                    raise refuse(n, f"{n.id} is a {bound.type}; only integer parameters can be used")
                return ast.Name(n.id)
            if isinstance(bound, MemRef):
                raise refuse(n, f"write len({n.id}) for the length of a buffer")
        if isinstance(n, (ast.Name, ast.Attribute, ast.Constant, ast.BinOp)):
            value = lowering.expr(n)
            if isinstance(value, Comptime) and isinstance(value.value, (int, bool)):
                return ast.Constant(value.value)
        raise refuse(n)

    return visit(node)
