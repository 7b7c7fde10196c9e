"""Expressions of the kernel language, lowered to typed IR expressions (or folded at compile time).

Typing rules: operands of an operator have one type (no silent int/float or signed/unsigned mixing); an untyped
literal takes the type of what it meets; casts are explicit (`f32(i)`).
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from khal_runtime import ir

from .package import Constant, Foreign, Function, ModuleRef, Struct, Template, Vocab
from .values import (
    BuiltinVec,
    Comptime,
    MemRef,
    Multi,
    RValue,
    TypeName,
    Value,
    const,
    describe,
    fits,
    fold_binary,
    fold_compare,
    is_number,
    is_scalar_comptime,
    typeof,
    wrap,
)
from .vocabulary import (
    ALLOWED_WORDS,
    ATOMICS,
    INTRINSICS,
    LANG_MODULE,
    LANG_NAMES,
    PYTHON_BUILTINS,
    REFUSED_BUILTINS,
    SCALAR_BUILTINS,
    SCALAR_TYPES,
    VECTOR_BUILTINS,
    atomic_hint,
    type_allowed,
    unavailable_message,
)

if TYPE_CHECKING:
    from .kernels import KernelBuilder
    from .package import ShaderModule

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
DIMS = {"x": 0, "y": 1, "z": 2}


class ExpressionLowering:
    """Lowers expressions in the scope of one function (or of a module, for constants)."""

    builder: KernelBuilder
    module: ShaderModule

    def __init__(self, builder: KernelBuilder, module: ShaderModule):
        self.builder, self.module = builder, module

    def error(self, node, message, hint=None):
        return self.module.error(node, message, hint)

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
            raise self.error(node, f"{name!r} is {found.what}; kernels cannot use it",
                             hint="kernels see compile-time constants, templates, structs, helper functions and "
                                  "the names of khal_runtime.lang")
        if name in PYTHON_BUILTINS:
            return TypeName("bool") if name == "bool" else Vocab(name)
        if name in REFUSED_BUILTINS:
            raise self.error(node, f"{name}() is not available in kernels", hint=REFUSED_BUILTINS[name])
        raise self.error(node, f"name {name!r} is not defined")

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
            target = t or v.type or _default_type(v.value)
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
        if all(isinstance(i, (Comptime, TypeName)) for i in items):
            return Comptime(tuple(i.value if isinstance(i, Comptime) else i for i in items))
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
        raise self.error(node, f"{describe(base)} has no attribute {node.attr!r}")

    # --- operators ------------------------------------------------------------------------------------------

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
            raise self.error(node, f"cannot {VERB.get(op, 'compare')} {ta} and {tb}: kernels do not convert types "
                                   "implicitly", hint=f"convert one side, e.g. {ta}(...) or {tb}(...)")
        t = ta or tb or _default_type(a.value)
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
        if isinstance(op_node, (ast.In, ast.NotIn)):
            if isinstance(b, Comptime) and isinstance(b.value, tuple) and isinstance(a, (Comptime, TypeName)):
                member = (a.value if isinstance(a, Comptime) else a) in b.value
                return Comptime(member == isinstance(op_node, ast.In), "bool")
            raise self.error(node, "`in` works only on compile-time values, e.g. OP in (\"sum\", \"max\")")
        op = COMPARE.get(type(op_node))
        if op is None:
            raise self.error(node, "`is` is not supported in kernels", hint="use == and !=")
        if isinstance(a, TypeName) or isinstance(b, TypeName):
            if op not in ("eq", "ne"):
                raise self.error(node, "types can only be compared with == and !=")
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

    # --- memory ---------------------------------------------------------------------------------------------

    def expr_Subscript(self, node: ast.Subscript) -> Value:
        base = self.expr(node.value)
        if isinstance(base, Comptime) and isinstance(base.value, tuple):
            index = self.expr(node.slice)
            if not (isinstance(index, Comptime) and is_number(index.value)):
                raise self.error(node.slice, "a compile-time tuple is indexed by a compile-time integer")
            return _as_value(base.value[index.value])
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

    # --- calls ----------------------------------------------------------------------------------------------

    def expr_Call(self, node: ast.Call) -> Value:
        fn = self.expr(node.func)
        if node.keywords:
            raise self.error(node.keywords[0], "keyword arguments are not supported in kernel calls")
        if any(isinstance(a, ast.Starred) for a in node.args):
            raise self.error(node, "*args is not supported in kernels")
        if isinstance(fn, TypeName):
            return self.cast(node, fn.name)
        if isinstance(fn, Function):
            if fn.kernel is not None:
                raise self.error(node, f"{fn.name} is a kernel; kernels cannot be called from kernels",
                                 hint="move the shared code into a helper function")
            return self.builder.call_helper(self, node, fn)
        if isinstance(fn, Vocab):
            return self.call_vocab(node, fn.name)
        if isinstance(fn, Struct):
            raise self.error(node, f"struct {fn.name} cannot be constructed in a kernel",
                             hint="structs are kernel or helper parameters")
        raise self.error(node, f"{describe(fn)} is not callable")

    def cast(self, node: ast.Call, t: str) -> Value:
        if len(node.args) != 1:
            raise self.error(node, f"{t}(...) takes one argument")
        v = self.expr(node.args[0])
        if t == "bool":
            raise self.error(node, "bool(x) is not a conversion in kernels", hint="compare explicitly: x != 0")
        if is_scalar_comptime(v):
            if t in ir.INTS and v.type is None and isinstance(v.value, float):
                raise self.error(node, f"the float literal {v.value!r} cannot be a {t}")
            return Comptime(wrap(v.value, t), t)
        e = self.as_expr(v, None, node.args[0])
        return RValue(e if e.type == t else ir.Cast(t, e))

    def call_vocab(self, node: ast.Call, name: str) -> Value:
        args = node.args
        if name in VECTOR_BUILTINS:
            self.arity(node, name, 0)
            if name == "workgroup_size":
                return Comptime(tuple(self.builder.workgroup_size))
            return BuiltinVec(name)
        if name in SCALAR_BUILTINS:
            self.arity(node, name, 0)
            if name.startswith("subgroup") or name == "num_subgroups":
                self.builder.note_subgroups(node)
            return RValue(ir.Builtin("u32", name))
        if name == "len":
            self.arity(node, name, 1)
            ref = self.expr(args[0])
            if not isinstance(ref, MemRef):
                raise self.error(node, f"len() takes a buffer or array, found {describe(ref)}")
            if ref.space == "storage":
                return RValue(ir.Len("u32", ref.name))
            return Comptime(ref.shape[len(ref.index)])
        if name == "bitcast":
            return self.bitcast(node)
        if name in ATOMICS:
            return self.atomic(node, ATOMICS[name])
        if name == "unpack_half2x16":
            self.arity(node, name, 1)
            word = self.value(args[0], "u32")
            if not is_pure(word):
                raise self.error(args[0], "store the word in a local before unpacking it")
            high = ir.Binary("u32", "shr", word, ir.Const("u32", 16))
            return Multi((RValue(ir.Intrinsic("f32", "half_to_f32", [word])),
                          RValue(ir.Intrinsic("f32", "half_to_f32", [high]))))
        if name == "pack_half2x16":
            self.arity(node, name, 2)
            lo, hi = (ir.Intrinsic("u32", "f32_to_half", [self.value(a, "f32")]) for a in args)
            return RValue(ir.Binary("u32", "bit_or", lo, ir.Binary("u32", "shl", hi, ir.Const("u32", 16))))
        if name in INTRINSICS:
            return self.intrinsic(node, name)
        where = {"barrier": "as a statement", "storage_barrier": "as a statement",
                 "shared": "in an assignment: tile = shared(f32, 256)",
                 "array": "in an assignment: acc = array(f32, 4)",
                 "range": "in a for loop", "static_range": "in a for loop"}
        if name in where:
            raise self.error(node, f"{name}() can only be used {where[name]}")
        raise self.error(node, f"{name} cannot be called inside a kernel")

    def arity(self, node: ast.Call, name: str, n: int) -> None:
        if len(node.args) != n:
            raise self.error(node, f"{name}() takes {n} argument{'s' if n != 1 else ''}, "
                                   f"{len(node.args)} given")

    def bitcast(self, node: ast.Call) -> Value:
        self.arity(node, "bitcast", 2)
        to = self.expr(node.args[0])
        if not isinstance(to, TypeName) or to.name == "bool":
            raise self.error(node.args[0], "bitcast's first argument is the numeric type to produce, e.g. u32")
        e = self.value(node.args[1])
        if ir.SIZE[e.type] != ir.SIZE[to.name] or e.type == "bool":
            raise self.error(node, f"bitcast needs types of one size: {e.type} is {ir.SIZE[e.type]} bytes, "
                                   f"{to.name} is {ir.SIZE[to.name]}")
        if isinstance(e, ir.Const):
            # fold it: a constant NaN or infinity must reach the renderers as one (naga refuses folded ones)
            return Comptime(ir.bitcast_value(e.value, e.type, to.name), to.name)
        return RValue(e if e.type == to.name else ir.Bitcast(to.name, e))

    def intrinsic(self, node: ast.Call, name: str) -> Value:
        sig = INTRINSICS[name]
        args = [self.expr(a) for a in node.args]
        if name.startswith("subgroup_"):
            self.builder.note_subgroups(node)
        if len(args) != sig.arity and not (sig.variadic and len(args) > sig.arity):
            raise self.error(node, f"{name}() takes {sig.arity}{' or more' if sig.variadic else ''} "
                                   f"arguments, {len(args)} given")
        for a, a_node in zip(args, node.args):
            self.require_number(a_node, a)
        first = next((typeof(a) for a in args if typeof(a) is not None), None)
        if sig.kind == "same":
            if first is None and all(is_number(a.value) for a in args) and name in ("abs", "min", "max"):
                py = {"abs": abs, "min": min, "max": max}[name]
                return Comptime(py(*(a.value for a in args)))
            t = first or ("bool" if sig.allowed == "bool" else
                          "f32" if sig.allowed == "float" or any(isinstance(a.value, float) for a in args)
                          else "i32")
            exprs = [self.as_expr(a, t, a_node) for a, a_node in zip(args, node.args)]
        else:
            t = typeof(args[0]) or ("i32" if sig.args[0] == "T" else sig.args[0])
            types = [t if s == "T" else s for s in sig.args]
            exprs = [self.as_expr(a, ty, a_node) for a, ty, a_node in zip(args, types, node.args)]
        if (sig.kind == "same" or sig.args[0] == "T") and not type_allowed(t, sig.allowed):
            raise self.error(node, f"{name}() needs {ALLOWED_WORDS[sig.allowed]}, found {t}")
        result = sig.result or t
        while len(exprs) > 2 and sig.variadic:
            exprs = [ir.Intrinsic(t, name, exprs[:2])] + exprs[2:]
        return RValue(self.intrinsic_expr(node, name, exprs, result))

    def intrinsic_expr(self, node, name: str, args: list[ir.Expr], result: str) -> ir.Intrinsic:
        refused = unavailable_message(name, args[0].type)
        if refused:
            raise self.error(node, refused[0], hint=refused[1])
        return ir.Intrinsic(result, name, args)

    def atomic(self, node: ast.Call, op: str) -> Value:
        self.arity(node, f"atomic_{op}", 2 + ir.ATOMIC_OPS[op])
        ref = self.expr(node.args[0])
        if not isinstance(ref, MemRef) or ref.space == "private":
            raise self.error(node.args[0], f"atomic_{op} works on a buffer or shared array, "
                                           f"found {describe(ref)}")
        if ref.access != "read_write":
            raise self.error(node.args[0], f"atomic_{op} writes {ref.describe()}, which is read-only",
                             hint="declare it MutBuf[...]")
        full = self.index(node, ref, node.args[1])
        if len(full.index) != full.dims:
            raise self.error(node.args[1], f"atomic_{op} needs one index per dimension of {ref.describe()}")
        if full.elem not in ir.atomic_types(op, full.space):
            elsewhere = [s for s in ir.ops.ATOMIC_SPACES if full.elem in ir.atomic_types(op, s)]
            where = f" in {full.space} memory" if elsewhere else ""
            raise self.error(node, f"atomic_{op} is not available on {full.elem}{where}", hint=atomic_hint(op))
        values = [self.value(a, full.elem) for a in node.args[2:]]
        return RValue(ir.Atomic(full.elem, op, full.space, full.name, list(full.index), values))


def _default_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    return "f32" if isinstance(value, float) else "i32"


def _as_value(item: Any) -> Value:
    return item if isinstance(item, TypeName) else Comptime(item)


def is_pure(e: ir.Expr) -> bool:
    """Whether evaluating `e` twice is harmless (no calls, no atomics)."""
    return not any(isinstance(n, (ir.Call, ir.Atomic)) for n in ir.walk(e))


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
