"""`python -m benchmarks.capture`: the cost per kernel of replaying a captured graph against dispatching directly.

A step is `--kernels` (300) tiny dispatches of the example `add_assign` (one workgroup on 64 elements), the shape of
an LLM decoder's per-token work, where launch cost rather than bandwidth decides the speed. Direct: the step
recorded through `Kernel.call` into one pass, submitted and synchronized; replay: the step captured once, then
`graph.replay()` and a synchronize. Both are timed on the wall clock, alternately (a shared host is noisy), and the
medians divided by the kernel count; the host's part alone (recording and submitting, or replaying, without the
wait) is shown beside them, since on a CPU device (lavapipe, the interpreter) running the kernels dominates. Both
must leave the same result, which is checked.

Targets on a GPU host: CUDA replay at most 1.5 us per kernel; WebGPU replay at most 0.6x of direct dispatch.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from khal_runtime.backends import create
from khal_runtime.backends.base import Backend, BackendError

ROWS: list[tuple[str, ...]] = []
TARGETS = {"cuda": ("replay <= 1.5 us", lambda replay, ratio: replay <= 1.5e-6),
           "webgpu": ("<= 0.6x", lambda replay, ratio: ratio <= 0.6),
           "cpu": ("(report)", None)}


def software(backend: Backend) -> bool:
    """Whether the device is the CPU (the interpreter, or lavapipe): fewer repetitions then."""
    return backend.name == "cpu" or "CPU" in str(getattr(backend, "info", {}).get("adapter_type", ""))


def bench(kind: str, kernels: int, repeats: int | None) -> None:
    from shaders._generated.examples.add_assign import AddAssign
    backend = create(kind)
    add = AddAssign(backend)
    a = backend.init_buffer(np.zeros(64, np.float32))
    b = backend.init_buffer(np.ones(64, np.float32))
    repeats = repeats or (20 if software(backend) else 50)

    def step() -> None:
        encoder = backend.begin_encoding()
        with encoder.begin_pass("step") as pass_:
            for _ in range(kernels):
                add.call(pass_, 64, a, b)
        backend.submit(encoder)

    def timed(run) -> tuple[float, float]:
        """(seconds with the wait for the device, seconds of the host's part)"""
        start = time.perf_counter()
        run()
        host = time.perf_counter() - start
        backend.synchronize()
        return time.perf_counter() - start, host

    with backend.capture() as graph:
        step()
    step()                                          # warm up both (pipelines, bind groups, clocks)
    graph.replay()
    direct, replay = [], []
    for _ in range(repeats):
        direct.append(timed(step))
        replay.append(timed(graph.replay))
    runs = 2 * (repeats + 1)
    got = a.read()
    if not np.array_equal(got, np.full(64, runs * kernels, np.float32)):
        raise AssertionError(f"{kind}: after {runs} steps of {kernels} additions the buffer holds {got[:4]}..., "
                             f"not {runs * kernels}")
    def per_kernel(runs: list[tuple[float, float]]) -> list[float]:
        return [sorted(column)[len(column) // 2] / kernels for column in zip(*runs)]
    (theirs, theirs_host), (ours, ours_host) = per_kernel(direct), per_kernel(replay)
    target, met = TARGETS[kind]
    verdict = "" if met is None else (" (met)" if met(ours, ours / theirs) else " (NOT met)")
    ROWS.append((backend.device_name, kind, f"{theirs * 1e6:.2f} us", f"{ours * 1e6:.2f} us",
                 f"{ours / theirs:.2f}x", f"{theirs_host * 1e6:.2f} / {ours_host * 1e6:.2f} us", target + verdict))
    print(f"  {kind}: direct {theirs * 1e6:.2f} us/kernel, replay {ours * 1e6:.2f} us/kernel "
          f"({ours / theirs:.2f}x), result exact", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.capture", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("cuda", "webgpu", "cpu"), action="append",
                        help="only these backends (repeatable)")
    parser.add_argument("--kernels", type=int, default=300, help="dispatches per step")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed steps of each kind (default: 50 on a GPU, 5 on a CPU device)")
    args = parser.parse_args(argv)
    for kind in ("cuda", "webgpu", "cpu"):
        if args.backend and kind not in args.backend:
            continue
        try:
            bench(kind, args.kernels, args.repeats)
        except BackendError as e:
            print(f"{kind}: not available ({e})")
    print()
    print("| device | backend | direct per kernel | replay per kernel | replay / direct | host: direct / replay | "
          "target |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in ROWS:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
