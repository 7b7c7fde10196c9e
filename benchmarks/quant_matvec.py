"""`python -m benchmarks.quant_matvec`: whether vector loads and 4 x 8-bit dot products pay, on a Q8_0-style
matrix-vector product (int8 weights and activations in blocks of 32 with f32 scales, `shaders/quant/matvec.py`).

The four instances of one kernel: words loaded one at a time or as `load_u32x4` vectors, byte products computed
with shifts or with `dot4_i8`. Each runs `--dispatches` times in one pass; the time per matvec is the pass's device
time (timestamps) where the backend has it, the wall clock after a synchronize otherwise. The table gives it, the
weight bandwidth (int8 values and their scales), and the speed-up over the scalar, shift-based instance. Every
instance's result is checked against numpy first. Sizes follow the device (`--rows`, `--cols` override): 8192 x
8192 on a GPU, 1024 x 4096 on a CPU Vulkan device (lavapipe), 64 x 1024 on the interpreter.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from khal_runtime import BackendError, workgroups
from khal_runtime.backends import create
from khal_runtime.lang import f32, u32

BLOCK = 32                      # int8 values per block
VARIANTS = (("scalar", "shifts"), ("scalar", "dp4a"), ("vector", "shifts"), ("vector", "dp4a"))
# (rows, cols, dispatches per pass) by kind of device
SIZES = {"gpu": (8192, 8192, 50), "cpu-vulkan": (1024, 4096, 8), "interpreter": (64, 1024, 1)}


def device_kind(backend) -> str:
    if backend.name == "cpu":
        return "interpreter"
    if backend.name == "webgpu" and backend.info.get("adapter_type") == "CPU":
        return "cpu-vulkan"
    return "gpu"


def quantize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Q8_0 of a (..., n) f32 array, n a multiple of 32: (int8 values packed four to a u32 word, f32 scales)."""
    blocks = values.reshape(*values.shape[:-1], -1, BLOCK)
    scale = np.abs(blocks).max(axis=-1) / 127
    q = np.rint(blocks / np.where(scale == 0, 1, scale)[..., None]).astype(np.int8)
    return q.reshape(*values.shape[:-1], -1).view(np.uint32).reshape(-1), scale.astype(np.float32).reshape(-1)


def reference(qw: np.ndarray, dw: np.ndarray, qx: np.ndarray, dx: np.ndarray, rows: int) -> np.ndarray:
    """y = W x on the quantized values, in f64."""
    w = qw.view(np.int8).reshape(rows, -1, BLOCK).astype(np.int64)
    x = qx.view(np.int8).reshape(-1, BLOCK).astype(np.int64)
    sums = (w * x).sum(axis=-1).astype(np.float64)
    return (sums * dw.reshape(rows, -1).astype(np.float64) * dx.astype(np.float64)).sum(axis=-1)


def bench(kind: str, rows: int | None, cols: int | None, dispatches: int | None, repeats: int) -> list[list[str]]:
    from shaders._generated.quant.matvec import MATVEC_Q8
    backend = create(kind)
    device = device_kind(backend)
    rows, cols, dispatches = (given or default for given, default in zip((rows, cols, dispatches), SIZES[device]))
    if cols % BLOCK:
        raise SystemExit(f"--cols must be a multiple of {BLOCK}, not {cols}")
    blocks = cols // BLOCK
    print(f"{kind}: {backend.device_name} ({device}), {rows} x {cols}, {dispatches} dispatches a pass", flush=True)
    rng = np.random.default_rng(0)
    qw, dw = quantize(rng.standard_normal((rows, cols), dtype=np.float32))
    qx, dx = quantize(rng.standard_normal(cols, dtype=np.float32))
    expected = reference(qw, dw, qx, dx, rows)
    buffers = [backend.init_buffer(a, dtype=t) for a, t in ((qw, u32), (dw, f32), (qx, u32), (dx, f32))]
    y = backend.init_buffer(np.zeros(rows, np.float32), dtype=f32)
    weight_bytes = qw.nbytes + dw.nbytes
    timed = backend.name != "cpu"

    def run(kernel, count: int) -> float:
        encoder = backend.begin_encoding()
        start = time.perf_counter()
        with encoder.begin_pass("matvec", timestamps=timed) as pass_:
            for _ in range(count):
                kernel.call(pass_, workgroups(rows), y, *buffers, rows, blocks)
        backend.submit(encoder)
        backend.synchronize()
        wall = time.perf_counter() - start
        return (pass_.elapsed if pass_.elapsed is not None else wall) / count

    table, base = [], None
    for load, dot in VARIANTS:
        kernel = backend.kernel(MATVEC_Q8.pick(LOAD=load, DOT=dot))
        run(kernel, 1)                           # warm up, and check
        got = y.read().astype(np.float64)
        error = np.abs(got - expected).max() / max(np.abs(expected).max(), 1e-30)
        if error > 1e-4:
            raise AssertionError(f"matvec_q8 {load}/{dot} on {kind}: relative error {error:.2e} against numpy")
        seconds = sorted(run(kernel, dispatches) for _ in range(repeats))[repeats // 2]
        base = base or seconds
        cells = [f"{kind} ({device})", f"{load} loads, {dot}", f"{seconds * 1e6:.1f} us",
                 f"{weight_bytes / seconds / 1e9:.2f} GB/s", f"{base / seconds:.2f}x"]
        print("  " + "  ".join(f"{c:>16}" for c in cells[1:]), flush=True)
        table.append(cells)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.quant_matvec", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("cuda", "webgpu", "cpu"), action="append",
                        help="only these backends (repeatable; default: every one present)")
    parser.add_argument("--rows", type=int, help="rows of W (default: by device)")
    parser.add_argument("--cols", type=int, help="columns of W, a multiple of 32 (default: by device)")
    parser.add_argument("--dispatches", type=int, help="matvecs per timed pass (default: by device)")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per instance (the median counts)")
    args = parser.parse_args(argv)
    rows = []
    for kind in args.backend or ("cuda", "webgpu", "cpu"):
        try:
            rows += bench(kind, args.rows, args.cols, args.dispatches, args.repeats)
        except BackendError as e:
            print(f"{kind}: not available ({e})")
        print()
    print("| device | instance | per matvec | weight bandwidth | vs scalar loads, shifts |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
