"""The front end: shader modules (Python source, read with `ast`) to IR kernels.

    kernels = compile_package(Path("."), "shaders")     # {"examples.add_assign": [ir.Kernel, ...], ...}
"""

from __future__ import annotations

from pathlib import Path

from khal_runtime import ir

from .diagnostics import KernelCompileError
from .package import ShaderPackage
from .templates import compile_kernel

__all__ = ["KernelCompileError", "compile_package", "compile_module"]


def compile_module(package: ShaderPackage, name: str) -> list[ir.Kernel]:
    module = package.module(name)
    if module is None:
        raise FileNotFoundError(f"no shader module {name!r} in {package.directory}")
    return [k for fn in module.kernels for k in compile_kernel(package, fn)]


def compile_package(root: Path, package: str) -> dict[str, list[ir.Kernel]]:
    """Every kernel instance of a shader package, by module (modules without kernels are left out)."""
    shaders = ShaderPackage(root, package)
    out = {}
    for name in shaders.module_names():
        kernels = compile_module(shaders, name)
        if kernels:
            out[name] = kernels
    return out
