"""Shared-memory reductions with barriers (tree reductions in while-loops, two-level subgroup + shared sums, a
tiled product with barriers in a loop) and atomics on values that loops built."""

from khal_runtime.lang import (
    Buf,
    MutBuf,
    atomic_add,
    atomic_compare_exchange,
    atomic_exchange,
    atomic_max,
    barrier,
    f32,
    i32,
    kernel,
    local_id,
    num_subgroups,
    shared,
    static_range,
    subgroup_add,
    subgroup_id,
    subgroup_invocation_id,
    template,
    u32,
    workgroup_id,
)

T = template(f32, i32, u32)


@kernel(workgroup_size=(64,))
def tree_reduction(out: MutBuf[T], x: Buf[T], cols: u32):
    partial = shared(T, 64)
    lid = local_id().x
    acc = T(0)
    for b in range(lid, cols, 64):
        acc += x[b]
    partial[lid] = acc
    barrier()
    stride = u32(32)
    while stride > 0:
        if lid < stride:
            partial[lid] += partial[lid + stride]
        barrier()
        stride = stride >> 1
    if lid == 0:
        out[workgroup_id().x] = partial[0]


@kernel(workgroup_size=(64,))
def subgroups_then_shared(out: MutBuf[f32], x: Buf[f32], cols: u32):
    """Each subgroup sums its lanes' loop totals, one lane per subgroup writes shared memory, the first
    subgroup sums those: the two-level reduction of vortx's full sums."""
    partial = shared(f32, 64)
    lid = local_id().x
    acc = f32(0)
    for b in range(lid, cols, 64):
        acc += x[b]
    s = subgroup_add(acc)
    if subgroup_invocation_id() == 0:
        partial[subgroup_id()] = s
    barrier()
    if subgroup_id() == 0:
        v = f32(0)
        for k in range(subgroup_invocation_id(), num_subgroups(), 32):
            v += partial[k]
        total = subgroup_add(v)
        if lid == 0:
            out[workgroup_id().x] = total


@kernel(workgroup_size=(16, 16))
def tiled_product(c: MutBuf[f32], a: Buf[f32], b: Buf[f32], n: u32):
    ta = shared(f32, 16, 16)
    tb = shared(f32, 16, 16)
    tx, ty = local_id().x, local_id().y
    row, col = workgroup_id().y * 16 + ty, workgroup_id().x * 16 + tx
    acc = f32(0)
    for t in range((n + 15) // 16):
        k = t * 16
        ta[ty, tx] = a[row * n + k + tx] if row < n and k + tx < n else 0.0
        tb[ty, tx] = b[(k + ty) * n + col] if col < n and k + ty < n else 0.0
        barrier()
        for j in static_range(16):
            acc += ta[ty, j] * tb[j, tx]
        barrier()
    if row < n and col < n:
        c[row * n + col] = acc


@kernel(workgroup_size=(64,))
def atomics_of_loop_values(total: MutBuf[u32], biggest: MutBuf[i32], hist: MutBuf[u32], x: Buf[u32], cols: u32):
    bins = shared(u32, 16)
    lid = local_id().x
    if lid < 16:
        bins[lid] = u32(0)
    barrier()
    acc = u32(0)
    top = i32(-1)
    for b in range(lid, cols, 64):
        acc += x[b]
        top = max(top, i32(x[b] & 0xFFFF))
        atomic_add(bins, x[b] % 16, u32(1))
    atomic_add(total, 0, acc)
    atomic_max(biggest, 0, top)
    barrier()
    if lid < 16:
        atomic_add(hist, lid, bins[lid])


@kernel(workgroup_size=(64,))
def atomic_f32_of_a_loop(total: MutBuf[f32], x: Buf[f32], cols: u32):
    lid = local_id().x
    acc = f32(0)
    for b in range(lid, cols, 64):
        acc += x[b]
    s = subgroup_add(acc)
    if subgroup_invocation_id() == 0:
        atomic_add(total, 0, s)



@kernel(workgroup_size=(64,))
def exchange_of_a_loop_value(slots: MutBuf[u32], old: MutBuf[u32], x: Buf[u32], cols: u32):
    lid = local_id().x
    acc = u32(0)
    for b in range(lid, cols, 64):
        acc += x[b]
    old[lid] = atomic_exchange(slots, lid, acc)


@kernel(workgroup_size=(64,))
def compare_exchange(slots: MutBuf[u32], old: MutBuf[u32], x: Buf[u32]):
    """naga 29 rejects every OpAtomicCompareExchange, loop or not (tests/test_naga.py expects the refusal)."""
    lid = local_id().x
    old[lid] = atomic_compare_exchange(slots, lid, x[lid], u32(5))
