"""`python -m benchmarks.inferi_profile [MODEL] [--backend B] [--tokens N]`: where a forward pass's time goes.

Records the dispatches of one decode step (at position `--at`), or of a prefill chunk of `--tokens` tokens, then
times each distinct one alone: a graph of `--repeat` copies of it, replayed, divided by the copies. The table
groups them by kernel and grid and sets their sum beside the whole pass: the replay of the captured decode step
(the difference is what the chaining of kernels costs, which fusing kernels removes), or the prefill chunk run as
generation runs it (the difference is the host's part). For decode it also times the generation loop's tokens
(a replay and the read of the picked id each).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import inferi
import vortx
from inferi.model import Workspace


def timed_replay(device: vortx.Device, graph, times: int) -> float:
    """Seconds per replay of `graph`, over `times` replays after one to warm up."""
    graph.replay()
    device.synchronize()
    started = time.perf_counter()
    graph.replay(times)
    device.synchronize()
    return (time.perf_counter() - started) / times


def record_step(model: inferi.LanguageModel, ws: Workspace, at: int) -> list[tuple]:
    """The dispatches (kernel class, grid, args, kwargs) of a forward pass over `ws` at position `at`."""
    model.prefill(list(range(10, 10 + at)))
    device = model.device
    ws.set_inputs([42] * ws.n, at)
    device.synchronize()
    calls: list[tuple] = []
    dispatch = device.dispatch

    def recording(cls, grid, *args, **kwargs):
        calls.append((cls, grid, args, kwargs))
        dispatch(cls, grid, *args, **kwargs)

    device.dispatch = recording
    try:
        model.model.forward(ws, model.cache)
    finally:
        del device.dispatch
    device.synchronize()
    return calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?")
    parser.add_argument("--backend", default=None)
    parser.add_argument("--at", type=int, default=100, help="the position decoded (default 100)")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=1, help="1: a decode step; more: a prefill chunk")
    args = parser.parse_args()
    model = inferi.load_model(args.model, backend=args.backend, context_length=1024, progress=False)
    device = model.device
    ws = model.decode_step if args.tokens == 1 else Workspace(model.config, args.tokens, device)
    calls = record_step(model, ws, args.at)
    if args.tokens == 1:
        model._decode(42)                       # captures the step
        step = timed_replay(device, model.graphs[False], 20)
        token = model._decode_greedy(42)
        started = time.perf_counter()
        for _ in range(20):
            token = model._decode_greedy(token)
        loop = (time.perf_counter() - started) / 20
    else:
        started = time.perf_counter()
        model.model.forward(ws, model.cache)
        device.synchronize()
        step = time.perf_counter() - started
    groups: dict[tuple, list] = defaultdict(list)
    for cls, grid, a, kw in calls:
        groups[(cls.__name__, str(grid))].append((cls, grid, a, kw))
    rows = []
    for (name, grid), same in groups.items():
        cls, g, a, kw = same[0]
        with device.capture() as graph:
            for _ in range(args.repeat):
                device.dispatch(cls, g, *a, **kw)
        rows.append((timed_replay(device, graph, 5) / args.repeat, len(same), name, grid))
        graph.release()
    total = sum(t * n for t, n, _, _ in rows)
    print(f"{device.backend.device_name} ({device.backend.name}), {args.tokens} token(s) at position {args.at}: "
          f"{len(calls)} dispatches")
    print("| kernel | grid | per call µs | calls | µs per token | share |")
    print("| --- | --- | --- | --- | --- | --- |")
    for t, n, name, grid in sorted(rows, key=lambda r: -r[0] * r[1]):
        print(f"| {name} | {grid} | {t * 1e6:.2f} | {n} | {t * n * 1e6:.1f} | {t * n / total:.0%} |")
    what = "the captured step" if args.tokens == 1 else f"the chunk of {args.tokens} tokens"
    print(f"\nsum of the kernels alone: {total * 1e3:.3f} ms; {what}: {step * 1e3:.3f} ms "
          f"({args.tokens / step:,.0f} tokens/s)")
    if args.tokens == 1:
        print(f"greedy generation loop: {loop * 1e3:.3f} ms a token ({1 / loop:,.0f} tokens/s)")


if __name__ == "__main__":
    main()
