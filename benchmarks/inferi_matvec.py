"""`python -m benchmarks.inferi_matvec`: the quantized matvec of `inferi.quant` on SmolLM2-135M's shapes, as weight
GB/s against a device copy of the same bytes measured in the same run, and prefill's matmul against n matvecs.

Shapes (rows x cols): 576x576 (attention q/o), 192x576 (k/v), 1536x576 (gate/up), 576x1536 (down) in Q4_1 and Q8_0,
and 49152x576 (the tied output/embedding, Q8_0). Each runs `dispatches` times in one pass; the time per matvec is
the pass's device time where the backend has timestamps, else the wall clock after a synchronize. Every result is
checked against `gguf.quants.dequantize` first. Sizes follow the device: the full shapes on a GPU and on a CPU Vulkan
device (lavapipe), fewer dispatches there; rows divided by 16 on the interpreter.
"""

from __future__ import annotations

import argparse
import sys
import time

import gguf
import numpy as np
from gguf import quants

import vortx as vx
from benchmarks.quant_matvec import device_kind
from inferi.quant import QuantizedWeight
from khal_runtime import BackendError

T = gguf.GGMLQuantizationType
SHAPES = [(576, 576), (192, 576), (1536, 576), (576, 1536)]
CASES = [(T.Q4_1, s) for s in SHAPES] + [(T.Q8_0, s) for s in SHAPES] + [(T.Q8_0, (49152, 576))]
# the f16 scales of the K formats that gguf cannot quantize: random bytes elsewhere are valid quants
SCALE_OFFSETS = {T.Q2_K: (80, 82), T.Q3_K: (108,), T.Q4_K: (0, 2), T.Q5_K: (0, 2), T.Q6_K: (208,)}


def make_raw(rng: np.random.Generator, type: T, rows: int, cols: int) -> np.ndarray:
    """The file bytes of a random (rows, cols) tensor of GGUF type `type`."""
    w = rng.standard_normal((rows, cols)).astype(np.float32)
    if type == T.F32:
        return w.view(np.uint8).reshape(-1)
    if type not in SCALE_OFFSETS:
        return quants.quantize(w, type).view(np.uint8).reshape(-1)
    block, block_bytes = gguf.GGML_QUANT_SIZES[type]
    raw = rng.integers(0, 256, (rows * cols // block, block_bytes), dtype=np.uint8)
    for o in SCALE_OFFSETS[type]:
        raw[:, o:o + 2] = (rng.standard_normal(len(raw)) * 0.05).astype(np.float16).view(np.uint8).reshape(-1, 2)
    return raw.reshape(-1)


def dequantized(type: T, rows: int, raw: np.ndarray) -> np.ndarray:
    return quants.dequantize(raw.reshape(rows, -1), type).astype(np.float32).reshape(rows, -1)


# (dispatches per pass, rows divisor, prefill rows n) by kind of device
SIZES = {"gpu": (200, 1, 64), "cpu-vulkan": (4, 1, 16), "interpreter": (1, 16, 16)}


def timed(dev: vx.Device, work, count: int) -> float:
    """Seconds per call of `work`, run `count` times in one pass."""
    dev.synchronize()
    dev.timestamps = True
    dev.gpu_seconds()
    start = time.perf_counter()
    for _ in range(count):
        work()
    dev.synchronize()
    wall = time.perf_counter() - start
    gpu = dev.gpu_seconds()
    dev.timestamps = False
    return (gpu if gpu is not None else wall) / count


def bench(kind: str) -> list[list[str]]:
    dev = vx.device(kind)
    device = device_kind(dev.backend)
    dispatches, divisor, n = SIZES[device]
    print(f"{kind}: {dev.backend.device_name} ({device}), {dispatches} dispatches a pass", flush=True)
    rng = np.random.default_rng(0)
    table = []
    for type, (rows, cols) in CASES:
        rows = max(1, rows // divisor)
        raw = make_raw(rng, type, rows, cols)
        w = QuantizedWeight.upload(dev, "w", type, (rows, cols), raw)
        want = dequantized(type, rows, raw).astype(np.float64)
        x = rng.standard_normal((n, cols)).astype(np.float32)
        xs = vx.tensor(x, device=dev)
        x0 = vx.tensor(x[0], device=dev)
        y = vx.empty((rows,), device=dev)
        ys = vx.empty((n, rows), device=dev)
        error = np.abs(w.matvec(x0, out=y).numpy() - want @ x[0]).max() / np.abs(want @ x[0]).max()
        error = max(error, np.abs(w.matmul(xs, out=ys).numpy() - x @ want.T).max() / np.abs(x @ want.T).max())
        if error > 1e-4:
            raise AssertionError(f"{type.name} {rows}x{cols} on {kind}: relative error {error:.2e} against gguf")
        t_copy = timed(dev, w.words.copy, dispatches)
        t_matvec = timed(dev, lambda w=w, x0=x0, y=y: w.matvec(x0, out=y), dispatches)
        t_matmul = timed(dev, lambda w=w, xs=xs, ys=ys: w.matmul(xs, out=ys), max(1, dispatches // 4))
        words = w.words.size * 4
        cells = [f"{kind} ({device})", f"{type.name} {rows}x{cols}", f"{t_matvec * 1e6:.1f} us",
                 f"{words / t_matvec / 1e9:.2f} GB/s", f"{2 * words / t_copy / 1e9:.2f} GB/s",
                 f"{n * t_matvec / t_matmul:.2f}x"]
        print("  " + "  ".join(f"{c:>14}" for c in cells[1:]), flush=True)
        table.append(cells)
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inferi_matvec", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("cuda", "webgpu", "cpu"), action="append",
                        help="only these backends (repeatable; default: every one present)")
    args = parser.parse_args(argv)
    rows = []
    for kind in args.backend or ("cuda", "webgpu", "cpu"):
        try:
            rows += bench(kind)
        except BackendError as e:
            print(f"{kind}: not available ({e})")
        print()
    print("| device | weight | per matvec | matvec weight bandwidth | copy bandwidth (read + write) | "
          "matmul vs n matvecs |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
