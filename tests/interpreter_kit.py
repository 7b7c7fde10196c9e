"""The IR builder of the interpreter's tests (tests/test_interpreter_*.py): kernels written by hand with Python
operators, `i < A.len()` is a `Binary("lt")`, `A[i]` a storage `Load`, `A.set(i, v)` a `Store`; statements take
`at=` to fix their source line for error-message tests. With the helpers that run them and the tests' fixtures.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from test_render_kit import E, lift

from khal_runtime import interpreter, ir
from khal_runtime.interpreter import KernelExecutionError, execute

SRC = "shaders/examples/kernels.py"

# expressions with Python operators: the render kit's wrapper (X wraps a node; lit lifts a literal)
X = E
lit = lift


def const(t: str, v) -> X:
    return X(ir.Const(t, v))


def var(name: str, t: str) -> X:
    return X(ir.Var(t, name))


def param(name: str, t: str) -> X:
    return X(ir.Param(t, name))


def builtin(name: str, dim: int = 0) -> X:
    return X(ir.Builtin("u32", name, dim))


def gid(d: int = 0) -> X:
    return builtin("global_id", d)


def lidx() -> X:
    return builtin("local_index")


def intr(name: str, *args, t: str | None = None) -> X:
    nodes = [a.node for a in args]
    return X(ir.Intrinsic(t or nodes[0].type, name, nodes))


def select(cond: X, a, b, t: str = "u32") -> X:
    """`a if cond else b`; `t` types the literals when neither side is an expression."""
    t = a.t if isinstance(a, X) else b.t if isinstance(b, X) else t
    a, b = lit(a, t), lit(b, t)
    return X(ir.Select(t, cond.node, a.node, b.node))


def land(a: X, b: X) -> X:
    return X(ir.Binary("bool", "and", a.node, b.node))


def lor(a: X, b: X) -> X:
    return X(ir.Binary("bool", "or", a.node, b.node))


def call(name: str, t: str, *args: X) -> X:
    return X(ir.Call(t, name, [a.node for a in args]))


_lines = itertools.count(100)


def _loc(at):
    return (at if at is not None else next(_lines), 4)


class Mem:
    """A storage buffer, shared array or private array."""

    def __init__(self, space: str, name: str, t: str, access: str = "read_write"):
        self.space, self.name, self.type, self.access = space, name, t, access
        arr = ir.parse_array(t)
        self.elem = arr[0] if arr else t

    def _index(self, idx):
        idx = idx if isinstance(idx, tuple) else (idx,)
        return [lit(i, "u32").node for i in idx]

    def __getitem__(self, idx) -> X:
        return X(ir.Load(self.elem, self.space, self.name, self._index(idx)))

    def set(self, idx, value, at=None) -> ir.Store:
        return ir.Store(self.space, self.name, self._index(idx), lit(value, self.elem).node, _loc(at))

    def atomic(self, op: str, idx, *args) -> X:
        return X(ir.Atomic(self.elem, op, self.space, self.name, self._index(idx),
                           [lit(a, self.elem).node for a in args]))

    def len(self) -> X:
        return X(ir.Len("u32", self.name))


def buf(name, t, access="read_write"):
    return Mem("storage", name, t, access)


def shared(name, t):
    return Mem("shared", name, t)


def private(name, t):
    return Mem("private", name, t)


def let(name: str, value, t: str | None = None, at=None) -> ir.Assign:
    value = lit(value, t) if t else value
    return ir.Assign(name, value.node, _loc(at))


def if_(cond: X, then, orelse=(), at=None) -> ir.If:
    return ir.If(cond.node, list(then), list(orelse), _loc(at))


def for_(name: str, start: X, stop, step, body, at=None) -> ir.For:
    return ir.For(name, start.node, lit(stop, start.t).node, lit(step, start.t).node, list(body), _loc(at))


def while_(cond: X, body, at=None) -> ir.While:
    return ir.While(cond.node, list(body), _loc(at))


def brk(at=None):
    return ir.Break(_loc(at))


def cont(at=None):
    return ir.Continue(_loc(at))


def ret(value: X | None = None, at=None):
    return ir.Return(None if value is None else value.node, _loc(at))


def do(x: X, at=None):
    return ir.ExprStmt(x.node, _loc(at))


def barrier(scope="workgroup", at=None):
    return ir.Barrier(scope, _loc(at))


def _locals(body, exclude=()) -> dict[str, str]:
    """Local variables of a body: every assigned name and loop variable, with its type."""
    found = {}
    for node in ir.walk(body):
        if isinstance(node, ir.Assign):
            found[node.name] = node.value.type
        elif isinstance(node, ir.For):
            found[node.var] = node.start.type
    return {k: v for k, v in found.items() if k not in exclude}


def func(name: str, params: list[tuple[str, str]], ret_t: str | None, body, arrays=()) -> ir.Function:
    locals_ = _locals(body, {p for p, _ in params}) | {a.name: a.type for a in arrays}
    return ir.Function(name, [ir.Scalar(n, t) for n, t in params], ret_t, locals_, list(body), next(_lines))


def kernel(name, body, *, buffers=(), scalars=(), ws=(64, 1, 1), shared_=(), arrays=(), functions=(),
           structs=None) -> ir.Kernel:
    return ir.Kernel(
        name=name, source=SRC, line=1, function=name, template={}, workgroup_size=tuple(ws),
        buffers=[ir.Buffer(b.name, b.elem, b.access, i) for i, b in enumerate(buffers)],
        scalars=[ir.Scalar(n, t) for n, t in scalars], structs=structs or {},
        shared={s.name: s.type for s in shared_}, locals=_locals(body) | {a.name: a.type for a in arrays},
        body=list(body), functions=list(functions))


def groups(n: int, ws: int = 64) -> tuple[int, int, int]:
    return (-(-n // ws), 1, 1)


def map_kernel(name, out_t, fn, in_types=("f32",), ws=64):
    """out[i] = fn(in0[i], in1[i], ...) for i < len(out)."""
    out = buf("out", out_t)
    ins = [buf(f"in{k}", t, "read") for k, t in enumerate(in_types)]
    i = var("i", "u32")
    return kernel(name, [let("i", gid()), if_(i < out.len(), [out.set(i, fn(*[b[i] for b in ins]))])],
                  buffers=[out, *ins], ws=(ws, 1, 1))


def run_map(k, out_t, *inputs, **kw):
    out = np.zeros(len(inputs[0]) if inputs else kw.pop("n"), ir.NUMPY[out_t])
    execute(k, groups(len(out), k.workgroup_size[0]), [out, *inputs], kw.pop("scalars", []), **kw)
    return out


@pytest.fixture(autouse=True)
def quiet_references():
    """The numpy references of these tests overflow and divide by zero on purpose."""
    with np.errstate(all="ignore"):
        yield


@pytest.fixture
def small_batches(monkeypatch):
    """Batches of a few workgroups, to cross batch boundaries with small grids (kernels built after it)."""
    monkeypatch.setattr(interpreter, "BATCH_LANES", 96)


def failure(k, grid, buffers, scalars=(), **kw) -> str:
    """The message of the KernelExecutionError that running `k` raises (the test fails if it raises none)."""
    with pytest.raises(KernelExecutionError) as info:
        execute(k, grid, buffers, list(scalars), **kw)
    return str(info.value)
