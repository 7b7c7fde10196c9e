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
"""

from .backend import Backend, BackendError, Encoder, Pass, ReadFuture
from .backends import available, backend
from .buffers import DEFAULT_USAGE, Buffer, BufferUsage, ReadOnlyBuffer
from .kernels import (
                      ArtifactError,
                      Grid,
                      Indirect,
                      Kernel,
                      KernelArgumentError,
                      Shader,
                      Workgroups,
                      indirect,
                      workgroups,
)

__all__ = [
    "Backend", "BackendError", "Encoder", "Pass", "ReadFuture", "available", "backend", "DEFAULT_USAGE", "Buffer",
    "BufferUsage", "ReadOnlyBuffer", "ArtifactError", "Grid", "Indirect", "Kernel", "KernelArgumentError", "Shader",
    "Workgroups", "indirect", "workgroups",
]
