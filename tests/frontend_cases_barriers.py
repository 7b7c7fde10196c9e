"""Barriers and subgroup operations that not every invocation reaches (hatch_khal/frontend/uniformity.py), each with
what the error must say (every string of the tuple appears in it; the line marked `# <-` is where it points), and
kernels that do reach them uniformly, which must compile.

Compiled like frontend_cases.INVALID: as module `m` of a fresh shader package, after BARRIER_PRELUDE.
"""

BARRIER_PRELUDE = """\
from khal_runtime.lang import (Buf, MutBuf, Array, kernel, shared, array, barrier, storage_barrier, global_id,
    local_id, workgroup_id, subgroup_id, subgroup_invocation_id, subgroup_add, atomic_add, f32, u32)

"""

DIVERGENT = [
    ("a barrier inside a thread-dependent if", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    t = shared(f32, 64)
    lid = local_id().x
    if lid < 32:
        t[lid] = a[lid]
        barrier()  # <-
""", ("not every invocation of the workgroup reaches this barrier() (undefined behaviour on WebGPU and CUDA)",
      "note: pkg/m.py:9:8: this condition depends on the invocation, through local_id().x\n          if lid < 32:\n"
      "             ^^^^^^^^")),
    ("a barrier after a thread-dependent return", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    t = shared(f32, 64)
    i = global_id().x
    if i >= len(a):
        return
    t[local_id().x] = a[i]
    storage_barrier()  # <-
    a[i] = t[0]
""", ("reaches this storage_barrier()", "pkg/m.py:10:9: some invocations return here",
      "guard the work with the condition instead of leaving early")),
    ("a barrier in a loop of a thread-dependent trip count", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32], n: u32):
    for j in range(local_id().x, n, 64):
        a[j] = 0.0
        barrier()  # <-
""", ("the trip count of this loop depends on the invocation, through local_id().x",
      "give the loop a trip count that the whole workgroup shares")),
    ("a barrier in a loop that some invocations leave", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32], n: u32):
    for j in range(n):
        barrier()  # <-
        if a[j * 64 + local_id().x] > 0.0:
            break
""", ("reaches this barrier()", "some invocations leave the loop here")),
    ("a while loop over an atomic's result", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[u32]):
    n = atomic_add(a, 0, u32(1))
    while n < 10:
        barrier()  # <-
        n += 1
""", ("the trip count of this loop depends on the invocation, through the result of atomic_add",)),
    ("a barrier behind a local assigned under a thread-dependent if", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    last = False
    if global_id().x + 1 == len(a):
        last = True
    if last:
        barrier()  # <-
""", ("through last, assigned at line 9 under control flow that depends on the invocation",)),
    ("a barrier behind a load at a thread-dependent index", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    if a[local_id().x] > 0.0:
        barrier()  # <-
""", ("this condition depends on the invocation, through local_id().x\n",)),
    ("a barrier that only one subgroup reaches", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    if subgroup_id() == 0:
        barrier()  # <-
""", ("through subgroup_id()",)),
    ("a helper's barrier called under a thread-dependent if", """
def sync(t: Array[f32]):
    t[0] = 0.0
    barrier()

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    t = shared(f32, 64)
    if a[local_id().x] > 0.0:
        sync(t)  # <-
""", ("reaches this call of sync(), which executes a barrier()", "note: pkg/m.py:7:5: the barrier()")),
    ("a barrier after a thread-dependent return in a helper", """
def stage(t: Array[f32], x: f32, lid: u32):
    if lid == 0:
        return
    t[lid] = x
    barrier()  # <-

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    t = shared(f32, 64)
    stage(t, a[0], local_id().x)
""", ("not every invocation of the workgroup reaches this barrier()", "pkg/m.py:7:9: some invocations return here",
      "in stage, called from pkg/m.py:")),
    ("a helper's thread-dependent result as a condition", """
def first(lid: u32) -> bool:
    return lid == 0

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    if first(local_id().x):
        barrier()  # <-
""", ("this condition depends on the invocation, through local_id().x",)),
    ("a subgroup operation after a thread-dependent return", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    i = global_id().x
    if i >= len(a):
        return
    a[i] = subgroup_add(a[i])  # <-
""", ("not every invocation of the subgroup reaches this subgroup_add()", "some invocations return here")),
]

ACCEPTED = """
def tree_sum(t: Array[f32], lid: u32) -> f32:
    s = u32(32)
    while s > 0:
        if lid < s:
            t[lid] += t[lid + s]
        barrier()
        s //= 2
    return t[0]


def clamp_index(i: u32, n: u32) -> u32:
    if i >= n:
        return n - 1
    return i


@kernel(workgroup_size=(64,))
def uniform_barriers(out: MutBuf[f32], x: Buf[f32], n: u32):
    t = shared(f32, 64)
    lid = local_id().x
    row = workgroup_id().x
    if row >= n:                        # whole workgroups return
        return
    for j in range(0, n, 64):           # a trip count from a parameter
        t[lid] = x[clamp_index(j + lid, n)]
        barrier()
        total = tree_sum(t, lid)        # a helper with barriers, called by every invocation
        if total > 100.0:               # a value read back from shared memory at a uniform index
            break
        barrier()
    m = u32(0)
    while m < len(x):
        if x[m] > 0.0:                  # a load at a uniform index
            break
        m += 1
    barrier()
    if global_id().y < n:               # the workgroup is one invocation high: global_id().y is uniform
        barrier()
    private = array(f32, 2)
    private[0] = f32(n)
    if private[0] > 1.0:
        barrier()
    if lid == 0:
        out[row] = t[0]
    barrier()


@kernel(workgroup_size=(64,))
def subgroups_in_varying_ifs(out: MutBuf[f32], x: Buf[f32], n: u32):
    lid = local_id().x
    v = subgroup_add(x[lid])
    if lid < 32:                        # may be uniform in each subgroup: allowed
        v = subgroup_add(v)
    for q in range(lid, n, 64):
        out[q] = subgroup_add(x[q])
    if subgroup_invocation_id() == 0:
        out[subgroup_id()] = v
"""
