"""Template instantiation: every instance of a kernel, the instances its `exclude=` condition leaves out, and
errors that say which instance failed.

A kernel is compiled once per combination of the template values it uses. The builder finds those templates by
compiling: the first time the body reads an unbound template, compilation stops (`NeedTemplate`) and restarts once
per value of that template. Only templates that matter to the code actually compiled multiply the instances.

`@kernel(..., exclude=T != f32 and OP in (div, pow))` is evaluated before each attempt, with the templates bound
so far: an instance for which it holds is not compiled (so code that only other instances accept may stay
unguarded). When it reads a template that the body has not reached yet, the body goes first; if the body fails
before reaching it, the instance is split on that template, which the condition needs to decide.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from typing import Any

from khal_runtime import ir

from .diagnostics import KernelCompileError, Note
from .expressions import ExpressionLowering
from .kernels import MAX_INSTANCES, KernelBuilder, NeedTemplate, python_value, value_name
from .package import Constant, Function, ShaderPackage, Template, callee
from .values import Callee, Comptime, TypeName, Value, describe

Env = dict[tuple[str, str], Value]


@dataclass
class Exclusion:
    """The instances that a kernel's `exclude=` condition left out: each as the template values that decided it
    (a combination of some or all of the kernel's templates)."""
    function: str
    condition: str                      # as written in the source
    source: str
    line: int
    instances: list[dict[str, Any]]


def compile_kernel(package: ShaderPackage, fn: Function) -> tuple[list[ir.Kernel], Exclusion | None]:
    """Every instance of one @kernel function, in a deterministic order, and what its `exclude=` left out."""
    condition = next((k.value for k in fn.kernel.keywords if k.arg == "exclude"), None)
    kernels: list[ir.Kernel] = []
    excluded: list[Env] = []
    pending: list[Env] = [{}]
    failed: tuple[Env, KernelCompileError] | None = None

    def split(env: Env, t: Template) -> None:
        pending[0:0] = [{**env, t.key: v} for v in template_values(package, t)]

    # after an instance fails, go on until another one compiles: then the error belongs to some instances only
    while pending and not (failed and kernels):
        env = pending.pop(0)
        decided = False if condition is None else _excluded(package, fn, condition, env)
        if decided is True:
            excluded.append(env)
            continue
        try:
            kernel = KernelBuilder(package, fn, env).build()
        except NeedTemplate as need:
            split(env, need.template)
        except KernelCompileError as error:
            if isinstance(decided, Template):       # the condition may yet exclude this instance
                split(env, decided)
            elif not env:
                raise
            else:
                failed = failed or (env, error)
        else:
            if isinstance(decided, Template):
                raise fn.module.error(condition, f"exclude= reads the template {decided.name}, which {fn.name} "
                                                 "does not use", hint="a condition on the templates the kernel uses")
            kernels.append(kernel)
        if len(kernels) + len(pending) > MAX_INSTANCES:
            raise fn.module.error(fn.node, f"{fn.name} would have more than {MAX_INSTANCES} template instances")
    if failed:
        env, error = failed
        error.notes.append(_instance_note(fn, env, kernels))
        raise error
    if not kernels:
        raise fn.module.error(condition, f"exclude= leaves {fn.name} without any instance")
    names: dict[str, ir.Kernel] = {}
    for k in kernels:
        if k.name in names:
            raise fn.module.error(fn.node, f"two instances of {fn.name} are both named {k.name!r}",
                                  hint="give the templates values whose names differ")
        names[k.name] = k
    exclusion = None if condition is None else Exclusion(
        fn.name, _condition_text(fn, condition), fn.module.source.display, condition.lineno,
        [{key[1]: python_value(v) for key, v in env.items()} for env in excluded])
    return kernels, exclusion


def _condition_text(fn: Function, condition: ast.expr) -> str:
    """`exclude=` as written, with the definition of the constant when it names one (`FLOAT_ONLY = T != f32 ...`)."""
    found = fn.module.lookup(condition.id) if isinstance(condition, ast.Name) else None
    module, node = (found.module, found.node) if isinstance(found, Constant) else (fn.module, condition)
    text = " ".join(ast.get_source_segment(module.source.text, node).split())
    return f"{condition.id} = {text}" if isinstance(found, Constant) else text


def _excluded(package: ShaderPackage, fn: Function, condition: ast.expr, env: Env) -> bool | Template:
    """Whether `exclude=` holds for the instance with these template values, or the template it still needs."""
    try:
        v = ExpressionLowering(KernelBuilder(package, fn, env), fn.module).expr(condition)
    except NeedTemplate as need:
        return need.template
    if not (isinstance(v, Comptime) and isinstance(v.value, bool)):
        raise fn.module.error(condition, f"exclude= is a compile-time condition on the templates, not {describe(v)}",
                              hint="e.g. exclude=T != f32 and OP in (div, pow)")
    return v.value


def template_values(package: ShaderPackage, t: Template) -> list[Value]:
    lowering = ExpressionLowering(KernelBuilder(package, None, {}), t.module)
    if t.node.keywords or not t.node.args:
        raise t.module.error(t.node, "template() takes the values as positional arguments: template(f32, f16)")
    values: list[Value] = []
    for arg in t.node.args:
        try:
            v = lowering.expr(arg)
        except NeedTemplate:
            raise t.module.error(arg, "template values cannot depend on other templates") from None
        v = callee(v) or v
        ok = isinstance(v, (TypeName, Callee)) or (isinstance(v, Comptime) and
                                                   isinstance(v.value, (int, float, str, bool)))
        if not ok:
            raise t.module.error(arg, f"a template value must be a type, number, bool, string or function (a helper "
                                      f"or a math intrinsic), not {describe(v)}")
        if any(value_name(v) == value_name(w) for w in values):
            raise t.module.error(arg, f"the value {value_name(v)} appears twice in template {t.name}")
        values.append(v)
    return values


def _instance_note(fn: Function, env: Env, compiled: list[ir.Kernel]) -> Note:
    """Which instance an error belongs to and, when another instance compiles, how to keep the failing code from
    the instances that cannot compile it."""
    values = {key[1]: python_value(v) for key, v in env.items()}
    texts = {key[1]: _source_text(v) for key, v in env.items()}
    where = f"in the instance of {fn.name} with " + ", ".join(f"{k}={text}" for k, text in texts.items())
    if not compiled:
        return Note(where)

    def differs_only_in(k: str, other: dict) -> bool:
        return other.get(k) != values[k] and all(other.get(n) == values[n] for n in values if n != k)

    # the template to branch on: one whose value alone tells the failing instance from one that compiles
    key, instance = next(((k, c) for c in compiled for k in values if differs_only_in(k, c.template)),
                         (next(k for k in values if compiled[0].template.get(k) != values[k]), compiled[0]))
    return Note(f"{where}; {instance.name} compiles. Code that only some instances accept goes under a compile-time "
                f"`if {key} == {texts[key]}:` (or `!=`), which compiles only the branch taken, or the instances that "
                f"cannot have it are left out: @kernel(..., exclude={key} == {texts[key]})")


def _source_text(value: Value) -> str:
    """A template value as the source writes it: f32, "add", 16, silu."""
    if isinstance(value, (TypeName, Callee)):
        return value.name
    return f'"{value.value}"' if isinstance(value.value, str) else repr(value.value)
