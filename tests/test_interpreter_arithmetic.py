"""Tests of the CPU interpreter (khal_runtime.interpreter) against numpy and Python, on kernels built by hand with
interpreter_kit.py's builder: the arithmetic of docs/IR.md. Integer and float division, wrapping, shifts, f16
rounding, casts, 64-bit types and the intrinsics.
"""

from __future__ import annotations

from fractions import Fraction

import interpreter_kit
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from interpreter_kit import (
    X,
    const,
    intr,
    map_kernel,
    run_map,
    select,
)

from khal_runtime import ir
from khal_runtime.interpreter import KernelExecutionError

# the kit's fixtures: numpy's floating-point warnings off in every test (autouse)
quiet_references = interpreter_kit.quiet_references


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
