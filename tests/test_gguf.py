"""inferi.gguf: valid files read back what gguf.GGUFWriter wrote (and what gguf.GGUFReader reads), and hostile
files, truncations and random byte flips are refused with GGUFError, quickly, never another exception."""

from __future__ import annotations

import random
import time
import tracemalloc
from contextlib import contextmanager

import gguf
import numpy as np
import pytest
from gguf_files import ARRAYS, NESTED, SCALARS, STRINGS, hostile_files, vocab_dir, write_valid

from inferi.gguf import GGUFError, read_gguf

HOSTILE = hostile_files()


@pytest.fixture
def valid(tmp_path):
    path = tmp_path / "valid.gguf"
    return path, write_valid(path)


def test_every_value_type_round_trips(valid):
    path, _ = valid
    with read_gguf(path) as f:
        meta, types = f.metadata, f.types
    for key, vtype, value in SCALARS:
        assert meta[key] == value and type(meta[key]) is type(value) and types[key] == (vtype,), key
    for key, etype, dtype, values in ARRAYS:
        assert meta[key].dtype == dtype and meta[key].tolist() == values and types[key] == (gguf.GGUFValueType.ARRAY,
                                                                                            etype), key
    assert meta["a.strings"] == STRINGS
    assert [a.tolist() for a in meta["a.nested"]] == NESTED and all(a.dtype == np.int32 for a in meta["a.nested"])
    assert meta["tokenizer.ggml.tokens"] == ["<s>", "</s>", "a", "b"]
    assert meta["tokenizer.ggml.scores"].tolist() == [0.0, 0.0, -1.0, -2.0]


def test_metadata_agrees_with_gguf_reader(valid):
    # GGUFReader is slow and unbounded but an independent reading of the same bytes
    path, _ = valid
    reader = gguf.GGUFReader(path)
    with read_gguf(path) as f:
        keys = [k for k in reader.fields if not k.startswith("GGUF.")]
        assert list(f.metadata) == keys
        for key in keys:
            theirs, ours = reader.fields[key].contents(), f.metadata[key]
            if isinstance(ours, np.ndarray):
                ours = ours.tolist()
            elif key == "a.nested":                       # GGUFReader flattens an array of arrays
                ours = [x for a in ours for x in a.tolist()]
            assert ours == pytest.approx(theirs) if isinstance(theirs, float) else ours == theirs, key
        assert [(t.name, t.tensor_type, tuple(reversed(t.shape.tolist())), t.data_offset, t.n_bytes)
                for t in reader.tensors] == [(t.name, t.type, t.shape, t.offset, t.nbytes) for t in f.tensors.values()]


@pytest.mark.parametrize("alignment", [None, 1, 64, 4096])
def test_tensors_are_what_the_writer_wrote(tmp_path, alignment):
    path = tmp_path / "t.gguf"
    written = write_valid(path, alignment=alignment)
    with read_gguf(path) as f:
        assert f.alignment == (alignment or 32) and f.version == 3
        assert list(f.tensors) == list(written)                  # file order
        for name, (qtype, shape, array) in written.items():
            info = f.tensors[name]
            assert (info.name, info.type, info.shape) == (name, qtype, shape)
            assert info.offset % f.alignment == 0 and info.offset >= f.data_offset
            raw = f.data(name)
            assert raw.dtype == np.uint8 and raw.tobytes() == array.tobytes() and info.nbytes == array.nbytes
            assert not raw.flags.owndata and not raw.flags.writeable     # a view of the read-only map
        assert f.tensors["blk.0.q8"].n_elements == 4 * 64


def test_views_outlive_close_and_data_refuses_after(valid):
    path, written = valid
    f = read_gguf(path)
    raw, tokens = f.data("emb.weight"), f.metadata["tokenizer.ggml.scores"]
    with pytest.raises(KeyError, match="no tensor named 'nope'"):
        f.data("nope")
    f.close()
    assert raw.tobytes() == written["emb.weight"][2].tobytes() and tokens[3] == -2.0
    with pytest.raises(ValueError, match="closed"):
        f.data("emb.weight")


def test_version_2_reads_like_3(valid, tmp_path):
    path, _ = valid
    data = bytearray(path.read_bytes())
    data[4:8] = (2).to_bytes(4, "little")
    (tmp_path / "v2.gguf").write_bytes(bytes(data))
    with read_gguf(tmp_path / "v2.gguf") as f, read_gguf(path) as g:
        assert f.version == 2 and list(f.metadata) == list(g.metadata) and f.tensors == g.tensors


@contextmanager
def allocating_under(limit: int):
    """Fails if the block's peak of traced allocations (numpy's included) reaches `limit` bytes."""
    tracemalloc.start()
    try:
        yield
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < limit, f"{peak} bytes allocated"


def refused(path, expected: str | None = None) -> GGUFError:
    """read_gguf(path) raises GGUFError within a second; the error, for more checks. (No pytest.raises: its
    traceback capture would be most of the time of two thousand truncations.)"""
    start = time.perf_counter()
    try:
        read_gguf(path).close()
    except GGUFError as e:
        error = e
    else:
        pytest.fail(f"{path}: read without an error")
    took = time.perf_counter() - start
    assert took < 1.0, f"{path}: {took:.2f} s"
    message = str(error)
    assert message.startswith(f"{path}: "), message
    if expected is not None:
        assert expected in message
    return error


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_file_is_refused(tmp_path, case):
    data, expected = HOSTILE[case]
    path = tmp_path / "hostile.gguf"
    path.write_bytes(data)
    with allocating_under(1 << 20):
        refused(path, expected)


def test_hostile_errors_name_the_key_or_tensor(tmp_path):
    # every case past the header says which entry is wrong
    for case, (data, _) in HOSTILE.items():
        (tmp_path / "h.gguf").write_bytes(data)
        message = str(refused(tmp_path / "h.gguf"))
        assert any(w in message for w in (": header: ", ": metadata key ", ": tensor ")), (case, message)


def test_the_113_byte_file_with_a_2_40_array(tmp_path):
    data, _ = HOSTILE["2^40-element string array"]
    assert len(data) == 113
    (tmp_path / "h.gguf").write_bytes(data)
    assert "'tokenizer.ggml.tokens'" in str(refused(tmp_path / "h.gguf"))


def test_every_truncation_is_refused(valid, tmp_path):
    path, _ = valid
    data = path.read_bytes()
    with read_gguf(path) as f:
        data_end = max(t.offset + t.nbytes for t in f.tensors.values())
    cut = tmp_path / "cut.gguf"
    for n in [*range(0, f.data_offset), *range(f.data_offset, data_end, 16)]:
        cut.write_bytes(data[:n])
        refused(cut)
    for n in range(data_end, len(data) + 1):       # only the last tensor's padding is gone: still a valid file
        cut.write_bytes(data[:n])
        with read_gguf(cut) as f:
            assert len(f.tensors) == 5


def test_random_byte_flips_read_or_are_refused(valid, tmp_path):
    path, _ = valid
    data = path.read_bytes()
    with read_gguf(path) as f:
        head = f.data_offset                        # flips in tensor data are always harmless
    rng, flipped, outcomes = random.Random(1234), tmp_path / "flip.gguf", {"read": 0, "refused": 0}
    with allocating_under(1 << 20):         # a flipped count must not turn into a huge allocation
        for _ in range(400):
            mutated = bytearray(data)
            for _ in range(rng.randint(1, 4)):
                mutated[rng.randrange(head)] ^= 1 << rng.randrange(8) if rng.random() < 0.7 else rng.randrange(1, 256)
            flipped.write_bytes(bytes(mutated))
            start = time.perf_counter()
            try:
                read_gguf(flipped).close()
                outcomes["read"] += 1
            except GGUFError as e:
                assert str(e).startswith(f"{flipped}: ")
                outcomes["refused"] += 1
            assert time.perf_counter() - start < 1.0
    assert outcomes["read"] and outcomes["refused"], outcomes     # both kinds of flip happen in 400 tries


VOCABS = sorted(vocab_dir().glob("ggml-vocab-*.gguf")) if vocab_dir() else []


@pytest.mark.skipif(not VOCABS, reason="llama.cpp's vocabulary files are not present (tests/data/vocab or "
                                       "../shared/testdata/vocab)")
@pytest.mark.parametrize("path", VOCABS, ids=[p.stem for p in VOCABS])
def test_real_vocabularies_read_fast(path):
    start = time.perf_counter()
    with read_gguf(path) as f:
        took = time.perf_counter() - start
        meta = f.metadata
    # the largest (llama-bpe: 128,256 tokens, 280,147 merges) takes about 0.2 s here; GGUFReader takes minutes
    assert took < 1.0, f"{path.name}: {took:.2f} s"
    tokens = meta["tokenizer.ggml.tokens"]
    assert len(tokens) > 30000 and all(isinstance(t, str) for t in tokens[:100])
    assert len(meta["tokenizer.ggml.token_type"]) == len(tokens)
    assert isinstance(meta["tokenizer.ggml.model"], str) and meta["general.architecture"]


@pytest.mark.skipif(not VOCABS, reason="llama.cpp's vocabulary files are not present")
def test_a_real_vocabulary_agrees_with_gguf_reader():
    path = min(VOCABS, key=lambda p: p.stat().st_size)      # llama-spm: GGUFReader needs 1.5 s for it
    reader = gguf.GGUFReader(path)
    with read_gguf(path) as f:
        for key, field in reader.fields.items():
            if not key.startswith("GGUF."):
                ours = f.metadata[key]
                ours = ours.tolist() if isinstance(ours, np.ndarray) else ours
                assert ours == pytest.approx(field.contents()) if isinstance(ours, float) else \
                    ours == field.contents(), key
