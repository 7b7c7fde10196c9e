"""Loading kernels' SPIR-V through wgpu (naga, then the Vulkan driver) in child processes, for tests/test_naga.py.

naga in wgpu-native 29 can panic on SPIR-V, and a panic aborts the whole process, so each batch of kernels loads
in a child: `load_in_children` sends it the kernels, and the child reports the start and the end of each one on its
standard output. When a child dies, the kernel it had started is the one that killed it; it is recorded as
`crashed` with naga's panic message, and a new child loads the kernels that were not reached yet. A kernel loads
the way the runtime loads it (`WebGpuBackend.load_kernel`: shader module, then compute pipeline with khal's layout).

Run as a script, this module is that child.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
# what a child may take to load one kernel before it is taken for hung (lavapipe compiles each pipeline with LLVM)
SECONDS_PER_KERNEL = 20


class Loaded(NamedTuple):
    """How one kernel fared: `ok`, `rejected` (wgpu refused it with an error), `crashed` (the process died loading
    it), `hung`, or `skipped` (the device lacks a feature it needs); `message` says more."""
    status: str
    message: str = ""


class LoaderFailed(Exception):
    """A child died before it started on any kernel (no WebGPU adapter, a broken installation)."""


def load_in_children(kernels: dict[str, tuple[dict, bytes]]) -> dict[str, Loaded]:
    """How each kernel, `{name: (manifest entry, SPIR-V)}`, loads through wgpu, each batch in a child process."""
    results: dict[str, Loaded] = {}
    remaining = list(kernels)
    while remaining:
        batch = [{"name": name, "info": kernels[name][0], "spirv": base64.b64encode(kernels[name][1]).decode()}
                 for name in remaining]
        started, stderr = None, ""
        try:
            child = subprocess.run([sys.executable, __file__], input=json.dumps(batch), capture_output=True,
                                   text=True, cwd=ROOT, timeout=10 + SECONDS_PER_KERNEL * len(batch))
            stdout, stderr, code = child.stdout, child.stderr, child.returncode
        except subprocess.TimeoutExpired as e:
            stdout, code = _text(e.stdout), None
        for line in stdout.splitlines():
            report = json.loads(line)
            if "adapter" in report:
                raise LoaderFailed(f"the child found no WebGPU device: {report['adapter']}")
            if "start" in report:
                started = report["start"]
            else:
                results[report["name"]] = Loaded(report["status"], report["message"])
                started = None
        if started is not None:
            results[started] = (Loaded("hung", f"still loading after {SECONDS_PER_KERNEL} s a kernel")
                                if code is None else Loaded("crashed", f"exit status {code}: {_panic(stderr)}"))
        elif code != 0 and not any(name in results for name in remaining):
            raise LoaderFailed(f"the loader child failed (exit status {code}) before any kernel:\n{stderr[-3000:]}")
        remaining = [name for name in remaining if name not in results]
    return results


def _text(output: bytes | str | None) -> str:
    return output.decode(errors="replace") if isinstance(output, bytes) else output or ""


def _panic(stderr: str) -> str:
    """naga's panic message (the line `thread ... panicked at FILE:LINE` and the one after it), or the last lines."""
    lines = stderr.splitlines()
    for i, line in enumerate(lines):
        if "panicked at" in line:
            return " ".join(lines[i:i + 2])
    return " | ".join(lines[-3:]) or "no message"


def _child() -> None:
    sys.path.insert(0, str(ROOT))
    from khal_runtime import BackendError
    from khal_runtime.backends.webgpu import WebGpuBackend

    def report(**fields: str) -> None:
        print(json.dumps(fields), flush=True)  # flushed: the line must be out before a panic can abort us

    batch = json.load(sys.stdin)
    try:
        backend = WebGpuBackend()
    except BackendError as e:
        report(adapter=str(e))
        return
    for item in batch:
        name, info, spirv = item["name"], item["info"], base64.b64decode(item["spirv"])
        report(start=name)
        missing = sorted(set(info["features"]) - backend.features)
        if missing:
            report(name=name, status="skipped", message=f"{backend.device_name} lacks {', '.join(missing)}")
            continue
        try:
            backend.load_kernel(info, lambda kind, spirv=spirv: spirv)
        except BackendError as e:
            report(name=name, status="rejected", message=str(e))
        else:
            report(name=name, status="ok", message="")


if __name__ == "__main__":
    _child()
