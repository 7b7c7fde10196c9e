"""The bounded cursor under `inferi.gguf`: every GGUF value (scalar, string, array) read from a memory map, each
length and count checked against the bytes that remain before anything is read or allocated.

Numeric arrays are one `np.frombuffer` (then copied, so that the metadata outlives the map); string arrays walk
their length prefixes, the only part of a GGUF file that cannot be read in one piece.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np
from gguf import GGUFValueType

V = GGUFValueType
# little-endian numpy dtypes and struct formats of the fixed-size value types (BOOL is a byte that must be 0 or 1)
DTYPES = {V.UINT8: "<u1", V.INT8: "<i1", V.UINT16: "<u2", V.INT16: "<i2", V.UINT32: "<u4", V.INT32: "<i4",
          V.UINT64: "<u8", V.INT64: "<i8", V.FLOAT32: "<f4", V.FLOAT64: "<f8", V.BOOL: "<u1"}
FORMATS = {V.UINT8: "<B", V.INT8: "<b", V.UINT16: "<H", V.INT16: "<h", V.UINT32: "<I", V.INT32: "<i",
           V.UINT64: "<Q", V.INT64: "<q", V.FLOAT32: "<f", V.FLOAT64: "<d", V.BOOL: "<B"}
# the fewest bytes one element of an array can take: what a declared count is checked against before the loop
MIN_SIZE = {**{t: np.dtype(d).itemsize for t, d in DTYPES.items()}, V.STRING: 8, V.ARRAY: 12}
_U32, _U64 = struct.Struct("<I"), struct.Struct("<Q")


class Cursor:
    """A read position in `buf` (a memory map of `size` bytes); `fail(where, problem)` makes the caller's error,
    where is the key or tensor being read ("metadata key 'general.name'")."""

    def __init__(self, buf, size: int, fail: Callable[[str, str], Exception]):
        self.buf, self.size, self.pos, self.fail = buf, size, 0, fail

    def take(self, n: int, where: str, what: str) -> int:
        """Advance past `n` bytes that must lie in the file; returns where they begin."""
        start, left = self.pos, self.size - self.pos
        if n > left:
            raise self.fail(where, f"{what} needs {n} bytes at byte {start}, but the file has only {left} left")
        self.pos += n
        return start

    def u32(self, where: str, what: str) -> int:
        return _U32.unpack_from(self.buf, self.take(4, where, what))[0]

    def u64(self, where: str, what: str) -> int:
        return _U64.unpack_from(self.buf, self.take(8, where, what))[0]

    def raw_string(self, where: str, what: str) -> bytes:
        n = self.u64(where, f"the length of {what}")
        start = self.take(n, where, f"{what} ({n} bytes)")
        return self.buf[start:start + n]

    def string(self, where: str, what: str) -> str:
        raw = self.raw_string(where, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.fail(where, f"{what} is not valid UTF-8 (byte {e.start}: {raw[:40]!r})") from None

    def strings(self, count: int, where: str) -> list[str]:
        """`count` strings, in one loop with local names: a vocabulary is 50,000 to 150,000 of them."""
        buf, size, pos, unpack, out = self.buf, self.size, self.pos, _U64.unpack_from, []
        for i in range(count):
            if size - pos >= 8:
                n = unpack(buf, pos)[0]
                if n <= size - pos - 8:
                    try:
                        out.append(buf[pos + 8:pos + 8 + n].decode("utf-8"))
                        pos += 8 + n
                        continue
                    except UnicodeDecodeError:
                        pass
            # a short or broken string: read it again through the checks, which raise the error saying what it is
            self.pos = pos
            self.string(where, f"string {i} of the array")
        self.pos = pos
        return out

    def value_type(self, where: str, what: str) -> GGUFValueType:
        at, code = self.pos, self.u32(where, what)
        if code not in V._value2member_map_:
            raise self.fail(where, f"{what} {code} at byte {at} is not a GGUF value type")
        return V(code)

    def value(self, vtype: GGUFValueType, where: str) -> tuple[object, GGUFValueType | None]:
        """A value of `vtype` and, for an array, its element type."""
        if vtype is V.ARRAY:
            return self.array(where, nested=False)
        if vtype is V.STRING:
            return self.string(where, "the string value"), None
        start = self.take(MIN_SIZE[vtype], where, f"a {vtype.name} value")
        value = struct.unpack_from(FORMATS[vtype], self.buf, start)[0]
        if vtype is V.BOOL:
            if value > 1:
                raise self.fail(where, f"BOOL value {value} at byte {start} is neither 0 nor 1")
            value = bool(value)
        return value, None

    def array(self, where: str, nested: bool) -> tuple[object, GGUFValueType]:
        etype = self.value_type(where, "the array's element type")
        if etype is V.ARRAY and nested:
            raise self.fail(where, "arrays nest at most one level (this is an array of arrays of arrays)")
        at, count = self.pos, self.u64(where, "the array's element count")
        # checked before reading or allocating anything: a 2^40-element array in a 113-byte file fails here
        least = count * MIN_SIZE[etype]
        if least > self.size - self.pos:
            raise self.fail(where, f"array of {count} {etype.name} elements (count at byte {at}) needs at least "
                                   f"{least} bytes, but the file has only {self.size - self.pos} left")
        if etype is V.STRING:
            return self.strings(count, where), etype
        if etype is V.ARRAY:
            return [self.array(where, nested=True)[0] for _ in range(count)], etype
        start = self.take(least, where, "the array")
        items = np.frombuffer(self.buf, DTYPES[etype], count, start)
        if etype is V.BOOL:
            if count and items.max() > 1:
                bad = int(np.argmax(items > 1))
                raise self.fail(where, f"BOOL element {bad} of the array is {items[bad]}, neither 0 nor 1")
            items = items.view(np.bool_)
        # a copy in native order: the metadata stays valid after the map is closed
        return items.astype(items.dtype.newbyteorder("="), copy=True), etype
