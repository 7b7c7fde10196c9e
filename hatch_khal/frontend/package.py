"""A shader package read with `ast`: its modules and their top-level declarations, never executed.

A module's top level may hold imports, compile-time constants (`TILE = 16`), templates (`T = template(f32, f16)`),
structs (`@struct class`), helper functions and kernels (`@kernel(...) def`). Anything else at the top level is
ignored by the compiler (a module may keep host-side code), but using such a name inside a kernel is an error.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from .diagnostics import KernelCompileError, Source
from .values import Callee
from .vocabulary import INTRINSICS, LANG_MODULE, LANG_NAMES


@dataclass
class Template:
    module: ShaderModule
    name: str
    node: ast.Call

    @property
    def key(self) -> tuple[str, str]:
        return (self.module.name, self.name)


@dataclass
class Constant:
    module: ShaderModule
    name: str
    node: ast.expr


@dataclass
class Struct:
    module: ShaderModule
    name: str
    node: ast.ClassDef


@dataclass
class Function:
    module: ShaderModule
    name: str
    node: ast.FunctionDef
    kernel: ast.Call | None = None      # the @kernel(...) decorator call when this is a kernel


@dataclass(frozen=True)
class Vocab:
    """A name from `khal_runtime.lang` or a Python builtin."""
    name: str


def callee(value: object) -> Callee | None:
    """A helper function or a math intrinsic as a compile-time value (what a template or a `Helper` parameter
    holds); None for anything else, kernels included."""
    if isinstance(value, Callee):
        return value
    if isinstance(value, Function) and value.kernel is None:
        return Callee(value.name, ("helper", value.module.name, value.name), value)
    if isinstance(value, Vocab) and value.name in INTRINSICS:
        return Callee(value.name, ("intrinsic", value.name), value)
    return None


def callee_arity_error(f: Callee, call: ast.Call, module: ShaderModule) -> KernelCompileError | None:
    """The error for a call of a function-valued name (`op(x, y)`, where `op` is a `Helper` parameter or a template
    of functions) with the wrong number of arguments, naming the function the name stands for; None when it fits."""
    if isinstance(f.target, Function):
        arity, more = len(f.target.node.args.args), False
    else:
        arity, more = INTRINSICS[f.target.name].arity, INTRINSICS[f.target.name].variadic
    given = len(call.args)
    if given == arity or more and given > arity:
        return None
    label = ast.get_source_segment(module.source.text, call.func) or f.name
    return module.error(call, f"{label} is {f.name} here, which takes {arity}{' or more' if more else ''} "
                              f"argument{'s' if arity != 1 or more else ''}; {given} given")


@dataclass(frozen=True)
class ModuleRef:
    name: str                           # a shader module's dotted name, or LANG_MODULE


@dataclass(frozen=True)
class Foreign:
    """A name bound by something the compiler does not follow (an import of numpy, host code, ...)."""
    name: str
    what: str
    python_module: str = ""             # the module an import names ("math"), to explain what kernels have instead
    attr: str = ""                      # the name imported from it (`from math import erf`)


@dataclass
class ShaderModule:
    package: ShaderPackage
    name: str                           # dotted, relative to the package: "examples.add_assign"
    source: Source
    names: dict[str, object] = field(default_factory=dict)
    kernels: list[Function] = field(default_factory=list)

    def error(self, node, message, hint=None, context=None, notes=None) -> KernelCompileError:
        return self.source.error(node, message, hint, context, notes)

    def lookup(self, name: str, depth: int = 0) -> object | None:
        """What a top-level name means, following `from x import y` into other shader modules."""
        target = self.names.get(name)
        if not isinstance(target, _ImportFrom):
            return target
        if depth > 32:
            return Foreign(name, "a cycle of imports")
        module = self.package.module(target.module)
        found = module.lookup(target.attr, depth + 1) if module else None
        if found is not None:
            return found
        submodule = f"{target.module}.{target.attr}" if target.module else target.attr
        if self.package.module(submodule):
            return ModuleRef(submodule)
        where = ".".join(filter(None, (self.package.package, target.module)))
        return Foreign(name, f"{target.attr!r} imported from {where}, which the compiler cannot find")


@dataclass(frozen=True)
class _ImportFrom:
    module: str                         # dotted name relative to the package
    attr: str


class ShaderPackage:
    """The modules of one shader package (a directory), parsed on demand."""

    def __init__(self, root: Path, package: str):
        self.root = root                # the project directory
        self.package = package          # the import name: "shaders"
        self.directory = root / package.replace(".", "/")
        self._modules: dict[str, ShaderModule | None] = {}

    def module_names(self) -> list[str]:
        names = []
        for path in sorted(self.directory.rglob("*.py")):
            rel = path.relative_to(self.directory)
            if any(part.startswith("_generated") or part.startswith(".") for part in rel.parts):
                continue
            parts = list(rel.with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            if parts:
                names.append(".".join(parts))
        return names

    def module(self, name: str) -> ShaderModule | None:
        if name not in self._modules:
            self._modules[name] = self._load(name)
        return self._modules[name]

    def _load(self, name: str) -> ShaderModule | None:
        base = self.directory.joinpath(*name.split("."))
        for path in (base.with_suffix(".py"), base / "__init__.py"):
            if path.is_file():
                display = path.relative_to(self.root).as_posix()
                module = ShaderModule(self, name, Source(display, path.read_text(encoding="utf-8")))
                _read_top_level(module, is_package=path.name == "__init__.py")
                return module
        return None

    def source(self, display: str) -> Source:
        """The parsed source of a module already loaded, by the path its messages show."""
        return next(m.source for m in self._modules.values() if m is not None and m.source.display == display)

    def absolute(self, dotted: str) -> str | None:
        """A dotted import name relative to this package, or None when it is outside the package."""
        if dotted == self.package:
            return ""
        prefix = self.package + "."
        return dotted[len(prefix):] if dotted.startswith(prefix) else None


def _read_top_level(module: ShaderModule, is_package: bool) -> None:
    for node in module.source.tree.body:
        if isinstance(node, ast.ImportFrom):
            _read_import_from(module, node, is_package)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                if alias.name == LANG_MODULE and alias.asname:
                    module.names[local] = ModuleRef(LANG_MODULE)
                else:
                    rel = module.package.absolute(alias.name)
                    module.names[local] = ModuleRef(rel) if rel is not None and alias.asname else Foreign(
                        local, f"the module {alias.name}", alias.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            _read_assignment(module, node)
        elif isinstance(node, ast.FunctionDef):
            fn = Function(module, node.name, node, _kernel_decorator(module, node))
            module.names[node.name] = fn
            if fn.kernel is not None:
                module.kernels.append(fn)
        elif isinstance(node, ast.ClassDef):
            is_struct = any(_decorator_name(d) == "struct" for d in node.decorator_list)
            module.names[node.name] = Struct(module, node.name, node) if is_struct else Foreign(
                node.name, "a class that is not a @struct")
        elif isinstance(node, ast.AsyncFunctionDef):
            module.names[node.name] = Foreign(node.name, "an async function")


def _read_import_from(module: ShaderModule, node: ast.ImportFrom, is_package: bool) -> None:
    if node.module == "__future__":
        return
    if node.level:
        base = module.name.split(".") if is_package else module.name.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
        dotted = ".".join(base + ([node.module] if node.module else []))
        rel: str | None = dotted
    else:
        rel = module.package.absolute(node.module or "")
    for alias in node.names:
        local = alias.asname or alias.name
        if node.module == LANG_MODULE and not node.level:
            if alias.name == "*":
                for name in LANG_NAMES:
                    module.names[name] = Vocab(name)
            elif alias.name in LANG_NAMES:
                module.names[local] = Vocab(alias.name)
            else:
                raise module.error(node, f"khal_runtime.lang has no name {alias.name!r}")
        elif node.module == "khal_runtime" and alias.name == "lang" and not node.level:
            module.names[local] = ModuleRef(LANG_MODULE)
        elif rel is not None:
            if alias.name == "*":
                raise module.error(node, "`from ... import *` of a shader module is not supported",
                                   hint="import the names you use")
            module.names[local] = _ImportFrom(rel, alias.name)
        else:
            module.names[local] = Foreign(local, f"imported from {node.module}", node.module or "", alias.name)


def _read_assignment(module: ShaderModule, node: ast.Assign | ast.AnnAssign) -> None:
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    if node.value is None or len(targets) != 1 or not isinstance(targets[0], ast.Name):
        for t in targets:
            for name in ast.walk(t):
                if isinstance(name, ast.Name):
                    module.names[name.id] = Foreign(name.id, "a value assigned in a way the compiler does not read")
        return
    name = targets[0].id
    value = node.value
    if isinstance(value, ast.Call) and _decorator_name(value.func) == "template":
        module.names[name] = Template(module, name, value)
    else:
        module.names[name] = Constant(module, name, value)


def _decorator_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _kernel_decorator(module: ShaderModule, node: ast.FunctionDef) -> ast.Call | None:
    for deco in node.decorator_list:
        if _decorator_name(deco) == "kernel":
            if not isinstance(deco, ast.Call):
                raise module.error(deco, "@kernel needs its workgroup size",
                                   hint="write @kernel(workgroup_size=(64,))")
            return deco
    return None
