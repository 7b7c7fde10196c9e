"""Subgroup operations on values that run-time loops built (gemv, norm and softmax reductions are this shape)."""

from khal_runtime.lang import (
    Buf,
    MutBuf,
    bitcast,
    exp,
    f16,
    f32,
    fma,
    i32,
    kernel,
    local_id,
    rsqrt,
    sqrt,
    subgroup_add,
    subgroup_and,
    subgroup_exclusive_add,
    subgroup_inclusive_add,
    subgroup_max,
    subgroup_min,
    subgroup_mul,
    subgroup_or,
    subgroup_xor,
    template,
    u32,
    workgroup_id,
)

T = template(f32, i32, u32)
OP = template("add", "mul", "min", "max", "inclusive_add", "exclusive_add")
BITS = template("and", "or", "xor")


@kernel(workgroup_size=(32,))
def strided_sum(y: MutBuf[f32], x: Buf[f32], cols: u32):
    """The reproducer of issue 9 (upstream gfx-rs/wgpu#8389)."""
    lid = local_id().x
    acc = f32(0)
    for b in range(lid, cols, 32):
        acc += x[b]
    y[lid] = subgroup_add(acc)


@kernel(workgroup_size=(32,))
def strided_reduce(y: MutBuf[T], x: Buf[T], cols: u32):
    lid = local_id().x
    acc = T(0)
    if OP == "mul" or OP == "min":
        acc = T(1)
    for b in range(lid, cols, 32):
        if OP == "mul":
            acc *= x[b]
        elif OP == "min":
            acc = min(acc, x[b])
        elif OP == "max":
            acc = max(acc, x[b])
        else:
            acc += x[b]
    if OP == "add":
        y[lid] = subgroup_add(acc)
    elif OP == "mul":
        y[lid] = subgroup_mul(acc)
    elif OP == "min":
        y[lid] = subgroup_min(acc)
    elif OP == "max":
        y[lid] = subgroup_max(acc)
    elif OP == "inclusive_add":
        y[lid] = subgroup_inclusive_add(acc)
    else:
        y[lid] = subgroup_exclusive_add(acc)


@kernel(workgroup_size=(32,))
def strided_bits(y: MutBuf[u32], x: Buf[u32], cols: u32):
    lid = local_id().x
    acc = u32(0)
    for b in range(lid, cols, 32):
        acc ^= x[b] << (b & 7)
    if BITS == "and":
        y[lid] = subgroup_and(acc)
    elif BITS == "or":
        y[lid] = subgroup_or(acc)
    else:
        y[lid] = subgroup_xor(acc)


@kernel(workgroup_size=(32,))
def strided_sum_f16(y: MutBuf[f16], x: Buf[f16], cols: u32):
    lid = local_id().x
    acc = f16(0)
    for b in range(lid, cols, 32):
        acc += x[b]
    y[lid] = subgroup_add(acc)


@kernel(workgroup_size=(32,))
def strided_sum_f16_to_f32(y: MutBuf[f32], x: Buf[f16], cols: u32):
    lid = local_id().x
    acc = f32(0)
    for b in range(lid, cols, 32):
        acc += f32(x[b])
    y[lid] = subgroup_add(acc)


@kernel(workgroup_size=(64,))
def gemv_rows(y: MutBuf[f32], a: Buf[f32], x: Buf[f32], rows: u32, cols: u32):
    """One row per subgroup-sized slice of 32 lanes, each row's dot product reduced after its loop."""
    lid = local_id().x
    row = workgroup_id().x * 2 + lid // 32
    acc = f32(0)
    if row < rows:
        for b in range(lid % 32, cols, 32):
            acc += a[row * cols + b] * x[b]
    total = subgroup_add(acc)
    if row < rows and lid % 32 == 0:
        y[row] = total


@kernel(workgroup_size=(32,))
def rows_in_a_loop(y: MutBuf[f32], a: Buf[f32], rows: u32, cols: u32):
    """A subgroup reduction inside an outer run-time loop, of a value its inner loop built."""
    lid = local_id().x
    for r in range(rows):
        acc = f32(0)
        for b in range(lid, cols, 32):
            acc += a[r * cols + b]
        s = subgroup_add(acc)
        if lid == 0:
            y[r] = s


@kernel(workgroup_size=(32,))
def nested_loops_then_reduce(y: MutBuf[f32], a: Buf[f32], rows: u32, cols: u32):
    lid = local_id().x
    acc = f32(0)
    for r in range(rows):
        for b in range(lid, cols, 32):
            acc += a[r * cols + b]
    y[lid] = subgroup_add(acc)


@kernel(workgroup_size=(32,))
def softmax_row(y: MutBuf[f32], x: Buf[f32], cols: u32):
    """Max, then the sum of exponentials, then the scaled write: two loop-carried reductions in a row."""
    lid = local_id().x
    m = f32("-inf")
    for b in range(lid, cols, 32):
        m = max(m, x[b])
    m = subgroup_max(m)
    s = f32(0)
    for b in range(lid, cols, 32):
        s += exp(x[b] - m)
    s = subgroup_add(s)
    for b in range(lid, cols, 32):
        y[b] = exp(x[b] - m) / s


@kernel(workgroup_size=(32,))
def rms_norm_row(y: MutBuf[f32], x: Buf[f32], w: Buf[f32], cols: u32, eps: f32):
    lid = local_id().x
    ss = f32(0)
    for b in range(lid, cols, 32):
        ss += x[b] * x[b]
    scale = rsqrt(subgroup_add(ss) / f32(cols) + eps)
    for b in range(lid, cols, 32):
        y[b] = x[b] * scale * w[b]


@kernel(workgroup_size=(32,))
def math_of_loop_values(y: MutBuf[f32], bits: MutBuf[u32], x: Buf[f32], cols: u32):
    """Not a subgroup operation: every other kind of instruction on a loop's value, after the loop."""
    lid = local_id().x
    acc = f32(0)
    n = u32(0)
    for b in range(lid, cols, 32):
        acc += x[b]
        n += 1
    y[lid] = sqrt(abs(acc)) + exp(-acc) + fma(acc, acc, 1.0) + (acc if n > 2 else -acc) + f32(i32(acc)) + f32(n)
    bits[lid] = bitcast(u32, acc) ^ (n << 3)
