"""Reading GGUF files: the header, metadata and tensor table parsed with bounds, the tensor data memory-mapped.

    with read_gguf("model.gguf") as f:
        f.metadata["general.architecture"]          # "llama"
        info = f.tensors["token_embd.weight"]        # TensorInfo(name, type, shape, offset, nbytes)
        raw = f.data("token_embd.weight")            # uint8 view of the memory map, no copy

Why not `gguf.GGUFReader` (gguf 0.19), whose constants and enums this module uses: measured here it takes 3.06 s
to open SmolLM2-135M (it builds a numpy view per array element, about 30 µs each, for a vocabulary of 49,152
tokens and 48,900 merges), hangs for over 20 s on a 113-byte file that declares a 2^40-element array, raises
RecursionError on nested arrays and checks no length, count or offset against the file size. This reader parses
a numeric array in one `np.frombuffer` and a string array in one tight loop (see gguf_values.py).

Bounds (a file that breaks one raises GGUFError, whose message begins with the path and names the key or tensor
and the problem). Nothing is read or allocated before its length or count is checked against the bytes that
remain, so no declared size can make the reader allocate beyond the Python objects of what the file really holds,
and the time is linear in the metadata's bytes: a declared 2^40-element array fails at once; the slowest case, a
file of tiny strings, parses about 1.4 million strings a second here (SmolLM2's metadata: 0.04-0.06 s).
- magic `GGUF`, version 2 or 3 (the same layout; 3 added big-endian files, which are refused as such). Version 1
  (32-bit lengths, 2023) is refused with a hint: llama.cpp dropped it too.
- metadata: keys non-empty, valid UTF-8, unique; strings valid UTF-8; known value types; BOOL 0 or 1; arrays nest at
  most one level (an array of arrays, not deeper); `general.alignment` a UINT32 power of two up to 1 MiB; the
  tokenizer arrays (tokens, scores, token_type, merges) of their declared element type, scores and token_type as
  long as tokens.
- tensors: names non-empty, valid UTF-8, unique, under GGML's 64 bytes; at most 4 dimensions, each > 0, the
  element count within int64; a known type whose block size divides the innermost dimension; data aligned, inside
  the file and not overlapping another tensor's.
A missing or unreadable file raises the OSError that `open` raises.
"""

from __future__ import annotations

import mmap
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGML_QUANT_SIZES, GGMLQuantizationType, GGUFValueType

from inferi.gguf_values import Cursor

V = GGUFValueType
HEADER_BYTES = 24                 # magic, version u32, tensor count u64, metadata count u64
MAX_ALIGNMENT = 1 << 20
MAX_DIMS = 4                      # GGML_MAX_DIMS
MAX_NAME_BYTES = 63               # GGML_MAX_NAME is 64 with the terminating NUL
INT64_MAX = (1 << 63) - 1
# the fewest bytes a metadata entry (key length, 1-byte key, type, 1-byte value) and a tensor info (name length,
# 1-byte name, dimension count, type, offset) can take: what the header's counts are checked against
MIN_ENTRY, MIN_TENSOR = 8 + 1 + 4 + 1, 8 + 1 + 4 + 4 + 8
TOKENIZER_ARRAYS = {"tokenizer.ggml.tokens": V.STRING, "tokenizer.ggml.scores": V.FLOAT32,
                    "tokenizer.ggml.token_type": V.INT32, "tokenizer.ggml.merges": V.STRING}


class GGUFError(ValueError):
    """A GGUF file that breaks the format or the bounds; the message begins with the path."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    type: GGMLQuantizationType
    shape: tuple[int, ...]        # numpy order: outermost first (GGUF's dims reversed); (rows, cols) of a matrix
    offset: int                   # absolute byte offset in the file
    nbytes: int

    @property
    def n_elements(self) -> int:
        return int(np.prod(self.shape, dtype=object))


class GGUFFile:
    """An open GGUF file: metadata and tensor table parsed, tensor data left in the memory map.

    `types[key]` is the value type of each metadata entry and, for an array, its element type. A context manager;
    close() releases the map once no array that data() returned is alive (views keep it mapped, never dangling).
    """

    def __init__(self, path: Path, version: int, alignment: int, metadata: dict[str, object],
                 types: dict[str, tuple[GGUFValueType, ...]], tensors: dict[str, TensorInfo], data_offset: int,
                 size: int, mapping: mmap.mmap | None):
        self.path, self.version, self.alignment, self.size = path, version, alignment, size
        self.metadata, self.types, self.tensors, self.data_offset = metadata, types, tensors, data_offset
        self._mmap = mapping
        self._bytes = None if mapping is None else np.frombuffer(mapping, np.uint8)

    def data(self, name: str) -> np.ndarray:
        """The tensor's raw bytes as stored: a read-only uint8 view of the memory map."""
        info = self.tensors.get(name)
        if info is None:
            raise KeyError(f"{self.path}: no tensor named {name!r}")
        if self._bytes is None:
            raise ValueError(f"{self.path}: the file is closed")
        return self._bytes[info.offset:info.offset + info.nbytes]

    def release(self, name: str) -> None:
        """Drops the tensor's pages of the map from the process's resident memory (once its data is uploaded):
        the map is read-only and backed by the file, so a later data() reads them back from it. Without this the
        whole file stays resident after loading, beside the copy on the device."""
        info = self.tensors[name]
        if self._mmap is None or not hasattr(mmap, "MADV_DONTNEED") or not info.nbytes:
            return
        start = info.offset - info.offset % mmap.PAGESIZE          # madvise takes page-aligned starts
        self._mmap.madvise(mmap.MADV_DONTNEED, start, info.offset + info.nbytes - start)

    def close(self) -> None:
        self._bytes = None
        if self._mmap is not None:
            _release(self._mmap)
            self._mmap = None

    def __enter__(self) -> GGUFFile:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GGUFFile({str(self.path)!r}, version {self.version}, {len(self.metadata)} keys, " \
               f"{len(self.tensors)} tensors)"


def read_gguf(path: str | os.PathLike) -> GGUFFile:
    path = Path(path)
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        # an empty file cannot be mapped; it fails the header check below instead
        mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    try:
        return _parse(path, mapping, size)
    except BaseException:
        if mapping is not None:
            _release(mapping)
        raise


def _release(mapping: mmap.mmap) -> None:
    try:
        mapping.close()
    except BufferError:
        pass      # a numpy view (from data(), or in a traceback's frames) is alive: the map goes with the last one


def _parse(path: Path, mapping: mmap.mmap | None, size: int) -> GGUFFile:
    def fail(where: str, problem: str) -> GGUFError:
        return GGUFError(f"{path}: {where}: {problem}")

    cur = Cursor(mapping if mapping is not None else b"", size, fail)
    version, n_tensors, n_entries = _header(cur)
    metadata, types = _metadata(cur, n_entries)
    alignment = _alignment(cur, metadata, types)
    _check_tokenizer_arrays(cur, metadata, types)
    infos = [_tensor_info(cur, i) for i in range(n_tensors)]
    data_offset = -(-cur.pos // alignment) * alignment
    tensors = _place_tensors(cur, infos, data_offset, alignment)
    return GGUFFile(path, version, alignment, metadata, types, tensors, data_offset, size, mapping)


def _header(cur: Cursor) -> tuple[int, int, int]:
    where = "header"
    if cur.size < HEADER_BYTES:
        raise cur.fail(where, f"the file is {cur.size} bytes, shorter than a GGUF header ({HEADER_BYTES} bytes)")
    magic = bytes(cur.buf[0:4])
    if magic != b"GGUF":
        raise cur.fail(where, f"not a GGUF file (it begins with {magic!r}, not b'GGUF')")
    cur.pos = 4
    version = cur.u32(where, "the version")
    if version == 1:
        raise cur.fail(where, "GGUF version 1 (32-bit lengths, 2023) is not supported; convert the model again with "
                              "a current llama.cpp")
    if version in (2 << 24, 3 << 24):
        raise cur.fail(where, "a big-endian GGUF file; only little-endian files are supported")
    if version not in (2, 3):
        raise cur.fail(where, f"unknown GGUF version {version} (versions 2 and 3 are read)")
    n_tensors = cur.u64(where, "the tensor count")
    n_entries = cur.u64(where, "the metadata count")
    left = cur.size - cur.pos
    if n_entries * MIN_ENTRY + n_tensors * MIN_TENSOR > left:
        raise cur.fail(where, f"{n_entries} metadata entries and {n_tensors} tensors need at least "
                              f"{n_entries * MIN_ENTRY + n_tensors * MIN_TENSOR} bytes, but the file has only "
                              f"{left} after the header")
    return version, n_tensors, n_entries


def _name(cur: Cursor, index: int, what: str) -> str:
    """A key or tensor name: non-empty valid UTF-8; a bad one is named by its index and bytes."""
    where = f"{what} #{index} (at byte {cur.pos})"
    raw = cur.raw_string(where, f"the {what}'s name")
    if not raw:
        raise cur.fail(where, f"the {what}'s name is empty")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise cur.fail(where, f"the {what}'s name {raw[:64]!r} is not valid UTF-8 (byte {e.start})") from None


def _metadata(cur: Cursor, count: int) -> tuple[dict[str, object], dict[str, tuple[GGUFValueType, ...]]]:
    metadata: dict[str, object] = {}
    types: dict[str, tuple[GGUFValueType, ...]] = {}
    first_seen: dict[str, int] = {}
    for i in range(count):
        at = cur.pos
        key = _name(cur, i, "metadata key")
        where = f"metadata key {key!r}"
        if key in first_seen:
            raise cur.fail(where, f"appears twice (entries at bytes {first_seen[key]} and {at})")
        first_seen[key] = at
        vtype = cur.value_type(where, "the value type")
        metadata[key], etype = cur.value(vtype, where)
        types[key] = (vtype,) if etype is None else (vtype, etype)
    return metadata, types


def _alignment(cur: Cursor, metadata: dict, types: dict) -> int:
    key = "general.alignment"
    if key not in metadata:
        return 32                                      # GGUF_DEFAULT_ALIGNMENT
    value = metadata[key]
    if types[key] != (V.UINT32,):
        raise cur.fail(f"metadata key {key!r}", f"must be a UINT32, not {_type_text(types[key])}")
    if not (0 < value <= MAX_ALIGNMENT and value & (value - 1) == 0):
        raise cur.fail(f"metadata key {key!r}", f"{value} is not a power of two up to {MAX_ALIGNMENT}")
    return value


def _type_text(vtypes: tuple[GGUFValueType, ...]) -> str:
    return vtypes[0].name if len(vtypes) == 1 else f"ARRAY of {vtypes[1].name}"


def _check_tokenizer_arrays(cur: Cursor, metadata: dict, types: dict) -> None:
    """The tokenizer reads these by index, so their element types and lengths must be what the format declares."""
    for key, etype in TOKENIZER_ARRAYS.items():
        if key in types and types[key] != (V.ARRAY, etype):
            raise cur.fail(f"metadata key {key!r}", f"must be an ARRAY of {etype.name}, not {_type_text(types[key])}")
    tokens = metadata.get("tokenizer.ggml.tokens")
    for key in ("tokenizer.ggml.scores", "tokenizer.ggml.token_type"):
        if tokens is not None and key in metadata and len(metadata[key]) != len(tokens):
            raise cur.fail(f"metadata key {key!r}", f"has {len(metadata[key])} elements, but tokenizer.ggml.tokens "
                                                    f"has {len(tokens)}")


@dataclass
class _RawTensor:
    name: str
    dims: list[int]               # GGUF order: innermost first
    type: GGMLQuantizationType
    offset: int                   # relative to the data section
    at: int                       # where its info begins in the file, for messages


def _tensor_info(cur: Cursor, index: int) -> _RawTensor:
    at = cur.pos
    name = _name(cur, index, "tensor")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise cur.fail(f"tensor {name!r}", f"the name is {len(name.encode())} bytes; GGML allows {MAX_NAME_BYTES}")
    where = f"tensor {name!r}"
    n_dims = cur.u32(where, "the dimension count")
    if n_dims > MAX_DIMS:
        raise cur.fail(where, f"{n_dims} dimensions; GGML tensors have at most {MAX_DIMS}")
    dims = [cur.u64(where, f"dimension {d}") for d in range(n_dims)]
    code = cur.u32(where, "the tensor type")
    try:
        qtype = GGMLQuantizationType(code)
        GGML_QUANT_SIZES[qtype]
    except (ValueError, KeyError):
        raise cur.fail(where, f"unknown tensor type {code}") from None
    return _RawTensor(name, dims, qtype, cur.u64(where, "the data offset"), at)


def _place_tensors(cur: Cursor, raws: list[_RawTensor], data_offset: int, alignment: int) -> dict[str, TensorInfo]:
    """Sizes, alignment, bounds and overlaps of the tensor data; the TensorInfos in file order."""
    tensors: dict[str, TensorInfo] = {}
    for raw in raws:
        where = f"tensor {raw.name!r}"
        if raw.name in tensors:
            raise cur.fail(where, f"appears twice in the tensor table (the second at byte {raw.at})")
        if any(d == 0 for d in raw.dims):
            raise cur.fail(where, f"dimensions {raw.dims} include 0")
        n = 1
        for d in raw.dims:
            n *= d
            if n > INT64_MAX:
                raise cur.fail(where, f"dimensions {raw.dims} overflow: the element count exceeds int64")
        block, block_bytes = GGML_QUANT_SIZES[raw.type]
        inner = raw.dims[0] if raw.dims else 1
        if inner % block:
            raise cur.fail(where, f"innermost dimension {inner} is not a multiple of {raw.type.name}'s block of "
                                  f"{block}")
        nbytes = n // block * block_bytes
        if raw.offset % alignment:
            raise cur.fail(where, f"data offset {raw.offset} is not a multiple of the alignment {alignment}")
        start = data_offset + raw.offset
        if start + nbytes > cur.size:
            raise cur.fail(where, f"data (bytes {start}..{start + nbytes}, {nbytes} bytes of {raw.type.name} "
                                  f"{raw.dims}) runs past the end of the file ({cur.size} bytes)")
        tensors[raw.name] = TensorInfo(raw.name, raw.type, tuple(reversed(raw.dims)), start, nbytes)
    by_offset = sorted(tensors.values(), key=lambda t: t.offset)
    for before, after in zip(by_offset, by_offset[1:]):
        if before.offset + before.nbytes > after.offset:
            raise cur.fail(f"tensor {after.name!r}", f"data (bytes {after.offset}..{after.offset + after.nbytes}) "
                                                     f"overlaps tensor {before.name!r} (bytes {before.offset}.."
                                                     f"{before.offset + before.nbytes})")
    return tensors
