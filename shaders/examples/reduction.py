"""Sum of a buffer: each workgroup reduces its slice in shared memory, then one atomic per workgroup."""

from khal_runtime.lang import Buf, MutBuf, atomic_add, barrier, global_id, kernel, local_id, shared, u32

WORKGROUP = 256


@kernel(workgroup_size=(WORKGROUP,))
def sum_u32(total: MutBuf[u32], values: Buf[u32]):
    partial = shared(u32, WORKGROUP)
    lid = local_id().x
    i = global_id().x
    partial[lid] = values[i] if i < len(values) else u32(0)
    barrier()
    stride = u32(WORKGROUP // 2)
    while stride > 0:
        if lid < stride:
            partial[lid] += partial[lid + stride]
        barrier()
        stride //= 2
    if lid == 0:
        atomic_add(total, 0, partial[0])
