"""`python -m benchmarks.runtime`: khal's dispatch path against raw wgpu-py and raw PyCUDA, and the interpreter
against numpy. Every ratio compares two measurements taken in the same run, the same way.

- dispatch overhead: host time to record many dispatches of the example `add_assign` on a tiny buffer, through
  `Kernel.call` and through the raw API dispatching the same artifact (target: at most 1.10x raw);
- bandwidth: a 16M-element f32 add (read a and b, write a; 2M elements on a CPU device: lavapipe, the interpreter,
  so that the whole run stays under two minutes there), many dispatches submitted at once and timed on the
  wall clock after a synchronize, khal against raw dispatches of the same artifact (target: at least 0.95x);
  plus `torch` doing `a += b` when PyTorch with CUDA is present, for scale;
- the CPU interpreter against numpy on an elementwise add, a reduction and a 256x256 matmul.
"""

from __future__ import annotations

import argparse
import struct
import sys
import time
from collections.abc import Callable

import numpy as np

from khal_runtime.backends import create
from khal_runtime.backends.base import BackendError, Pass
from khal_runtime.kernels import Workgroups

ROWS: list[tuple[str, str, str, str, str, str]] = []


def row(device: str, what: str, ours: str, baseline: str, ratio: float, target: str) -> None:
    ROWS.append((device, what, ours, baseline, f"{ratio:.2f}x", target))
    print(f"  {what:44} khal {ours:>12}   baseline {baseline:>12}   {ratio:5.2f}x   {target}", flush=True)


def elements(backend, chosen: int | None) -> int:
    """The bandwidth test's size: `--elements`, else 16M on a GPU and 2M on a CPU device."""
    if chosen:
        return chosen
    on_cpu = backend.name == "cpu" or getattr(backend, "info", {}).get("adapter_type") == "CPU"
    return 2 * 2**20 if on_cpu else 16 * 2**20


def per_call(loop: Callable[[int], float], n: int, repeats: int = 5) -> float:
    """Median seconds per iteration; `loop(n)` returns the seconds its timed part (recording) took."""
    return sorted(loop(n) / n for _ in range(repeats))[repeats // 2]


def seconds(run: Callable[[], None], repeats: int = 5) -> float:
    run()                                       # warm up (pipelines, caches, clocks)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


# --- WebGPU ----------------------------------------------------------------------------------------------------------

def bench_webgpu(big: int | None) -> None:
    from shaders._generated.examples.add_assign import AddAssign
    backend = create("webgpu")
    big = elements(backend, big)
    device = backend.device
    print(f"webgpu: {backend.device_name}")
    kernel = AddAssign(backend)
    pipeline = kernel.function.pipeline
    import wgpu

    def raw_group(a, b):
        return device.create_bind_group(layout=backend.group_layout(2), entries=[
            {"binding": 0, "resource": {"buffer": a.handle}}, {"binding": 1, "resource": {"buffer": b.handle}}])

    a, b = (backend.init_buffer(np.ones(64, np.float32)) for _ in range(2))
    group = raw_group(a, b)
    immediates = struct.pack("<4I", 1, 1, 1, 0)

    # host time to record the dispatches; the device's execution of them is not timed
    def khal_loop(n: int) -> float:
        encoder = backend.begin_encoding()
        with encoder.begin_pass("overhead") as pass_:
            start = time.perf_counter()
            for _ in range(n):
                kernel.call(pass_, 64, a, b)
            elapsed = time.perf_counter() - start
        backend.submit(encoder)
        backend.synchronize()
        return elapsed

    def raw_loop(n: int, rebind: bool) -> float:
        encoder = device.create_command_encoder()
        pass_ = encoder.begin_compute_pass()
        pass_.set_pipeline(pipeline)
        pass_.set_bind_group(0, group)
        start = time.perf_counter()
        for _ in range(n):
            if rebind:
                pass_.set_pipeline(pipeline)
                pass_.set_bind_group(0, group)
            pass_.set_immediates(0, immediates, 0, 16)
            pass_.dispatch_workgroups(1, 1, 1)
        elapsed = time.perf_counter() - start
        pass_.end()
        device.queue.submit([encoder.finish()])
        backend.synchronize()
        return elapsed

    n = 20000
    for loop in (khal_loop, lambda n: raw_loop(n, False)):
        loop(100)
    ours = per_call(khal_loop, n)
    raw_min = per_call(lambda n: raw_loop(n, False), n)
    raw_full = per_call(lambda n: raw_loop(n, True), n)
    row(backend.device_name, "dispatch overhead vs raw (immediates+dispatch)", f"{ours * 1e6:.2f} us",
        f"{raw_min * 1e6:.2f} us", ours / raw_min, "<= 1.10x")
    row(backend.device_name, "dispatch overhead vs raw (all four calls)", f"{ours * 1e6:.2f} us",
        f"{raw_full * 1e6:.2f} us", ours / raw_full, "<= 1.10x")

    x = np.random.default_rng(0).random(big, dtype=np.float32)
    a, b = backend.init_buffer(x), backend.init_buffer(x)
    group = raw_group(a, b)
    counts = kernel._grid(big)
    fold, folds = kernel.function._fold(*counts) if counts[0] > backend.fold_threshold else (counts[0], 1)
    folded = struct.pack("<4I", counts[0], 1, 1, fold if folds > 1 else 0)
    repeats = 50

    def khal_add() -> None:
        encoder = backend.begin_encoding()
        with encoder.begin_pass("add") as pass_:
            for _ in range(repeats):
                kernel.call(pass_, big, a, b)
        backend.submit(encoder)
        backend.synchronize()

    def raw_add() -> None:
        encoder = device.create_command_encoder()
        pass_ = encoder.begin_compute_pass()
        pass_.set_pipeline(pipeline)
        pass_.set_bind_group(0, group)
        for _ in range(repeats):
            pass_.set_immediates(0, folded, 0, 16)
            pass_.dispatch_workgroups(fold, 1, folds)
        pass_.end()
        device.queue.submit([encoder.finish()])
        backend.synchronize()

    moved = 3 * 4 * big * repeats
    ours, raw = seconds(khal_add), seconds(raw_add)
    row(backend.device_name, f"{big // 2**20}M-element f32 add bandwidth", f"{moved / ours / 1e9:.0f} GB/s",
        f"{moved / raw / 1e9:.0f} GB/s", raw / ours, ">= 0.95x")
    del wgpu


# --- CUDA ------------------------------------------------------------------------------------------------------------

def bench_cuda(big: int | None) -> None:
    from shaders._generated.examples.add_assign import AddAssign
    backend = create("cuda")
    big = elements(backend, big)
    print(f"cuda: {backend.device_name}")
    kernel = AddAssign(backend)
    function, stream = kernel.function.function, backend.stream
    function.prepare("PIPI")
    block = kernel.workgroup_size
    a, b = (backend.init_buffer(np.ones(64, np.float32)) for _ in range(2))
    pa, pb = a.handle.pointer, b.handle.pointer

    # host time of the launches, in bursts shorter than the driver's launch queue (a launch into a full queue waits
    # for the device, and would time the kernels' execution instead of the host's work); khal's bursts and raw
    # ones alternate, so that both see the same state of a shared, noisy host
    burst = 200

    def khal_burst(pass_: Pass) -> float:
        start = time.perf_counter()
        for _ in range(burst):
            kernel.call(pass_, 64, a, b)
        return time.perf_counter() - start

    def raw_burst() -> float:
        start = time.perf_counter()
        for _ in range(burst):
            function.prepared_async_call((1, 1, 1), block, stream, pa, 64, pb, 64)
        return time.perf_counter() - start

    ours_times, raw_times = [], []
    encoder = backend.begin_encoding()
    with encoder.begin_pass("overhead") as pass_:
        for _ in range(200):
            ours_times.append(khal_burst(pass_) / burst)
            backend.synchronize()
            raw_times.append(raw_burst() / burst)
            backend.synchronize()
    ours, raw = (sorted(t)[len(t) // 2] for t in (ours_times, raw_times))
    row(backend.device_name, "launch overhead vs prepared_async_call", f"{ours * 1e6:.2f} us",
        f"{raw * 1e6:.2f} us", ours / raw, "<= 1.10x")

    x = np.random.default_rng(0).random(big, dtype=np.float32)
    a, b = backend.init_buffer(x), backend.init_buffer(x)
    pa, pb = a.handle.pointer, b.handle.pointer
    repeats, grid = 50, (-(-big // block[0]), 1, 1)

    def khal_add() -> None:
        encoder = backend.begin_encoding()
        with encoder.begin_pass("add") as pass_:
            for _ in range(repeats):
                kernel.call(pass_, big, a, b)
        backend.synchronize()

    def raw_add() -> None:
        for _ in range(repeats):
            function.prepared_async_call(grid, block, stream, pa, big, pb, big)
        stream.synchronize()

    def copy() -> None:
        for _ in range(repeats):
            backend.cuda.memcpy_dtod_async(pa, pb, 4 * big, stream)
        stream.synchronize()

    moved = 3 * 4 * big * repeats
    ours, raw, copied = seconds(khal_add), seconds(raw_add), seconds(copy)
    row(backend.device_name, f"{big // 2**20}M-element f32 add bandwidth", f"{moved / ours / 1e9:.0f} GB/s",
        f"{moved / raw / 1e9:.0f} GB/s", raw / ours, ">= 0.95x")
    row(backend.device_name, f"{big // 2**20}M add vs a device copy (read+write)", f"{moved / ours / 1e9:.0f} GB/s",
        f"{2 * 4 * big * repeats / copied / 1e9:.0f} GB/s", (moved / ours) / (2 * 4 * big * repeats / copied),
        "(report)")
    try:
        import torch
        if torch.cuda.is_available():
            ta, tb = torch.from_numpy(x).cuda(), torch.from_numpy(x).cuda()

            def torch_add() -> None:
                for _ in range(repeats):
                    ta.add_(tb)
                torch.cuda.synchronize()
            theirs = seconds(torch_add)
            row(backend.device_name, f"{big // 2**20}M-element f32 add vs torch a += b",
                f"{moved / ours / 1e9:.0f} GB/s", f"{moved / theirs / 1e9:.0f} GB/s", theirs / ours, "(report)")
    except ImportError:
        pass


# --- CPU interpreter -------------------------------------------------------------------------------------------------

def bench_cpu(big: int | None) -> None:
    from shaders._generated.examples.add_assign import AddAssign
    from shaders._generated.examples.matmul import MatmulShape, MatmulTiled
    from shaders._generated.examples.reduction import SumU32
    backend = create("cpu")
    big = elements(backend, big)
    print(f"cpu: {backend.device_name}")
    rng = np.random.default_rng(0)

    def dispatch(kernel, grid, *args) -> Callable[[], None]:
        def run() -> None:
            encoder = backend.begin_encoding()
            with encoder.begin_pass("bench") as pass_:
                kernel.call(pass_, grid, *args)
            backend.submit(encoder)
        return run

    x = rng.random(big, dtype=np.float32)
    a, b = backend.init_buffer(x), backend.init_buffer(x)
    y, z = x.copy(), x.copy()
    ours, theirs = seconds(dispatch(AddAssign(backend), big, a, b), 3), seconds(lambda: np.add(y, z, out=y), 3)
    row(backend.device_name, f"{big // 2**20}M-element f32 add", f"{ours * 1e3:.1f} ms", f"{theirs * 1e3:.1f} ms",
        ours / theirs, "aim <= 5x (numpy a += b)")

    n = 2**22
    values = rng.integers(0, 1000, n, dtype=np.uint32)
    total, buf = backend.init_buffer(np.zeros(1, np.uint32)), backend.init_buffer(values)
    ours = seconds(dispatch(SumU32(backend), n, total, buf), 3)
    theirs = seconds(lambda: values.sum(), 3)
    row(backend.device_name, "4M-element u32 sum (shared-memory tree)", f"{ours * 1e3:.1f} ms",
        f"{theirs * 1e3:.2f} ms", ours / theirs, "(report; numpy sum)")

    m = 256
    ma, mb = rng.random((m, m), dtype=np.float32), rng.random((m, m), dtype=np.float32)
    c, ba, bb = backend.uninit_buffer(np.float32, m * m), backend.init_buffer(ma), backend.init_buffer(mb)
    ours = seconds(dispatch(MatmulTiled(backend), Workgroups(m // 16, m // 16), c, ba, bb, MatmulShape(m, m, m)), 3)
    theirs = seconds(lambda: ma @ mb, 3)
    row(backend.device_name, "256x256 f32 matmul (tiled)", f"{ours * 1e3:.1f} ms", f"{theirs * 1e3:.2f} ms",
        ours / theirs, "(report; numpy @)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.runtime", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("cuda", "webgpu", "cpu"), action="append",
                        help="only these backends (repeatable)")
    parser.add_argument("--elements", type=int, default=None,
                        help="elements of the bandwidth test (default: 16M on a GPU, 2M on a CPU device)")
    args = parser.parse_args(argv)
    for kind, run in (("cuda", bench_cuda), ("webgpu", bench_webgpu), ("cpu", bench_cpu)):
        if args.backend and kind not in args.backend:
            continue
        try:
            run(args.elements)
        except BackendError as e:
            print(f"{kind}: not available ({e})")
        print()
    print("| device | measure | khal | baseline | ratio | target |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in ROWS:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
