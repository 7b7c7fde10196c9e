"""`python -m benchmarks.reduce_sweep`: the reduction planner's run-time choices (`vortx.reduce.TUNING`), timed.

For each benchmarked shape of benchmarks/vortx_ops (a full sum of 2^26 and of 2^24 f32, last-axis sums of rows of
64 and 1024, a first-axis sum of 1024 rows) it times a handful of values of the one choice that shape depends on,
on the device (as benchmarks/vortx_ops does: pass timestamps, CUDA's batches behind a head start of copies), as a
bandwidth against the device's buffer copy (a reduction reads 4 bytes per element, a copy moves 8), and prints
the best value of each choice and the `Tuning(...)` that they make:

- `groups`: the workgroups a long row is cut into (full reductions: that many partials, then one more pass);
- `per_thread`: elements per thread of a short row (rows of 64: 8 gives 8 threads a row);
- `axis_groups`: the workgroups a reduction across inner indices is cut into (first-axis sums).

Compile-time choices (LOADS accumulators per thread, workgroup shapes) are constants of shaders/vortx/reduce.py,
not swept. On the GPU host the whole sweep takes well under two minutes; on a CPU it runs small sizes.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace

import numpy as np

import vortx as vx
from benchmarks.vortx_ops import BufferCopy, gbps, on_cpu
from khal_runtime import BackendError
from vortx.reduce import TUNING, Tuning

# (shape, the operation on a flat tensor of n f32, the choice it depends on, the values tried)
SHAPES: list[tuple[str, Callable[[vx.Tensor], object], str, tuple[int, ...]]] = [
    ("sum(a)", lambda a: a.sum(), "groups", (264, 528, 1024, 1056, 2048, 2112, 4224, 8448)),
    ("sum(a[:n/4])", lambda a: a[:a.size // 4].sum(), "groups", (264, 528, 1056, 2112, 4224)),
    ("sum over the last axis (n/64 x 64)", lambda a: a.view(-1, 64).sum(axis=1), "per_thread",
     (1, 2, 4, 8, 16, 32, 64)),
    ("sum over the last axis (n/1024 x 1024)", lambda a: a.view(-1, 1024).sum(axis=1), "per_thread",
     (2, 4, 8, 16, 32)),
    ("sum over the first axis (1024 x n/1024)", lambda a: a.view(1024, -1).sum(axis=0), "axis_groups",
     (512, 1056, 2112, 4224, 8448, 16896)),
]


def sweep(device: vx.Device, n: int, repeats: int, loops: int) -> dict[str, tuple[int, float]]:
    """For each choice, (its best value, that value's ratio to the buffer copy) over the shapes that depend on it
    (the first such shape decides; later ones are shown)."""
    a = vx.tensor(np.random.default_rng(0).random(n, dtype=np.float32), device=device)
    copy = BufferCopy(device, a, repeats, loops)
    print(f"{device.backend.name}: {device.backend.device_name}, {n:,} f32 elements; buffer copy "
          f"{gbps(copy.bandwidth)} GB/s (read + write)")
    best: dict[str, tuple[int, float]] = {}
    default = replace(TUNING)
    for name, op, choice, values in SHAPES:
        elements = n // 4 if "n/4" in name else n
        figures = []

        def run(op: Callable[[vx.Tensor], object] = op) -> None:
            for _ in range(loops):
                op(a)
        try:
            for value in values:
                setattr(TUNING, choice, value)
                wall, on_device = copy.timed(run, repeats)
                figures.append((4 * elements * loops / (on_device or wall) / copy.bandwidth, value))
        finally:
            setattr(TUNING, choice, getattr(default, choice))
        top, value = max(figures)
        shown = "  ".join(f"{v}: {r:.2f}x" for r, v in figures)
        print(f"  {name:42} {choice:12} best {value:>6} at {top:.2f}x of the buffer copy   ({shown})", flush=True)
        best.setdefault(choice, (value, top))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.reduce_sweep", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("cuda", "webgpu", "cpu"), action="append",
                        help="only these backends (repeatable; default: cuda and webgpu, those available)")
    parser.add_argument("--elements", type=int, help="f32 elements (default: 2^26 on a GPU, 2^18 on a CPU)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    for kind in args.backend or ("cuda", "webgpu"):
        try:
            device = vx.device(kind)
        except BackendError as e:
            print(f"{kind}: not available ({e})\n")
            continue
        small = kind == "cpu" or on_cpu(device.backend)
        n = args.elements or (1 << 18 if small else 1 << 26)
        n = min(n, getattr(device.backend, "max_binding_size", 4 * n) // 4)
        n = max(1 << 12, n - n % (1 << 12))         # whole rows of 4096 for the views
        best = sweep(device, n, args.repeats, 2 if small else 20)
        chosen = {choice: value for choice, (value, _) in best.items()}
        print(f"{kind}: the best values make vortx.reduce.Tuning({', '.join(f'{k}={v}' for k, v in chosen.items())})"
              f"; now {Tuning()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
