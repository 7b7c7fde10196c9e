"""`python -m benchmarks.vortx_attention`: decode attention (`vortx.attention`, one query position) on SmolLM2-135M's
shapes, as microseconds per call of a captured graph.

q (1, 9 heads, 64) f32 over f16 caches (ctx 4096, 3 kv heads, 64): `--calls` (50) calls are captured once into one
graph, which is replayed at each position (100, 1000, 4000 by default) after writing the `start` buffer, as a
decode step replays; the median of `--repeats` replays, divided by the calls, is the time per call (its kernels
and their launches in the graph). The result at each position is checked against a float64 numpy reference
first. On the interpreter the cache is shorter (`--ctx` caps it) and fewer calls run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

import vortx as vx
from benchmarks.quant_matvec import device_kind
from khal_runtime import BackendError
from vortx import attention as attention_module
from vortx.attention import attention

HEADS, KV_HEADS, HEAD_DIM = 9, 3, 64


def reference(q: np.ndarray, k: np.ndarray, v: np.ndarray, pos: int) -> np.ndarray:
    """Attention of q (1, heads, d) at position pos over k, v (ctx, kv_heads, d), in float64."""
    group = HEADS // KV_HEADS
    keys, values = k[:pos + 1].astype(np.float64), v[:pos + 1].astype(np.float64)
    out = np.zeros(q.shape)
    for h in range(HEADS):
        s = keys[:, h // group] @ q[0, h].astype(np.float64) * HEAD_DIM ** -0.5
        p = np.exp(s - s.max())
        out[0, h] = p / p.sum() @ values[:, h // group]
    return out


def bench(kind: str, ctx: int, positions: list[int], calls: int, repeats: int) -> list[list[str]]:
    dev = vx.device(kind)
    device = device_kind(dev.backend)
    if device == "interpreter":
        ctx, calls, repeats = min(ctx, 1024), min(calls, 2), min(repeats, 2)
    positions = [p for p in positions if p < ctx]
    rng = np.random.default_rng(0)
    q = rng.standard_normal((1, HEADS, HEAD_DIM)).astype(np.float32)
    k = rng.standard_normal((ctx, KV_HEADS, HEAD_DIM)).astype(np.float16)
    v = rng.standard_normal((ctx, KV_HEADS, HEAD_DIM)).astype(np.float16)
    tq, tk, tv = (vx.tensor(a, device=dev) for a in (q, k, v))
    start, out = vx.tensor(np.array([0], np.uint32), device=dev), vx.empty(q.shape, vx.f32, dev)
    splits, span = attention_module.plan(1, HEADS // attention_module.head_group(HEADS // KV_HEADS), ctx,
                                         attention_module.split_target(dev))
    pieces = f"{splits} splits (attend_split, multiples of {span} keys)" if splits > 1 else "one split (attend)"
    print(f"{kind}: {dev.backend.device_name} ({device}), ctx {ctx}, {pieces}, {calls} calls a graph", flush=True)
    attention(tq, tk, tv, start, out=out)        # loads the kernels and makes the scratch partials
    dev.synchronize()
    with dev.backend.capture() as graph:
        for _ in range(calls):
            attention(tq, tk, tv, start, out=out)
        dev.flush()
    rows = []
    for pos in positions:
        dev.upload(np.array([pos], np.uint32), start.buffer)
        graph.replay()
        np.testing.assert_allclose(out.numpy(), reference(q, k, v, pos), atol=2e-5)
        times = []
        for _ in range(repeats):
            began = time.perf_counter()
            graph.replay()
            dev.synchronize()
            times.append(time.perf_counter() - began)
        per_call = statistics.median(times) / calls
        rows.append([kind, device, str(ctx), str(pos), f"{per_call * 1e6:.1f}"])
        print(f"  position {pos}: {per_call * 1e6:.1f} us per call", flush=True)
    graph.release()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.vortx_attention", description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("cuda", "webgpu", "cpu"), action="append",
                        help="only these backends (repeatable; default: every one present)")
    parser.add_argument("--ctx", type=int, default=4096, help="rows of the caches (default 4096)")
    parser.add_argument("--positions", type=int, nargs="+", default=[100, 1000, 4000])
    parser.add_argument("--calls", type=int, default=50, help="attention calls in the captured graph")
    parser.add_argument("--repeats", type=int, default=20, help="replays timed (the median counts)")
    parser.add_argument("--split-target", type=int, help="workgroups to aim at, on every device (a tuning of "
                        "vortx.attention.SPLIT_TARGET and CPU_SPLIT_TARGET)")
    args = parser.parse_args(argv)
    if args.split_target:
        attention_module.SPLIT_TARGET = attention_module.CPU_SPLIT_TARGET = args.split_target
    rows = []
    for kind in args.backend or ("cuda", "webgpu", "cpu"):
        try:
            rows += bench(kind, args.ctx, args.positions, args.calls, args.repeats)
        except BackendError as e:
            print(f"{kind}: not available ({e})")
    print("\n| backend | device | ctx | position | us per call |\n| --- | --- | --- | --- | --- |")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
