"""The benchmarks run end to end on small sizes and print their tables (the figures themselves are for people to
read: targets live in the benchmarks, not in tests)."""

from __future__ import annotations

import re

import pytest
from conftest import get_backend

import benchmarks.capture
import benchmarks.quant_matvec
import benchmarks.runtime
import benchmarks.vortx_ops

RATIO = re.compile(r"\| \d+\.\d\dx \|")


def table_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ") and "---" not in line]


@pytest.mark.webgpu
def test_vortx_bench_on_webgpu(capsys):
    get_backend("webgpu")
    assert benchmarks.vortx_ops.main(["--backend", "webgpu", "--elements", "65536", "--repeats", "1",
                             "--gemm-sizes", "40"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert len(rows) == 1 + len(benchmarks.vortx_ops.gpu_ops(0)) + 2      # header, operations, gemm header and size
    assert all(RATIO.search(r) for r in rows[1:len(benchmarks.vortx_ops.gpu_ops(0)) + 1]), rows


def test_vortx_bench_on_the_interpreter(capsys):
    assert benchmarks.vortx_ops.main(["--backend", "cpu", "--elements", "4096", "--repeats", "1"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert len(rows) > 5 and all(re.search(r"\| \d+\.\dx \|", r) for r in rows[1:]), rows


def test_runtime_bench_on_the_interpreter(capsys):
    assert benchmarks.runtime.main(["--backend", "cpu"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert len(rows) == 4 and all(RATIO.search(r) for r in rows[1:]), rows


@pytest.mark.parametrize("kind", [pytest.param("webgpu", marks=pytest.mark.webgpu), "cpu"])
def test_capture_bench(kind, capsys):
    get_backend(kind)
    benchmarks.capture.ROWS.clear()
    assert benchmarks.capture.main(["--backend", kind, "--kernels", "20", "--repeats", "2"]) == 0
    out = capsys.readouterr().out
    rows = table_rows(out)
    assert "result exact" in out and len(rows) == 2 and RATIO.search(rows[1]) and kind in rows[1], rows


@pytest.mark.parametrize("backend", ["cpu", pytest.param("webgpu", marks=pytest.mark.webgpu)])
def test_quant_matvec_bench(capsys, backend):
    if backend == "webgpu":
        get_backend("webgpu")
    assert benchmarks.quant_matvec.main(["--backend", backend, "--rows", "16", "--cols", "512", "--dispatches", "2",
                                         "--repeats", "1"]) == 0
    rows = table_rows(capsys.readouterr().out)
    assert len(rows) == 1 + len(benchmarks.quant_matvec.VARIANTS)
    assert all(RATIO.search(r) and " us | " in r for r in rows[1:]), rows
