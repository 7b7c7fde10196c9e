"""Parameter layouts shared by the renderers and the host: WebGPU push constants ("immediates") and CUDA kernel
arguments (docs/IR.md, section ABI).

Everything returned here is plain data (lists and dicts of str and int) so that it goes into the JSON manifest as it
is. A parameter entry is

    {"name": str, "kind": "grid" | "scalar" | "struct" | "buffer" | "len", "type": str,
     "offset": int, "size": int, "format": str}

plus `"fields": [{"name", "type", "offset"}, ...]` (offsets inside the struct) for a struct. `format` is a sequence
of `struct`-module characters that packs the parameter's value(s) (a struct's fields in order, with its inner and
trailing padding as `x`), to be used in standard-size mode; `pack_format` joins a whole list of entries, gaps
included, into one format string for `struct.pack`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from khal_runtime import ir

# struct-module characters of the parameter types (every scalar but f16); bool travels as a u32 holding 0 or 1
FORMAT = {t: code for t, code in ir.STRUCT_CODE.items() if t != "f16"}
POINTER_SIZE = 8

# The hidden first push constant: the logical grid (x, y, z) and the fold width (0 when the grid is not folded).
GRID = "khal_grid"


def _align(offset: int, alignment: int) -> int:
    return -(-offset // alignment) * alignment


def _pad(nbytes: int) -> str:
    return "" if nbytes == 0 else "x" if nbytes == 1 else f"{nbytes}x"


def _padded(parts: Iterable[tuple[int, str, int]], size: int) -> str:
    """The formats of (offset, format, size) parts in order, with `x` padding for the gaps and up to `size`."""
    fmt, end = "", 0
    for offset, part, nbytes in parts:
        fmt += _pad(offset - end) + part
        end = offset + nbytes
    return fmt + _pad(size - end)


def struct_layout(kernel: ir.Kernel, name: str) -> tuple[list[dict[str, Any]], int, int]:
    """(fields with their offsets, size, alignment) of a struct: the C rules, which equal std430 for scalars."""
    fields, offset, alignment = [], 0, 1
    for field, t in kernel.structs[name]:
        if t not in FORMAT:
            raise ValueError(f"struct {name}: field {field} has type {t}, which cannot be a parameter")
        size = ir.SIZE[t]
        offset = _align(offset, size)
        fields.append({"name": field, "type": t, "offset": offset})
        offset += size
        alignment = max(alignment, size)
    return fields, _align(offset, alignment), alignment


def _value_entry(kernel: ir.Kernel, name: str, t: str) -> tuple[dict[str, Any], int]:
    """The entry of a scalar or struct parameter (offset still 0) and its alignment."""
    if t in kernel.structs:
        fields, size, alignment = struct_layout(kernel, t)
        fmt = _padded(((f["offset"], FORMAT[f["type"]], ir.SIZE[f["type"]]) for f in fields), size)
        return {"name": name, "kind": "struct", "type": t, "offset": 0, "size": size, "format": fmt,
                "fields": fields}, alignment
    if t not in FORMAT:
        raise ValueError(f"parameter {name} has type {t}, which cannot be a parameter")
    return {"name": name, "kind": "scalar", "type": t, "offset": 0, "size": ir.SIZE[t], "format": FORMAT[t]}, \
        ir.SIZE[t]


def _place(entries: list[tuple[dict[str, Any], int]]) -> tuple[list[dict[str, Any]], int]:
    """Assign offsets in order, each aligned to its own alignment; the size is the end of the last entry."""
    out, offset = [], 0
    for entry, alignment in entries:
        offset = _align(offset, alignment)
        out.append({**entry, "offset": offset})
        offset += entry["size"]
    return out, offset


def push_constants(kernel: ir.Kernel) -> tuple[list[dict[str, Any]], int]:
    """The WebGPU push-constant block: `khal_grid: uvec4` at offset 0, then the scalars and structs in order."""
    grid = {"name": GRID, "kind": "grid", "type": "u32[4]", "offset": 0, "size": 16, "format": "4I"}
    return _place([(grid, 16)] + [_value_entry(kernel, s.name, s.type) for s in kernel.scalars])


def cuda_params(kernel: ir.Kernel) -> tuple[list[dict[str, Any]], int]:
    """Every CUDA kernel argument in order: per buffer its pointer and `<name>_len`, then scalars and structs."""
    entries = []
    for b in kernel.buffers:
        entries.append(({"name": b.name, "kind": "buffer", "type": b.elem, "offset": 0, "size": POINTER_SIZE,
                         "format": "Q"}, POINTER_SIZE))
        entries.append(({"name": f"{b.name}_len", "kind": "len", "type": "u32", "offset": 0, "size": 4,
                         "format": "I"}, 4))
    entries += [_value_entry(kernel, s.name, s.type) for s in kernel.scalars]
    return _place(entries)


def pack_format(entries: list[dict[str, Any]], size: int) -> str:
    """One `struct` format string (standard sizes, little-endian) for a whole parameter list, padding included:
    `struct.pack(pack_format(*cuda_params(k)), ptr_a, len_a, ...)` gives the argument bytes."""
    return "<" + _padded(((e["offset"], e["format"], e["size"]) for e in entries), size)
