"""A kernel compiled for the CPU interpreter: its functions' initial frames and compiled bodies, cached per kernel.
A kernel is verified (`ir.verify` for the interpreter) before it is compiled, once."""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from khal_runtime import ir

from .compiler import Compiler
from .state import Batch, Frame
from .values import DTYPE, vector_zero, zero


@dataclass
class Function:
    """A function compiled for execution: what a `Frame` of it starts with, and its body."""
    zeros: dict[str, Any]                 # scalar locals and parameters at zero (struct-typed ones: None)
    arrays: dict[str, tuple[str, int]]    # private arrays: name -> (element type, elements)
    params: list[str]
    retval: Any
    source: str                           # the Python file of the function, for error messages
    body: Callable = None  # type: ignore[assignment]   # set once compiled: calls may come before the callee


class Program:
    def __init__(self, kernel: ir.Kernel):
        self.kernel = kernel
        self.lanes = math.prod(kernel.workgroup_size)
        self.shared = {name: _array_decl(t) for name, t in kernel.shared.items()}
        self.uses_subgroup_ops = any(isinstance(n, ir.Intrinsic) and n.name in ir.SUBGROUP_OPS
                                     for n in ir.walk(kernel))
        self.entry = _function(kernel, [], kernel.locals, None, kernel.source)
        self.functions = {f.name: _function(kernel, f.params, f.locals, f.ret, f.source or kernel.source)
                          for f in kernel.functions}
        self.bytes_per_lane = self._bytes_per_lane()
        Compiler(self).compile()

    def _bytes_per_lane(self) -> int:
        """Memory that grows with the lanes: locals and temporaries (a guess of 16 live temporaries), private
        arrays, and shared arrays shared out over their workgroup's lanes."""
        funcs = (self.entry, *self.functions.values())
        private = sum(size * DTYPE[t].itemsize for f in funcs for t, size in f.arrays.values())
        scalars = sum(len(f.zeros) for f in funcs)
        shared = sum(size * DTYPE[t].itemsize for t, size in self.shared.values())
        return 8 * (scalars + 16) + private + -(-shared // self.lanes)

    def run(self, batch: Batch) -> None:
        self.entry.body(Frame(batch, self.entry), None)


def _array_decl(t: str) -> tuple[str, int]:
    elem, shape = ir.parse_array(t)  # type: ignore[misc]
    return elem, math.prod(shape)


def _function(kernel: ir.Kernel, params: list[ir.Scalar], locals_: dict[str, str], ret: str | None,
              source: str) -> Function:
    zeros: dict[str, Any] = {}
    arrays = {}
    for name, t in [(p.name, p.type) for p in params] + list(locals_.items()):
        if ir.parse_array(t):
            arrays[name] = _array_decl(t)
        else:
            zeros[name] = None if t in kernel.structs else vector_zero(t) if t in ir.VECTORS else zero(t)
    retval = zero(ret) if ret not in (None, "void") else None
    return Function(zeros, arrays, [p.name for p in params], retval, source)


_cache: dict[int, tuple[weakref.ref, Program]] = {}


def program(kernel: ir.Kernel) -> Program:
    """The compiled program of `kernel`, verified and compiled on first use and kept while the kernel lives (a
    kernel is not modified once built)."""
    hit = _cache.get(id(kernel))
    if hit is not None and hit[0]() is kernel:
        return hit[1]
    ir.verify(kernel, ("cpu",))
    prog = Program(kernel)
    key = id(kernel)
    # the callback binds the dict: at interpreter shutdown the module's globals may already be gone
    _cache[key] = (weakref.ref(kernel, lambda _, cache=_cache: cache.pop(key, None)), prog)
    return prog
