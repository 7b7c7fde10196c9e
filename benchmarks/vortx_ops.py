"""`python -m benchmarks.vortx_ops`: vortx's operations against yardsticks measured in the same run.

On a GPU backend: elementwise operations and reductions as bandwidth (bytes read plus bytes written, per second)
against two copies of a buffer of the same size: the device's own buffer copy (`copy_buffer_to_buffer`: on CUDA a
driver memcpy, 4.1 TB/s on the H200; on Vulkan `vkCmdCopyBuffer`, slower than a kernel there) and vortx's copy
kernel (`a.copy()`). A copy moves 8 bytes per f32 element and a reduction 4, so a reduction at 1.00x reads its
input in half the time that a copy takes to read and write it. Targets (issue 9, against the buffer copy on CUDA):
elementwise at least 0.85x, full and first-axis reductions 0.85x, last-axis rows of 64 0.6x; on WebGPU, 0.8x of
CUDA's figure for the same operation (the `x CUDA` column, when CUDA ran first in the same process). Then f32
gemm (`--gemm-sizes`) against `torch.matmul` with TF32 off (targets: 0.5x on CUDA, 0.35x on WebGPU).

An operation's speed is measured on the device (pass timestamps: its kernels, back to back) and on the wall clock
(Python's recording and the submission included). On CUDA a pass's events bracket the launches as Python makes
them, so each timed batch starts behind enough buffer copies to keep the GPU busy while Python launches: the
device figure is then the kernels' own time, not Python's. The buffer copy is timed on the wall clock (many copies
in one submission); `x buffer copy` takes the wall clock's figure of an operation where the device cannot time
passes. Sizes follow the device (`--elements`, `--gemm-sizes` override them): 2^26 elements and gemm up
to 4096 on a GPU, 2^20 and a 256 gemm on a CPU's Vulkan (lavapipe), 2^22 on the CPU interpreter, which is timed
against numpy.
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
CUDA_DEVICE_BW: dict[str, float] = {}          # operation -> device GB/s on CUDA, for the WebGPU table


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


def device_seconds(device: vx.Device, run: Callable[[], None], repeats: int,
                   head_start: Callable[[], None] = lambda: None) -> float | None:
    """Median seconds of `run` on the device (pass timestamps), or None where the device cannot time passes;
    `head_start` queues work before each timed batch."""
    times = []
    for _ in range(repeats):
        device.synchronize()
        head_start()
        device.timestamps = True
        run()
        times.append(device.gpu_seconds())
        device.timestamps = False
    return None if None in times else sorted(times)[repeats // 2]


def row(*cells: str) -> None:
    ROWS.append(cells)
    print("  " + "  ".join(f"{c:>14}" if i else f"{c:42}" for i, c in enumerate(cells)), flush=True)


def on_cpu(backend: object) -> bool:
    """Whether a GPU backend is a CPU implementation (lavapipe)."""
    return getattr(backend, "info", {}).get("adapter_type") == "CPU"


def gpu_ops(n: int) -> list[tuple[str, Callable, int, str]]:
    """(name, operation on (a, b), bytes it moves per element, target against the buffer copy on CUDA)."""
    return [
        ("a.copy() (the copy kernel)", lambda a, b: a.copy(), 8, "(yardstick)"),
        ("a + b", lambda a, b: a + b, 12, ">= 0.85x"),
        ("a * 2", lambda a, b: a * 2.0, 8, ">= 0.85x"),
        ("exp(a)", lambda a, b: a.exp(), 8, ">= 0.85x"),
        ("silu(a)", lambda a, b: a.silu(), 8, ">= 0.85x"),
        ("a += b", lambda a, b: a.__iadd__(b), 12, ">= 0.85x"),
        ("transpose copy (4096 x n/4096)", lambda a, b: a.view(4096, -1).T.contiguous(), 8, "(report)"),
        ("sum(a)", lambda a, b: a.sum(), 4, ">= 0.85x"),
        ("max(a)", lambda a, b: a.max(), 4, ">= 0.85x"),
        ("sqnorm(a)", lambda a, b: a.sqnorm(), 4, ">= 0.85x"),
        ("sum over the last axis (n/1024 x 1024)", lambda a, b: a.view(-1, 1024).sum(axis=1), 4, ">= 0.85x"),
        ("sum over the last axis (n/64 x 64)", lambda a, b: a.view(-1, 64).sum(axis=1), 4, ">= 0.6x"),
        ("sum over the first axis (1024 x n/1024)", lambda a, b: a.view(1024, -1).sum(axis=0), 4, ">= 0.85x"),
    ]


class BufferCopy:
    """The yardstick: the device's copy of the buffer of `a` (f32) into another, timed on the wall clock, many
    copies in one submission; and the batches of copies that give a timed batch its head start on CUDA."""

    def __init__(self, device: vx.Device, a: vx.Tensor, repeats: int, loops: int):
        self.device, self.a = device, a
        self.target = device.backend.uninit_buffer(vx.f32, a.size)
        self.seconds = median_seconds(lambda: self.queue(loops), device.backend.synchronize, repeats) / loops
        self.bandwidth = 8 * a.size / self.seconds

    def queue(self, count: int) -> None:
        self.device.flush()
        encoder = self.device.backend.begin_encoding()
        for _ in range(count):
            encoder.copy_buffer_to_buffer(self.a.buffer, 0, self.target, 0, self.a.size)
        self.device.backend.submit(encoder)

    def timed(self, run: Callable[[], None], repeats: int) -> tuple[float, float | None]:
        """Median seconds of `run` on the wall clock and on the device. On CUDA each timed batch starts behind
        copies that last twice its wall time, so that the GPU never waits for Python's launches."""
        device = self.device
        wall = median_seconds(run, device.synchronize, repeats)
        count = max(1, int(2 * wall / self.seconds)) if device.backend.name == "cuda" else 0
        return wall, device_seconds(device, run, repeats, lambda: self.queue(count) if count else None)


def bench_gpu(device: vx.Device, n: int, repeats: int, gemm_sizes: tuple[int, ...]) -> None:
    backend = device.backend
    n = min(n, getattr(backend, "max_binding_size", 4 * n) // 4)       # lavapipe binds at most 128 MiB
    n = max(1 << 12, n - n % (1 << 12))                                 # whole rows of 4096 for the views
    print(f"{backend.name}: {backend.device_name}, {n:,} f32 elements")
    x = np.random.default_rng(0).random(n, dtype=np.float32)
    a, b = vx.tensor(x, device=device), vx.tensor(x, device=device)
    loops = 4 if on_cpu(backend) else 20
    copy = BufferCopy(device, a, repeats, loops)
    kernel_bw = None
    print(f"buffer copy (copy_buffer_to_buffer): {gbps(copy.bandwidth)} GB/s on the wall clock (read + write)")
    row("operation", "GB/s (device)", "GB/s (wall)", "x buffer copy", "x copy kernel", "x CUDA", "target")
    for name, op, moved, goal in gpu_ops(n):
        def run(op: Callable = op) -> None:
            for _ in range(loops):
                op(a, b)
        wall_seconds, seconds = copy.timed(run, repeats)
        wall = moved * n * loops / wall_seconds
        bw = moved * n * loops / seconds if seconds else None
        kernel_bw = kernel_bw or bw
        if backend.name == "cuda" and bw:
            CUDA_DEVICE_BW[name] = bw
        theirs = CUDA_DEVICE_BW.get(name) if backend.name != "cuda" else None
        cells = [gbps(bw), gbps(wall), ratio(bw or wall, copy.bandwidth), ratio(bw, kernel_bw), ratio(bw, theirs)]
        row(name, *cells, goal if backend.name == "cuda" or goal.startswith("(") else ">= 0.8x CUDA")
    for line in bench_gemm(device, gemm_sizes):
        row(*line)


def gbps(bandwidth: float | None) -> str:
    return "-" if not bandwidth else f"{bandwidth / 1e9:.0f}" if bandwidth >= 1e11 else f"{bandwidth / 1e9:.3g}"


def ratio(ours: float | None, theirs: float | None) -> str:
    return f"{ours / theirs:.2f}x" if ours and theirs else "-"


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


def defaults(backend: object) -> tuple[int, int, tuple[int, ...]]:
    """Elements, repeats and gemm sizes that keep the run within two minutes on the device."""
    if getattr(backend, "name", "") == "cpu":
        return 1 << 22, 5, ()
    if on_cpu(backend):
        return 1 << 20, 3, (256,)
    return 1 << 26, 5, (1024, 2048, 4096)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vortx_ops", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("cuda", "webgpu", "cpu"), action="append",
                        help="only these backends (repeatable; default: every one available)")
    parser.add_argument("--elements", type=int, help="f32 elements per operand (default: by device)")
    parser.add_argument("--repeats", type=int, help="timed batches per figure, of which the median (default: by "
                        "device)")
    parser.add_argument("--gemm-sizes", type=int, nargs="+", metavar="N",
                        help="the sizes of the square f32 gemm (GPU backends; default: by device)")
    args = parser.parse_args(argv)
    for kind in args.backend or ("cuda", "webgpu", "cpu"):
        try:
            device = vx.device(kind)
        except BackendError as e:
            print(f"{kind}: not available ({e})\n")
            continue
        elements, repeats, gemm_sizes = defaults(device.backend)
        elements, repeats = args.elements or elements, args.repeats or repeats
        if kind == "cpu":
            bench_cpu(device, elements, repeats)
        else:
            bench_gpu(device, elements, repeats, tuple(args.gemm_sizes or gemm_sizes))
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
