"""Backend.memory: the bytes of the buffers a backend created and that are alive, and their peak."""

from __future__ import annotations

import gc

import numpy as np

from khal_runtime.lang import f32, u32


def test_buffers_are_counted_until_collected(backend):
    base, _ = backend.memory(reset_peak=True)
    a = backend.uninit_buffer(f32, 1000)
    b = backend.init_buffer(np.arange(10, dtype=np.uint32))
    assert backend.memory() == (base + 4040, base + 4040)
    view = a.prefix(10)                     # a view allocates nothing
    assert backend.memory()[0] == base + 4040
    del a, view
    gc.collect()
    assert backend.memory() == (base + 40, base + 4040)
    assert backend.memory(reset_peak=True)[1] == base + 4040
    assert backend.memory() == (base + 40, base + 40)
    c = backend.uninit_buffer(u32, 0)
    assert backend.memory()[0] == base + 40
    del b, c
    gc.collect()
    assert backend.memory()[0] == base
