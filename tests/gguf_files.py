"""GGUF files for the reader's tests: valid ones written by `gguf.GGUFWriter`, hostile ones written byte by byte.

`hostile_files()` maps a case name to (file bytes, text the error must contain): one case (or a few) per bound
that inferi/gguf.py enforces.
"""

from __future__ import annotations

import struct
from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

ROOT = Path(__file__).resolve().parents[1]


def vocab_dir() -> Path | None:
    """llama.cpp's vocabulary files: the repository's copies (tests/data/vocab), else the shared test data next to
    the checkout (../shared, or ../../shared from a worktree under wt/)."""
    for candidate in (ROOT / "tests" / "data" / "vocab", ROOT.parent / "shared" / "testdata" / "vocab",
                      ROOT.parent.parent / "shared" / "testdata" / "vocab"):
        if any(candidate.glob("ggml-vocab-*.gguf")):
            return candidate
    return None


# every scalar type with a value that shows a wrong width or sign: (key, type, value)
SCALARS = [("t.u8", V.UINT8, 250), ("t.i8", V.INT8, -120), ("t.u16", V.UINT16, 65000), ("t.i16", V.INT16, -32000),
           ("t.u32", V.UINT32, 4_000_000_000), ("t.i32", V.INT32, -2_000_000_000), ("t.u64", V.UINT64, 2**64 - 5),
           ("t.i64", V.INT64, -(2**62)), ("t.f32", V.FLOAT32, 0.25), ("t.f64", V.FLOAT64, 1e300),
           ("t.bool", V.BOOL, True), ("t.str", V.STRING, "héllo, wörld ✓")]
# numeric arrays: (key, element type, numpy dtype, values)
ARRAYS = [(f"a.{v.name.lower()}", v, dtype, values) for v, dtype, values in [
    (V.UINT8, np.uint8, [0, 255, 7]), (V.INT8, np.int8, [-128, 127]), (V.UINT16, np.uint16, [1, 65535]),
    (V.INT16, np.int16, [-3, 3]), (V.UINT32, np.uint32, [2**32 - 1, 0]), (V.INT32, np.int32, [-(2**31), 5]),
    (V.UINT64, np.uint64, [2**64 - 1]), (V.INT64, np.int64, [-(2**63), 2**63 - 1]),
    (V.FLOAT32, np.float32, [1.5, -2.0, 3.25]), (V.FLOAT64, np.float64, [1e-300, 2.5]),
    (V.BOOL, np.bool_, [True, False, True])]]
STRINGS = ["", "a", "ünïcödé", "<|im_start|>", "x" * 300]
NESTED = [[1, 2, 3], [4], [5, 6]]           # an array of INT32 arrays (GGUFWriter picks INT32 for Python ints)


def valid_tensors(rng: np.random.Generator) -> dict[str, tuple[Q, tuple[int, ...], np.ndarray]]:
    """name -> (type, numpy shape, the array GGUFWriter writes): float tensors and raw quantized blocks."""
    q8 = rng.integers(0, 256, (4, 2 * 34), dtype=np.uint8)                 # 4 rows of 64 Q8_0 values
    q4k = rng.integers(0, 256, (2, 144), dtype=np.uint8)                   # 2 rows of 256 Q4_K values
    return {"emb.weight": (Q.F32, (3, 5, 8), rng.standard_normal((3, 5, 8)).astype(np.float32)),
            "norm.weight": (Q.F16, (24,), rng.standard_normal(24).astype(np.float16)),
            "blk.0.q8": (Q.Q8_0, (4, 64), q8), "blk.0.q4k": (Q.Q4_K, (2, 256), q4k),
            "four.dims": (Q.F32, (2, 1, 3, 4), rng.standard_normal((2, 1, 3, 4)).astype(np.float32))}


def write_valid(path: Path, *, alignment: int | None = None, seed: int = 0):
    """A file with every value type, string and nested arrays, and float and quantized tensors; returns the
    tensors as valid_tensors() describes them."""
    tensors = valid_tensors(np.random.default_rng(seed))
    w = gguf.GGUFWriter(path, "llama")
    if alignment is not None:
        w.add_custom_alignment(alignment)
    for key, vtype, value in SCALARS:
        w.add_key_value(key, value, vtype)
    for key, etype, _dtype, values in ARRAYS:
        w.add_key_value(key, values, V.ARRAY, sub_type=etype)
    w.add_array("a.strings", STRINGS)
    w.add_array("a.nested", NESTED)
    w.add_token_list(["<s>", "</s>", "a", "b"])
    w.add_token_scores([0.0, 0.0, -1.0, -2.0])
    w.add_token_types([3, 3, 1, 1])
    w.add_token_merges(["a b"])
    for name, (qtype, _shape, array) in tensors.items():
        w.add_tensor(name, array, raw_dtype=qtype if array.dtype == np.uint8 else None)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return tensors


# ---- byte by byte ----

def u32(n: int) -> bytes:
    return struct.pack("<I", n)


def u64(n: int) -> bytes:
    return struct.pack("<Q", n)


def s(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return u64(len(raw)) + raw


def header(n_tensors: int, n_kv: int, version: int = 3) -> bytes:
    return b"GGUF" + u32(version) + u64(n_tensors) + u64(n_kv)


def kv(key: str | bytes, vtype: V, payload: bytes) -> bytes:
    return s(key) + u32(vtype) + payload


def array(etype: int, count: int, payload: bytes) -> bytes:
    return u32(etype) + u64(count) + payload


def tensor(name: str | bytes, dims: list[int], qtype: int, offset: int) -> bytes:
    """A tensor info; dims in GGUF order (innermost first)."""
    return s(name) + u32(len(dims)) + b"".join(u64(d) for d in dims) + u32(qtype) + u64(offset)


def with_tensors(infos: list[bytes], data_bytes: int, entries: list[bytes] = (), alignment: int = 32) -> bytes:
    """A file of the given metadata entries and tensor infos, padded to the alignment, then `data_bytes` bytes."""
    head = header(len(infos), len(entries)) + b"".join(entries) + b"".join(infos)
    return head + bytes(-len(head) % alignment) + bytes(range(256)) * (data_bytes // 256) + bytes(data_bytes % 256)


def hostile_files() -> dict[str, tuple[bytes, str]]:
    f32 = Q.F32
    one = [tensor("w", [8, 4], f32, 0)]                 # 128 bytes of data
    ok_entry = kv("general.architecture", V.STRING, s("llama"))
    huge = kv("tokenizer.ggml.tokens", V.ARRAY, array(V.STRING, 2**40, b""))
    cases = {
        "empty file": (b"", "shorter than a GGUF header"),
        "short header": (b"GGUF" + u32(3) + u64(0), "shorter than a GGUF header"),
        "bad magic": (b"GGML" + u32(3) + u64(0) + u64(0), "not a GGUF file"),
        "version 1": (header(0, 0, version=1), "version 1"),
        "version 4": (header(0, 0, version=4), "unknown GGUF version 4"),
        "big-endian": (b"GGUF" + struct.pack(">I", 3) + u64(0) + u64(0), "big-endian"),
        "huge entry count": (header(0, 2**62), "4611686018427387904 metadata entries"),
        "huge tensor count": (header(2**40, 0), "1099511627776 tensors"),
        # the 113-byte file that keeps gguf.GGUFReader busy for over 20 s
        "2^40-element string array": (header(0, 1) + huge + bytes(113 - 24 - len(huge)), "array of 1099511627776"),
        "2^61-element UINT64 array": (header(0, 1) + kv("k", V.ARRAY, array(V.UINT64, 2**61, b"")) + bytes(40),
                                      "array of 2305843009213693952 UINT64"),
        "array of arrays of arrays": (header(0, 1) + kv("k", V.ARRAY, array(V.ARRAY, 1, array(V.ARRAY, 1, array(
            V.INT32, 1, u32(7))))), "nest at most one level"),
        "deeply nested arrays": (header(0, 1) + kv("k", V.ARRAY, array(V.ARRAY, 1, b"")) +
                                 array(V.ARRAY, 1, b"") * 2000, "nest at most one level"),
        "huge key length": (header(0, 1) + u64(2**63) + bytes(20), "the metadata key's name (9223372036854775808"),
        "huge string value": (header(0, 1) + kv("k", V.STRING, u64(2**50)) + bytes(8), "'k'"),
        "string past the end": (header(0, 1) + kv("k", V.STRING, u64(10) + b"abc"), "the string value (10 bytes)"),
        "truncated array": (header(0, 1) + kv("k", V.ARRAY, array(V.FLOAT32, 4, bytes(12))), "array of 4 FLOAT32"),
        "unknown value type": (header(0, 1) + kv("k", 13, u32(0)), "13 at byte"),
        "unknown element type": (header(0, 1) + kv("k", V.ARRAY, array(99, 1, bytes(16))), "99 at byte"),
        "bool 2": (header(0, 1) + kv("k", V.BOOL, b"\x02"), "BOOL value 2"),
        "bool array element 3": (header(0, 1) + kv("k", V.ARRAY, array(V.BOOL, 3, b"\x01\x00\x03")), "element 2"),
        "bad UTF-8 key": (header(0, 1) + kv(b"gen\xffral", V.UINT8, b"\x00"), "not valid UTF-8"),
        "empty key": (header(0, 1) + kv(b"", V.UINT8, b"\x00") + bytes(8), "name is empty"),
        "bad UTF-8 string": (header(0, 1) + kv("k", V.STRING, s(b"\xc3\x28")), "not valid UTF-8"),
        "bad UTF-8 in a string array": (header(0, 1) + kv("k", V.ARRAY, array(V.STRING, 2, s("ok") + s(b"\xe2\x82"))),
                                        "string 1 of the array is not valid UTF-8"),
        "duplicate key": (header(0, 2) + ok_entry + ok_entry, "'general.architecture': appears twice"),
        "alignment not a power of two": (header(0, 1) + kv("general.alignment", V.UINT32, u32(48)),
                                         "48 is not a power of two"),
        "alignment 0": (header(0, 1) + kv("general.alignment", V.UINT32, u32(0)), "0 is not a power of two"),
        "alignment 2 MiB": (header(0, 1) + kv("general.alignment", V.UINT32, u32(1 << 21)), "up to 1048576"),
        "alignment of type UINT64": (header(0, 1) + kv("general.alignment", V.UINT64, u64(32)), "must be a UINT32"),
        "tokens as INT32": (header(0, 1) + kv("tokenizer.ggml.tokens", V.ARRAY, array(V.INT32, 1, u32(1))),
                            "'tokenizer.ggml.tokens': must be an ARRAY of STRING, not ARRAY of INT32"),
        "scores as FLOAT64": (header(0, 1) + kv("tokenizer.ggml.scores", V.ARRAY, array(V.FLOAT64, 1, u64(0))),
                              "must be an ARRAY of FLOAT32"),
        "token_type a scalar": (header(0, 1) + kv("tokenizer.ggml.token_type", V.INT32, u32(1)),
                                "must be an ARRAY of INT32, not INT32"),
        "merges as nested arrays": (header(0, 1) + kv("tokenizer.ggml.merges", V.ARRAY, array(V.ARRAY, 1, array(
            V.STRING, 1, s("a b")))), "must be an ARRAY of STRING, not ARRAY of ARRAY"),
        "scores shorter than tokens": (header(0, 2) + kv("tokenizer.ggml.tokens", V.ARRAY, array(
            V.STRING, 2, s("a") + s("b"))) + kv("tokenizer.ggml.scores", V.ARRAY, array(V.FLOAT32, 1, bytes(4))),
            "has 1 elements, but tokenizer.ggml.tokens has 2"),
        "5 dimensions": (with_tensors([tensor("w", [1, 1, 1, 1, 1], f32, 0)], 32), "'w': 5 dimensions"),
        "a zero dimension": (with_tensors([tensor("w", [8, 0], f32, 0)], 32), "include 0"),
        "overflowing dimensions": (with_tensors([tensor("w", [2**32, 2**32, 2**32], f32, 0)], 32),
                                   "exceeds int64"),
        "dimensions that overflow int64 bytes": (with_tensors([tensor("w", [2**62, 2], f32, 0)], 32), "'w':"),
        "data past the end": (with_tensors(one, 64), "runs past the end of the file"),
        "offset past the end": (with_tensors([tensor("w", [8, 4], f32, 2**40)], 128), "runs past the end"),
        "offset that wraps 64 bits": (with_tensors([tensor("w", [8, 4], f32, 2**64 - 32)], 128), "runs past"),
        "overlapping tensors": (with_tensors([tensor("a", [8, 4], f32, 0), tensor("b", [8], f32, 96)], 256),
                                "'b': data (bytes"),
        "misaligned data": (with_tensors([tensor("w", [8], f32, 4)], 64), "not a multiple of the alignment 32"),
        "unknown tensor type": (with_tensors([tensor("w", [8], 99, 0)], 64), "unknown tensor type 99"),
        "removed tensor type Q4_2": (with_tensors([tensor("w", [32], 4, 0)], 64), "unknown tensor type 4"),
        "block size not dividing": (with_tensors([tensor("w", [33], Q.Q4_0, 0)], 64), "not a multiple of Q4_0"),
        "duplicate tensor": (with_tensors([tensor("w", [8], f32, 0), tensor("w", [8], f32, 32)], 64),
                             "'w': appears twice in the tensor table"),
        "bad UTF-8 tensor name": (with_tensors([tensor(b"w\x80", [8], f32, 0)], 32), "not valid UTF-8"),
        "tensor name over 63 bytes": (with_tensors([tensor("w" * 64, [8], f32, 0)], 32), "GGML allows 63"),
        "huge dimension count": (with_tensors([s("w") + u32(2**31)], 32), "2147483648 dimensions"),
    }
    return cases
