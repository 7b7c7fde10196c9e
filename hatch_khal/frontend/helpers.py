"""Calls of helper functions: one specialisation of the helper per call signature.

Scalar parameters become IR function parameters. Buffer and shared-array parameters are bound to the caller's
memory, so that the generated function refers to that memory directly (GLSL cannot pass buffers to functions).
Compile-time parameters are bound to the caller's values: `Const[T]` to a constant of type T, `Helper` to a
function (another helper, a math intrinsic, a type as a cast). Each distinct binding is a specialisation of its
own, so an `if` on a `Const` compiles one branch and a call of a `Helper` is a direct call.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from khal_runtime import ir

from .diagnostics import KernelCompileError
from .package import Function, Vocab, callee
from .statements import FunctionLowering
from .values import Callee, Comptime, MemRef, RValue, TypeName, Value, describe, is_scalar_comptime

if TYPE_CHECKING:
    from .expressions import ExpressionLowering
    from .kernels import KernelBuilder

MEMORY = {"array": "a shared array", "read": "a buffer", "read_write": "a writable buffer"}


def call_helper(builder: KernelBuilder, caller: ExpressionLowering, call: ast.Call, fn: Function) -> Value:
    module, node = fn.module, fn.node
    args = node.args
    if not plain_parameters(args):
        raise module.error(node, "helper parameters are plain positional parameters without defaults")
    if node.decorator_list:
        raise module.error(node.decorator_list[0], f"helper {fn.name} cannot have decorators")
    if len(call.args) != len(args.args):
        raise caller.error(call, f"{fn.name}() takes {len(args.args)} argument{'s' if len(args.args) != 1 else ''}, "
                                 f"{len(call.args)} given")
    bindings: dict[str, Value] = {}
    params: dict[str, str] = {}
    values: list[ir.Expr] = []
    key: list[Any] = [module.name, fn.name]
    for param, arg in zip(args.args, call.args):
        if param.annotation is None:
            raise module.error(param, f"helper parameter {param.arg!r} needs a type annotation",
                               context=f"called from {caller.module.source.display}:{call.lineno}")
        kind, t = builder.parameter_type(module, param.annotation, in_helper=True)
        if kind == "scalar":
            params[param.arg] = t
            values.append(caller.value(arg, t))
        elif kind == "const":
            bindings[param.arg] = _constant_argument(caller, fn, param.arg, arg, t)
            key.append((param.arg, t, bindings[param.arg].value))
        elif kind == "helper":
            bindings[param.arg] = _function_argument(caller, fn, param.arg, arg)
            key.append((param.arg, _function_key(bindings[param.arg])))
        else:
            bindings[param.arg] = _memory_argument(caller, fn, param.arg, arg, kind, t)
            key.append((param.arg, bindings[param.arg].name, bindings[param.arg].access))
    signature = tuple(key) + tuple(params.values())
    if signature in builder.in_progress:
        raise caller.error(call, f"{fn.name} calls itself (directly or through other helpers); "
                                 "recursion is not supported in kernels")
    if signature not in builder.specialised:
        builder.in_progress.append(signature)
        try:
            ret = None if node.returns is None or builder.returns_nothing(node) else \
                builder.scalar_annotation(module, node.returns)
            lowering = FunctionLowering(builder, module, node, bindings, params, ret, is_kernel=False)
            body = lowering.body()
        except KernelCompileError as e:
            # the same helper may compile for one caller and not another: say which call failed
            e.context = e.context or (f"in {fn.name}, called from {caller.module.source.display}:{call.lineno} "
                                      f"(kernel {builder.fn.name})")
            raise
        finally:
            builder.in_progress.pop()
        name = builder.global_name(fn.name)
        source = module.source.display if module is not builder.fn.module else ""
        builder.functions.append(ir.Function(name, lowering.params, lowering.ret, lowering.locals, body,
                                             node.lineno, source))
        builder.specialised[signature] = (name, lowering.ret)
    name, ret = builder.specialised[signature]
    return RValue(ir.Call(ret or "void", name, values))


def plain_parameters(args: ast.arguments) -> bool:
    """Whether a function takes only plain positional parameters, without defaults."""
    return not (args.vararg or args.kwarg or args.kwonlyargs or args.defaults or args.posonlyargs)


def _constant_argument(caller: ExpressionLowering, fn: Function, name: str, arg: ast.expr, t: str) -> Comptime:
    v = caller.expr(arg)
    if not is_scalar_comptime(v):
        raise caller.error(arg, f"{fn.name}() takes a compile-time {t} for {name!r} (Const[{t}]), found "
                                f"{describe(v)}", hint="pass a literal, a module-level constant, a template or a "
                                                       "Const parameter of the caller")
    return Comptime(caller.as_expr(v, t, arg).value, t)


def _function_argument(caller: ExpressionLowering, fn: Function, name: str, arg: ast.expr) -> Callee | TypeName:
    v = caller.expr(arg)
    if isinstance(v, TypeName) and v.name != "bool":
        return v                                    # a cast: f32(x)
    found = callee(v)
    if found is None:
        what = "a kernel" if isinstance(v, Function) else describe(v)
        if isinstance(v, Vocab):
            what = f"the built-in {v.name}, which is not a math function"
        raise caller.error(arg, f"{fn.name}() takes a function for {name!r} (Helper), found {what}",
                           hint="pass a helper function, a math intrinsic such as exp or max, or a type such as f32")
    return found


def _function_key(f: Callee | TypeName) -> tuple:
    return f.key if isinstance(f, Callee) else ("type", f.name)


def _memory_argument(caller: ExpressionLowering, fn: Function, name: str, arg: ast.expr, kind: str,
                     t: str) -> MemRef:
    ref = caller.expr(arg)
    if not isinstance(ref, MemRef) or ref.index or (kind == "array") != (ref.space == "shared") \
            or ref.space == "private":
        raise caller.error(arg, f"{fn.name}() expects {MEMORY[kind]} for {name!r}, found {describe(ref)}",
                           hint="private arrays and indexed rows cannot be passed to helpers")
    if ref.elem != t:
        raise caller.error(arg, f"{fn.name}() expects elements of type {t} for {name!r}, "
                                f"found {ref.describe()} of {ref.elem}")
    if kind == "read_write" and ref.access != "read_write":
        raise caller.error(arg, f"{fn.name}() writes {name!r}, but {ref.describe()} is read-only")
    access = "read" if kind == "read" else ref.access
    return MemRef(ref.space, ref.name, ref.elem, ref.shape, access, label=name)
