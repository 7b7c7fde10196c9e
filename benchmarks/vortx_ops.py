"""`python -m benchmarks.vortx_ops`: vortx's operations against yardsticks measured in the same run.

On a GPU backend: elementwise operations and reductions as bandwidth (bytes read and written per second) against
a device-to-device copy of a buffer of the same size (targets on the H100: at least 0.85x for elementwise, 0.75x
for reductions), and f32 gemm at 1024, 2048 and 4096 (`--gemm-sizes`) against `torch.matmul` with TF32 off
(targets on the H100: 0.5x on CUDA, 0.35x on WebGPU). An operation's speed is measured on the device (pass
timestamps: its kernels, back to back), and again on the wall clock (Python's recording and the submission
included); the copy's and torch's on the wall clock (many copies in one submission; CUDA queues torch's launches,
so its GPU never waits for Python). On the CPU interpreter: every operation against numpy.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import numpy as np

import vortx as vx
from khal_runtime import BackendError
from vortx.gemm import choose, matmul

ROWS: list[tuple[str, ...]] = []


def median_seconds(run: Callable[[], None], sync: Callable[[], None], repeats: int) -> float:
    run()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[repeats // 2]


def device_seconds(device: vx.Device, run: Callable[[], None], repeats: int) -> float | None:
    """Median seconds of `run` on the device (pass timestamps), or None where the device cannot time passes."""
    device.timestamps = True
    times = []
    for _ in range(repeats):
        run()
        times.append(device.gpu_seconds())
    device.timestamps = False
    return None if None in times else sorted(times)[repeats // 2]


def row(*cells: str) -> None:
    ROWS.append(cells)
    print("  " + "  ".join(f"{c:>14}" if i else f"{c:42}" for i, c in enumerate(cells)), flush=True)


def gpu_ops(n: int) -> list[tuple[str, Callable, int, str]]:
    """(name, operation on (a, b), bytes it moves per element, target) for the bandwidth table."""
    return [
        ("a + b", lambda a, b: a + b, 12, ">= 0.85x"),
        ("a * 2", lambda a, b: a * 2.0, 8, ">= 0.85x"),
        ("exp(a)", lambda a, b: a.exp(), 8, ">= 0.85x"),
        ("silu(a)", lambda a, b: a.silu(), 8, ">= 0.85x"),
        ("a += b", lambda a, b: a.__iadd__(b), 12, ">= 0.85x"),
        ("transpose copy (4096 x n/4096)", lambda a, b: a.view(4096, -1).T.contiguous(), 8, "(report)"),
        ("sum(a)", lambda a, b: a.sum(), 4, ">= 0.75x"),
        ("max(a)", lambda a, b: a.max(), 4, ">= 0.75x"),
        ("sqnorm(a)", lambda a, b: a.sqnorm(), 4, ">= 0.75x"),
        ("sum over the last axis (n/1024 x 1024)", lambda a, b: a.view(-1, 1024).sum(axis=1), 4, ">= 0.75x"),
        ("sum over the last axis (n/64 x 64)", lambda a, b: a.view(-1, 64).sum(axis=1), 4, "(report)"),
        ("sum over the first axis (1024 x n/1024)", lambda a, b: a.view(1024, -1).sum(axis=0), 4, ">= 0.75x"),
    ]


def bench_gpu(device: vx.Device, n: int, repeats: int, gemm_sizes: tuple[int, ...]) -> None:
    backend = device.backend
    n = min(n, getattr(backend, "max_binding_size", 4 * n) // 4)       # lavapipe binds at most 128 MiB
    print(f"{backend.name}: {backend.device_name}, {n:,} f32 elements")
    x = np.random.default_rng(0).random(n, dtype=np.float32)
    a, b = vx.tensor(x, device=device), vx.tensor(x, device=device)
    target = device.backend.uninit_buffer(vx.f32, n)
    loops = 20

    def copy() -> None:
        device.flush()
        encoder = backend.begin_encoding()
        for _ in range(loops):
            encoder.copy_buffer_to_buffer(a.buffer, 0, target, 0, n)
        backend.submit(encoder)

    copy_bw = 8 * n * loops / median_seconds(copy, backend.synchronize, repeats)
    row("operation", "GB/s (device)", "GB/s (wall)", "copy GB/s", "ratio (device)", "ratio (wall)", "target")
    for name, op, moved, goal in gpu_ops(n):
        def run(op: Callable = op) -> None:
            for _ in range(loops):
                op(a, b)
        wall = moved * n * loops / median_seconds(run, device.synchronize, repeats)
        seconds = device_seconds(device, run, repeats)
        on_device = moved * n * loops / seconds if seconds is not None else None
        shown = f"{on_device / 1e9:.0f}" if on_device else "-"
        ratio = f"{on_device / copy_bw:.2f}x" if on_device else "-"
        row(name, shown, f"{wall / 1e9:.0f}", f"{copy_bw / 1e9:.0f}", ratio, f"{wall / copy_bw:.2f}x", goal)
    for line in bench_gemm(device, gemm_sizes):
        row(*line)


def gemm_loops(size: int) -> int:
    """Products of `size` per timed batch: enough to last a while, at most 50."""
    return max(1, min(50, int(2e10 // size**3)))


def gemm_seconds(device: vx.Device, size: int, variant: str = "auto",
                 repeats: int = 5) -> tuple[float, float | None]:
    """Median seconds of one f32 (size x size) @ (size x size) on `device`, over batches of runs after a warm-up: on
    the wall clock, and on the device (pass timestamps; None where it cannot time passes). Each product is submitted
    as soon as it is recorded, so that the device runs it while Python records the next (on WebGPU, recording a
    batch before submitting it would leave the GPU idle meanwhile)."""
    rng = np.random.default_rng(0)
    a, b = (vx.tensor(rng.random((size, size), dtype=np.float32), device=device) for _ in range(2))
    loops = gemm_loops(size)

    def products() -> None:
        for _ in range(loops):
            matmul(a, b, variant)
            device.flush()
    wall = median_seconds(products, device.synchronize, repeats) / loops
    seconds = device_seconds(device, products, repeats)
    return wall, None if seconds is None else seconds / loops


def torch_seconds(size: int, repeats: int = 5) -> float | None:
    """Median seconds of torch.matmul at `size` on CUDA with TF32 off, or None without torch or a GPU."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    a, b = (torch.rand(size, size, device="cuda") for _ in range(2))
    loops = gemm_loops(size)

    def products() -> None:
        for _ in range(loops):
            torch.matmul(a, b)
    return median_seconds(products, torch.cuda.synchronize, repeats) / loops


def bench_gemm(device: vx.Device, sizes: tuple[int, ...] = (1024, 2048, 4096)) -> list[tuple[str, ...]]:
    """Rows of a table (a header, then a row per size): vortx's f32 gemm in TFLOP/s on the device and on the wall
    clock, torch.matmul's with TF32 off on the same GPU when torch has CUDA (wall clock: CUDA queues its launches,
    so the GPU never waits for Python), the ratios and the target."""
    goal = ">= 0.5x" if device.backend.name == "cuda" else ">= 0.35x"
    rows = [("f32 gemm (variant)", "TFLOP/s (device)", "TFLOP/s (wall)", "torch TFLOP/s", "ratio (device)",
             "ratio (wall)", "target")]
    for size in sizes:
        tflops = 2 * size**3 / 1e12
        wall, on_device = gemm_seconds(device, size)
        theirs = torch_seconds(size)
        name = f"{size}^3 ({choose('auto', size, size, size, 1).ID.rsplit('.', 1)[-1]})"
        cells = [f"{tflops / on_device:.3g}" if on_device else "-", f"{tflops / wall:.3g}"]
        if theirs is None:
            rows.append((name, *cells, "-", "-", "-", goal))
            continue
        ratio = f"{theirs / on_device:.2f}x" if on_device else "-"
        rows.append((name, *cells, f"{tflops / theirs:.3g}", ratio, f"{theirs / wall:.2f}x", goal))
    return rows


def bench_cpu(device: vx.Device, n: int, repeats: int) -> None:
    print(f"cpu: {device.backend.device_name}, {n:,} f32 elements")
    rng = np.random.default_rng(0)
    x, y = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    a, b = vx.tensor(x, device=device), vx.tensor(y, device=device)
    m = 256
    mx, my = rng.random((m, m), dtype=np.float32), rng.random((m, m), dtype=np.float32)
    ma, mb = vx.tensor(mx, device=device), vx.tensor(my, device=device)
    pairs = [
        ("a + b", lambda: a + b, lambda: x + y),
        ("a * 2", lambda: a * 2.0, lambda: x * np.float32(2)),
        ("exp(a)", lambda: a.exp(), lambda: np.exp(x)),
        ("silu(a)", lambda: a.silu(), lambda: x / (1 + np.exp(-x))),
        ("transpose copy", lambda: a.view(1024, -1).T.contiguous(),
         lambda: np.ascontiguousarray(x.reshape(1024, -1).T)),
        ("sum(a)", lambda: a.sum(), lambda: x.sum()),
        ("max(a)", lambda: a.max(), lambda: x.max()),
        ("sqnorm(a)", lambda: a.sqnorm(), lambda: np.dot(x, x)),
        ("256x256 matmul", lambda: ma @ mb, lambda: mx @ my),
    ]
    row("operation", "vortx ms", "numpy ms", "ratio", "")
    for name, ours, theirs in pairs:
        try:
            t_ours = median_seconds(ours, device.synchronize, repeats)
        except (AttributeError, ImportError, NotImplementedError) as e:
            row(name, "-", "-", "-", f"({type(e).__name__})")
            continue
        t_np = median_seconds(theirs, lambda: None, repeats)
        row(name, f"{t_ours * 1e3:.2f}", f"{t_np * 1e3:.2f}", f"{t_ours / t_np:.1f}x", "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vortx_ops", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("cuda", "webgpu", "cpu"), action="append",
                        help="only these backends (repeatable; default: every one available)")
    parser.add_argument("--elements", type=int, default=1 << 26)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gemm-sizes", type=int, nargs="+", default=(1024, 2048, 4096), metavar="N",
                        help="the sizes of the square f32 gemm (GPU backends)")
    args = parser.parse_args(argv)
    for kind in args.backend or ("cuda", "webgpu", "cpu"):
        try:
            device = vx.device(kind)
        except BackendError as e:
            print(f"{kind}: not available ({e})\n")
            continue
        if kind == "cpu":
            bench_cpu(device, min(args.elements, 1 << 22), args.repeats)
        else:
            bench_gpu(device, args.elements, args.repeats, tuple(args.gemm_sizes))
        print(f"\n{kind} ({device.backend.device_name}):\n")
        for i, cells in enumerate(ROWS):
            print("| " + " | ".join(cells) + " |")
            if i == 0:
                print("|" + " --- |" * len(cells))
        ROWS.clear()
        print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
