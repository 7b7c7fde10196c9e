"""The IR's types: scalar type names and their sizes, array types, vector types, and the exact value rules
(rounding, bit casts, integer ranges) that the front end's constant folding and the interpreter share.

Types are strings: a scalar (`"f32"`), an array (`"f32[16][17]"`, shared and private memory only), a vector
(`"u32x4"`: the value of a vector load, held in a local and read by field) or the name of a struct declared in
`Kernel.structs`.
"""

from __future__ import annotations

import math
import re
import struct
from typing import Any

SCALARS = ("bool", "i32", "u32", "i64", "u64", "f16", "f32", "f64")
INTS = ("i32", "u32", "i64", "u64")
SIGNED = ("i32", "i64")
FLOATS = ("f16", "f32", "f64")
NUMERIC = INTS + FLOATS
SIZE = {"bool": 4, "i32": 4, "u32": 4, "i64": 8, "u64": 8, "f16": 2, "f32": 4, "f64": 8}
BITS = {t: 8 * n for t, n in SIZE.items()}
# vector types -> (element type, lanes); a vector's lanes are its fields `x y z w`. The language has no vector
# values: the front end unpacks a vector load into scalars at once (`a, b, c, d = load_u32x4(words, i)`).
VECTORS = {"u32x4": ("u32", 4)}
VECTOR_FIELDS = "xyzw"
# numpy dtype names, for the interpreter and the host side (bool travels as a u32 in buffers and parameters)
NUMPY = {"bool": "bool", "i32": "int32", "u32": "uint32", "i64": "int64", "u64": "uint64",
         "f16": "float16", "f32": "float32", "f64": "float64"}
# `struct`-module characters (standard sizes); bool travels as a u32 holding 0 or 1
STRUCT_CODE = {"bool": "I", "i32": "i", "u32": "I", "i64": "q", "u64": "Q", "f16": "e", "f32": "f", "f64": "d"}

_ARRAY = re.compile(r"^([a-z0-9]+)((?:\[\d+\])+)$")


def array_type(elem: str, shape: tuple[int, ...]) -> str:
    return elem + "".join(f"[{n}]" for n in shape)


def parse_array(t: str) -> tuple[str, tuple[int, ...]] | None:
    """`"f32[16][17]"` -> `("f32", (16, 17))`; None when `t` is not an array type."""
    m = _ARRAY.match(t)
    if not m:
        return None
    return m.group(1), tuple(int(n) for n in re.findall(r"\d+", m.group(2)))


def is_int(t: str) -> bool:
    return t in INTS


def round_float(v: float, t: str) -> float:
    """`v` rounded to the float type `t` (to nearest even; overflow gives infinity)."""
    if t == "f64" or not math.isfinite(v):
        return v
    fmt = "<" + STRUCT_CODE[t if t == "f32" else "f16"]
    try:
        return struct.unpack(fmt, struct.pack(fmt, v))[0]
    except OverflowError:
        return math.copysign(math.inf, v)


_PACK = {t: "<" + code for t, code in STRUCT_CODE.items() if t != "bool"}


def bitcast_value(value: Any, frm: str, to: str) -> Any:
    """The value of type `to` with the bits of `value` of type `frm` (types of one size)."""
    return struct.unpack(_PACK[to], struct.pack(_PACK[frm], value))[0]


def int_range(t: str) -> tuple[int, int]:
    bits = BITS[t]
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if t in SIGNED else (0, (1 << bits) - 1)
