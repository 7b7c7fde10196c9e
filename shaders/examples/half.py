"""f16 data: y = a * x + y computed in f16, and an f16 -> f32 widening."""

from khal_runtime.lang import Buf, MutBuf, f16, f32, global_id, kernel


@kernel(workgroup_size=(64,))
def axpy_f16(y: MutBuf[f16], x: Buf[f16], a: f32):
    i = global_id().x
    if i < len(y):
        y[i] = f16(a) * x[i] + y[i]


@kernel(workgroup_size=(64,))
def widen_f16(out: MutBuf[f32], x: Buf[f16]):
    i = global_id().x
    if i < len(out):
        out[i] = f32(x[i])
