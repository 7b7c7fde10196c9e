"""The WebGPU backend: wgpu-py (wgpu-native) on Vulkan, Metal or D3D12; Mesa's lavapipe on a CPU-only machine.

Kernels arrive as SPIR-V that naga translates. The ABI is docs/IR.md's: buffer `i` at group 0, binding `i`, always
bound as a `storage` buffer (naga ignores `readonly`; the host enforces read-only), and the immediates (push
constants) start with the hidden `uvec4 khal_grid = (X, Y, Z, fold)` followed by the scalar parameters at the
offsets of the manifest's `push_constants` layout.

Per-dispatch host work is the point of this module's shape. `WebGpuKernel.dispatch` does, per call: one tuple of
buffer ids and a dict look-up for the cached bind group, `set_pipeline` / `set_bind_group` only when they differ
from what the pass has bound, one `struct.pack_into` into a reused immediates buffer, `set_immediates` and the
dispatch. Pipelines are cached per kernel (id and SPIR-V hash) on the backend; bind groups are cached on the
backend by the identity of their buffers, shared by all kernels with the same buffer count (one bind-group layout
per count), and dropped when one of their buffers is garbage collected.

Grids over the device's per-dimension limit (65,535) in x are folded into z: the logical grid (X, Y, 1) runs as
(fold, Y, ceil(X / fold)) with khal_grid = (X, Y, 1, fold), and the kernel maps the workgroup id back and skips the
workgroups past X. Indirect dispatches are never folded: khal_grid is (0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0), so
no workgroup is skipped, and the kernel should take its workgroup count from the builtin when fold == 0.

Device alignment rules that the host API hides: buffers are allocated in whole 4-byte words; writes of 16-bit
elements at an odd offset or count merge the boundary words (a short synchronous read); device copies must start
and end on 4-byte boundaries (only f16 copies can break that, and they are refused with an explanation, except a
copy that ends at the end of both buffers).

Where things are: `adapter` (importing wgpu-py, choosing the adapter, the features and limits asked for), `commands`
(the compute-pass commands of the hot path), `encoding` (passes and encoders), `kernel` (a pipeline and its
dispatch) and `backend` (`WebGpuBackend`: buffers, bind groups, submission).
"""

from __future__ import annotations

from typing import Any

from . import adapter as _adapter
from .adapter import FEATURES, GOOD_BACKENDS, choose_adapter
from .backend import WebGpuBackend
from .encoding import WebGpuEncoder, WebGpuPass
from .kernel import WebGpuKernel

__all__ = ["FEATURES", "GOOD_BACKENDS", "WebGpuBackend", "WebGpuEncoder", "WebGpuKernel", "WebGpuPass",
           "choose_adapter"]


def __getattr__(name: str) -> Any:
    if name == "wgpu":              # the wgpu module once a backend was created (None before)
        return _adapter.wgpu
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
