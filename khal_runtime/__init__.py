"""khal's runtime: backends, buffers, encoders and passes, and the base of the generated kernel bindings.

    import numpy as np
    import khal_runtime as khal
    from shaders._generated.examples.add_assign import AddAssign

    backend = khal.backend()                         # CUDA, else WebGPU, else the CPU interpreter
    a = backend.init_buffer(np.ones(1000, np.float32))
    b = backend.init_buffer(np.arange(1000, dtype=np.float32))
    add = AddAssign(backend)
    encoder = backend.begin_encoding()
    with encoder.begin_pass("add") as pass_:
        add.call(pass_, len(a), a, b)
    backend.submit(encoder)
    print(a.read())

The names below are imported on first use: the compiler reads `khal_runtime.ir` in build environments that have
no numpy, and a program that only needs `khal_runtime.lang` does not pay for the backends.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:     # what type checkers see; at run time __getattr__ imports each name on first use
    from .backends import available as available
    from .backends import backend as backend
    from .backends.base import Backend as Backend
    from .backends.base import BackendError as BackendError
    from .backends.base import Encoder as Encoder
    from .backends.base import Pass as Pass
    from .backends.base import ReadFuture as ReadFuture
    from .buffers import DEFAULT_USAGE as DEFAULT_USAGE
    from .buffers import Buffer as Buffer
    from .buffers import BufferUsage as BufferUsage
    from .buffers import ReadOnlyBuffer as ReadOnlyBuffer
    from .families import Family as Family
    from .kernels import ArtifactError as ArtifactError
    from .kernels import Grid as Grid
    from .kernels import Indirect as Indirect
    from .kernels import Kernel as Kernel
    from .kernels import KernelArgumentError as KernelArgumentError
    from .kernels import Shader as Shader
    from .kernels import Workgroups as Workgroups
    from .kernels import indirect as indirect
    from .kernels import workgroups as workgroups

_HOMES = {
    "backends.base": ("Backend", "BackendError", "Encoder", "Pass", "ReadFuture"),
    "backends": ("available", "backend"),
    "buffers": ("DEFAULT_USAGE", "Buffer", "BufferUsage", "ReadOnlyBuffer"),
    "families": ("Family",),
    "kernels": ("ArtifactError", "Grid", "Indirect", "Kernel", "KernelArgumentError", "Shader", "Workgroups",
                "indirect", "workgroups"),
}
_HOME = {name: module for module, names in _HOMES.items() for name in names}

__all__ = sorted(_HOME)


def __getattr__(name: str) -> Any:
    module = _HOME.get(name)
    if module is None:
        raise AttributeError(f"module 'khal_runtime' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value
