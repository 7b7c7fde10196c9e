"""The CPU interpreter: runs a kernel of the khal IR with numpy. It is the IR's executable reference (docs/IR.md).

    execute(kernel, grid, buffers, scalars, subgroup_size=32, check=False)

The lanes (invocations) of a batch of consecutive workgroups execute in lockstep: a value is a numpy array over
the batch's (workgroups, lanes), possibly of a broadcastable shape, or a numpy scalar when it is the same in every
lane (see `interpreter_runtime`). A batch's lanes are in the order in which IR.md applies atomics (workgroup
linear index, then local index), and a barrier is exact because every lane of a workgroup reaches a statement at
the same time. Divergence is masks: a statement runs under the mask of its
active lanes and returns the mask of those that go on to the next statement; `If` runs each side under its own
lanes, `continue` and `return` park lanes in the frame (`cont`, `ret`), and a loop runs while any lane is active.

The IR is compiled once per kernel into nested closures (`_Compiler`), so that a run does no dispatch on node
types. `interpreter_runtime` holds the run-time state (values, masks, batches, frames, memory), `interpreter_ops`
the numeric semantics, `interpreter_races` the data-race checker of checking mode.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from khal_runtime import ir

from . import interpreter_ops as ops
from .interpreter_ops import DTYPE, InvalidIR, is_uniform
from .interpreter_runtime import (
    EMPTY,
    Affine,
    ArrayRef,
    Batch,
    Dispatch,
    Frame,
    KernelExecutionError,
    PrivateRef,
    SharedRef,
    StorageRef,
    affine,
    affine_binary,
    barrier_passed,
    check_together,
    dense,
    error,
    mask_and,
    mask_minus,
    mask_or,
    merge,
)

__all__ = ["InvalidIR", "KernelExecutionError", "execute"]

# Lanes per batch: arrays of 2**18 elements stay in the caches of common CPUs, which measured 1.7x faster than
# 2**20 lanes on a chain of elementwise operations; the Python overhead per batch is negligible at this size.
BATCH_LANES = 1 << 18
# Bound on the per-batch memory that grows with the lanes (locals, temporaries, private and shared arrays).
BATCH_BYTES = 256 << 20


def _keep_batch_memory_mapped() -> None:
    """A batch frees its temporaries all at once; with glibc's initial thresholds that free space is returned
    to the system and the next batch faults it in again page by page, which measured 7x slower on an
    elementwise kernel. glibc raises its trim threshold to twice the size of the largest mmap-backed block ever
    freed, so freeing one untouched 16 MiB block lets the temporaries of a batch stay mapped. On other
    allocators this costs one allocation."""
    np.empty(16 << 20, np.uint8)


_keep_batch_memory_mapped()


def execute(kernel: ir.Kernel, grid: tuple[int, int, int], buffers: Sequence[np.ndarray],
            scalars: Sequence[object], *, subgroup_size: int = 32, check: bool = False) -> None:
    """Run `kernel` over `grid` workgroups. `buffers[i]` is a 1-D array of buffer i's element dtype
    (`ir.NUMPY`), written in place; `scalars[i]` a number, or a mapping of field name to number for a struct
    parameter. `check=True` adds the data-race checker and fills shared memory with NaN / 0xDEADBEEF."""
    prog = _program(kernel)
    if subgroup_size < 1 or subgroup_size & (subgroup_size - 1):
        raise ValueError(f"subgroup_size must be a power of two, got {subgroup_size}")
    if prog.uses_subgroup_ops and prog.lanes % subgroup_size:
        raise ValueError(f"{kernel.name} uses subgroup operations: its workgroup size ({prog.lanes} invocations) "
                         f"must be a multiple of subgroup_size {subgroup_size}")
    dispatch = Dispatch(prog, _grid(grid), _bind_buffers(kernel, buffers), _bind_scalars(kernel, scalars),
                        subgroup_size, check)
    per_batch = prog.workgroups_per_batch
    with np.errstate(all="ignore"):   # wrap-around is the semantics, and inactive lanes' garbage must not warn
        for first in range(0, dispatch.total, per_batch):
            prog.run(Batch(dispatch, first, min(per_batch, dispatch.total - first)))


# ---------------------------------------------------------------------------------------------------------------
# Arguments

def _grid(grid) -> tuple[int, int, int]:
    g = tuple(int(n) for n in grid)
    if len(g) != 3 or min(g) < 0:
        raise ValueError(f"grid must be three workgroup counts >= 0, got {grid!r}")
    return g  # type: ignore[return-value]


def _bind_buffers(kernel: ir.Kernel, buffers: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    if len(buffers) != len(kernel.buffers):
        raise TypeError(f"{kernel.name} takes {len(kernel.buffers)} buffers, got {len(buffers)}")
    for decl, arr in zip(kernel.buffers, buffers):
        want = DTYPE[decl.elem]
        if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.dtype != want:
            got = f"{arr.dtype} array of shape {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
            raise TypeError(f"{kernel.name}: buffer {decl.name!r} must be a 1-D {want} array, got {got}")
        if decl.access == "read_write" and not arr.flags.writeable:
            raise TypeError(f"{kernel.name}: buffer {decl.name!r} is read_write but the array is read-only")
    return {decl.name: arr for decl, arr in zip(kernel.buffers, buffers)}


def _bind_scalars(kernel: ir.Kernel, scalars: Sequence[object]) -> dict[str, Any]:
    if len(scalars) != len(kernel.scalars):
        raise TypeError(f"{kernel.name} takes {len(kernel.scalars)} scalars, got {len(scalars)}")
    bound: dict[str, Any] = {}
    for decl, value in zip(kernel.scalars, scalars):
        if decl.type not in kernel.structs:
            bound[decl.name] = _scalar(kernel, decl.name, decl.type, value)
        elif isinstance(value, Mapping):
            bound[decl.name] = {f: _scalar(kernel, f"{decl.name}.{f}", t, value.get(f))
                                for f, t in kernel.structs[decl.type]}
        else:
            raise TypeError(f"{kernel.name}: {decl.name!r} is a struct {decl.type}: pass a mapping of its fields")
    return bound


def _scalar(kernel: ir.Kernel, name: str, t: str, value: object):
    is_bool = isinstance(value, (bool, np.bool_))
    is_int = isinstance(value, (int, np.integer)) and not is_bool
    if t == "bool" and (is_bool or is_int and value in (0, 1)):
        return np.bool_(bool(value))
    if t in ir.INTS and is_int:
        lo, hi = ir.int_range(t)
        if not lo <= int(value) <= hi:
            raise ValueError(f"{kernel.name}: {name} = {value} does not fit in {t}")
        return DTYPE[t].type(int(value))
    if t in ir.FLOATS and (is_int or isinstance(value, (float, np.floating))):
        return DTYPE[t].type(value)
    raise TypeError(f"{kernel.name}: {name} is a {t}, got {value!r}")


# ---------------------------------------------------------------------------------------------------------------
# Compiled program

@dataclass
class _Function:
    """A function compiled for execution: what a `Frame` of it starts with, and its body."""
    zeros: dict[str, Any]                 # scalar locals and parameters at zero (struct-typed ones: None)
    arrays: dict[str, tuple[str, int]]    # private arrays: name -> (element type, elements)
    params: list[str]
    retval: Any
    source: str                           # the Python file of the function, for error messages
    body: Callable = None  # type: ignore[assignment]   # set once compiled: calls may come before the callee


class _Program:
    def __init__(self, kernel: ir.Kernel):
        self.kernel = kernel
        self.lanes = math.prod(kernel.workgroup_size)
        self.shared = {name: _array_decl(t) for name, t in kernel.shared.items()}
        self.uses_subgroup_ops = any(isinstance(n, ir.Intrinsic) and n.name.startswith("subgroup_")
                                     for n in ir.walk(kernel))
        self.entry = _function(kernel, [], kernel.locals, None, kernel.source)
        self.functions = {f.name: _function(kernel, f.params, f.locals, f.ret, f.source or kernel.source)
                          for f in kernel.functions}
        self.workgroups_per_batch = max(1, min(BATCH_LANES, BATCH_BYTES // self._bytes_per_lane()) // self.lanes)
        _Compiler(self).compile()

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
    arr = ir.parse_array(t)
    if arr is None:
        raise InvalidIR(f"{t} is not an array type")
    return arr[0], math.prod(arr[1])


def _function(kernel: ir.Kernel, params: list[ir.Scalar], locals_: dict[str, str], ret: str | None,
              source: str) -> _Function:
    zeros: dict[str, Any] = {}
    arrays = {}
    for name, t in [(p.name, p.type) for p in params] + list(locals_.items()):
        if ir.parse_array(t):
            arrays[name] = _array_decl(t)
        else:
            zeros[name] = None if t in kernel.structs else ops.zero(t)
    retval = ops.zero(ret) if ret not in (None, "void") else None
    return _Function(zeros, arrays, [p.name for p in params], retval, source)


_cache: dict[int, tuple[weakref.ref, _Program]] = {}


def _program(kernel: ir.Kernel) -> _Program:
    """The compiled program of `kernel`, compiled on first use and kept while the kernel lives (a kernel is not
    modified once built)."""
    hit = _cache.get(id(kernel))
    if hit is not None and hit[0]() is kernel:
        return hit[1]
    prog = _Program(kernel)
    key = id(kernel)
    # the callback binds the dict: at interpreter shutdown the module's globals may already be gone
    _cache[key] = (weakref.ref(kernel, lambda _, cache=_cache: cache.pop(key, None)), prog)
    return prog


# ---------------------------------------------------------------------------------------------------------------
# The compiler: IR nodes to closures. A statement compiles to `run(frame, mask) -> mask` (the lanes that go on),
# an expression to `run(frame, mask) -> value`.

Run = Callable[[Frame, Any], Any]
_AFFINE_OPS = ("add", "sub", "mul") + ops.COMPARISONS
# builtin name -> number of dimensions
_BUILTINS = {"global_id": 3, "local_id": 3, "workgroup_id": 3, "num_workgroups": 3, "workgroup_size": 3,
             "local_index": 1, "subgroup_size": 1, "subgroup_invocation_id": 1, "subgroup_id": 1,
             "num_subgroups": 1}
# expressions whose value is never Affine, so that `dense_expr` needs no wrapper for them
_NEVER_AFFINE = (ir.Const, ir.Param, ir.Field, ir.Unary, ir.Bitcast, ir.Intrinsic, ir.Load, ir.Len, ir.Atomic)


def _binary_apply(op: str, t: str) -> Callable[[Any, Any], Any]:
    """`a op b` on values of type `t`, kept symbolic for Affine operands where possible."""
    fn = ops.binary_fn(op, t)
    if op not in _AFFINE_OPS or t not in ir.INTS:
        return lambda a, b: fn(dense(a), dense(b))

    def apply(a, b):
        if type(a) is Affine or type(b) is Affine:
            r = affine_binary(op, t, a, b)
            if r is not None:
                return r
            a, b = dense(a), dense(b)
        return fn(a, b)
    return apply


def _block(stmts: list[Run]) -> Run:
    if not stmts:
        return lambda f, m: m
    if len(stmts) == 1:
        return stmts[0]

    def run(f, m):
        for s in stmts:
            m = s(f, m)
            if m is EMPTY:
                break
        return m
    return run


def _run_loop(f: Frame, m, cond: Run, body: Run, advance: Callable[[Frame, Any], None] | None):
    """Iterate while any lane is active. Lanes that `break` simply drop out of `body`'s result; lanes that
    `continue` come back from `f.cont`; the loop's result is its lanes minus those that returned."""
    saved, active = f.cont, m
    while True:
        active = mask_and(active, cond(f, active))
        if active is EMPTY:
            break
        f.cont = EMPTY
        active = mask_or(body(f, active), f.cont)
        if active is EMPTY:
            break
        if advance is not None:
            advance(f, active)
    f.cont = saved
    return mask_minus(m, f.ret)


class _Compiler:
    def __init__(self, prog: _Program):
        self.prog, self.kernel = prog, prog.kernel
        self.buffers = {b.name: b for b in prog.kernel.buffers}
        self.line = prog.kernel.line
        self.scope: dict[str, str] = {}    # the current function's parameters and locals: name -> type

    def compile(self) -> None:
        k = self.kernel
        for fn in k.functions:
            self.prog.functions[fn.name].body = self.function(fn.params, fn.locals, fn.body, fn.line)
        self.prog.entry.body = self.function([], k.locals, k.body, k.line)

    def function(self, params: list[ir.Scalar], locals_: dict[str, str], body: list[ir.Stmt], line: int) -> Run:
        self.scope = {p.name: p.type for p in params} | dict(locals_)
        self.line = line
        return self.block(body)

    def located(self, e: InvalidIR) -> InvalidIR:
        if e.located:
            return e
        e = InvalidIR(f"kernel {self.kernel.name!r} at {self.kernel.source}:{self.line}: invalid IR: {e}")
        e.located = True
        return e

    # --- statements ---------------------------------------------------------------------------------------------

    def block(self, stmts: list[ir.Stmt]) -> Run:
        return _block([self.stmt(s) for s in stmts])

    def stmt(self, s: ir.Stmt) -> Run:
        outer, self.line = self.line, s.loc[0] or self.line
        try:
            compile_ = getattr(self, "s_" + type(s).__name__, None)
            if compile_ is None:
                raise InvalidIR(f"unknown statement {type(s).__name__}")
            return compile_(s)
        except InvalidIR as e:
            raise self.located(e) from None
        finally:
            self.line = outer

    def s_Assign(self, s: ir.Assign) -> Run:
        value, name = self.expr(s.value), self.local(s.name)

        def run(f, m):
            f.vars[name] = merge(m, value(f, m), f.vars[name])
            return m
        return run

    def s_Store(self, s: ir.Store) -> Run:
        ref, value = self.ref(s.space, s.name, s.index, write=True), self.expr(s.value)

        def run(f, m):
            ref.store(f, m, value(f, m))
            return m
        return run

    def s_ExprStmt(self, s: ir.ExprStmt) -> Run:
        value = self.expr(s.value)

        def run(f, m):
            value(f, m)
            return m
        return run

    def s_If(self, s: ir.If) -> Run:
        cond, then, orelse = self.dense_expr(s.cond), self.block(s.then), self.block(s.orelse)

        def run(f, m):
            c = cond(f, m)
            if is_uniform(c):
                return then(f, m) if c else orelse(f, m)
            mt, me = mask_and(m, c), mask_and(m, ~c)
            return mask_or(EMPTY if mt is EMPTY else then(f, mt), EMPTY if me is EMPTY else orelse(f, me))
        return run

    def s_While(self, s: ir.While) -> Run:
        cond, body = self.dense_expr(s.cond), self.block(s.body)
        return lambda f, m: _run_loop(f, m, cond, body, None)

    def s_For(self, s: ir.For) -> Run:
        var, line = self.local(s.var), self.line
        t = self.scope[var]
        start, stop, step = self.expr(s.start), self.expr(s.stop), self.expr(s.step)
        const_step = s.step.value if isinstance(s.step, ir.Const) else None
        if const_step == 0:
            raise InvalidIR("for loop with step 0")
        test = _binary_apply("gt" if const_step is not None and const_step < 0 else "lt", t)
        add = _binary_apply("add", t)
        body = self.block(s.body)

        def run(f, m):
            # all three before the loop variable changes, as in Python's `for i in range(i, i + 4)`
            first, bound, inc = start(f, m), stop(f, m), step(f, m)
            f.vars[var] = merge(m, first, f.vars[var])
            if const_step is None:
                inc = dense(inc)
                p = f.batch.first_active(inc <= 0, m)
                if p is not None:
                    raise error(f, line, f"for loop step {f.batch.at(inc, p)} is not positive (only a constant "
                                         "step may be negative)", p)

            def advance(f, active):
                f.vars[var] = merge(active, add(f.vars[var], inc), f.vars[var])
            return _run_loop(f, m, lambda f, active: test(f.vars[var], bound), body, advance)
        return run

    def s_Break(self, s: ir.Break) -> Run:
        return lambda f, m: EMPTY

    def s_Continue(self, s: ir.Continue) -> Run:
        def run(f, m):
            f.cont = mask_or(f.cont, m)
            return EMPTY
        return run

    def s_Return(self, s: ir.Return) -> Run:
        value = None if s.value is None else self.expr(s.value)

        def run(f, m):
            if value is not None:
                f.retval = merge(m, value(f, m), f.retval)
            f.ret = mask_or(f.ret, m)
            return EMPTY
        return run

    def s_Barrier(self, s: ir.Barrier) -> Run:
        if s.scope not in ("workgroup", "storage"):
            raise InvalidIR(f"barrier scope {s.scope!r}")
        line, storage = self.line, s.scope == "storage"

        def run(f, m):
            b = f.batch
            reached = None if m is None else check_together(f, m, b.lanes, line, "barrier", "workgroup")
            if b.check:
                barrier_passed(b, reached, storage)
            return m
        return run

    # --- expressions --------------------------------------------------------------------------------------------

    def expr(self, e) -> Run:
        """An expression's closure; its values may be Affine."""
        compile_ = getattr(self, "e_" + type(e).__name__, None)
        if compile_ is None:
            raise InvalidIR(f"unknown expression {type(e).__name__}")
        return compile_(e)

    def dense_expr(self, e) -> Run:
        """An expression's closure whose values are never Affine."""
        run = self.expr(e)
        if isinstance(e, _NEVER_AFFINE):
            return run
        return lambda f, m: dense(run(f, m))

    def local(self, name: str) -> str:
        if name not in self.scope:
            raise InvalidIR(f"unknown local variable {name!r}")
        return name

    def e_Const(self, e: ir.Const) -> Run:
        value = ops.const(e.type, e.value)
        return lambda f, m: value

    def e_Var(self, e: ir.Var) -> Run:
        name = self.local(e.name)
        return lambda f, m: f.vars[name]

    def e_Param(self, e: ir.Param) -> Run:
        if e.name not in {s.name for s in self.kernel.scalars}:
            raise InvalidIR(f"unknown parameter {e.name!r}")
        name = e.name
        return lambda f, m: f.batch.params[name]

    def e_Field(self, e: ir.Field) -> Run:
        value, name = self.expr(e.value), e.field
        return lambda f, m: value(f, m)[name]

    def e_Builtin(self, e: ir.Builtin) -> Run:
        if e.dim not in range(_BUILTINS.get(e.name, 0)):
            raise InvalidIR(f"builtin {e.name!r} with dim {e.dim}")
        name, dim = e.name, e.dim
        return lambda f, m: f.batch.builtin(name, dim)

    def e_Len(self, e: ir.Len) -> Run:
        if e.name not in self.buffers:
            raise InvalidIR(f"len of unknown buffer {e.name!r}")
        name = e.name
        return lambda f, m: f.batch.lengths[name]

    def e_Unary(self, e: ir.Unary) -> Run:
        fn, a = ops.unary_fn(e.op, e.type), self.dense_expr(e.a)
        return lambda f, m: fn(a(f, m))

    def e_Binary(self, e: ir.Binary) -> Run:
        if e.op in ("and", "or"):
            return self.short_circuit(e)
        op, line = e.op, self.line
        apply = _binary_apply(op, e.a.type)   # the operands' type (the shifted one for shifts)
        a, b = self.expr(e.a), self.expr(e.b)
        if not ops.divides_integers(op, e.a.type):
            return lambda f, m: apply(a(f, m), b(f, m))

        def divide(f, m):
            x, y = a(f, m), dense(b(f, m))
            p = f.batch.first_active(y == 0, m)
            if p is not None:
                raise error(f, line, f"integer division by zero ({op})", p)
            return apply(x, y)
        return divide

    def short_circuit(self, e: ir.Binary) -> Run:
        a, b, conj = self.dense_expr(e.a), self.dense_expr(e.b), e.op == "and"

        def run(f, m):
            x = a(f, m)
            need = mask_and(m, x if conj else ~x)   # the lanes where `b` decides
            if need is EMPTY:
                return x
            return (np.logical_and if conj else np.logical_or)(x, b(f, need))
        return run

    def e_Select(self, e: ir.Select) -> Run:
        cond, a, b = self.dense_expr(e.cond), self.expr(e.a), self.expr(e.b)

        def run(f, m):
            c = cond(f, m)
            if is_uniform(c):
                return a(f, m) if c else b(f, m)
            ma, mb = mask_and(m, c), mask_and(m, ~c)
            if mb is EMPTY:
                return a(f, ma)
            if ma is EMPTY:
                return b(f, mb)
            return merge(ma, a(f, ma), b(f, mb))
        return run

    def e_Cast(self, e: ir.Cast) -> Run:
        src, dst, value = e.value.type, e.type, self.expr(e.value)
        fn = ops.cast_fn(src, dst)
        keep_affine = src in ir.INTS and dst in ir.INTS

        def run(f, m):
            x = value(f, m)
            if type(x) is Affine:
                kept = affine(dst, x.start, x.stride, x.shape) if keep_affine else None
                if kept is not None:
                    return kept
                x = x.dense()
            return fn(x)
        return run

    def e_Bitcast(self, e: ir.Bitcast) -> Run:
        fn, value = ops.bitcast_fn(e.value.type, e.type), self.dense_expr(e.value)
        return lambda f, m: fn(value(f, m))

    def e_Call(self, e: ir.Call) -> Run:
        callee = self.prog.functions.get(e.func)
        if callee is None:
            raise InvalidIR(f"call of unknown function {e.func!r}")
        args, line = [self.expr(a) for a in e.args], self.line

        def run(f, m):
            values = [a(f, m) for a in args]
            frame = Frame(f.batch, callee, f, line)
            frame.vars.update(zip(callee.params, values))
            callee.body(frame, m)
            return frame.retval
        return run

    def e_Intrinsic(self, e: ir.Intrinsic) -> Run:
        if e.name.startswith("subgroup_"):
            return self.subgroup(e)
        fn = ops.intrinsic_fn(e.name, e.type, [a.type for a in e.args])
        args, name, line = [self.dense_expr(a) for a in e.args], e.name, self.line

        def run(f, m):
            values = [a(f, m) for a in args]
            faults = ops.bits_faults(name, values)
            p = None if faults is None else f.batch.first_active(faults, m)
            if p is not None:
                raise error(f, line, f"{name}: offset + count exceeds 32", p)
            return fn(*values)
        return run

    def subgroup(self, e: ir.Intrinsic) -> Run:
        name, line = e.name, self.line
        x, arg = self.dense_expr(e.args[0]), (self.dense_expr(e.args[1]) if len(e.args) > 1 else None)
        shuffle = name in ops.SUBGROUP_SHUFFLES
        fn = None if shuffle else ops.subgroup_fn(name, e.args[0].type)

        def run(f, m):
            b, sg = f.batch, f.batch.dispatch.sg
            if m is not None:
                check_together(f, m, sg, line, name, "subgroup")
            v, a = x(f, m), (None if arg is None else arg(f, m))
            # subgroups lie inside workgroups: operands that are the same in every workgroup give one row
            shape = np.broadcast_shapes(np.shape(v), np.shape(a), (1, b.lanes))
            rows = np.broadcast_to(v, shape).reshape(-1, sg)
            out = _shuffle(f, m, name, rows, a, shape, line) if shuffle else fn(rows)
            return out.reshape(shape)
        return run

    def e_Load(self, e: ir.Load) -> Run:
        ref = self.ref(e.space, e.name, e.index, write=False)
        return ref.load

    def e_Atomic(self, e: ir.Atomic) -> Run:
        ops.check_atomic(e.op, e.type)
        if e.space not in ("storage", "shared"):
            raise InvalidIR(f"atomic on {e.space} memory")
        ref, op, dt = self.ref(e.space, e.name, e.index, write=True), e.op, DTYPE[e.type]
        args = [self.dense_expr(a) for a in e.args]
        if len(args) != (2 if op == "compare_exchange" else 1):
            raise InvalidIR(f"atomic {op} with {len(args)} arguments")

        def run(f, m):
            b = f.batch
            mem, loc = ref.atomic_target(f, m)
            active = b.active(m)
            values = [b.full(a(f, m))[active] for a in args]
            old = ops.atomic_apply(op, mem, b.full(loc)[active], values[-1],
                                   values[0] if op == "compare_exchange" else None)
            if m is None:
                return old.reshape(b.shape)
            out = np.zeros(b.n, dt)
            out[active] = old
            return out.reshape(b.shape)
        return run

    def ref(self, space: str, name: str, index: list, write: bool):
        """The compiled memory location `space name[index]`."""
        if space == "storage":
            decl = self.buffers.get(name)
            if decl is None:
                raise InvalidIR(f"unknown buffer {name!r}")
            if write and decl.access != "read_write":
                raise InvalidIR(f"write to read-only buffer {name!r}")
            if len(index) != 1:
                raise InvalidIR(f"buffer {name!r} indexed with {len(index)} indices")
            return StorageRef(name, self.expr(index[0]), self.line)
        if space == "shared" and name in self.kernel.shared:
            return self._array_ref(SharedRef, space, name, self.kernel.shared[name], index)
        if space == "private" and ir.parse_array(self.scope.get(name, "")):
            return self._array_ref(PrivateRef, space, name, self.scope[name], index)
        raise InvalidIR(f"unknown {space} memory {name!r}")

    def _array_ref(self, cls: type[ArrayRef], space: str, name: str, t: str, index: list) -> ArrayRef:
        _, shape = ir.parse_array(t)  # type: ignore[misc]
        if len(index) != len(shape):
            raise InvalidIR(f"{space} array {name!r} of {len(shape)} dimensions indexed with {len(index)} indices")
        return cls(space, name, shape, [self.dense_expr(i) for i in index], self.line)


def _shuffle(f: Frame, m, name: str, rows: np.ndarray, arg, shape: tuple[int, int], line: int) -> np.ndarray:
    """Subgroup shuffles on the (subgroups, subgroup_size) array `rows` of the lane values of `shape`."""
    sg = rows.shape[1]
    lane = np.broadcast_to(np.arange(sg), rows.shape)
    src = ops.shuffle_source(name, lane, np.broadcast_to(arg, shape).reshape(-1, sg), sg)
    bad = src >= sg
    p = f.batch.first_active(bad.reshape(shape), m)
    if p is not None:
        raise error(f, line, f"{name} reads lane {f.batch.at(src.reshape(shape), p)} of a subgroup of {sg}", p)
    return np.take_along_axis(rows, np.where(bad, lane, src), axis=1)
