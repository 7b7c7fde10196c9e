"""Backend selection: `khal_runtime.backend("auto" | "cuda" | "webgpu" | "cpu")`.

"auto" takes the first that works of CUDA, WebGPU and the CPU interpreter; the environment variable KHAL_BACKEND
overrides the choice. Each kind has one shared default instance (buffers of one backend cannot be used on
another); construct `WebGpuBackend()`, `CudaBackend()` or `CpuBackend()` directly for separate ones.
"""

from __future__ import annotations

import os

from .base import Backend, BackendError

KINDS = ("cuda", "webgpu", "cpu")
_defaults: dict[str, Backend] = {}


def create(kind: str) -> Backend:
    """A new backend of this kind; raises BackendError saying what is missing."""
    if kind == "cuda":
        from .cuda import CudaBackend
        return CudaBackend()
    if kind == "webgpu":
        from .webgpu import WebGpuBackend
        return WebGpuBackend()
    if kind == "cpu":
        from .cpu import CpuBackend
        return CpuBackend()
    raise ValueError(f"unknown backend {kind!r}; choose one of auto, {', '.join(KINDS)}")


def backend(kind: str = "auto") -> Backend:
    """The default backend of a kind ("auto": CUDA, then WebGPU, then CPU; KHAL_BACKEND overrides)."""
    if kind == "auto":
        kind = os.environ.get("KHAL_BACKEND", "auto") or "auto"
    if kind != "auto":
        if kind not in _defaults:
            _defaults[kind] = create(kind)
        return _defaults[kind]
    reasons = []
    for candidate in KINDS:
        try:
            return backend(candidate)
        except BackendError as e:
            reasons.append(f"{candidate}: {e}")
    raise BackendError("no backend is available:\n  " + "\n  ".join(reasons))


def available() -> dict[str, Backend | str]:
    """Each kind's default backend, or the reason it is unavailable."""
    out: dict[str, Backend | str] = {}
    for kind in KINDS:
        try:
            out[kind] = backend(kind)
        except BackendError as e:
            out[kind] = str(e)
    return out
