"""The front end: shader modules (Python source, read with `ast`) to IR kernels.

    kernels = compile_package(Path("."), "shaders")     # {"examples.add_assign": [ir.Kernel, ...], ...}
    kernels.exclusions                                  # {"vortx.elementwise": [Exclusion, ...], ...}
"""

from __future__ import annotations

from pathlib import Path

from khal_runtime import ir

from .diagnostics import KernelCompileError
from .package import ShaderPackage
from .templates import Exclusion, compile_kernel

__all__ = ["Compiled", "Exclusion", "KernelCompileError", "compile_package", "compile_module"]


class Compiled(dict[str, list[ir.Kernel]]):
    """Every kernel instance of a shader package, by module (modules without kernels are left out), and in
    `exclusions` the instances that kernels' `exclude=` conditions left out, by module."""

    def __init__(self, kernels: dict[str, list[ir.Kernel]], exclusions: dict[str, list[Exclusion]]):
        super().__init__(kernels)
        self.exclusions = exclusions


def compile_module(package: ShaderPackage, name: str) -> tuple[list[ir.Kernel], list[Exclusion]]:
    module = package.module(name)
    if module is None:
        raise FileNotFoundError(f"no shader module {name!r} in {package.directory}")
    kernels, exclusions = [], []
    for fn in module.kernels:
        instances, exclusion = compile_kernel(package, fn)
        kernels += instances
        exclusions += [exclusion] if exclusion else []
    return kernels, exclusions


def compile_package(root: Path, package: str) -> Compiled:
    shaders = ShaderPackage(root, package)
    kernels, exclusions = {}, {}
    for name in shaders.module_names():
        instances, excluded = compile_module(shaders, name)
        if instances:
            kernels[name] = instances
        if excluded:
            exclusions[name] = excluded
    return Compiled(kernels, exclusions)
