"""Differential testing of kernels: run a kernel on a backend and compare what it wrote with a numpy reference.

A `Case` names a kernel (its binding class), generates named arguments for a size (numpy arrays become buffers,
anything else is passed as it is; names starting with `_` are the case's own notes, not arguments), computes the
expected contents of the buffers the kernel writes, and gives the grid. The project's tests run every case on
every backend; `python examples/demo.py` runs the examples' cases.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backends.base import Backend

Args = dict[str, Any]


@dataclass
class Case:
    kernel: type
    inputs: Callable[[np.random.Generator, int], Args]
    reference: Callable[[Args], dict[str, np.ndarray]]
    grid: Callable[[Args], Any]
    sizes: tuple[int, ...] = (1, 63, 64, 1000, 4097)
    tolerance: dict[str, float] = field(default_factory=dict)   # per output, relative to its largest magnitude

    @property
    def id(self) -> str:
        return self.kernel.ID

    def rng(self) -> np.random.Generator:
        """A generator seeded by the kernel's id: the same inputs on every run and every backend."""
        return np.random.default_rng(zlib.crc32(self.id.encode()))


def run(case: Case, backend: Backend, args: Args) -> dict[str, np.ndarray]:
    """Dispatch the case's kernel once with `args`; the contents of every buffer afterwards."""
    args = {name: value for name, value in args.items() if not name.startswith("_")}
    buffers = {name: backend.init_buffer(value) for name, value in args.items() if isinstance(value, np.ndarray)}
    encoder = backend.begin_encoding()
    with encoder.begin_pass(case.id) as pass_:
        backend.kernel(case.kernel).call(pass_, case.grid(args), **{n: buffers.get(n, v) for n, v in args.items()})
    backend.submit(encoder)
    return {name: buf.read() for name, buf in buffers.items()}


def mismatch(got: np.ndarray, want: np.ndarray, tolerance: float) -> str | None:
    """None when `got` matches `want` (exactly, or within `tolerance` times the largest expected magnitude);
    otherwise what differs."""
    if got.dtype != want.dtype or got.shape != want.shape:
        return f"got {got.dtype}{got.shape}, expected {want.dtype}{want.shape}"
    if tolerance == 0:
        bad = np.flatnonzero(got != want)
    else:
        scale = max(1.0, float(np.max(np.abs(want.astype(np.float64)), initial=0)))
        bad = np.flatnonzero(np.abs(got.astype(np.float64) - want.astype(np.float64)) > tolerance * scale)
    if bad.size == 0:
        return None
    return f"{bad.size} of {got.size} elements differ, the first at {bad[0]}: got {got[bad[0]]}, " \
           f"expected {want[bad[0]]}"


def check(case: Case, backend: Backend, rng: np.random.Generator, n: int) -> list[str]:
    """Run the case at size `n`; a line per output that does not match (empty when all match)."""
    args = case.inputs(rng, n)
    expected = case.reference({k: v.copy() if isinstance(v, np.ndarray) else v for k, v in args.items()})
    got = run(case, backend, args)
    problems = []
    for name, want in expected.items():
        problem = mismatch(got[name], want, case.tolerance.get(name, 0))
        if problem:
            problems.append(f"{case.id} (n={n}) on {backend.name}, {name}: {problem}")
    return problems
