"""Refusals that say what to write instead, for Python that looks as if it should work in a kernel: Python's `int`
and `float` as annotations, `float("inf")`, and the `math` module (its functions, constants and infinities).

The kernel language's infinities and NaN are `f32("inf")`, `f32("-inf")` and `f32("nan")` (and the same with
`f16` or `f64`): compile-time constants (`NON_FINITE`), read by the cast in `calls.py`.
"""

from __future__ import annotations

import ast
import math
from typing import TYPE_CHECKING

from .diagnostics import KernelCompileError
from .vocabulary import INTRINSICS, PYTHON_BUILTINS

if TYPE_CHECKING:
    from .package import ShaderModule

NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}
NON_FINITE_HINT = 'write f32("inf"), f32("-inf") or f32("nan") (or f16(...), f64(...)): compile-time constants'

_PYTHON_TYPES = {
    "int": ("u32 or i32", "kernel integers have a width and a sign: u32, i32, u64, i64 (from khal_runtime.lang)"),
    "float": ("f32", "kernel floats have a width: f32, f16 (in buffers), f64 (from khal_runtime.lang)"),
}
# Python's math functions that kernels have under another name (fabs) or as a Python builtin (pow)
_MATH_RENAMED = {"fabs": "abs"}
# the math functions of the kernel language: the intrinsics that are neither subgroup, bit nor packing operations
KERNEL_MATH = tuple(name for name in INTRINSICS if "_" not in name)


def python_type_annotation(module: ShaderModule, node: ast.expr) -> KernelCompileError | None:
    """The error for an annotation that names Python's `int` or `float` (which have no width); None otherwise."""
    if isinstance(node, ast.Name) and node.id in _PYTHON_TYPES and module.lookup(node.id) is None:
        instead, hint = _PYTHON_TYPES[node.id]
        return module.error(node, f"`{node.id}` is not a kernel type: annotate {instead}", hint=hint)
    return None


def float_of_string(module: ShaderModule, node: ast.Call) -> KernelCompileError | None:
    """The error for `float("inf")` and the like, pointing at the language's own spelling; None otherwise."""
    func, args = node.func, node.args
    if isinstance(func, ast.Name) and func.id == "float" and module.lookup("float") is None and len(args) == 1 \
            and isinstance(args[0], ast.Constant) and isinstance(args[0].value, str):
        return module.error(node, f"float({args[0].value!r}) is not available in kernels", hint=NON_FINITE_HINT)
    return None


def math_refusal(module: ShaderModule, node: ast.AST, attr: str) -> KernelCompileError:
    """The error for `math.<attr>` (or a name imported from math): what exists in kernels instead."""
    if attr in ("inf", "nan"):
        return module.error(node, f"math.{attr} is not available in kernels", hint=NON_FINITE_HINT)
    if isinstance(getattr(math, attr, None), float):
        return module.error(node, f"math.{attr} is not available in kernels",
                            hint=f"define a module-level constant: {attr.upper()} = {getattr(math, attr)!r}")
    name = _MATH_RENAMED.get(attr, attr)
    if name in PYTHON_BUILTINS and name in INTRINSICS:
        return module.error(node, f"math.{attr} is Python's math module, which kernels cannot call",
                            hint=f"use the builtin {name}(...), which kernels have")
    if name in KERNEL_MATH:
        return module.error(node, f"math.{attr} is Python's math module, which kernels cannot call",
                            hint=f"import it from the kernel language: from khal_runtime.lang import {name}")
    return module.error(node, f"{attr} does not exist in kernels (math.{attr} is Python's)",
                        hint="the math functions of kernels are khal_runtime.lang's: " + ", ".join(KERNEL_MATH))
