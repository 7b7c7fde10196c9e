"""Subgroup operations on values of while-loops with breaks, of branches, inside loops and branches; shuffles and
broadcasts whose value or lane a loop computed; votes on flags a loop set."""

from khal_runtime.lang import (
    Buf,
    MutBuf,
    f32,
    i32,
    kernel,
    local_id,
    subgroup_add,
    subgroup_all,
    subgroup_any,
    subgroup_broadcast_first,
    subgroup_invocation_id,
    subgroup_max,
    subgroup_shuffle,
    subgroup_shuffle_down,
    subgroup_shuffle_up,
    subgroup_shuffle_xor,
    subgroup_size,
    template,
    u32,
)

SHUFFLE = template("shuffle", "xor", "down", "up", "broadcast_first")


@kernel(workgroup_size=(32,))
def while_with_break(y: MutBuf[f32], x: Buf[f32], cols: u32, limit: f32):
    lid = local_id().x
    acc = f32(0)
    b = lid
    while b < cols:
        if acc > limit:
            break
        acc += x[b]
        b += 32
    y[lid] = subgroup_add(acc)


@kernel(workgroup_size=(32,))
def loop_with_continue(y: MutBuf[i32], x: Buf[i32], cols: u32):
    lid = local_id().x
    acc = i32(0)
    for b in range(lid, cols, 32):
        if x[b] < 0:
            continue
        acc += x[b]
    y[lid] = subgroup_max(acc)


@kernel(workgroup_size=(32,))
def value_of_a_branch(y: MutBuf[f32], x: Buf[f32], flag: u32):
    """The operand is a phi of an if/else merge, not of a loop."""
    lid = local_id().x
    v = f32(0)
    if x[lid] > 0.0:
        v = x[lid] * 2.0
    else:
        v = -x[lid]
    if flag == 1:
        v += 1.0
    y[lid] = subgroup_add(v)


@kernel(workgroup_size=(32,))
def reduce_inside_a_branch(y: MutBuf[f32], x: Buf[f32], cols: u32):
    """A loop's value reduced under a uniform condition, and again after the branch joins."""
    lid = local_id().x
    acc = f32(0)
    for b in range(lid, cols, 32):
        acc += x[b]
    total = f32(0)
    if cols > 64:
        total = subgroup_add(acc)
    else:
        total = subgroup_max(acc)
    y[lid] = total + subgroup_add(total)


@kernel(workgroup_size=(32,))
def reduce_inside_a_loop(y: MutBuf[f32], x: Buf[f32], rounds: u32):
    """A subgroup operation in a loop body on the loop-carried value (a phi of the loop header)."""
    lid = local_id().x
    v = x[lid]
    for _round in range(rounds):
        v = subgroup_add(v) * 0.5 + v
    y[lid] = v


@kernel(workgroup_size=(32,))
def butterfly_in_a_while_loop(y: MutBuf[f32], x: Buf[f32], cols: u32):
    """The shuffle-xor reduction written as a run-time loop: value and lane mask are both loop phis."""
    lid = local_id().x
    v = f32(0)
    for b in range(lid, cols, 32):
        v += x[b]
    offset = subgroup_size() // 2
    while offset > 0:
        v += subgroup_shuffle_xor(v, offset)
        offset = offset // 2
    y[lid] = v


@kernel(workgroup_size=(32,))
def shuffles_of_loop_values(y: MutBuf[u32], x: Buf[u32], cols: u32):
    lid = local_id().x
    acc = u32(0)
    lane = u32(0)
    for b in range(lid, cols, 32):
        acc += x[b]
        lane = (lane + x[b]) % subgroup_size()
    if SHUFFLE == "shuffle":
        y[lid] = subgroup_shuffle(acc, lane)
    elif SHUFFLE == "xor":
        y[lid] = subgroup_shuffle_xor(acc, 1)
    elif SHUFFLE == "down":
        y[lid] = subgroup_shuffle_down(acc, 1)
    elif SHUFFLE == "up":
        y[lid] = subgroup_shuffle_up(acc, 1)
    else:
        y[lid] = subgroup_broadcast_first(acc)


@kernel(workgroup_size=(32,))
def votes_on_loop_flags(y: MutBuf[u32], x: Buf[f32], cols: u32):
    lid = local_id().x
    found = False
    for b in range(lid, cols, 32):
        if x[b] < 0.0:
            found = True
    anyone = subgroup_any(found)
    everyone = subgroup_all(found)
    y[lid] = u32(1 if anyone else 0) + u32(2 if everyone else 0) + subgroup_invocation_id() * 4
