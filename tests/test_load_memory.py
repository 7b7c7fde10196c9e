"""Host memory while loading: the meter `inferi bench` reports it with, a tensor's pages leaving resident memory
once uploaded (`GGUFFile.release`), and weights padded and uploaded a chunk of rows at a time (the same words as
in one piece)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import gguf
import numpy as np
import pytest

import inferi.quant
import vortx as vx
from inferi.bench import HostMemoryMeter
from inferi.gguf import read_gguf
from inferi.quant import QuantizedWeight

linux = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads Linux's /proc/self/status")


def resident_file_bytes() -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("RssFile:"))
    return int(line.split()[1]) * 1024


@linux
def test_the_meter_sees_what_a_block_adds_not_what_came_before():
    before = np.ones(48 << 20, np.uint8)             # resident before the block: not counted
    with HostMemoryMeter() as meter:
        inside = np.ones(32 << 20, np.uint8)         # touched, so resident
        del inside
    assert meter.added is not None and 30 << 20 <= meter.added < 44 << 20, meter.added
    del before


@linux
def test_the_meter_without_clear_refs_samples(monkeypatch):
    # where /proc/self/clear_refs cannot be written, a sampling thread finds the peak instead
    real_write = Path.write_text

    def refuse(self, *args, **kwargs):
        if self.name == "clear_refs":
            raise PermissionError(self)
        return real_write(self, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", refuse)
    with HostMemoryMeter() as meter:
        inside = np.ones(32 << 20, np.uint8)
        time.sleep(0.05)
        del inside
    assert meter.added is not None and 28 << 20 <= meter.added < 44 << 20, meter.added


@linux
@pytest.mark.skipif(sys.platform != "linux", reason="madvise(MADV_DONTNEED) drops a file map's pages on Linux")
def test_release_drops_a_tensors_pages_from_resident_memory(tmp_path):
    path = tmp_path / "big.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_tensor("big", np.arange(4 << 20, dtype=np.float32))         # 16 MiB
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    with read_gguf(path) as f:
        data = f.data("big")
        assert int(data[::4096].sum()) >= 0                            # every page touched: resident
        touched = resident_file_bytes()
        f.release("big")
        assert touched - resident_file_bytes() > 12 << 20
        # the pages come back from the file when read again
        assert np.array_equal(f.data("big").view(np.float32)[-3:], np.arange((4 << 20) - 3, 4 << 20))


@pytest.mark.parametrize("type", [gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.F32])
def test_an_upload_in_chunks_of_rows_is_the_whole_matrix(monkeypatch, type):
    rng = np.random.default_rng(3)
    values = rng.standard_normal((37, 96)).astype(np.float32)
    raw = gguf.quants.quantize(values, type).view(np.uint8)
    device = vx.device("cpu")
    whole = QuantizedWeight.upload(device, "w", type, values.shape, raw)
    monkeypatch.setattr(inferi.quant, "UPLOAD_CHUNK", 5 * raw.shape[1])   # 5 rows a chunk: 8 chunks, the last short
    chunked = QuantizedWeight.upload(device, "w", type, values.shape, raw)
    assert np.array_equal(chunked.words.numpy(), whole.words.numpy())
    assert np.array_equal(chunked.dequantize(), gguf.quants.dequantize(raw, type).reshape(values.shape))
