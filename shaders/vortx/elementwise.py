"""Componentwise operations: `out = a OP b`, `out = a OP s`, `out = OP(a)` and type conversions.

Every kernel takes the number of elements `n`, a `Strided` layout and `dense`. When every tensor is contiguous,
of the output's shape and without offset (`dense`), a thread handles PER_THREAD elements, a grid apart, so that
each load stays coalesced and a thread has several in flight (one element per thread leaves a one-input kernel
short of the H100's bandwidth): it loads them all first, unconditionally (the index clamped to the last element,
so that no branch holds a load back), then stores those in range; the host launches n / PER_THREAD threads.
Otherwise a thread handles one element: its linear index is taken apart into (n, c, h, w) and each tensor is
addressed through its own strides, which is how views, broadcasting and in-place updates of views work. `dense`
is uniform, so the branch costs nothing on a GPU."""

from khal_runtime.lang import (
    Buf,
    MutBuf,
    array,
    exp,
    f16,
    f32,
    global_id,
    i32,
    kernel,
    log,
    num_workgroups,
    sqrt,
    static_range,
    tanh,
    template,
    u32,
)

from .layout import Strided, a_at, b_at, out_at

T = template(f32, i32, u32)
INT = template(i32, u32)
ARITH = template("add", "sub", "mul", "max", "min")
FLOAT_OP = template("div", "pow")
UNARY = template("copy", "neg", "abs", "inv", "exp", "log", "sqrt", "silu", "gelu", "relu")
INT_UNARY = template("copy", "neg", "abs")
SRC = template(f32, f16, i32, u32)
DST = template(f32, f16, i32, u32)

WORKGROUP = 256
PER_THREAD = 4
GELU_C = 0.7978845608028654     # sqrt(2 / pi), for the tanh form of GELU used by GGML and GPT-2


def arith(x: T, y: T) -> T:
    if ARITH == "add":
        return x + y
    if ARITH == "sub":
        return x - y
    if ARITH == "mul":
        return x * y
    if ARITH == "max":
        return max(x, y)
    return min(x, y)


def float_op(x: f32, y: f32) -> f32:
    if FLOAT_OP == "div":
        return x / y
    return x ** y


def unary(x: f32) -> f32:
    if UNARY == "copy":
        return x
    if UNARY == "neg":
        return -x
    if UNARY == "abs":
        return abs(x)
    if UNARY == "inv":
        return 1.0 / x
    if UNARY == "exp":
        return exp(x)
    if UNARY == "log":
        return log(x)
    if UNARY == "sqrt":
        return sqrt(x)
    if UNARY == "silu":
        return x / (1.0 + exp(-x))
    if UNARY == "relu":
        return max(x, 0.0)
    return 0.5 * x * (1.0 + tanh(GELU_C * (x + 0.044715 * x * x * x)))


def int_unary(x: INT) -> INT:
    if INT_UNARY == "copy":
        return x
    if INT_UNARY == "neg":
        return INT(0) - x
    if INT == u32:
        return x
    return abs(x)


def grid_threads() -> u32:
    """The threads of the whole grid: the distance between the elements one thread handles on the dense path."""
    return num_workgroups().x * WORKGROUP


def with_scalar(x: T, s: T, reverse: bool) -> T:
    return arith(s, x) if reverse else arith(x, s)


def float_with_scalar(x: f32, s: f32, reverse: bool) -> f32:
    return float_op(s, x) if reverse else float_op(x, s)


@kernel(workgroup_size=(WORKGROUP,))
def binary(out: MutBuf[T], a: Buf[T], b: Buf[T], lay: Strided, n: u32, dense: bool):
    va = array(T, PER_THREAD)
    vb = array(T, PER_THREAD)
    i = global_id().x
    if dense:
        step = grid_threads()
        for k in static_range(PER_THREAD):
            va[k] = a[min(i + k * step, n - 1)]
            vb[k] = b[min(i + k * step, n - 1)]
        for k in static_range(PER_THREAD):
            j = i + k * step
            if j < n:
                out[j] = arith(va[k], vb[k])
    elif i < n:
        out[out_at(lay, i)] = arith(a[a_at(lay, i)], b[b_at(lay, i)])


@kernel(workgroup_size=(WORKGROUP,))
def binary_float(out: MutBuf[f32], a: Buf[f32], b: Buf[f32], lay: Strided, n: u32, dense: bool):
    va = array(f32, PER_THREAD)
    vb = array(f32, PER_THREAD)
    i = global_id().x
    if dense:
        step = grid_threads()
        for k in static_range(PER_THREAD):
            va[k] = a[min(i + k * step, n - 1)]
            vb[k] = b[min(i + k * step, n - 1)]
        for k in static_range(PER_THREAD):
            j = i + k * step
            if j < n:
                out[j] = float_op(va[k], vb[k])
    elif i < n:
        out[out_at(lay, i)] = float_op(a[a_at(lay, i)], b[b_at(lay, i)])


@kernel(workgroup_size=(WORKGROUP,))
def binary_scalar(out: MutBuf[T], a: Buf[T], s: T, lay: Strided, n: u32, dense: bool, reverse: bool):
    """out = a OP s, or s OP a when `reverse`."""
    va = array(T, PER_THREAD)
    i = global_id().x
    if dense:
        step = grid_threads()
        for k in static_range(PER_THREAD):
            va[k] = a[min(i + k * step, n - 1)]
        for k in static_range(PER_THREAD):
            j = i + k * step
            if j < n:
                out[j] = with_scalar(va[k], s, reverse)
    elif i < n:
        out[out_at(lay, i)] = with_scalar(a[a_at(lay, i)], s, reverse)


@kernel(workgroup_size=(WORKGROUP,))
def binary_float_scalar(out: MutBuf[f32], a: Buf[f32], s: f32, lay: Strided, n: u32, dense: bool, reverse: bool):
    va = array(f32, PER_THREAD)
    i = global_id().x
    if dense:
        step = grid_threads()
        for k in static_range(PER_THREAD):
            va[k] = a[min(i + k * step, n - 1)]
        for k in static_range(PER_THREAD):
            j = i + k * step
            if j < n:
                out[j] = float_with_scalar(va[k], s, reverse)
    elif i < n:
        out[out_at(lay, i)] = float_with_scalar(a[a_at(lay, i)], s, reverse)


@kernel(workgroup_size=(WORKGROUP,))
def unary_float(out: MutBuf[f32], a: Buf[f32], lay: Strided, n: u32, dense: bool):
    va = array(f32, PER_THREAD)
    i = global_id().x
    if dense:
        step = grid_threads()
        for k in static_range(PER_THREAD):
            va[k] = a[min(i + k * step, n - 1)]
        for k in static_range(PER_THREAD):
            j = i + k * step
            if j < n:
                out[j] = unary(va[k])
    elif i < n:
        out[out_at(lay, i)] = unary(a[a_at(lay, i)])


@kernel(workgroup_size=(WORKGROUP,))
def unary_int(out: MutBuf[INT], a: Buf[INT], lay: Strided, n: u32, dense: bool):
    va = array(INT, PER_THREAD)
    i = global_id().x
    if dense:
        step = grid_threads()
        for k in static_range(PER_THREAD):
            va[k] = a[min(i + k * step, n - 1)]
        for k in static_range(PER_THREAD):
            j = i + k * step
            if j < n:
                out[j] = int_unary(va[k])
    elif i < n:
        out[out_at(lay, i)] = int_unary(a[a_at(lay, i)])


@kernel(workgroup_size=(WORKGROUP,))
def convert(out: MutBuf[DST], a: Buf[SRC], lay: Strided, n: u32, dense: bool):
    """A copy that may change the element type (DST == SRC copies between views: `contiguous()`, assignment)."""
    va = array(SRC, PER_THREAD)
    i = global_id().x
    if dense:
        step = grid_threads()
        for k in static_range(PER_THREAD):
            va[k] = a[min(i + k * step, n - 1)]
        for k in static_range(PER_THREAD):
            j = i + k * step
            if j < n:
                out[j] = DST(va[k])
    elif i < n:
        out[out_at(lay, i)] = DST(a[a_at(lay, i)])


# In place: `x OP= b`. A kernel cannot bind one buffer as both output and input (CUDA marks buffers __restrict__,
# WebGPU refuses a writable buffer bound twice), so updates read and write through the output view only.

@kernel(workgroup_size=(WORKGROUP,))
def update(x: MutBuf[T], b: Buf[T], lay: Strided, n: u32, dense: bool):
    vx = array(T, PER_THREAD)
    vb = array(T, PER_THREAD)
    i = global_id().x
    if dense:
        step = grid_threads()
        for k in static_range(PER_THREAD):
            vx[k] = x[min(i + k * step, n - 1)]
            vb[k] = b[min(i + k * step, n - 1)]
        for k in static_range(PER_THREAD):
            j = i + k * step
            if j < n:
                x[j] = arith(vx[k], vb[k])
    elif i < n:
        j = out_at(lay, i)
        x[j] = arith(x[j], b[b_at(lay, i)])


@kernel(workgroup_size=(WORKGROUP,))
def update_float(x: MutBuf[f32], b: Buf[f32], lay: Strided, n: u32, dense: bool):
    vx = array(f32, PER_THREAD)
    vb = array(f32, PER_THREAD)
    i = global_id().x
    if dense:
        step = grid_threads()
        for k in static_range(PER_THREAD):
            vx[k] = x[min(i + k * step, n - 1)]
            vb[k] = b[min(i + k * step, n - 1)]
        for k in static_range(PER_THREAD):
            j = i + k * step
            if j < n:
                x[j] = float_op(vx[k], vb[k])
    elif i < n:
        j = out_at(lay, i)
        x[j] = float_op(x[j], b[b_at(lay, i)])


@kernel(workgroup_size=(WORKGROUP,))
def update_scalar(x: MutBuf[T], s: T, lay: Strided, n: u32, dense: bool):
    vx = array(T, PER_THREAD)
    i = global_id().x
    if dense:
        step = grid_threads()
        for k in static_range(PER_THREAD):
            vx[k] = x[min(i + k * step, n - 1)]
        for k in static_range(PER_THREAD):
            j = i + k * step
            if j < n:
                x[j] = arith(vx[k], s)
    elif i < n:
        j = out_at(lay, i)
        x[j] = arith(x[j], s)


@kernel(workgroup_size=(WORKGROUP,))
def update_float_scalar(x: MutBuf[f32], s: f32, lay: Strided, n: u32, dense: bool):
    vx = array(f32, PER_THREAD)
    i = global_id().x
    if dense:
        step = grid_threads()
        for k in static_range(PER_THREAD):
            vx[k] = x[min(i + k * step, n - 1)]
        for k in static_range(PER_THREAD):
            j = i + k * step
            if j < n:
                x[j] = float_op(vx[k], s)
    elif i < n:
        j = out_at(lay, i)
        x[j] = float_op(x[j], s)


@kernel(workgroup_size=(WORKGROUP,))
def fill(x: MutBuf[T], s: T, lay: Strided, n: u32, dense: bool):
    i = global_id().x
    if dense:
        for k in static_range(PER_THREAD):
            j = i + k * grid_threads()
            if j < n:
                x[j] = s
    elif i < n:
        x[out_at(lay, i)] = s
