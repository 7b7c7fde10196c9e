"""Tests of the CPU interpreter (khal_runtime.interpreter) against numpy and Python, on kernels built by hand.

The small builder below writes IR with Python operators: `i < A.len()` is a `Binary("lt")`, `A[i]` a storage
`Load`, `A.set(i, v)` a `Store`. Statements take `at=` to fix their source line for error-message tests.
"""

from __future__ import annotations

import itertools
import time
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_render_kit import E, lift

from khal_runtime import interpreter, ir
from khal_runtime.interpreter import InvalidIR, KernelExecutionError, execute

SRC = "shaders/examples/kernels.py"

# ---------------------------------------------------------------------------------------------------------------
# IR builder


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


# ---------------------------------------------------------------------------------------------------------------
# Elementwise kernels, builtins, parameters

def add_assign_kernel():
    a, b = buf("a", "f32"), buf("b", "f32", "read")
    i = var("i", "u32")
    return kernel("add_assign", [let("i", gid()), if_(i < a.len(), [a.set(i, a[i] + b[i])])], buffers=[a, b])


@pytest.mark.parametrize("n", [1, 1000, 300_001])
def test_add_assign_with_tail(n):
    rng = np.random.default_rng(n)
    a, b = rng.random(n, np.float32), rng.random(n, np.float32)
    want = a + b
    execute(add_assign_kernel(), groups(n), [a, b], [])
    assert np.array_equal(a, want)


def test_add_assign_across_small_batches(small_batches):
    n = 1000
    a, b = np.arange(n, dtype=np.float32), np.full(n, 0.5, np.float32)
    execute(add_assign_kernel(), groups(n), [a, b], [])
    assert np.array_equal(a, np.arange(n) + 0.5)


def test_2d_grid_and_builtins(small_batches):
    """Every builtin of every lane, on a 3-D workgroup and grid, with small batches that split grid rows."""
    ws, grid, sg = (4, 2, 2), (3, 2, 2), 4
    names = [("global_id", d) for d in range(3)] + [("local_id", d) for d in range(3)] + \
            [("workgroup_id", d) for d in range(3)] + [("num_workgroups", d) for d in range(3)] + \
            [("local_index", 0), ("subgroup_size", 0), ("subgroup_invocation_id", 0), ("subgroup_id", 0),
             ("num_subgroups", 0), ("workgroup_size", 1)]
    out = buf("out", "u32")
    lanes, total = 16, 16 * 12
    wlin = (builtin("workgroup_id", 2) * 6 + builtin("workgroup_id", 1) * 3 + builtin("workgroup_id", 0))
    slot = (wlin * lanes + lidx()) * len(names)
    body = [out.set(slot + j, builtin(n, d)) for j, (n, d) in enumerate(names)]
    got = np.zeros(total * len(names), np.uint32)
    execute(kernel("builtins", body, buffers=[out], ws=ws), grid, [got], [], subgroup_size=sg)
    got = got.reshape(3 * 2 * 2, lanes, len(names))
    for g in range(12):
        w = (g % 3, g // 3 % 2, g // 6)
        for li in range(lanes):
            loc = (li % 4, li // 4 % 2, li // 8)
            want = [w[d] * ws[d] + loc[d] for d in range(3)] + list(loc) + list(w) + list(grid) + \
                   [li, sg, li % sg, li // sg, lanes // sg, ws[1]]
            assert list(got[g, li]) == want, (g, li)


def test_struct_and_bool_params_select_and_short_circuit():
    out, src = buf("out", "i32"), buf("src", "i32", "read")
    p = X(ir.Param("Shape", "shape"))
    n, scale = X(ir.Field("u32", p.node, "n")), X(ir.Field("i32", p.node, "scale"))
    flag, i = param("flag", "bool"), var("i", "u32")
    # `i < n and src[i] > 0` must not read src out of bounds where i >= n
    positive = land(i < n, src[i] > 0)
    body = [let("i", gid()),
            if_(i < out.len(), [out.set(i, select(lor(positive, ~flag), src[select(i < n, i, 0)] * scale,
                                                  const("i32", -1)))])]
    k = kernel("params", body, buffers=[out, src], scalars=[("shape", "Shape"), ("flag", "bool")],
               structs={"Shape": [("n", "u32"), ("scale", "i32")]})
    s = np.array([3, -2, 5, 0, 7], np.int32)
    got = np.zeros(8, np.int32)
    execute(k, (1, 1, 1), [got, s], [{"n": 5, "scale": 10}, True])
    assert list(got) == [30, -1, 50, -1, 70, -1, -1, -1]
    execute(k, (1, 1, 1), [got, s], [{"n": 5, "scale": 10}, False])
    assert list(got) == [30, -20, 50, 0, 70, 30, 30, 30]


def test_wrapping_and_float_exceptions_do_not_warn():
    k = map_kernel("noisy", "f32", lambda v: (v.cast("i32") * 65536 * 65536).cast("f32") + v / 0.0 + intr("log", -v))
    with np.errstate(all="raise"):
        got = run_map(k, "f32", np.array([1.0, -1.0, 0.0, np.nan], np.float32))
    assert np.isnan(got[[0, 2, 3]]).all() and got[1] == -np.inf   # inf + log(-1), -inf + 0, 0/0, NaN


def test_json_round_trip_executes_the_same():
    k = ir.from_json(ir.to_json(add_assign_kernel()))
    a, b = np.ones(100, np.float32), np.full(100, 2, np.float32)
    execute(k, groups(100), [a, b], [])
    assert np.all(a == 3)


def test_argument_errors():
    k = add_assign_kernel()
    with pytest.raises(TypeError, match="buffer 'b' must be a 1-D float32 array"):
        execute(k, (1, 1, 1), [np.zeros(4, np.float32), np.zeros(4, np.float64)], [])
    with pytest.raises(TypeError, match="takes 0 scalars"):
        execute(k, (1, 1, 1), [np.zeros(4, np.float32)] * 2, [1])
    k = kernel("s", [], scalars=[("n", "u32")])
    with pytest.raises(ValueError, match="does not fit in u32"):
        execute(k, (1, 1, 1), [], [-1])


def test_subgroup_size_must_fit_the_workgroup():
    k = map_kernel("sgsize", "i32", lambda v: intr("subgroup_add", v), ["i32"])
    x = np.zeros(64, np.int32)
    with pytest.raises(ValueError, match="power of two"):
        execute(k, (1, 1, 1), [x, x], [], subgroup_size=24)
    with pytest.raises(ValueError, match="multiple of subgroup_size 128"):
        execute(k, (1, 1, 1), [x, x], [], subgroup_size=128)


def test_invalid_ir_names_the_line():
    k = kernel("bad", [let("x", var("nope", "u32"), at=42)])
    with pytest.raises(InvalidIR, match=rf"{SRC}:42: invalid IR: unknown local variable 'nope'"):
        execute(k, (1, 1, 1), [], [])


# ---------------------------------------------------------------------------------------------------------------
# Shared memory, barriers, atomics: reduction and tiled matmul

def reduction_kernel(t: str, ws: int = 256) -> ir.Kernel:
    src, out, part = buf("src", t, "read"), buf("out", t), shared("part", f"{t}[{ws}]")
    li, g, s = var("li", "u32"), var("g", "u32"), var("s", "u32")
    body = [let("li", lidx()), let("g", gid()),
            part.set(li, select(g < src.len(), src[select(g < src.len(), g, 0)], const(t, 0))),
            barrier(),
            let("s", const("u32", ws // 2)),
            while_(s > 0, [if_(li < s, [part.set(li, part[li] + part[li + s])]), barrier(), let("s", s >> 1)]),
            if_(li.eq(0), [do(out.atomic("add", 0, part[0]))])]
    return kernel(f"reduce_{t}", body, buffers=[src, out], shared_=[part], ws=(ws, 1, 1))


@pytest.mark.parametrize("check", [False, True])
def test_workgroup_reduction_u32(check):
    n = 100_003
    src = np.random.default_rng(1).integers(0, 1000, n, dtype=np.uint32)
    out = np.zeros(1, np.uint32)
    execute(reduction_kernel("u32"), groups(n, 256), [src, out], [], check=check)
    assert out[0] == src.sum(dtype=np.uint32)


def test_workgroup_reduction_f32(small_batches):
    n = 5000
    src = np.random.default_rng(2).random(n, np.float32)
    out = np.zeros(1, np.float32)
    execute(reduction_kernel("f32", 64), groups(n, 64), [src, out], [])
    assert out.dtype == np.float32 and out[0] == pytest.approx(src.sum(dtype=np.float64), rel=1e-5)


def matmul_kernel(tile: int = 8) -> ir.Kernel:
    a, b, c = buf("a", "f32", "read"), buf("b", "f32", "read"), buf("c", "f32")
    at, bt = shared("at", f"f32[{tile}][{tile + 1}]"), shared("bt", f"f32[{tile}][{tile + 1}]")
    m, n, kk = param("m", "u32"), param("n", "u32"), param("k", "u32")
    row, col, lx, ly = var("row", "u32"), var("col", "u32"), var("lx", "u32"), var("ly", "u32")
    t, j, acc = var("t", "u32"), var("j", "u32"), var("acc", "f32")
    zero = const("f32", 0.0)
    body = [
        let("row", gid(1)), let("col", gid(0)), let("lx", builtin("local_id", 0)), let("ly", builtin("local_id", 1)),
        let("acc", zero),
        for_("t", const("u32", 0), kk, tile, [
            # the loads are only evaluated where they are in bounds (Select evaluates one side per lane)
            at.set((ly, lx), select(land(row < m, t + lx < kk), a[select(row < m, row, 0) * kk + t + lx], zero)),
            bt.set((ly, lx), select(land(t + ly < kk, col < n), b[(t + ly) * n + col], zero)),
            barrier(),
            for_("j", const("u32", 0), tile, 1, [let("acc", acc + at[ly, j] * bt[j, lx])]),
            barrier(),
        ]),
        if_(land(row < m, col < n), [c.set(row * n + col, acc)]),
    ]
    return kernel("matmul", body, buffers=[a, b, c], scalars=[("m", "u32"), ("n", "u32"), ("k", "u32")],
                  shared_=[at, bt], ws=(tile, tile, 1))


@pytest.mark.parametrize("check", [False, True])
def test_tiled_matmul(check):
    m, n, k, tile = 37, 45, 50, 8
    rng = np.random.default_rng(3)
    a, b = rng.standard_normal((m, k), np.float32), rng.standard_normal((k, n), np.float32)
    c = np.zeros(m * n, np.float32)
    grid = (-(-n // tile), -(-m // tile), 1)
    execute(matmul_kernel(tile), grid, [a.ravel(), b.ravel(), c], [m, n, k], check=check)
    np.testing.assert_allclose(c.reshape(m, n), a.astype(np.float64) @ b, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------
# Subgroups

SUBGROUP_REDUCTIONS = {
    "subgroup_add": lambda r: r.sum(1, dtype=r.dtype), "subgroup_mul": lambda r: r.prod(1, dtype=r.dtype),
    "subgroup_min": lambda r: r.min(1), "subgroup_max": lambda r: r.max(1),
    "subgroup_and": lambda r: np.bitwise_and.reduce(r, 1), "subgroup_or": lambda r: np.bitwise_or.reduce(r, 1),
    "subgroup_xor": lambda r: np.bitwise_xor.reduce(r, 1), "subgroup_broadcast_first": lambda r: r[:, 0],
}


@pytest.mark.parametrize("sg", [32, 8])
@pytest.mark.parametrize("name", sorted(SUBGROUP_REDUCTIONS))
def test_subgroup_reductions(name, sg):
    n = 256
    x = np.random.default_rng(4).integers(-50, 50, n, dtype=np.int32)
    ref = SUBGROUP_REDUCTIONS[name]
    got = run_map(map_kernel(name, "i32", lambda v: intr(name, v), ["i32"]), "i32", x, subgroup_size=sg)
    rows = x.reshape(-1, sg)
    assert np.array_equal(got, np.repeat(ref(rows), sg))


@pytest.mark.parametrize("sg", [32, 16])
def test_subgroup_scans_votes_and_shuffles(sg):
    n = 128
    x = np.random.default_rng(5).integers(-1000, 1000, n, dtype=np.int32)
    rows, lane = x.reshape(-1, sg), np.arange(sg)

    def run(fn, out_t="i32"):
        return run_map(map_kernel("sg", out_t, fn, ["i32"]), out_t, x, subgroup_size=sg).reshape(-1, sg)

    sid = builtin("subgroup_invocation_id")
    assert np.array_equal(run(lambda v: intr("subgroup_inclusive_add", v)), np.cumsum(rows, 1, dtype=np.int32))
    excl = np.cumsum(rows, 1, dtype=np.int32) - rows
    assert np.array_equal(run(lambda v: intr("subgroup_exclusive_add", v)), excl)
    src = (lane * 5 + 3) % sg
    assert np.array_equal(run(lambda v: intr("subgroup_shuffle", v, (sid * 5 + 3) % builtin("subgroup_size"))),
                          rows[:, src])
    assert np.array_equal(run(lambda v: intr("subgroup_shuffle_xor", v, const("u32", 5))), rows[:, lane ^ 5])
    down = np.where(lane + 3 < sg, lane + 3, lane)
    assert np.array_equal(run(lambda v: intr("subgroup_shuffle_down", v, const("u32", 3))), rows[:, down])
    up = np.where(lane >= 3, lane - 3, lane)
    assert np.array_equal(run(lambda v: intr("subgroup_shuffle_up", v, const("u32", 3))), rows[:, up])
    votes = run(lambda v: select(intr("subgroup_any", v > 900), 1, 0, "i32")
                + select(intr("subgroup_all", v > -1001), 2, 0, "i32"))
    assert np.array_equal(votes[:, 0], (rows > 900).any(1) + 2)


def test_subgroup_float_add_stays_f32():
    x = np.random.default_rng(6).random(64, np.float32)
    got = run_map(map_kernel("sgf", "f32", lambda v: intr("subgroup_add", v)), "f32", x)
    np.testing.assert_allclose(got, np.repeat(x.reshape(2, 32).sum(1), 32), rtol=1e-6)


# ---------------------------------------------------------------------------------------------------------------
# Helper functions and control flow

def test_helper_with_early_returns_in_divergent_lanes():
    x, j, y = var("x", "i32"), var("j", "u32"), var("y", "i32")
    shape = func("shape", [("x", "i32")], "i32", [
        if_(x < 0, [ret(-x * 2)]),
        if_(x > 100, [ret(const("i32", 100))]),
        let("y", x + 1),
        ret(y * 3)])
    lowest = func("lowest_bit", [("x", "i32")], "u32", [
        for_("j", const("u32", 0), 32, 1, [if_(((x >> j) & 1).ne(0), [ret(j)])]),
        ret(const("u32", 99))])
    out, out2, src = buf("out", "i32"), buf("out2", "u32"), buf("src", "i32", "read")
    i = var("i", "u32")
    body = [let("i", gid()),
            if_(i < src.len(), [out.set(i, call("shape", "i32", src[i])),
                                out2.set(i, call("lowest_bit", "u32", src[i]))])]
    k = kernel("helpers", body, buffers=[out, out2, src], functions=[shape, lowest])
    s = np.array([-5, 0, 7, 150, 100, 101, -1, 64, 12, 0], np.int32)
    o, o2 = np.zeros_like(s), np.zeros(len(s), np.uint32)
    execute(k, (1, 1, 1), [o, o2, s], [])

    def py_shape(v):
        return -v * 2 if v < 0 else 100 if v > 100 else (v + 1) * 3
    assert list(o) == [py_shape(v) for v in s]
    assert list(o2) == [next((b for b in range(32) if (int(v) >> b) & 1), 99) for v in s]


def test_loops_break_continue_negative_step():
    src = buf("src", "i32", "read")
    o1, o2, o3, o4, o5 = (buf(f"o{k}", "i32") for k in range(1, 6))
    x, j, tot, k_, a, b, c, s = (var(n, "i32") for n in ("x", "j", "tot", "k", "a", "b", "c", "s"))
    i = var("i", "u32")
    body = [
        let("i", gid()),
        if_(i >= src.len(), [ret()]),
        let("x", src[i]),
        # for j in range(x, -1, -1): skip multiples of 3, stop once tot > 50
        let("tot", const("i32", 0)),
        for_("j", x, -1, -1, [if_((j % 3).eq(0), [cont()]), if_(tot > 50, [brk()]), let("tot", tot + j)]),
        o1.set(i, tot), o2.set(i, j),
        # while k*k < x: k += 1
        let("k", const("i32", 0)),
        while_(k_ * k_ < x, [let("k", k_ + 1)]),
        o3.set(i, k_),
        # nested loops with an inner break: count pairs a <= b < 4 with b != 2 before the break
        let("c", const("i32", 0)),
        for_("a", const("i32", 0), 4, 1, [for_("b", a, 4, 1, [if_(b.eq(2), [brk()]), let("c", c + 1)])]),
        o4.set(i, c + x),
        # a per-lane (non-constant) positive step
        let("s", x % 4 + 1), let("c", const("i32", 0)),
        for_("j", const("i32", 0), 20, s, [let("c", c + j)]),
        o5.set(i, c),
    ]
    k = kernel("loops", body, buffers=[src, o1, o2, o3, o4, o5])
    xs = np.array([0, 1, 2, 5, 9, 10, 17, 30, 40, -3, 100], np.int32)
    outs = [np.zeros_like(xs) for _ in range(5)]
    execute(k, (1, 1, 1), [xs, *outs], [])

    def py(x):
        tot, j = 0, x
        while j > -1:
            if j % 3 != 0:
                if tot > 50:
                    break
                tot += j
            j -= 1
        k = 0
        while k * k < x:
            k += 1
        c = sum(1 for a in range(4) for b in itertools.takewhile(lambda b: b != 2, range(a, 4)))
        return [tot, j, k, c + x, sum(range(0, 20, x % 4 + 1))]
    assert [list(o) for o in zip(*outs)] == [py(int(v)) for v in xs]


def test_loop_bounds_are_evaluated_once_before_the_variable_changes():
    out = buf("out", "i32")
    i, n, c = var("i", "i32"), var("n", "i32"), var("c", "i32")
    body = [let("n", const("i32", 3)), let("i", const("i32", 10)), let("c", const("i32", 0)),
            # range(i, i + n): 10, 11, 12 although the body changes n and the loop changes i
            for_("i", i, i + n, 1, [let("n", const("i32", 100)), let("c", c * 100 + i)]),
            out.set(0, c), out.set(1, i)]
    got = np.zeros(2, np.int32)
    execute(kernel("once", body, buffers=[out], ws=(1, 1, 1)), (1, 1, 1), [got], [])
    assert list(got) == [101112, 13]


def test_non_constant_step_must_be_positive():
    out, src = buf("out", "i32"), buf("src", "i32", "read")
    j = var("j", "i32")
    k = kernel("step0", [for_("j", const("i32", 0), 10, src[lidx()], [out.set(lidx(), j)], at=88)],
               buffers=[out, src], ws=(4, 1, 1))
    msg = _raises(k, (1, 1, 1), [np.zeros(4, np.int32), np.array([1, 2, 0, 1], np.int32)])
    assert f"{SRC}:88" in msg and "for loop step 0 is not positive" in msg and "local_index 2" in msg


def test_private_arrays_with_per_lane_indices_and_per_call_zeroing():
    out = buf("out", "u32")
    hist, tmp = private("hist", "u32[4]"), private("tmp", "u32[2]")
    li, j, x = var("li", "u32"), var("j", "u32"), var("x", "u32")
    # the helper's private array starts at zero on every call, even after the first call wrote to it
    bump = func("bump", [("x", "u32")], "u32", [tmp.set(x % 2, tmp[x % 2] + x), ret(tmp[0] + tmp[1])],
                arrays=[tmp])
    body = [let("li", lidx()),
            for_("j", const("u32", 0), li % 5, 1, [hist.set((li + j) % 4, hist[(li + j) % 4] + 1)]),
            out.set(li * 6, hist[0]), out.set(li * 6 + 1, hist[1]), out.set(li * 6 + 2, hist[2]),
            out.set(li * 6 + 3, hist[3]),
            out.set(li * 6 + 4, call("bump", "u32", li)), out.set(li * 6 + 5, call("bump", "u32", li + 1))]
    got = np.zeros(6 * 64, np.uint32)
    execute(kernel("private", body, buffers=[out], arrays=[hist], functions=[bump]), (1, 1, 1), [got], [])
    for li_ in range(64):
        h = [0] * 4
        for j_ in range(li_ % 5):
            h[(li_ + j_) % 4] += 1
        assert list(got[li_ * 6:li_ * 6 + 6]) == h + [li_, li_ + 1], li_


def test_error_inside_a_helper_names_the_call_site():
    src = buf("src", "f32", "read")
    x = var("x", "u32")
    get = func("get", [("x", "u32")], "f32", [ret(src[x * 2], at=91)])
    out = buf("out", "f32")
    k = kernel("chain", [out.set(lidx(), call("get", "f32", lidx()), at=95)], buffers=[out, src], functions=[get])
    msg = _raises(k, (1, 1, 1), [np.zeros(64, np.float32), np.zeros(64, np.float32)])
    assert f"{SRC}:91" in msg and f"called from {SRC}:95" in msg and "index 64, length 64" in msg


def test_workgroup_uniform_divergence_with_barriers_and_last_lane_wins():
    sh, out = shared("sh", "u32[2]"), buf("out", "u32")
    w, li = var("w", "u32"), var("li", "u32")
    body = [let("w", builtin("workgroup_id")), let("li", lidx()),
            if_((w % 2).eq(0),
                # every lane stores to one element: the last lane in order wins (a race, unchecked here)
                [sh.set(0, li * 10 + w), barrier(), out.set(w * 64 + li, sh[0])],
                [sh.set(1, li), barrier(), out.set(w * 64 + li, sh[1] + 1000)])]
    got = np.zeros(64 * 5, np.uint32)
    execute(kernel("uniform_div", body, buffers=[out], shared_=[sh]), (5, 1, 1), [got], [])
    want = [630 + w if w % 2 == 0 else 1063 for w in range(5) for _ in range(64)]
    assert list(got) == want


@settings(max_examples=40, deadline=None)
@given(mul=st.sampled_from([0, 1, 3, 1 << 28]), add=st.integers(-300, 300), bound=st.integers(0, 3000),
       n=st.integers(1, 2000), lanes=st.sampled_from([64, 512]))
def test_symbolic_global_id_matches_plain_arithmetic(mul, add, bound, n, lanes):
    """Arithmetic, comparisons, casts and slices on global_id.x, in batches of `lanes` lanes, against numpy."""
    out, src = buf("out", "u32"), buf("src", "u32", "read")
    i, j = var("i", "u32"), var("j", "u32")
    off = (i.cast("i32") + add).cast("u32")
    body = [let("i", gid()), let("j", i * mul + add % 2**32),
            if_(land(i < out.len(), off < src.len()),
                [out.set(i, select(j < bound, j, src[off] + select(j.eq(add % 2**32), 1, 0)))])]
    old = interpreter.BATCH_LANES
    interpreter.BATCH_LANES = lanes
    try:
        k = kernel("affine", body, buffers=[out, src], ws=(32, 1, 1))
    finally:
        interpreter.BATCH_LANES = old
    s = np.arange(5000, dtype=np.uint32) * 7
    got = np.zeros(n, np.uint32)
    execute(k, groups(n, 32), [got, s], [])
    ii = np.arange(n, dtype=np.int64)
    jj = (ii * mul + add) % 2**32
    o = ii + add
    ok = (o >= 0) & (o < len(s))
    want = np.where(jj < bound, jj, s[np.where(ok, o, 0)] + (jj == add % 2**32))
    assert np.array_equal(got, np.where(ok, want, 0))


# ---------------------------------------------------------------------------------------------------------------
# Arithmetic semantics

I32 = st.integers(-2**31, 2**31 - 1)


INT_FLOORDIV = map_kernel("fdiv", "i32", lambda a, b: a // b, ["i32", "i32"])
INT_MOD = map_kernel("fmod", "i32", lambda a, b: a % b, ["i32", "i32"])


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(I32, I32.filter(lambda v: v != 0)), min_size=1, max_size=50))
def test_int_floordiv_mod_match_python(pairs):
    a, b = (np.array(v, np.int32) for v in zip(*pairs))
    got_div, got_mod = run_map(INT_FLOORDIV, "i32", a, b), run_map(INT_MOD, "i32", a, b)
    assert list(got_div) == [_wrap_i32(int(p) // int(q)) for p, q in zip(a, b)]   # INT_MIN // -1 wraps
    assert list(got_mod) == [int(p) % int(q) for p, q in zip(a, b)]


def _wrap_i32(v: int) -> int:
    return (v + 2**31) % 2**32 - 2**31


def test_float_floordiv_mod_follow_ir_md():
    a = np.array([7.5, -7.5, 1.0, -0.0, 5.0, 3.0], np.float32)
    b = np.array([2.0, 2.0, 0.1, 3.0, -2.0, np.inf], np.float32)
    q = run_map(map_kernel("ffd", "f32", lambda x, y: x // y, ["f32", "f32"]), "f32", a, b)
    r = run_map(map_kernel("ffm", "f32", lambda x, y: x % y, ["f32", "f32"]), "f32", a, b)
    assert np.array_equal(q, np.floor(a / b))
    assert np.array_equal(r, a - b * np.floor(a / b), equal_nan=True)
    assert q[2] == 10.0    # floor(1 / 0.1): not Python's 1.0 // 0.1 == 9.0


def test_unsigned_division_and_wrapping():
    a = np.array([7, 0, 4294967295, 5], np.uint32)
    b = np.array([2, 3, 16, 4294967295], np.uint32)
    assert list(run_map(map_kernel("ud", "u32", lambda x, y: x // y, ["u32", "u32"]), "u32", a, b)) == \
        [3, 0, 268435455, 0]
    assert list(run_map(map_kernel("uw", "u32", lambda x, y: x * y + x - 8, ["u32", "u32"]), "u32", a, b)) == \
        [(int(x) * int(y) + int(x) - 8) % 2**32 for x, y in zip(a, b)]


def test_unary_operators_and_nan_comparisons():
    u = np.array([0, 1, 2**32 - 1], np.uint32)
    assert list(run_map(map_kernel("negu", "u32", lambda v: -v, ["u32"]), "u32", u)) == [0, 2**32 - 1, 1]
    assert list(run_map(map_kernel("inv", "u32", lambda v: ~v, ["u32"]), "u32", u)) == [2**32 - 1, 2**32 - 2, 0]
    f = np.array([np.nan, 1.0, -0.0], np.float32)
    neg = run_map(map_kernel("negf", "f32", lambda v: -v), "f32", f)
    assert np.isnan(neg[0]) and neg[1] == -1 and np.signbit(neg[2]) == 0
    ops = ["eq", "ne", "lt", "le", "gt", "ge"]
    bits = lambda v: sum(select(X(ir.Binary("bool", op, v.node, const("f32", 1.0).node)), 1 << k, 0)
                         for k, op in enumerate(ops))
    got = run_map(map_kernel("cmp", "u32", lambda v: select(~(v > 2.0), bits(v), 0)), "u32", f)
    # NaN: only `ne`; 1.0: eq le ge; -0.0: ne lt le
    assert list(got) == [0b10, 0b101001, 0b1110]


def test_shifts_by_at_least_the_width():
    x = np.array([1, 3, 0x80000001, 0xFFFFFFFF], np.uint32)
    assert np.array_equal(run_map(map_kernel("shl", "u32", lambda v: v << 33, ["u32"]), "u32", x), x << 1)
    assert np.array_equal(run_map(map_kernel("shr", "u32", lambda v: v >> 32, ["u32"]), "u32", x), x)
    s = np.array([-8, -1, 64, 2**31 - 1], np.int32)
    assert list(run_map(map_kernel("sar", "i32", lambda v: v >> 33, ["i32"]), "i32", s)) == [-4, -1, 32, 2**30 - 1]
    # the amount is taken modulo the width as a two's complement value: -1 -> 31
    amt = np.array([-1, 31, 32, 65], np.int32)
    got = run_map(map_kernel("shl2", "u32", lambda v, a: v << a, ["u32", "i32"]), "u32",
                  np.ones(4, np.uint32), amt)
    assert list(got) == [2**31, 2**31, 1, 2]


def test_f16_arithmetic_rounds_after_every_operation():
    rng = np.random.default_rng(7)
    a = (rng.standard_normal(500) * 100).astype(np.float16)
    b = (rng.standard_normal(500) * 10).astype(np.float16)
    for op, fn in [("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("div", np.divide)]:
        k = map_kernel(f"h{op}", "f16", lambda x, y, op=op: X(ir.Binary("f16", op, x.node, y.node)),
                       ["f16", "f16"])
        got = run_map(k, "f16", a, b)
        assert np.array_equal(got, fn(a.astype(np.float32), b.astype(np.float32)).astype(np.float16))
    # (a * b) * b with a rounding in between differs from one rounding of the f32 product
    got = run_map(map_kernel("h3", "f16", lambda x, y: x * y * y, ["f16", "f16"]), "f16", a, b)
    assert np.array_equal(got, (a * b).astype(np.float16) * b)


def test_half_packing_matches_numpy_float16():
    bits = np.arange(65536, dtype=np.uint32) | np.uint32(0xABCD0000)   # upper bits are ignored
    got = run_map(map_kernel("h2f", "f32", lambda v: intr("half_to_f32", v, t="f32"), ["u32"]), "f32", bits)
    want = bits.astype(np.uint16).view(np.float16).astype(np.float32)
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    x = np.concatenate([np.random.default_rng(8).standard_normal(1000).astype(np.float32) * 1e3,
                        np.array([0, -0.0, 65504, 65520, 1e6, 5.96e-8, 2.98e-8, 1e-10, np.inf, -np.inf, np.nan],
                                 np.float32)])
    got = run_map(map_kernel("f2h", "u32", lambda v: intr("f32_to_half", v, t="u32")), "u32", x)
    assert np.array_equal(got, x.astype(np.float16).view(np.uint16).astype(np.uint32))


def test_casts():
    i = np.array([-1, 0, 16777217, -2**31, 2**31 - 1], np.int32)
    assert list(run_map(map_kernel("c1", "u32", lambda v: v.cast("u32"), ["i32"]), "u32", i)) == \
        [4294967295, 0, 16777217, 2**31, 2**31 - 1]
    assert list(run_map(map_kernel("c2", "f32", lambda v: v.cast("f32"), ["i32"]), "f32", i)) == \
        [-1.0, 0.0, 16777216.0, -2.0**31, 2.0**31]
    assert list(run_map(map_kernel("c3", "i64", lambda v: v.cast("i64"), ["i32"]), "i64", i)) == list(i)
    assert list(run_map(map_kernel("c4", "u64", lambda v: v.cast("u32").cast("u64"), ["i32"]), "u64", i)) == \
        [int(v) % 2**32 for v in i]
    f = np.array([np.nan, np.inf, -np.inf, 3e9, -3e9, 2.7, -2.7, 2147483520.0, -0.9], np.float32)
    assert list(run_map(map_kernel("c5", "i32", lambda v: v.cast("i32")), "i32", f)) == \
        [0, 2**31 - 1, -2**31, 2**31 - 1, -2**31, 2, -2, 2147483520, 0]
    assert list(run_map(map_kernel("c6", "u32", lambda v: v.cast("u32")), "u32", f)) == \
        [0, 2**32 - 1, 0, 3000000000, 0, 2, 0, 2147483520, 0]
    assert list(run_map(map_kernel("c7", "u64", lambda v: v.cast("u64")), "u64", f)) == \
        [0, 2**64 - 1, 0, 3000000000, 0, 2, 0, 2147483520, 0]
    assert list(run_map(map_kernel("c8", "u32", lambda v: (v > 0).cast("u32")), "u32", f)) == \
        [0, 1, 0, 1, 0, 1, 0, 1, 0]
    h = run_map(map_kernel("c9", "f16", lambda v: v.cast("f16")), "f16", f)
    assert np.array_equal(h, f.astype(np.float16), equal_nan=True)
    back = run_map(map_kernel("c10", "f32", lambda v: v.bitcast("u32").bitcast("f32") + 0.0), "f32", f)
    assert np.array_equal(back, f, equal_nan=True)
    assert list(run_map(map_kernel("c11", "u32", lambda v: v.bitcast("u32")), "u32", f[:3])) == \
        [0x7FC00000, 0x7F800000, 0xFF800000]


def test_integer_types_64_bit():
    a = np.array([2**62, -5, 2**63 - 1], np.int64)
    assert list(run_map(map_kernel("w64", "i64", lambda v: v * 2 + 1, ["i64"]), "i64", a)) == \
        [-(2**63) + 1, -9, -1]
    d = np.array([1.5, -2.25, 1e300], np.float64)
    assert np.array_equal(run_map(map_kernel("f64", "f64", lambda v: intr("sqrt", v * v), ["f64"]), "f64", d),
                          np.abs(d) * [1, 1, np.inf])


FLOAT_UNARY = ["sqrt", "rsqrt", "exp", "exp2", "log", "log2", "sin", "cos", "tan", "tanh", "floor", "ceil",
               "trunc", "round"]
NUMPY_UNARY = {"rsqrt": lambda v: np.float32(1) / np.sqrt(v), "round": np.rint}


@pytest.mark.parametrize("name", FLOAT_UNARY)
def test_float_intrinsics_compute_in_f32(name):
    x = np.concatenate([np.random.default_rng(9).random(200, np.float32) * 20 - 5,
                        np.array([0.5, 1.5, 2.5, -2.5, 0, np.inf, np.nan], np.float32)])
    got = run_map(map_kernel(name, "f32", lambda v: intr(name, v)), "f32", x)
    want = NUMPY_UNARY.get(name, getattr(np, name, None))(x)
    assert want.dtype == np.float32 and np.array_equal(got, want, equal_nan=True)


def test_binary_and_ternary_intrinsics():
    nan = np.nan
    a = np.array([1.0, nan, 3.0, -2.0, nan], np.float32)
    b = np.array([2.0, 5.0, nan, -3.0, nan], np.float32)
    c = np.array([0.5, 0.5, 0.5, 0.5, 0.5], np.float32)
    run = lambda name, fn, *xs: run_map(map_kernel(name, "f32", fn, ["f32"] * len(xs)), "f32", *xs)
    assert np.array_equal(run("min", lambda x, y: intr("min", x, y), a, b), [1, 5, 3, -3, nan], equal_nan=True)
    assert np.array_equal(run("max", lambda x, y: intr("max", x, y), a, b), [2, 5, 3, -2, nan], equal_nan=True)
    assert np.array_equal(run("clamp", lambda x: intr("clamp", x, const("f32", -1), const("f32", 2)), a),
                          [1, -1, 2, -1, -1], equal_nan=True)    # min(max(NaN, lo), hi) = min(lo, hi)
    p = np.array([2.0, 0.5, 3.0], np.float32)
    assert np.array_equal(run("pow", lambda x, y: intr("pow", x, y), p, p), np.power(p, p))
    assert np.array_equal(run("abs", lambda x: intr("abs", x), b), np.abs(b), equal_nan=True)
    flags = run_map(map_kernel("nan", "u32", lambda x: select(intr("isnan", x, t="bool"), 1, 0)
                               + select(intr("isinf", x * 2e38, t="bool"), 2, 0)), "u32", a)
    assert list(flags) == [0, 1, 2, 2, 1]
    assert np.array_equal(run("fma", lambda x, y, z: intr("fma", x, y, z), a, b, c), a * b + c, equal_nan=True)


def _round_f32(exact: Fraction) -> np.float32:
    """Correct rounding of a rational to f32, ties to even."""
    guess = np.float32(float(exact))
    cands = [np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))]
    best = min(cands, key=lambda c: (abs(Fraction(float(c)) - exact), int(c.view(np.uint32)) & 1))
    return best


def test_fma_is_fused_and_correctly_rounded():
    # a*b+c = 1 + 2**-23 + 2**-24 - 2**-60: an f64 sum would round to the f32 tie and then to even (1 + 2**-22)
    a = np.array([2**-12 + 2**-30], np.float32)
    b = np.array([2**-12 - 2**-30], np.float32)
    c = np.array([1 + 2**-23], np.float32)
    rng = np.random.default_rng(10)
    a, b, c = (np.concatenate([v, rng.standard_normal(300).astype(np.float32)]) for v in (a, b, c))
    got = run_map(map_kernel("fma", "f32", lambda x, y, z: intr("fma", x, y, z), ["f32"] * 3), "f32", a, b, c)
    want = [_round_f32(Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z))) for x, y, z in zip(a, b, c)]
    assert got[0] == np.float32(1 + 2**-23)
    assert np.array_equal(got, np.array(want, np.float32))
    h = [np.array(v, np.float16) for v in ([1.001, 3.0, -7.5], [0.999, 1 / 3, 2.0], [-1.0, 0.0, 15.0])]
    got = run_map(map_kernel("fmah", "f16", lambda x, y, z: intr("fma", x, y, z), ["f16"] * 3), "f16", *h)
    want = [np.float16(float(Fraction(float(x)) * Fraction(float(y)) + Fraction(float(z)))) for x, y, z in zip(*h)]
    assert np.array_equal(got, np.array(want, np.float16))


def test_integer_intrinsics():
    i = np.array([-2**31, -7, 0, 1, 0x40000000, 2**31 - 1], np.int32)
    u = i.view(np.uint32)
    run = lambda name, t, fn, x, tin=None: run_map(
        map_kernel(name, t, fn, [tin or t]), t, x)
    assert list(run("abs", "i32", lambda v: intr("abs", v), i)) == [-2**31, 7, 0, 1, 0x40000000, 2**31 - 1]
    assert list(run("imin", "i32", lambda v: intr("min", v, const("i32", 1)), i)) == [-2**31, -7, 0, 1, 1, 1]
    assert list(run("umax", "u32", lambda v: intr("max", v, const("u32", 5)), u)) == [max(int(v), 5) for v in u]
    assert list(run("iclamp", "i32", lambda v: intr("clamp", v, const("i32", -3), const("i32", 3)), i)) == \
        [-3, -3, 0, 1, 3, 3]
    assert list(run("pop", "u32", lambda v: intr("count_ones", v, t="u32"), i, "i32")) == \
        [int(v).bit_count() for v in u]
    assert list(run("lz", "u32", lambda v: intr("leading_zeros", v, t="u32"), u)) == \
        [32 - int(v).bit_length() for v in u]
    assert list(run("tz", "u32", lambda v: intr("trailing_zeros", v, t="u32"), u)) == \
        [(int(v) & -int(v)).bit_length() - 1 if v else 32 for v in u]


def test_extract_and_insert_bits():
    x = np.array([0xF0F0A5C3] * 5, np.uint32)
    off = np.array([0, 4, 28, 8, 0], np.uint32)
    cnt = np.array([8, 4, 4, 0, 32], np.uint32)
    ku = map_kernel("ext", "u32", lambda v, o, c: intr("extract_bits", v, o, c), ["u32", "u32", "u32"])
    assert list(run_map(ku, "u32", x, off, cnt)) == [0xC3, 0xC, 0xF, 0, 0xF0F0A5C3]
    ki = map_kernel("exti", "i32", lambda v, o, c: intr("extract_bits", v, o, c), ["i32", "u32", "u32"])
    assert list(run_map(ki, "i32", x.view(np.int32), off, cnt)) == [-61, -4, -1, 0, 0xF0F0A5C3 - 2**32]
    kins = map_kernel("ins", "u32", lambda v, o, c: intr("insert_bits", v, const("u32", 0x5), o, c),
                      ["u32", "u32", "u32"])
    assert list(run_map(kins, "u32", x, off, cnt)) == [0xF0F0A505, 0xF0F0A553, 0x50F0A5C3, 0xF0F0A5C3, 5]
    with pytest.raises(KernelExecutionError, match="extract_bits: offset \\+ count exceeds 32.*local_index 1"):
        run_map(ku, "u32", x[:2], np.array([0, 29], np.uint32), np.array([32, 4], np.uint32))


# ---------------------------------------------------------------------------------------------------------------
# Atomics: the defined order, with duplicates

ATOMIC_REF = {"add": lambda o, v: o + v, "sub": lambda o, v: o - v, "min": min, "max": max,
              "and": lambda o, v: o & v, "or": lambda o, v: o | v, "xor": lambda o, v: o ^ v,
              "exchange": lambda o, v: v}


def atomic_kernel(op: str, t: str, space: str):
    """olds[g] = atomic op on mem[idx[g]] with val[g] (cmp[g] for compare_exchange); for shared memory the
    array is copied to storage, one slice per workgroup, after a barrier."""
    mem, idx, val, cmp, olds = (buf("mem", t), buf("idx", "u32", "read"), buf("val", t, "read"),
                                buf("cmp", t, "read"), buf("olds", t))
    g, li = var("g", "u32"), var("li", "u32")
    args = [cmp[g], val[g]] if op == "compare_exchange" else [val[g]]
    body = [let("g", gid()), let("li", lidx())]
    if space == "storage":
        body.append(olds.set(g, mem.atomic(op, idx[g], *args)))
    else:
        sh = shared("sh", f"{t}[8]")
        body += [if_(li < 8, [sh.set(li, mem[builtin("workgroup_id") * 8 + li])]), barrier(),
                 olds.set(g, sh.atomic(op, idx[g], *args)), barrier(),
                 if_(li < 8, [mem.set(builtin("workgroup_id") * 8 + li, sh[li])])]
    return kernel(f"atomic_{op}_{space}", body, buffers=[mem, idx, val, cmp, olds], ws=(32, 1, 1),
                  shared_=[] if space == "storage" else [sh])


@pytest.mark.parametrize("space", ["storage", "shared"])
@pytest.mark.parametrize("spread", [3, 8])
@pytest.mark.parametrize("op", list(ATOMIC_REF) + ["compare_exchange"])
def test_atomics_apply_in_lane_order_with_duplicates(op, spread, space, small_batches):
    n, t = 128, "i32"
    rng = np.random.default_rng(11)
    idx = rng.integers(0, spread, n).astype(np.uint32)
    val = rng.integers(-20, 20, n).astype(np.int32)
    cmp = rng.integers(-3, 3, n).astype(np.int32)
    mem0 = rng.integers(-3, 3, 8 * (n // 32)).astype(np.int32)
    mem, olds = mem0.copy(), np.zeros(n, np.int32)
    execute(atomic_kernel(op, t, space), groups(n, 32), [mem, idx, val, cmp, olds], [])
    ref, want_olds = mem0.copy().tolist(), []
    for g in range(n):   # workgroups in order, lanes in order: the global id order of a 1-D grid
        loc = (g // 32 * 8 if space == "shared" else 0) + int(idx[g])
        old = ref[loc]
        want_olds.append(old)
        if op == "compare_exchange":
            ref[loc] = int(val[g]) if old == cmp[g] else old
        else:
            ref[loc] = ATOMIC_REF[op](old, int(val[g]))
    assert list(olds) == want_olds
    assert list(mem) == ref


def test_atomic_counter_and_f32_add_order():
    """Every lane takes a slot from one counter (olds are 0..n-1 in lane order); f32 adds accumulate in that
    order in f32, inside a divergent branch."""
    cnt, slot, acc, val = buf("cnt", "u32"), buf("slot", "u32"), buf("acc", "f32"), buf("val", "f32", "read")
    g = var("g", "u32")
    body = [let("g", gid()), slot.set(g, cnt.atomic("add", 0, 1)),
            if_((g % 3).ne(0), [do(acc.atomic("add", g % 2, val[g]))])]
    k = kernel("counter", body, buffers=[cnt, slot, acc, val])
    n = 64 * 40
    v = (np.random.default_rng(12).standard_normal(n) * 1e4).astype(np.float32)
    c, s, a = np.zeros(1, np.uint32), np.zeros(n, np.uint32), np.zeros(2, np.float32)
    execute(k, groups(n), [c, s, a, v], [])
    assert c[0] == n and np.array_equal(s, np.arange(n))
    want = [np.float32(0), np.float32(0)]
    for j in range(n):
        if j % 3:
            want[j % 2] = np.float32(want[j % 2] + v[j])
    assert list(a) == want


# ---------------------------------------------------------------------------------------------------------------
# Errors

def _raises(k, grid, buffers, scalars=(), **kw) -> str:
    with pytest.raises(KernelExecutionError) as info:
        execute(k, grid, buffers, list(scalars), **kw)
    return str(info.value)


def test_out_of_bounds_read_and_write():
    out, src = buf("out", "f32"), buf("src", "f32", "read")
    i = var("i", "u32")
    k = kernel("oob_read", [let("i", gid()), if_(i < out.len(), [out.set(i, src[i] * 2.0, at=17)])],
               buffers=[out, src])
    msg = _raises(k, groups(100), [np.zeros(100, np.float32), np.zeros(90, np.float32)])
    for part in ["kernel 'oob_read'", f"{SRC}:17", "read of buffer 'src'", "index 90", "length 90",
                 "workgroup (1, 0, 0), local_index 26"]:
        assert part in msg, (part, msg)
    k = kernel("oob_write", [let("i", gid()), out.set(i + 3, 1.0, at=23)], buffers=[out])
    msg = _raises(k, (2, 1, 1), [np.zeros(100, np.float32)])
    for part in ["kernel 'oob_write'", f"{SRC}:23", "write of buffer 'out'", "index 100", "length 100",
                 "workgroup (1, 0, 0), local_index 33"]:
        assert part in msg, (part, msg)


def test_out_of_bounds_shared_and_private():
    sh, pa = shared("sh", "f32[4][8]"), private("pa", "i32[3]")
    li = var("li", "u32")
    k = kernel("oob_sh", [let("li", lidx()), sh.set((li // 8, li % 8), 1.0, at=31)], ws=(64, 1, 1), shared_=[sh])
    assert "index 4 of dimension 0, size 4" in _raises(k, (1, 1, 1), [])
    k = kernel("oob_pa", [let("li", lidx()), pa.set(li % 4, const("i32", 1), at=32)], arrays=[pa])
    msg = _raises(k, (1, 1, 1), [])
    assert f"{SRC}:32" in msg and "private array 'pa'" in msg and "local_index 3" in msg


def test_barrier_reached_by_part_of_a_workgroup():
    li = var("li", "u32")
    k = kernel("bad_barrier", [let("li", lidx()), if_(li < 16, [barrier(at=41)])])
    msg = _raises(k, (2, 1, 1), [])
    assert f"{SRC}:41" in msg and "barrier reached by 16 of the 64" in msg and "control flow" in msg
    k = kernel("returned", [let("li", lidx()), if_(li.eq(5), [ret()]), barrier(at=44)])
    msg = _raises(k, (1, 1, 1), [])
    assert f"{SRC}:44" in msg and "returned before it" in msg and "local_index 5" in msg
    # a barrier that whole workgroups skip is fine
    k = kernel("uniform", [if_(builtin("workgroup_id").eq(1), [barrier()])])
    execute(k, (3, 1, 1), [], [])


def test_subgroup_op_reached_by_part_of_a_subgroup():
    out = buf("out", "i32")
    li = var("li", "u32")
    k = kernel("bad_sg", [let("li", lidx()),
                          if_(li < 40, [out.set(li, intr("subgroup_add", const("i32", 1)), at=52)])],
               buffers=[out])
    msg = _raises(k, (1, 1, 1), [np.zeros(64, np.int32)])
    assert f"{SRC}:52" in msg and "subgroup_add reached by 8 of the 32" in msg
    execute(k, (1, 1, 1), [np.zeros(64, np.int32)], [], subgroup_size=8)   # whole subgroups of 8: fine
    k = kernel("bad_shuffle", [out.set(lidx(), intr("subgroup_shuffle", const("i32", 1), lidx()), at=55)],
               buffers=[out])
    assert "subgroup_shuffle reads lane 32 of a subgroup of 32" in _raises(k, (1, 1, 1), [np.zeros(64, np.int32)])


def test_integer_division_by_zero():
    k = map_kernel("div0", "i32", lambda a, b: a // b, ["i32", "i32"])
    msg = _raises(k, (1, 1, 1), [np.zeros(4, np.int32), np.ones(4, np.int32), np.array([1, 2, 0, 3], np.int32)])
    assert "integer division by zero (floordiv)" in msg and "local_index 2" in msg
    # inactive lanes may divide by zero: only lanes 0..3 run the division
    k = map_kernel("mod0", "i32", lambda a, b: a % b, ["i32", "i32"])
    got = run_map(k, "i32", np.array([7, 8], np.int32), np.array([2, 3], np.int32))
    assert list(got) == [1, 2]


def test_shared_race_detected_in_check_mode():
    sh, out = shared("sh", "u32[64]"), buf("out", "u32")
    li = var("li", "u32")
    # each lane writes its slot, then reads its neighbour's without a barrier
    body = [let("li", lidx()), sh.set(li, li, at=61), out.set(li, sh[(li + 1) % 64], at=62)]
    k = kernel("sh_race", body, buffers=[out], shared_=[sh])
    msg = _raises(k, (1, 1, 1), [np.zeros(64, np.uint32)], check=True)
    assert "data race on shared array 'sh' element [1]" in msg
    assert f"{SRC}:62" in msg and f"wrote it at {SRC}:61" in msg
    execute(k, (1, 1, 1), [np.zeros(64, np.uint32)], [])   # not checked: runs
    fixed = kernel("sh_ok", body[:2] + [barrier()] + body[2:], buffers=[out], shared_=[sh])
    got = np.zeros(64, np.uint32)
    execute(fixed, (1, 1, 1), [got], [], check=True)
    assert np.array_equal(got, (np.arange(64) + 1) % 64)
    # two lanes writing one location in one statement
    k = kernel("sh_ww", [sh.set(lidx() // 2, 1, at=66)], shared_=[sh])
    assert "element [0]" in _raises(k, (1, 1, 1), [], check=True)


def test_storage_races_detected_in_check_mode():
    out = buf("out", "u32")
    g = var("g", "u32")
    k = kernel("st_ww", [let("g", gid()), if_(lidx().eq(0), [out.set(0, g, at=71)])], buffers=[out])
    msg = _raises(k, (3, 1, 1), [np.zeros(1, np.uint32)], check=True)
    assert "data race on buffer 'out' element 0" in msg and "workgroup (1, 0, 0)" in msg and "wrote it" in msg
    # a read of an element that a lane of another workgroup writes
    k = kernel("st_rw", [let("g", gid()), let("x", out[g], at=74), out.set((g + 64) % 128, 5, at=75)],
               buffers=[out])
    msg = _raises(k, (2, 1, 1), [np.zeros(128, np.uint32)], check=True)
    assert f"{SRC}:75" in msg and f"read it at {SRC}:74" in msg
    # inside one workgroup, a storage barrier orders the accesses
    body = [let("g", gid()), out.set(g, g), barrier("storage"), let("x", out[(g + 1) % 64])]
    execute(kernel("st_ok", body, buffers=[out]), (1, 1, 1), [np.zeros(64, np.uint32)], [], check=True)
    # and atomics do not race
    k = kernel("st_atomic", [do(out.atomic("add", 0, 1))], buffers=[out])
    execute(k, (4, 1, 1), [np.zeros(1, np.uint32)], [], check=True)


def test_check_mode_poisons_shared_memory():
    sh, out = shared("sh", "f32[64]"), buf("out", "f32")
    shi, outi = shared("shi", "u32[64]"), buf("outi", "u32")
    k = kernel("poison", [out.set(lidx(), sh[lidx()]), outi.set(lidx(), shi[lidx()])], buffers=[out, outi],
               shared_=[sh, shi])
    f, u = np.zeros(64, np.float32), np.zeros(64, np.uint32)
    execute(k, (1, 1, 1), [f, u], [], check=True)
    assert np.isnan(f).all() and (u == 0xDEADBEEF).all()
    execute(k, (1, 1, 1), [f, u], [])
    assert (f == 0).all() and (u == 0).all()


# ---------------------------------------------------------------------------------------------------------------
# Speed (printed, not asserted)

def test_timing_elementwise_add_16m(capsys):
    n = 1 << 24
    a, b = np.random.default_rng(0).random((2, n), np.float32)
    k = add_assign_kernel()
    execute(k, groups(n), [a, b], [])   # warm-up: compile and first-touch

    def best(fn, reps=3):
        times = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)
    t_interp = best(lambda: execute(k, groups(n), [a, b], []))
    t_numpy = best(lambda: np.add(a, b, out=a))
    with capsys.disabled():
        print(f"\n16M-element f32 add_assign: interpreter {t_interp * 1e3:.1f} ms, numpy `a += b` "
              f"{t_numpy * 1e3:.1f} ms ({t_interp / t_numpy:.1f}x)")
