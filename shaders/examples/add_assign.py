"""The smallest useful kernel: a[i] += b[i]."""

from khal_runtime.lang import Buf, MutBuf, f32, global_id, kernel, require


@kernel(workgroup_size=(256,))
def add_assign(a: MutBuf[f32], b: Buf[f32]):
    require(len(b) >= len(a))
    i = global_id().x
    if i < len(a):
        a[i] += b[i]
