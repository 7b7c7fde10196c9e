"""vortx reductions against numpy on every backend: sum, prod, min, max and sqnorm of f32, i32 and u32 tensors,
whole or along an axis, with keepdims, over views that are read in place (transposed, sliced, strided,
broadcast) or copied first, at odd sizes, sizes that take several passes, and empty ones; and their errors. The
planner's default choices, and choices that cut every axis into many short pieces (many passes, a thread per
row, a piece per few threads), must give the same results."""

from __future__ import annotations

import re

import numpy as np
import pytest
from cases.vortx_reduce import values

import vortx as vx
from vortx.devices import Device
from vortx.reduce import OPS, REDUCE_AXIS, REDUCE_ROWS, TUNING, Tuning, plan, reduce

DTYPES = {"f32": np.float32, "i32": np.int32, "u32": np.uint32}
UFUNC = {"sum": np.add, "prod": np.multiply, "min": np.minimum, "max": np.maximum, "sqnorm": np.add}


# the defaults, and a plan that cuts everything it can: pieces of one step, a pass per 64 partials
PLANS = {"default": Tuning(), "many pieces": Tuning(groups=1 << 20, axis_groups=1 << 20, per_thread=2, min_split=1)}


@pytest.fixture
def dev(backend) -> Device:
    return vx.device(backend.name)


@pytest.fixture(params=PLANS)
def planned(request, monkeypatch) -> str:
    """Reductions under each plan of PLANS (the planner reads the fields of TUNING)."""
    for name, value in vars(PLANS[request.param]).items():
        monkeypatch.setattr(TUNING, name, value)
    return request.param


def data(shape: tuple[int, ...], t: str, op: str, seed: int = 0) -> np.ndarray:
    """Full-range integers (sums and products wrap), floats in [-4, 4], near-1 factors for float products."""
    size = int(np.prod(shape))
    return values(np.random.default_rng(seed + size), size, t, op).reshape(shape)


def check(t: vx.Tensor, x: np.ndarray, op: str, axis: int | None = None, keepdims: bool = False) -> None:
    """`op` of the tensor `t` equals numpy's on its values `x`, in `x`'s dtype (integers wrapped); float sums may
    differ by rounding: 1e-5 of the sum of magnitudes, and float products by 1e-4 of their value."""
    got = reduce(t, op, axis, keepdims).numpy()
    wide = x.astype(np.float64) if x.dtype == np.float32 else x
    if op == "sqnorm":
        wide = wide * wide
    want = UFUNC[op].reduce(wide, axis=axis, keepdims=keepdims, dtype=wide.dtype)
    assert got.shape == want.shape and got.dtype == x.dtype, (op, axis, got.shape, got.dtype, want.shape)
    if x.dtype != np.float32 or op in ("min", "max"):
        np.testing.assert_array_equal(got, want.astype(x.dtype), err_msg=f"{op} along {axis}")
        return
    bound = 1e-4 * np.abs(want) if op == "prod" else 1e-5 * np.add.reduce(np.abs(wide), axis, keepdims=keepdims)
    assert np.all(np.abs(got - want) <= bound), f"{op} along {axis}: got {got}, expected {want}"


# (shape, axis): whole tensors, rows long enough for the run kernel, short rows and inner axes (a thread per
# output), odd sizes, and more than one piece per row or column
SHAPES = [((1,), None), ((7,), None), ((7,), 0), ((4097,), None), ((3, 5), None), ((3, 5), 0), ((3, 5), 1),
          ((33, 300), 1), ((300, 33), 0), ((2, 3, 4, 5), None), ((2, 3, 4, 5), 0), ((2, 3, 4, 5), 2),
          ((2, 3, 4, 5), -1), ((5, 9000), 1), ((130, 2, 41), 0)]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("t", DTYPES)
def test_reductions_match_numpy(dev, planned, t, op):
    for shape, axis in SHAPES:
        x = data(shape, t, op)
        check(vx.tensor(x, device=dev), x, op, axis)
    x = data((2, 3, 4), t, op)
    for axis in (None, 1):
        check(vx.tensor(x, device=dev), x, op, axis, keepdims=True)


@pytest.mark.parametrize("op", OPS)
def test_views_in_place_and_copied(dev, planned, op):
    for t in ("f32", "i32"):
        x = data((6, 8, 300), t, op)
        base = vx.tensor(x, device=dev)
        views = [
            (base.transpose(0, 2), x.swapaxes(0, 2)),             # transposed: reduce across the leading stride
            (base[:, 1:7, 3:290], x[:, 1:7, 3:290]),             # sliced: offset and row pitch
            (base[::2, ::3, ::5], x[::2, ::3, ::5]),             # strided along every axis
            (base.permute(2, 0, 1), x.transpose(2, 0, 1)),       # permuted: merges for a full reduction
            (base[1, :, 7].broadcast_to(5, 8), np.broadcast_to(x[1, :, 7], (5, 8))),    # stride 0
        ]
        for view, values_ in views:
            for axis in (None, *range(view.ndim)):
                check(view, values_, op, axis)
        check(base.T[:, 2], x.T[:, 2], op, 1)                   # a 2-D transposed slice


@pytest.mark.parametrize("t", DTYPES)
def test_sizes_over_several_passes(dev, planned, t):
    x = data((10**6 + 3,), t, "sum")
    check(vx.tensor(x, device=dev), x, "sum")                 # 489 pieces, then one
    check(vx.tensor(x, device=dev)[::3], x[::3], "max")       # a strided run
    y = data((2, 20_000, 3), t, "sqnorm")
    check(vx.tensor(y, device=dev), y, "sqnorm", 1)
    z = data((3, 100_001), t, "min")
    check(vx.tensor(z, device=dev), z, "min", 1)


# rows of every length class (a thread per row, a few threads, a workgroup, pieces), primes and 2^k +- 1, and
# inner sizes below, at and past a tile of 32
EDGE_ROWS = [(1, 1), (5, 1), (3, 2), (1000, 7), (17, 63), (4096, 64), (9, 65), (2, 1023), (3, 1024), (1, 1025),
             (2, 4097), (1, 65_537), (1, 131_071)]
EDGE_AXES = [(1, 2), (7, 31), (64, 32), (3, 33), (129, 5), (1025, 3), (2, 4097)]


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("t", DTYPES)
def test_edge_sizes(dev, planned, t, op):
    for rows, n in EDGE_ROWS:
        if t == "f32" and op == "prod" and n > 5000:
            continue                    # a product of that many factors in [0.9, 1.1] underflows f32
        x = data((rows, n), t, op)
        check(vx.tensor(x, device=dev), x, op, 1)
        if rows == 1:
            check(vx.tensor(x, device=dev), x, op)
    for n, inner in EDGE_AXES:
        x = data((2, n, inner), t, op)
        check(vx.tensor(x, device=dev), x, op, 1)


def test_plans_of_the_benchmarked_shapes():
    """The shapes of benchmarks/vortx_ops with the default tuning: a full reduction in two passes, rows of 64 and
    1024 and columns in one, with TUNING.per_thread elements per thread for short rows (workgroups of 256)."""
    n = 1 << 24
    family, chunks, piece, lane_bits, groups = plan(1, n, 1, Tuning())
    assert family is REDUCE_ROWS and TUNING.groups // 2 < chunks == groups <= TUNING.groups and piece * chunks >= n
    assert plan(1, chunks, 1, Tuning())[1] == 1
    for row in 64, 1024:
        lanes = row // TUNING.per_thread
        groups = n // row // (256 // lanes)
        assert plan(n // row, row, 1, Tuning()) == (REDUCE_ROWS, 1, row, lanes.bit_length() - 1, groups)
    family, chunks, piece, _, groups = plan(1, 1024, n // 1024, Tuning())
    assert family is REDUCE_AXIS and groups >= TUNING.axis_groups and chunks * piece >= 1024
    assert plan(1, chunks, n // 1024, Tuning())[1] == 1


@pytest.mark.slow
def test_grids_past_65535_workgroups(dev, monkeypatch):
    """WebGPU dispatches at most 65,535 workgroups along x; the runtime folds larger grids (docs/IR.md, ABI)."""
    monkeypatch.setattr(TUNING, "per_thread", 1)             # a thread per element: a workgroup per row of 256
    x = data((65_600, 256), "i32", "sum")
    assert plan(65_600, 256, 1)[-1] == 65_600
    check(vx.tensor(x, device=dev), x, "sum", 1)
    y = data((2, 2_100_000), "i32", "max")
    check(vx.tensor(y, device=dev), y, "max", 0)              # 65,625 tiles of 32 inner indices


def test_integers_wrap_around(dev):
    big = np.full(5, 2**31 - 1, np.int32)
    assert vx.tensor(big, device=dev).sum().item() == np.sum(big, dtype=np.int32) == 2**31 - 5
    assert vx.tensor(big, device=dev).sqnorm().item() == 5
    u = np.array([2**16, 2**16 + 1, 3], np.uint32)
    assert vx.tensor(u, device=dev).prod().item() == np.prod(u, dtype=np.uint32) == 3 * 2**16


def test_empty_reductions(dev):
    for shape in ((0,), (2, 0, 3)):
        e = vx.zeros(shape, device=dev)
        assert e.sum().item() == 0 and e.sqnorm().item() == 0 and e.prod().item() == 1
        with pytest.raises(ValueError, match=re.escape(f"vortx.min: the reduction of the whole tensor of shape "
                                                       f"{shape} has no elements, and min has no identity")):
            e.min()
    e = vx.zeros((3, 0), vx.i32, device=dev)
    check(e, np.zeros((3, 0), np.int32), "sum", 1)
    check(e, np.zeros((3, 0), np.int32), "prod", 1, keepdims=True)
    check(e, np.zeros((3, 0), np.int32), "max", 0)           # nothing to reduce into: an empty result
    with pytest.raises(ValueError, match=r"vortx.max: the reduction along axis 1 of shape \(3, 0\) has no elements"):
        e.max(axis=1)


def test_rank_zero_and_determinism(dev):
    scalar = vx.tensor(np.float32(2.5), device=dev)
    assert scalar.sum().shape == () and scalar.sqnorm().item() == 6.25
    assert scalar.max(keepdims=True).shape == ()
    x = data((100_003,), "f32", "sum")
    t = vx.tensor(x, device=dev)
    assert t.sum().numpy().tobytes() == t.sum().numpy().tobytes()     # partials in a fixed order, no float atomics


def test_errors_name_the_operation_and_shapes(dev):
    a = vx.zeros((2, 3), device=dev)
    with pytest.raises(vx.ShapeError, match=r"vortx.max: axis 2 is out of range for a tensor of shape \(2, 3\) "
                                            r"\(rank 2\)"):
        a.max(axis=2)
    with pytest.raises(vx.ShapeError, match=r"vortx.sum: axis -3 is out of range"):
        a.sum(axis=-3)
    with pytest.raises(vx.ShapeError, match=r"vortx.sum: axis 0 is out of range for a tensor of shape \(\) "):
        vx.tensor(np.float32(1), device=dev).sum(axis=0)
    with pytest.raises(TypeError, match=r"vortx.prod: axis must be an int or None, not 1.5"):
        a.prod(axis=1.5)
    with pytest.raises(TypeError, match=r"vortx.sqnorm: not available for f16 tensors .* convert with .to"):
        vx.zeros(4, vx.f16, device=dev).sqnorm()
    with pytest.raises(ValueError, match=r"vortx.reduce: unknown reduction 'mean'"):
        reduce(a, "mean")


def test_the_tuning_sweep_runs_and_restores_the_defaults(capsys):
    import benchmarks.reduce_sweep

    before = vars(TUNING).copy()
    assert benchmarks.reduce_sweep.main(["--backend", "cpu", "--elements", "8192", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert vars(TUNING) == before
    assert len(re.findall(r" best +\d+ at \d+\.\d\dx of the buffer copy", out)) == len(benchmarks.reduce_sweep.SHAPES)
    assert re.search(r"Tuning\(groups=\d+, per_thread=\d+, axis_groups=\d+\)", out), out
