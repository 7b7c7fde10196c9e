"""Operators of the kernel language: arithmetic, bitwise, comparison, logic and the conditional expression, lowered
to typed IR (or folded at compile time when every operand is a compile-time value).

Operands of an operator have one type (no silent int/float or signed/unsigned mixing); an untyped literal takes the
type of what it meets.
"""

from __future__ import annotations

import ast

from khal_runtime import ir

from .package import callee
from .values import (
    Callee,
    Comptime,
    RValue,
    TypeName,
    Value,
    default_type,
    describe,
    fits,
    fold_binary,
    fold_compare,
    is_number,
    is_pure,
    is_scalar_comptime,
    typeof,
    wrap,
)

BINARY = {ast.Add: "add", ast.Sub: "sub", ast.Mult: "mul", ast.Div: "div", ast.FloorDiv: "floordiv",
          ast.Mod: "mod", ast.Pow: "pow", ast.LShift: "shl", ast.RShift: "shr", ast.BitAnd: "bit_and",
          ast.BitOr: "bit_or", ast.BitXor: "bit_xor"}
SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/", "floordiv": "//", "mod": "%", "pow": "**", "shl": "<<",
          "shr": ">>", "bit_and": "&", "bit_or": "|", "bit_xor": "^", "eq": "==", "ne": "!=", "lt": "<",
          "le": "<=", "gt": ">", "ge": ">="}
VERB = {"add": "add", "sub": "subtract", "mul": "multiply", "div": "divide", "floordiv": "divide", "mod": "take the "
        "remainder of", "pow": "raise", "shl": "shift", "shr": "shift", "bit_and": "combine", "bit_or": "combine",
        "bit_xor": "combine", "select": "choose between"}
COMPARE = {ast.Eq: "eq", ast.NotEq: "ne", ast.Lt: "lt", ast.LtE: "le", ast.Gt: "gt", ast.GtE: "ge"}


class OperatorLowering:
    """The operator part of `ExpressionLowering` (a mixin: it uses that class's `expr`, `as_expr` and `error`)."""

    def expr_BinOp(self, node: ast.BinOp) -> Value:
        op = BINARY.get(type(node.op))
        if op is None:
            raise self.error(node, f"the operator {type(node.op).__name__} is not supported in kernels")
        return self.binary(node, op, self.expr(node.left), self.expr(node.right))

    def binary(self, node: ast.AST, op: str, a: Value, b: Value) -> Value:
        self.require_number(node.left if isinstance(node, ast.BinOp) else node, a)
        self.require_number(node.right if isinstance(node, ast.BinOp) else node, b)
        if isinstance(a, Comptime) and isinstance(b, Comptime):
            return self.fold(node, op, a, b)
        if op in ("shl", "shr"):
            return self.shift(node, op, a, b)
        ea, eb, t = self.unify(node, op, a, b)
        if op == "pow":
            if t not in ir.FLOATS:
                raise self.error(node, f"** needs float operands, found {t}",
                                 hint="multiply explicitly, or use a shift for powers of two")
            return RValue(self.intrinsic_expr(node, "pow", [ea, eb], t))
        if op == "div" and t not in ir.FLOATS:
            raise self.error(node, f"/ is float division and the operands are {t}",
                             hint="use // for integer division, or convert: f32(a) / f32(b)")
        if op.startswith("bit_") and t not in ir.INTS and t != "bool":
            raise self.error(node, f"{SYMBOL[op]} needs integer or bool operands, found {t}",
                             hint="reinterpret float bits with bitcast(u32, x)")
        if not op.startswith("bit_") and t == "bool":
            raise self.error(node, f"{SYMBOL[op]} does not apply to bool", hint="convert with u32(flag)")
        return RValue(ir.Binary(t, op, ea, eb))

    def shift(self, node, op: str, a: Value, b: Value) -> Value:
        ta, tb = typeof(a), typeof(b)
        ta = ta or tb or "i32"
        if ta not in ir.INTS or (tb is not None and tb not in ir.INTS):
            raise self.error(node, f"{SYMBOL[op]} needs integer operands, found {ta} and {tb}")
        return RValue(ir.Binary(ta, op, self.as_expr(a, ta, node), self.as_expr(b, tb or "u32", node)))

    def fold(self, node, op: str, a: Comptime, b: Comptime) -> Comptime:
        if a.type and b.type and a.type != b.type:
            raise self.error(node, f"cannot {VERB.get(op, 'compare')} {a.type} and {b.type}: kernels do not convert "
                                   "types implicitly", hint="convert one side")
        t = a.type or b.type
        if t is not None:
            for side in (a, b):
                if side.type is None and not fits(side.value, t):
                    raise self.error(node, f"the literal {side.value!r} does not fit in {t}")
        if op == "div" and t in ir.INTS:
            raise self.error(node, f"/ is float division and the operands are {t}", hint="use //")
        if op.startswith("bit_") or op in ("shl", "shr"):
            if any(isinstance(x.value, float) for x in (a, b)):
                raise self.error(node, f"{SYMBOL[op]} needs integer operands")
        if op in ("pow", "shl") and t is None and abs(b.value) > 256:
            raise self.error(node, f"{SYMBOL[op]} {b.value} in a compile-time expression is too large")
        if op in ("shl", "shr") and t is None and b.value < 0:
            raise self.error(node, f"a negative shift ({SYMBOL[op]} {b.value}) of an untyped literal",
                             hint="give the literal a type, e.g. u32(1) << n, whose shifts wrap at its width")
        try:
            result = fold_binary(op, a.value, b.value, t)
        except ZeroDivisionError:
            raise self.error(node, "division by zero in a compile-time expression") from None
        if is_number(result) and not isinstance(result, float) and abs(result) >= 1 << 128:
            raise self.error(node, "a compile-time integer past 128 bits")
        return Comptime(result, t)

    def unify(self, node, op: str, a: Value, b: Value) -> tuple[ir.Expr, ir.Expr, str]:
        ta, tb = typeof(a), typeof(b)
        if ta and tb and ta != tb:
            notes, hint = self.type_origins(a, b)
            raise self.error(node, f"cannot {VERB.get(op, 'compare')} {ta} and {tb}: kernels do not convert types "
                                   "implicitly", hint=hint or f"convert one side, e.g. {ta}(...) or {tb}(...)",
                             notes=notes)
        t = ta or tb or default_type(a.value)
        return self.as_expr(a, t, node), self.as_expr(b, t, node), t

    def require_number(self, node, v: Value) -> None:
        if isinstance(v, RValue):
            return
        if is_scalar_comptime(v):
            return
        raise self.error(node, f"{describe(v)} is not a number")

    def expr_UnaryOp(self, node: ast.UnaryOp) -> Value:
        v = self.expr(node.operand)
        if isinstance(node.op, ast.Not):
            if isinstance(v, Comptime) and isinstance(v.value, bool):
                return Comptime(not v.value, "bool")
            e = self.as_expr(v, None, node.operand)
            if e.type != "bool":
                raise self.error(node, f"`not` needs a bool, found {e.type}", hint="compare explicitly: x == 0")
            return RValue(ir.Unary("bool", "not", e))
        self.require_number(node.operand, v)
        if isinstance(node.op, ast.UAdd):
            return v
        op = "neg" if isinstance(node.op, ast.USub) else "bit_not"
        if isinstance(v, Comptime):
            if op == "bit_not" and isinstance(v.value, float):
                raise self.error(node, "~ needs an integer")
            result = -v.value if op == "neg" else ~v.value
            return Comptime(wrap(result, v.type) if v.type else result, v.type)
        t = v.type
        if op == "neg" and (t == "bool" or t in ("u32", "u64")):
            raise self.error(node, f"cannot negate a {t} value",
                             hint="unsigned values have no sign; convert to i32/i64 first, or write 0 - x")
        if op == "bit_not" and t not in ir.INTS:
            raise self.error(node, f"~ needs an integer, found {t}")
        return RValue(ir.Unary(t, op, v.expr))

    def expr_BoolOp(self, node: ast.BoolOp) -> Value:
        op = "and" if isinstance(node.op, ast.And) else "or"
        result: Value | None = None
        for operand in node.values:
            v = self.expr(operand)
            if isinstance(v, Comptime) and isinstance(v.value, bool):
                if v.value == (op == "or"):         # decides the whole expression (when nothing run-time before)
                    if result is None:
                        return v
                    v = RValue(ir.Const("bool", v.value))
                elif result is None:
                    continue
            e = self.as_expr(v, None, operand)
            if e.type != "bool":
                raise self.error(operand, f"`{op}` needs bool operands, found {e.type}",
                                 hint="compare explicitly, e.g. x != 0")
            result = RValue(e) if result is None else RValue(ir.Binary("bool", op, result.expr, e))
        return result if result is not None else Comptime(op == "and", "bool")

    def expr_Compare(self, node: ast.Compare) -> Value:
        left = self.expr(node.left)
        result: Value | None = None
        for i, (op_node, right_node) in enumerate(zip(node.ops, node.comparators)):
            right = self.expr(right_node)
            if i > 0 and isinstance(left, RValue) and not is_pure(left.expr):
                raise self.error(node, "a chained comparison evaluates its middle operand twice here",
                                 hint="store it in a local first")
            part = self.compare(node, op_node, left, right)
            if isinstance(part, Comptime) and result is None:
                if not part.value:
                    return part
            else:
                e = self.as_expr(part, "bool", node)
                result = RValue(e) if result is None else RValue(ir.Binary("bool", "and", result.expr, e))
            left = right
        return result if result is not None else Comptime(True, "bool")

    def compare(self, node, op_node: ast.cmpop, a: Value, b: Value) -> Value:
        a = callee(a) or a                          # a function named in the comparison: OP == add
        if isinstance(op_node, (ast.In, ast.NotIn)):
            if isinstance(b, Comptime) and isinstance(b.value, tuple) and isinstance(a, (Comptime, TypeName,
                                                                                         Callee)):
                member = (a.value if isinstance(a, Comptime) else a) in b.value
                return Comptime(member == isinstance(op_node, ast.In), "bool")
            raise self.error(node, "`in` works only on compile-time values, e.g. OP in (\"sum\", \"max\")")
        b = callee(b) or b
        op = COMPARE.get(type(op_node))
        if op is None:
            raise self.error(node, "`is` is not supported in kernels", hint="use == and !=")
        if isinstance(a, (TypeName, Callee)) or isinstance(b, (TypeName, Callee)):
            if op not in ("eq", "ne"):
                raise self.error(node, "types and functions can only be compared with == and !=")
            return Comptime((a == b) == (op == "eq"), "bool")
        if isinstance(a, Comptime) and isinstance(b, Comptime):
            if isinstance(a.value, (str, tuple)) or isinstance(b.value, (str, tuple)):
                if op not in ("eq", "ne"):
                    raise self.error(node, "strings can only be compared with == and !=")
                return Comptime((a.value == b.value) == (op == "eq"), "bool")
            self.fold(node, "add" if a.type != "bool" else "bit_and", a, b)     # type check only
            return Comptime(fold_compare(op, a.value, b.value), "bool")
        self.require_number(node, a)
        self.require_number(node, b)
        ea, eb, t = self.unify(node, op, a, b)
        if t == "bool" and op not in ("eq", "ne"):
            raise self.error(node, "bools can only be compared with == and !=")
        return RValue(ir.Binary("bool", op, ea, eb))

    def expr_IfExp(self, node: ast.IfExp) -> Value:
        cond = self.expr(node.test)
        if isinstance(cond, Comptime) and isinstance(cond.value, bool):
            return self.expr(node.body if cond.value else node.orelse)
        c = self.as_expr(cond, None, node.test)
        if c.type != "bool":
            raise self.error(node.test, f"the condition must be a bool, found {c.type}", hint="compare: x != 0")
        choices = [self.expr(node.body), self.expr(node.orelse)]
        for choice, choice_node in zip(choices, (node.body, node.orelse)):
            self.require_number(choice_node, choice)
        ea, eb, t = self.unify(node, "select", *choices)
        return RValue(ir.Select(t, c, ea, eb))
