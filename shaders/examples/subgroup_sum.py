"""Sum of a buffer with subgroup operations: a subgroup sum, then one atomic per subgroup."""

from khal_runtime.lang import Buf, MutBuf, atomic_add, f32, global_id, kernel, subgroup_add, subgroup_invocation_id


@kernel(workgroup_size=(128,))
def subgroup_sum(total: MutBuf[f32], values: Buf[f32]):
    i = global_id().x
    v = values[i] if i < len(values) else 0.0
    s = subgroup_add(v)             # every lane takes part, also past the end of the data
    if subgroup_invocation_id() == 0:
        atomic_add(total, 0, s)
