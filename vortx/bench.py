"""`python -m vortx.bench`: vortx's operations against yardsticks measured in the same run.

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

from .gemm import bench_gemm

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
        device.timestamps = True
        times = []
        for _ in range(repeats):
            run()
            times.append(device.gpu_seconds())
        device.timestamps = False
        on_device = moved * n * loops / sorted(times)[repeats // 2] if None not in times else None
        shown = f"{on_device / 1e9:.0f}" if on_device else "-"
        ratio = f"{on_device / copy_bw:.2f}x" if on_device else "-"
        row(name, shown, f"{wall / 1e9:.0f}", f"{copy_bw / 1e9:.0f}", ratio, f"{wall / copy_bw:.2f}x", goal)
    for line in bench_gemm(device, gemm_sizes):
        row(*line)


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
    parser = argparse.ArgumentParser(prog="python -m vortx.bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("cuda", "webgpu", "cpu"), action="append",
                        help="only these backends (repeatable; default: every one available)")
    parser.add_argument("--elements", type=int, default=1 << 26)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--gemm-sizes", type=int, nargs="+", default=(1024, 2048, 4096), metavar="N",
                        help="the sizes of the square f32 gemm (GPU backends)")
    args = parser.parse_args(argv)
    from khal_runtime import BackendError
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
