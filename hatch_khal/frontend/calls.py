"""Calls in the kernel language: casts (`f32(x)`), builtins (`global_id()`, `len(buf)`), bit casts, intrinsics,
atomics and helper functions.
"""

from __future__ import annotations

import ast

from khal_runtime import ir

from .package import Function, Struct, Vocab, callee_arity_error
from .refusals import NON_FINITE, float_of_string
from .values import (
    BuiltinVec,
    Callee,
    Comptime,
    MemRef,
    Multi,
    RValue,
    TypeName,
    Value,
    describe,
    is_number,
    is_pure,
    is_scalar_comptime,
    typeof,
    wrap,
)
from .vocabulary import (
    ALLOWED_WORDS,
    ATOMICS,
    INTRINSICS,
    SCALAR_BUILTINS,
    VECTOR_BUILTINS,
    VECTOR_LOADS,
    atomic_hint,
    type_allowed,
    unavailable_message,
)


class CallLowering:
    """The call part of `ExpressionLowering` (a mixin: it uses that class's `expr`, `value`, `index` and `error`)."""

    def expr_Call(self, node: ast.Call) -> Value:
        refused = float_of_string(self.module, node)
        if refused:
            raise refused
        fn = self.expr(node.func)
        if isinstance(fn, Callee):          # a Helper parameter or a template of functions: the function it is here
            refused = callee_arity_error(fn, node, self.module)
            if refused:
                raise refused
            fn = fn.target
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
        if isinstance(v, Comptime) and isinstance(v.value, str):
            return self.non_finite(node, t, v.value)
        if is_scalar_comptime(v):
            if t in ir.INTS and v.type is None and isinstance(v.value, float):
                raise self.error(node, f"the float literal {v.value!r} cannot be a {t}")
            return Comptime(wrap(v.value, t), t)
        e = self.as_expr(v, None, node.args[0])
        return RValue(e if e.type == t else ir.Cast(t, e))

    def non_finite(self, node: ast.Call, t: str, text: str) -> Comptime:
        """`f32("inf")`, `f32("-inf")`, `f32("nan")`: the compile-time infinities and NaN of a float type."""
        if text not in NON_FINITE:
            raise self.error(node.args[0], f"{t}() of a string takes \"inf\", \"-inf\" or \"nan\", not {text!r}",
                             hint="write numbers as literals: f32(0.5)")
        if t not in ir.FLOATS:
            raise self.error(node, f"{t} has no {text}: infinities and NaN are float values",
                             hint=f'write f32("{text}") (or f16, f64)')
        return Comptime(NON_FINITE[text], t)

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
        if name in VECTOR_LOADS:
            return self.vector_load(node, name)
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

    def vector_load(self, node: ast.Call, name: str) -> Value:
        """`a, b, c, d = load_u32x4(words, i)`: elements 4i .. 4i+3 of a u32 buffer, one aligned load."""
        self.arity(node, name, 2)
        vector = VECTOR_LOADS[name]
        elem, lanes = ir.VECTORS[vector]
        ref = self.expr(node.args[0])
        if not isinstance(ref, MemRef) or ref.space != "storage":
            raise self.error(node.args[0], f"{name} reads a buffer of {elem}, found {describe(ref)}",
                             hint="vector loads read buffer parameters (Buf or MutBuf), not arrays")
        if ref.elem != elem:
            raise self.error(node.args[0], f"{name} reads a buffer of {elem}; {ref.describe()} holds {ref.elem}",
                             hint=f"pass the data as {elem} words (Buf[{elem}] or MutBuf[{elem}])")
        load = ir.Load(vector, "storage", ref.name, list(self.index(node, ref, node.args[1]).index))
        return Multi(tuple(RValue(ir.Field(elem, load, f)) for f in ir.VECTOR_FIELDS[:lanes]), load)

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
