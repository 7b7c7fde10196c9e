"""`inferi bench`: prompt and decode speed of a model in llama-bench's table columns, with what it costs.

Prompt processing (`ppN`) is timed on N random tokens from an empty cache, after one untimed run of the same size
(kernels loaded, workspaces made); generation (`tgN`) on N greedy tokens after a short prompt, each one a replay of
the captured decode step and a sample, the first token excluded. Each test runs `repetitions` times and reports the
mean and standard deviation, as llama-bench does. Besides tokens/s the table gives the weights' bandwidth that a
decode speed implies (every token reads every weight once), and the run reports the load time, the device memory
at its peak against the weights and the KV cache, the process's peak resident host memory, and what the load
added to it (`HostMemoryMeter`: measured from after the libraries are imported and the device is made, so that the
figure is the model's, not the libraries').
"""

from __future__ import annotations

import resource
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gguf
import numpy as np

from .sampling import SamplingParams


@dataclass
class Result:
    test: str                       # "pp512", "tg128"
    tokens_per_second: list[float]

    @property
    def mean(self) -> float:
        return statistics.fmean(self.tokens_per_second)

    @property
    def std(self) -> float:
        return statistics.stdev(self.tokens_per_second) if len(self.tokens_per_second) > 1 else 0.0


def prompt_speed(model, n: int, seed: int = 0) -> float:
    rng = np.random.default_rng(seed)
    ids = [int(t) for t in rng.integers(0, model.config.vocab_size, n)]
    model.reset()
    model.prefill(ids).numpy()                 # untimed: loads kernels and makes the workspace of this size
    model.reset()
    start = time.perf_counter()
    model.prefill(ids).numpy()
    return n / (time.perf_counter() - start)


def decode_speed(model, n: int) -> float:
    model.reset()
    stream = model.generate_tokens(model.tokenizer.encode("Once upon a time"),
                                   SamplingParams(temperature=0, max_tokens=n + 1))
    next(stream)                                # the prompt and the first token are not decoding
    start, count = time.perf_counter(), 0
    for _ in stream:
        count += 1
    if count < n:
        raise RuntimeError(f"inferi bench: the model ended its text after {count} of {n} tokens")
    return count / (time.perf_counter() - start)


def run(model, prompt_sizes: list[int], decode: list[int], repetitions: int) -> Iterator[Result]:
    for n in prompt_sizes:
        yield Result(f"pp{n}", [prompt_speed(model, n, seed) for seed in range(repetitions)])
    for n in decode:
        yield Result(f"tg{n}", [decode_speed(model, n) for _ in range(repetitions)])


def weight_bytes(model) -> int:
    return sum(info.nbytes for info in model.file.tensors.values())


def file_type(value: object) -> str:
    try:
        return gguf.LlamaFileType(value).name.removeprefix("MOSTLY_").removeprefix("ALL_")
    except ValueError:
        return ""


def on_cpu(model) -> bool:
    """Whether the device is a CPU (the interpreter, lavapipe): there the default tests are small."""
    return model.device.on_cpu


def table(model, results: list[Result]) -> list[str]:
    """llama-bench's markdown table (model, size, params, backend, test, t/s), and the weights' GB/s."""
    c, size = model.config, weight_bytes(model)
    params = sum(info.n_elements for info in model.file.tensors.values())
    name = f"{c.arch} {params / 1e6:.0f}M {file_type(model.file.metadata.get('general.file_type'))}".strip()
    lines = ["| model | size | params | backend | test | t/s | weights GB/s |",
             "| --- | ---: | ---: | --- | ---: | ---: | ---: |"]
    for r in results:
        gbps = f"{r.mean * size / 1e9:.1f}" if r.test.startswith("tg") else ""
        lines.append(f"| {name} | {size / 2**20:.2f} MiB | {params / 1e6:.2f} M | {model.device.backend.name} | "
                     f"{r.test} | {r.mean:,.2f} ± {r.std:,.2f} | {gbps} |")
    return lines


def prepare(backend: str | None) -> float:
    """Imports what a load imports and makes the device, so that a HostMemoryMeter around the load sees the model;
    the seconds the device took to start."""
    import vortx

    from . import llm  # noqa: F401
    started = time.perf_counter()
    vortx.device(backend or "auto")
    return time.perf_counter() - started


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


class HostMemoryMeter:
    """`with HostMemoryMeter() as m: ...`: `m.added`, the resident host memory the block added at its peak (bytes),
    or None where Linux's /proc is absent. The peak is the process's high-water mark (VmHWM) reset at the start
    through /proc/self/clear_refs; where that write is refused, a thread samples VmRSS every millisecond instead
    (a peak shorter than that can be missed). ru_maxrss would not do: it is the peak of the process's whole life."""

    def __enter__(self) -> HostMemoryMeter:
        self.added: int | None = None
        self._sampler = None
        if not Path("/proc/self/status").exists():
            return self
        self._before = _status_bytes("VmRSS")
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:
            self._peak, self._done = self._before, threading.Event()
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(0.001):
            self._peak = max(self._peak, _status_bytes("VmRSS"))

    def __exit__(self, *exc) -> None:
        if not hasattr(self, "_before"):
            return
        if self._sampler is not None:
            self._done.set()
            self._sampler.join()
            peak = max(self._peak, _status_bytes("VmRSS"))
        else:
            peak = _status_bytes("VmHWM")
        self.added = peak - self._before


def memory_lines(model, load_added: int | None = None, device_seconds: float | None = None) -> list[str]:
    _, peak = model.device.backend.memory()
    weights, cache = weight_bytes(model), model.cache.nbytes
    host = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    lines = [f"device: {model.device.backend.device_name}",
             f"load: {model.load_seconds:.2f} s (file to first token possible; the device's start before it: "
             f"{model.device_seconds if device_seconds is None else device_seconds:.2f} s)",
             f"device memory at peak: {peak / 2**20:,.1f} MiB = {peak / (weights + cache):.2f}x of weights "
             f"({weights / 2**20:,.1f} MiB) + KV cache ({cache / 2**20:,.1f} MiB, {model.ctx} tokens)",
             f"host memory at peak (resident): {host / 2**20:,.1f} MiB; the file is {model.file.size / 2**20:,.1f} MiB"]
    if load_added is not None:
        mine = " (on this CPU device the weights' device copy is host memory too)" if on_cpu(model) else ""
        lines.append(f"host memory added by the load: {load_added / 2**20:,.1f} MiB "
                     f"({load_added / model.file.size:.2f} x the file){mine}")
    return lines
