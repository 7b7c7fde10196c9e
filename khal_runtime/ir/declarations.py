"""The declarations part of `verify`: a kernel's workgroup size, buffers, parameters, structs, shared arrays and the
types of each function's parameters, locals and result. `error(message)` makes the located `InvalidIR`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from . import nodes as n
from .ops import ACCESS, MAX_INVOCATIONS
from .types import NUMERIC, SCALARS, VECTORS, parse_array

# types a parameter or struct field may have: f16 does not travel in push constants or kernel arguments
PARAMETER_TYPES = tuple(t for t in SCALARS if t != "f16")

Error = Callable[[str], Exception]


def check_kernel_declarations(k: n.Kernel, error: Error) -> None:
    ws = k.workgroup_size
    if len(ws) != 3 or not all(isinstance(d, int) and d >= 1 for d in ws):
        raise error(f"workgroup size {ws!r} is not three positive integers")
    if math.prod(ws) > MAX_INVOCATIONS:
        raise error(f"workgroup size {ws!r} has {math.prod(ws)} invocations, more than {MAX_INVOCATIONS}")
    seen: dict[str, str] = {}
    for what, names in (("buffer", [b.name for b in k.buffers]), ("parameter", [s.name for s in k.scalars]),
                        ("shared array", list(k.shared)), ("helper", [f.name for f in k.functions])):
        for name in names:
            if name in seen:
                raise error(f"{what} {name!r} has the name of a {seen[name]}")
            seen[name] = what
    for i, b in enumerate(k.buffers):
        if b.elem not in NUMERIC:
            raise error(f"buffer {b.name!r} has element type {b.elem!r}; buffers hold numeric types")
        if b.access not in ACCESS:
            raise error(f"buffer {b.name!r} has access {b.access!r}, not one of {', '.join(ACCESS)}")
        if b.binding != i:
            raise error(f"buffer {b.name!r} is bound at {b.binding}, but it is buffer {i}")
    for name, fields in k.structs.items():
        if len({f for f, _ in fields}) != len(fields):
            raise error(f"struct {name} has two fields of one name")
        for f, t in fields:
            if t not in PARAMETER_TYPES:
                raise error(f"field {f!r} of struct {name} has type {t!r}; fields have the types "
                            f"{', '.join(PARAMETER_TYPES)}")
    for s in k.scalars:
        check_value_type(k, s.type, f"parameter {s.name!r}", error, PARAMETER_TYPES)
    for name, t in k.shared.items():
        check_array_type(t, f"shared array {name!r}", error)
    if k.params and sorted(k.params) != sorted([b.name for b in k.buffers] + [s.name for s in k.scalars]):
        raise error(f"the parameter names {k.params} are not those of the buffers and parameters")


def check_function_declarations(k: n.Kernel, params: dict[str, str], locals_: dict[str, str], ret: str | None,
                                error: Error) -> None:
    for name, t in params.items():
        check_value_type(k, t, f"parameter {name!r}", error)
    for name, t in locals_.items():
        if name in params and params[name] != t:
            raise error(f"local {name!r} is {t}, but the parameter of that name is {params[name]}")
        if parse_array(t):
            check_array_type(t, f"private array {name!r}", error)
        elif t not in VECTORS:             # a local may hold a vector (the value of a vector load)
            check_value_type(k, t, f"local {name!r}", error)
    if ret not in (None, "void"):
        check_value_type(k, ret, "the return value", error)


def check_value_type(k: n.Kernel, t: str, what: str, error: Error, scalars: Sequence[str] = SCALARS) -> None:
    if t not in scalars and t not in k.structs:
        raise error(f"{what} has type {t!r}, not {'a' if scalars is SCALARS else 'a parameter'} scalar type or a "
                    "struct of the kernel")


def check_array_type(t: str, what: str, error: Error) -> None:
    arr = parse_array(t)
    if arr is None or arr[0] not in SCALARS or 0 in arr[1]:
        raise error(f"{what} has type {t!r}, not an array of a scalar type")
