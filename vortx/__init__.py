"""vortx: GPU tensors on khal, with views, broadcasting, reductions and matrix products, on every backend.

    import numpy as np
    import vortx as vx

    a = vx.tensor(np.arange(6, dtype=np.float32).reshape(2, 3))    # on the default device (CUDA, WebGPU or CPU)
    b = vx.ones((3,))
    c = (a + b).exp() @ a.T                                         # recorded, not yet run
    print(c.numpy(), c.sum().item())                                # reading runs the work

Tensors have up to four dimensions (NCHW) and hold f32, i32, u32 (arithmetic) or f16 (storage; convert with
`.to(vx.f32)`). `vx.device("cpu" | "webgpu" | "cuda")` picks a backend; `KHAL_BACKEND` sets the default.
`vx.run(Kernel, grid, *tensors_and_scalars)` runs a hand-written kernel on tensors (vortx/custom.py).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from khal_runtime.backends.base import CaptureError
from khal_runtime.buffers import element_type
from khal_runtime.lang import f16, f32, i32, u32

from . import nn, ops
from .custom import run
from .devices import Device, device
from .gemm import matmul
from .ops import ShapeError
from .select import argmax, top_k
from .tensor import Tensor

__all__ = ["Tensor", "Device", "ShapeError", "device", "tensor", "empty", "zeros", "ones", "full", "arange",
           "matmul", "run", "argmax", "top_k", "f32", "f16", "i32", "u32", "nn", "CaptureError"]

# numpy's defaults (float64, int64) become vortx's (f32, i32) when no dtype is given
_DEFAULTS = {np.dtype(np.float64): f32, np.dtype(np.int64): i32}


def _device(where: Device | str | None) -> Device:
    return where if isinstance(where, Device) else device(where or "auto")


def tensor(data: Any, dtype: Any = None, device: Device | str | None = None) -> Tensor:
    """A tensor holding a copy of `data` (a numpy array, a list or a number). Without `dtype`, numpy's float64 and
    int64 become f32 and i32."""
    array = np.asarray(data)
    t = element_type(dtype) if dtype is not None else _DEFAULTS.get(array.dtype) or element_type(array.dtype)
    if t.numpy != array.dtype.name:
        converted = array.astype(t.numpy)
        if array.dtype.kind in "iu" and not np.array_equal(converted, array):
            raise ValueError(f"vortx.tensor: the values do not fit in {t.ir}")
        array = converted
    out = empty(array.shape, t, device)
    if out.size:
        out.device.upload(np.ascontiguousarray(array).reshape(-1), out.buffer)
    return out


def empty(shape: Any, dtype: Any = f32, device: Device | str | None = None) -> Tensor:
    """A contiguous tensor whose contents are undefined."""
    return _device(device).empty(_shape(shape), dtype)


def full(shape: Any, value: Any, dtype: Any = f32, device: Device | str | None = None) -> Tensor:
    return ops.fill(empty(shape, dtype, device), value)


def zeros(shape: Any, dtype: Any = f32, device: Device | str | None = None) -> Tensor:
    return full(shape, 0, dtype, device)


def ones(shape: Any, dtype: Any = f32, device: Device | str | None = None) -> Tensor:
    return full(shape, 1, dtype, device)


def arange(start: Any, stop: Any = None, step: Any = 1, dtype: Any = None,
           device: Device | str | None = None) -> Tensor:
    """numpy.arange, as a tensor (i32 for integer bounds, f32 otherwise, unless `dtype` says)."""
    return tensor(np.arange(start, stop, step) if stop is not None else np.arange(start, step=step), dtype, device)


def _shape(shape: Any) -> tuple[int, ...]:
    dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
    if any(not isinstance(d, (int, np.integer)) or d < 0 for d in dims):
        raise ShapeError(f"vortx: {shape!r} is not a shape")
    return tuple(int(d) for d in dims)

