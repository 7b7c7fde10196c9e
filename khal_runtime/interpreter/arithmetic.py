"""Numeric semantics of the khal IR's operators, conversions and intrinsics on numpy values, for the CPU
interpreter (subgroup operations and atomics have modules of their own).

Every function here works on *values*: a numpy scalar (the same for every lane: uniform) or an array over the
lanes, always of the exact numpy dtype of the IR type (`ir.NUMPY`). Nothing computes in a wider type and rounds
later unless docs/IR.md asks for it (f16 is computed in f32 and rounded after every operation, which is what
numpy's float16 loops do). Callers run these under `np.errstate(all="ignore")`: integer wrap-around is the defined
semantics, and inactive lanes may hold garbage that must not warn. The kernel has been verified (`ir.verify`), so
every operation asked for is one that the table of operations allows on its types.

The functions never fault. Faults that IR.md makes errors (integer division by zero, bit ranges) are found by
the caller (`divides_integers`, `bits_faults`), which reports them only for active lanes.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from khal_runtime import ir

from .values import DTYPE, where

Fn = Callable[..., object]


# ---------------------------------------------------------------------------------------------------------------
# Unary and binary operators

UNARY = {"neg": np.negative, "not": np.logical_not, "bit_not": np.invert}


_SIMPLE = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply,
    "bit_and": np.bitwise_and, "bit_or": np.bitwise_or, "bit_xor": np.bitwise_xor,
    "eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
    "ge": np.greater_equal,
}


def binary_fn(op: str, t: str) -> Fn:
    """The function computing `a op b` for operands of type `t` (for shifts: the type of `a`); `and` and `or`
    short-circuit, which the caller does."""
    if op in _SIMPLE:
        return _SIMPLE[op]
    if op == "div":
        return np.true_divide
    if op in ("floordiv", "mod"):
        if t in ir.INTS:   # numpy's integer floor_divide/remainder have Python's semantics
            return np.floor_divide if op == "floordiv" else np.remainder
        # IR.md defines the float forms through floor(a / b), not Python's fmod-based ones
        return _float_floordiv if op == "floordiv" else _float_mod
    return _shift(np.left_shift if op == "shl" else np.right_shift, t)


def divides_integers(op: str, t: str) -> bool:
    """Whether `op` on `t` is an integer division, whose zero divisor is an error in the interpreter."""
    return op in ("floordiv", "mod") and t in ir.INTS


def _float_floordiv(a, b):
    return np.floor(a / b)


def _float_mod(a, b):
    return a - b * np.floor(a / b)


def _shift(fn: Fn, t: str) -> Fn:
    dt, low = DTYPE[t], ir.BITS[t] - 1

    def shift(a, amount):
        # the amount is taken modulo the width; masking in the amount's own type reads negative amounts as
        # their two's complement, which is the modulo
        amount = np.bitwise_and(amount, amount.dtype.type(low)).astype(dt)
        return fn(a, amount)
    return shift


# ---------------------------------------------------------------------------------------------------------------
# Conversions

def cast_fn(src: str, dst: str) -> Fn:
    if src == dst:
        return lambda x: x
    if src in ir.FLOATS and dst in ir.INTS:
        return _float_to_int(dst)
    dt = DTYPE[dst]
    # integer -> integer wraps (two's complement), int/bool -> float and float -> float round to nearest even:
    # exactly what numpy's astype does
    return lambda x: x.astype(dt)


def _float_to_int(dst: str) -> Fn:
    """Truncate toward zero, saturating at the type's range, NaN -> 0 (CUDA's rule; IR.md)."""
    dt = DTYPE[dst]
    lo, hi = ir.int_range(dst)
    over_at, under_at = float(hi + 1), float(lo)   # powers of two (or 0): exact as floats

    def convert(x):
        t = np.trunc(x.astype(np.float64))         # exact for every float type
        over, under = t >= over_at, t < under_at
        safe = where(over | under | np.isnan(t), 0.0, t).astype(dt)
        return where(over, dt.type(hi), where(under, dt.type(lo), safe))
    return convert


def bitcast_fn(dst: str) -> Fn:
    dt = DTYPE[dst]
    return lambda x: x.view(dt)


# ---------------------------------------------------------------------------------------------------------------
# Intrinsics (everything but the subgroup operations, which need the lanes' geometry)

_FLOAT_MATH = {
    "sqrt": np.sqrt, "exp": np.exp, "exp2": np.exp2, "log": np.log, "log2": np.log2, "sin": np.sin, "cos": np.cos,
    "tan": np.tan, "tanh": np.tanh, "floor": np.floor, "ceil": np.ceil, "trunc": np.trunc, "round": np.rint,
    "pow": np.power, "isnan": np.isnan, "isinf": np.isinf,
}


def intrinsic_fn(name: str, operand: str) -> Fn:
    """The function of a (non-subgroup) intrinsic on the operand type `operand` (its first argument's)."""
    if name == "rsqrt":
        one = DTYPE[operand].type(1)
        return lambda x: one / np.sqrt(x)
    if name == "fma":
        return _fma64 if operand == "f64" else _fma_narrow
    if name in ("abs", "min", "max", "clamp"):
        return _minmax(name, operand)
    return _FLOAT_MATH.get(name) or _BITS[name]


def bits_faults(name: str, args):
    """Lanes of `extract_bits`/`insert_bits` whose `offset + count` exceeds 32 (None for other intrinsics)."""
    if name not in ("extract_bits", "insert_bits"):
        return None
    offset, count = args[-2], args[-1]
    return offset.astype(np.uint64) + count.astype(np.uint64) > 32


def _minmax(name: str, t: str) -> Fn:
    # fmin/fmax return the non-NaN operand (IR.md: the interpreter behaves like CUDA's fminf)
    lo, hi = (np.fmin, np.fmax) if t in ir.FLOATS else (np.minimum, np.maximum)
    return {"abs": np.abs, "min": lo, "max": hi, "clamp": lambda x, a, b: lo(hi(x, a), b)}[name]


def _fma_narrow(a, b, c):
    """Fused a*b+c for f16 and f32, correctly rounded: the product is exact in f64, the sum is rounded to odd
    in f64 (TwoSum gives its exact error), and rounding that to the narrow type is then correct (Boldo and
    Melquiond: round-to-odd at p >= q + 2 bits, then to nearest at q bits, equals one rounding)."""
    dt = a.dtype
    p = a.astype(np.float64) * b.astype(np.float64)
    c = c.astype(np.float64)
    s = p + c
    bb = s - p
    err = (p - (s - bb)) + (c - bb)
    even = (s.view(np.uint64) & np.uint64(1)) == 0
    fix = np.isfinite(s) & (err != 0) & even
    s = where(fix, np.nextafter(s, where(err > 0, np.inf, -np.inf)), s)
    return s.astype(dt)


def _fma64(a, b, c):
    """Fused a*b+c for f64 from an exact product (Dekker) and an exact sum (TwoSum); the final addition of the
    two error terms rounds, so in rare double-rounding cases the result is one ulp from the correct one."""
    p, e = _two_prod(a, b)
    s = p + c
    bb = s - p
    t = (p - (s - bb)) + (c - bb)
    return where(np.isfinite(p), s + (t + e), p + c)


def _two_prod(a, b):
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def _split(x):
    c = 134217729.0 * x   # 2**27 + 1: Veltkamp's split into two 26-bit halves
    hi = c - (c - x)
    return hi, x - hi


def _as_u32(x):
    return x.view(np.uint32) if x.dtype == np.int32 else x


def _bit_length(u):
    """Bits needed for each u32 value (0 for 0): frexp is exact on values that fit in a float64."""
    return np.frexp(u.astype(np.float64))[1].astype(np.uint32)


def _count_ones(x):
    return np.bitwise_count(_as_u32(x)).astype(np.uint32)


def _leading_zeros(x):
    return np.uint32(32) - _bit_length(_as_u32(x))


def _trailing_zeros(x):
    u = _as_u32(x)
    lowest = u & np.negative(u)
    return where(u == 0, np.uint32(32), _bit_length(lowest) - np.uint32(1))


def _field_mask(count):
    return (np.left_shift(np.uint64(1), count.astype(np.uint64)) - np.uint64(1))


def _extract_bits(x, offset, count):
    u = _as_u32(x).astype(np.uint64)
    field = np.right_shift(u, offset.astype(np.uint64)) & _field_mask(count)
    if x.dtype == np.int32:   # sign-extend from bit count-1
        sign = np.left_shift(np.uint64(1), np.maximum(count, np.uint32(1)).astype(np.uint64) - np.uint64(1))
        field = where((count > 0) & ((field & sign) != 0), field | ~_field_mask(count), field)
    return field.astype(np.uint32).astype(x.dtype)


def _insert_bits(base, insert, offset, count):
    off = offset.astype(np.uint64)
    mask = np.left_shift(_field_mask(count), off)
    b = _as_u32(base).astype(np.uint64)
    i = np.left_shift(_as_u32(insert).astype(np.uint64), off)
    return ((b & ~mask) | (i & mask)).astype(np.uint32).astype(base.dtype)


def _half_to_f32(bits):
    return (bits & np.uint32(0xFFFF)).astype(np.uint16).view(np.float16).astype(np.float32)


def _f32_to_half(x):
    return x.astype(np.float16).view(np.uint16).astype(np.uint32)


def _dot4(signed: bool) -> Fn:
    """acc + the dot product of the four bytes of `a` and `b` (signed or unsigned), wrapping to 32 bits."""
    def dot(a, b, acc):
        total = acc.astype(np.int64)
        for k in range(4):
            shift = np.uint32(8 * k)
            x = ((a >> shift) & np.uint32(0xFF)).astype(np.int64)
            y = ((b >> shift) & np.uint32(0xFF)).astype(np.int64)
            if signed:
                x, y = (x ^ 0x80) - 0x80, (y ^ 0x80) - 0x80
            total = total + x * y
        return (total & 0xFFFFFFFF).astype(np.uint32).astype(acc.dtype)
    return dot


_BITS: dict[str, Fn] = {"count_ones": _count_ones, "leading_zeros": _leading_zeros, "trailing_zeros": _trailing_zeros,
                        "extract_bits": _extract_bits, "insert_bits": _insert_bits, "half_to_f32": _half_to_f32,
                        "f32_to_half": _f32_to_half, "dot4_i8": _dot4(True), "dot4_u8": _dot4(False)}
