"""Template instantiation: every instance of a kernel, and errors that say which instance failed.

A kernel is compiled once per combination of the template values it uses. The builder finds those templates by
compiling: the first time the body reads an unbound template, compilation stops (`NeedTemplate`) and restarts once
per value of that template. Only templates that matter to the code actually compiled multiply the instances.
"""

from __future__ import annotations

from khal_runtime import ir

from .diagnostics import KernelCompileError, Note
from .expressions import ExpressionLowering
from .kernels import MAX_INSTANCES, KernelBuilder, NeedTemplate, python_value, value_name
from .package import Function, ShaderPackage, Template
from .values import Comptime, TypeName, Value, describe

Env = dict[tuple[str, str], Value]


def compile_kernel(package: ShaderPackage, fn: Function) -> list[ir.Kernel]:
    """Every instance of one @kernel function, in a deterministic order."""
    kernels: list[ir.Kernel] = []
    pending: list[Env] = [{}]
    failed: tuple[Env, KernelCompileError] | None = None
    # after an instance fails, go on until another one compiles: then the error belongs to some instances only
    while pending and not (failed and kernels):
        env = pending.pop(0)
        try:
            kernels.append(KernelBuilder(package, fn, env).build())
        except NeedTemplate as need:
            values = template_values(package, need.template)
            pending[0:0] = [{**env, need.template.key: v} for v in values]
        except KernelCompileError as error:
            if not env:
                raise
            failed = failed or (env, error)
        if len(kernels) + len(pending) > MAX_INSTANCES:
            raise fn.module.error(fn.node, f"{fn.name} would have more than {MAX_INSTANCES} template instances")
    if failed:
        env, error = failed
        error.notes.append(_instance_note(fn, env, kernels))
        raise error
    names: dict[str, ir.Kernel] = {}
    for k in kernels:
        if k.name in names:
            raise fn.module.error(fn.node, f"two instances of {fn.name} are both named {k.name!r}",
                                  hint="give the templates values whose names differ")
        names[k.name] = k
    return kernels


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
        ok = isinstance(v, TypeName) or (isinstance(v, Comptime) and isinstance(v.value, (int, float, str, bool)))
        if not ok:
            raise t.module.error(arg, f"a template value must be a type, number, bool or string, not {describe(v)}")
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
                f"`if {key} == {texts[key]}:` (or `!=`), which compiles only the branch taken")


def _source_text(value: Value) -> str:
    """A template value as the source writes it: f32, "add", 16."""
    if isinstance(value, TypeName):
        return value.name
    return f'"{value.value}"' if isinstance(value.value, str) else repr(value.value)
