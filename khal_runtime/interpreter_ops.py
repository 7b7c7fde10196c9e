"""Numeric semantics of the khal IR on numpy values, for the CPU interpreter (`khal_runtime.interpreter`).

Every function here works on *values*: a numpy scalar (the same for every lane: uniform) or an array over the
lanes, always of the exact numpy dtype of the IR type (`ir.NUMPY`). Nothing computes in a wider type and rounds
later unless docs/IR.md asks for it (f16 is computed in f32 and rounded after every operation, which is what
numpy's float16 loops do). Callers run these under `np.errstate(all="ignore")`: integer wrap-around is the defined
semantics, and inactive lanes may hold garbage that must not warn.

The functions never fault. Faults that IR.md makes errors (integer division by zero, bit ranges) are found by
the caller (`divides_integers`, `bits_faults`), which reports them only for active lanes.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np

from . import ir

DTYPE = {t: np.dtype(ir.NUMPY[t]) for t in ir.SCALARS}

Fn = Callable[..., object]


class InvalidIR(ValueError):
    """The IR asks for something the specification does not define (the front end should have rejected it)."""
    located = False   # whether the message already names the kernel and line


def const(t: str, value: object):
    return DTYPE[t].type(value)


def zero(t: str):
    return DTYPE[t].type(0)


def where(cond, a, b):
    """`np.where` that keeps uniform operands uniform (numpy returns a 0-d array for scalars)."""
    return np.where(cond, a, b)[()]


def is_uniform(v) -> bool:
    return not isinstance(v, np.ndarray)


# ---------------------------------------------------------------------------------------------------------------
# Unary and binary operators

def unary_fn(op: str, t: str) -> Fn:
    if op == "neg" and t in ir.NUMERIC:
        return np.negative
    if op == "not" and t == "bool":
        return np.logical_not
    if op == "bit_not" and t in ir.INTS:
        return np.invert
    raise InvalidIR(f"unary {op!r} on {t}")


_SIMPLE = {
    "add": np.add, "sub": np.subtract, "mul": np.multiply,
    "bit_and": np.bitwise_and, "bit_or": np.bitwise_or, "bit_xor": np.bitwise_xor,
    "eq": np.equal, "ne": np.not_equal, "lt": np.less, "le": np.less_equal, "gt": np.greater,
    "ge": np.greater_equal,
}
COMPARISONS = ("eq", "ne", "lt", "le", "gt", "ge")


def binary_fn(op: str, t: str) -> Fn:
    """The function computing `a op b` for operands of type `t` (for shifts: the type of `a`)."""
    if op in ("bit_and", "bit_or", "bit_xor") and t not in ir.INTS + ("bool",):
        raise InvalidIR(f"{op} on {t}")
    if op in ("add", "sub", "mul") and t not in ir.NUMERIC:
        raise InvalidIR(f"{op} on {t}")
    if op in _SIMPLE:
        return _SIMPLE[op]
    if op == "div":
        if t not in ir.FLOATS:
            raise InvalidIR(f"div on {t}: integer division is floordiv")
        return np.true_divide
    if op in ("floordiv", "mod"):
        if t in ir.INTS:   # numpy's integer floor_divide/remainder have Python's semantics
            return np.floor_divide if op == "floordiv" else np.remainder
        if t in ir.FLOATS:  # IR.md defines the float forms through floor(a / b), not Python's fmod-based ones
            return _float_floordiv if op == "floordiv" else _float_mod
    if op in ("shl", "shr") and t in ir.INTS:
        return _shift(np.left_shift if op == "shl" else np.right_shift, t)
    raise InvalidIR(f"binary {op!r} on {t}")


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
    if dst == "bool":
        raise InvalidIR(f"cast {src} -> bool: write `x != 0`")
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


def bitcast_fn(src: str, dst: str) -> Fn:
    if ir.SIZE[src] != ir.SIZE[dst] or "bool" in (src, dst):
        raise InvalidIR(f"bitcast {src} -> {dst}")
    dt = DTYPE[dst]
    return lambda x: x.view(dt)


# ---------------------------------------------------------------------------------------------------------------
# Intrinsics (everything but the subgroup operations, which need the lanes' geometry)

_FLOAT_MATH = {
    "sqrt": np.sqrt, "exp": np.exp, "exp2": np.exp2, "log": np.log, "log2": np.log2, "sin": np.sin, "cos": np.cos,
    "tan": np.tan, "tanh": np.tanh, "floor": np.floor, "ceil": np.ceil, "trunc": np.trunc, "round": np.rint,
    "pow": np.power, "isnan": np.isnan, "isinf": np.isinf,
}
_F64_MATH = ("sqrt", "rsqrt", "floor", "ceil", "trunc", "round", "fma", "isnan", "isinf")


def intrinsic_fn(name: str, t: str, arg_types: list[str]) -> Fn:
    """The function of a (non-subgroup) intrinsic; `t` is the result type."""
    a0 = arg_types[0] if arg_types else None
    if name in _FLOAT_MATH or name in ("rsqrt", "fma"):
        if a0 not in ir.FLOATS:
            raise InvalidIR(f"{name} on {a0}")
        if a0 == "f64" and name not in _F64_MATH:
            raise InvalidIR(f"{name} on f64 (targets have no f64 transcendentals)")
        if name == "rsqrt":
            one = DTYPE[a0].type(1)
            return lambda x: one / np.sqrt(x)
        if name == "fma":
            return _fma64 if a0 == "f64" else _fma_narrow
        return _FLOAT_MATH[name]
    if name in ("abs", "min", "max", "clamp"):
        return _minmax(name, a0)
    if name in ("count_ones", "leading_zeros", "trailing_zeros"):
        if a0 not in ("i32", "u32"):
            raise InvalidIR(f"{name} on {a0}: 32-bit integers only")
        return {"count_ones": _count_ones, "leading_zeros": _leading_zeros,
                "trailing_zeros": _trailing_zeros}[name]
    if name in ("extract_bits", "insert_bits"):
        if a0 not in ("i32", "u32"):
            raise InvalidIR(f"{name} on {a0}: 32-bit integers only")
        return _extract_bits if name == "extract_bits" else _insert_bits
    if name == "half_to_f32":
        return _half_to_f32
    if name == "f32_to_half":
        return _f32_to_half
    raise InvalidIR(f"unknown intrinsic {name!r}")


def bits_faults(name: str, args):
    """Lanes of `extract_bits`/`insert_bits` whose `offset + count` exceeds 32 (None for other intrinsics)."""
    if name not in ("extract_bits", "insert_bits"):
        return None
    offset, count = args[-2], args[-1]
    return offset.astype(np.uint64) + count.astype(np.uint64) > 32


def _minmax(name: str, t: str) -> Fn:
    if t not in ir.NUMERIC:
        raise InvalidIR(f"{name} on {t}")
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


# ---------------------------------------------------------------------------------------------------------------
# Subgroup operations on a (subgroups, subgroup_size) array of lane values; each returns an array of that shape
# (or one value per row, which the caller broadcasts)

SUBGROUP_SHUFFLES = ("subgroup_shuffle", "subgroup_shuffle_xor", "subgroup_shuffle_down", "subgroup_shuffle_up")


def subgroup_fn(name: str, t: str) -> Fn:
    dt = DTYPE[t]
    floats = t in ir.FLOATS
    reductions = {
        "subgroup_add": lambda x: np.add.reduce(x, axis=1, dtype=dt),
        "subgroup_mul": lambda x: np.multiply.reduce(x, axis=1, dtype=dt),
        "subgroup_min": lambda x: (np.fmin if floats else np.minimum).reduce(x, axis=1),
        "subgroup_max": lambda x: (np.fmax if floats else np.maximum).reduce(x, axis=1),
        "subgroup_and": lambda x: np.bitwise_and.reduce(x, axis=1),
        "subgroup_or": lambda x: np.bitwise_or.reduce(x, axis=1),
        "subgroup_xor": lambda x: np.bitwise_xor.reduce(x, axis=1),
        "subgroup_any": lambda x: np.logical_or.reduce(x, axis=1),
        "subgroup_all": lambda x: np.logical_and.reduce(x, axis=1),
        "subgroup_broadcast_first": lambda x: x[:, 0],
    }
    if name in ("subgroup_and", "subgroup_or", "subgroup_xor") and t not in ir.INTS:
        raise InvalidIR(f"{name} on {t}")
    if name in ("subgroup_any", "subgroup_all") and t != "bool":
        raise InvalidIR(f"{name} on {t}")
    if name in reductions:
        reduce = reductions[name]
        return lambda x: np.broadcast_to(reduce(x)[:, None], x.shape)
    if name == "subgroup_inclusive_add":
        return lambda x: np.cumsum(x, axis=1, dtype=dt)
    if name == "subgroup_exclusive_add":
        return _exclusive_add
    raise InvalidIR(f"unknown subgroup operation {name!r}")


def _exclusive_add(x):
    # shifting the inclusive scan keeps the same additions in the same order as the inclusive one
    out = np.zeros_like(x)
    out[:, 1:] = np.cumsum(x[:, :-1], axis=1, dtype=x.dtype)
    return out


def shuffle_source(name: str, lane: np.ndarray, arg, size: int) -> np.ndarray:
    """For each lane (`lane`: the (subgroups, size) lane ids), the lane it reads from. Out-of-range sources of
    `subgroup_shuffle` and `subgroup_shuffle_xor` are returned as they are, for the caller to report; the shifts
    read their own value instead (IR.md)."""
    arg = np.broadcast_to(arg, lane.shape).astype(np.int64)
    if name == "subgroup_shuffle":
        return arg
    if name == "subgroup_shuffle_xor":
        return lane ^ arg
    src = lane + arg if name == "subgroup_shuffle_down" else lane - arg
    return where((src < 0) | (src >= size), lane, src)


# ---------------------------------------------------------------------------------------------------------------
# Atomics: apply one statement's operations in order, duplicates included, and return the old values

ATOMIC_OPS = ("add", "sub", "min", "max", "and", "or", "xor", "exchange", "compare_exchange")
_COMBINE = {"add": np.add, "sub": np.subtract, "and": np.bitwise_and, "or": np.bitwise_or,
            "xor": np.bitwise_xor, "min": np.minimum, "max": np.maximum}


def check_atomic(op: str, t: str) -> None:
    if op not in ATOMIC_OPS:
        raise InvalidIR(f"unknown atomic {op!r}")
    if t not in ("i32", "u32") and not (t == "f32" and op == "add"):
        raise InvalidIR(f"atomic {op} on {t}")


def atomic_apply(op: str, mem: np.ndarray, locs: np.ndarray, vals: np.ndarray, cmp: np.ndarray | None):
    """Apply `mem[locs[k]] = op(mem[locs[k]], vals[k])` for k in order and return the old values.

    Without duplicate locations this is one vectorised step. With duplicates, the operations on one location
    form a sequential scan: done per location with numpy's `accumulate` when there are few distinct locations,
    otherwise in rounds (the r-th operation on every location at once), whichever loops less.
    """
    order = np.argsort(locs, kind="stable")
    sorted_locs = locs[order]
    starts = np.flatnonzero(np.r_[True, sorted_locs[1:] != sorted_locs[:-1]])
    if len(starts) == len(locs):
        return _atomic_round(op, mem, locs, vals, cmp)
    lengths = np.diff(np.r_[starts, len(locs)])
    if op != "compare_exchange" and len(starts) <= lengths.max():
        return _atomic_scans(op, mem, order, sorted_locs, starts, vals)
    rank = np.arange(len(locs)) - np.repeat(starts, lengths)
    old = np.empty_like(vals)
    for r in range(lengths.max()):
        sel = order[rank == r]   # at most one operation per location: a plain vectorised step
        old[sel] = _atomic_round(op, mem, locs[sel], vals[sel], None if cmp is None else cmp[sel])
    return old


def _atomic_round(op, mem, locs, vals, cmp):
    old = mem[locs]
    if op == "exchange":
        new = vals
    elif op == "compare_exchange":
        new = np.where(old == cmp, vals, old)
    else:
        new = _COMBINE[op](old, vals)
    mem[locs] = new
    return old


def _atomic_scans(op, mem, order, sorted_locs, starts, vals):
    old = np.empty_like(vals)
    bounds = np.r_[starts, len(order)]
    for s, e in itertools.pairwise(bounds):
        loc, lanes = sorted_locs[s], order[s:e]
        v = vals[lanes]
        if op == "exchange":
            seq = np.concatenate(([mem[loc]], v))
        else:
            seq = _COMBINE[op].accumulate(np.concatenate(([mem[loc]], v)), dtype=mem.dtype)
        old[lanes] = seq[:-1]
        mem[loc] = seq[-1]
    return old
