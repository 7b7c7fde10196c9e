"""Componentwise operations: `out = a OP b`, `out = a OP s`, `out = OP(a)` and type conversions.

Every kernel takes the number of elements `n`, a `Strided` layout and `dense`. When every tensor is contiguous,
of the output's shape and without offset (`dense`), a thread handles PER_THREAD elements, a grid apart, so that
each load stays coalesced and a thread has several in flight (one element per thread leaves a one-input kernel
short of the H100's bandwidth): it loads them all first, unconditionally (the index clamped to the last element,
so that no branch holds a load back), then stores those in range; the host launches n / PER_THREAD threads.
Otherwise a thread handles one element: its linear index is taken apart into (n, c, h, w) and each tensor is
addressed through its own strides, which is how views, broadcasting and in-place updates of views work. `dense`
is uniform, so the branch costs nothing on a GPU.

The skeleton is written once per shape of operands, in the helpers `map_unary`, `map_binary` and `map_scalar`,
each taking the operation as a compile-time function (`op: Helper`); the kernels instantiate them over the
templates `T` (the element type) and `OP` / `FN` (the operation, a template of functions), with `exclude=` keeping
the float-only operations (division, powers, transcendentals) from the integer types."""

from khal_runtime.lang import (
    Buf,
    Const,
    Helper,
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

WORKGROUP = 256
PER_THREAD = 4
GELU_C = 0.7978845608028654     # sqrt(2 / pi), for the tanh form of GELU used by GGML and GPT-2

T = template(f32, i32, u32)
SRC = template(f32, f16, i32, u32)
DST = template(f32, f16, i32, u32)


# --- the operations ---------------------------------------------------------------------------------------------

def add(x: T, y: T) -> T:
    return x + y


def sub(x: T, y: T) -> T:
    return x - y


def mul(x: T, y: T) -> T:
    return x * y


def div(x: T, y: T) -> T:
    return x / y


def copy(x: T) -> T:
    return x


def neg(x: T) -> T:
    if T == u32:
        return T(0) - x             # unsigned negation wraps, as numpy's does
    return -x


def inv(x: T) -> T:
    return 1.0 / x


def silu(x: T) -> T:
    return x / (1.0 + exp(-x))


def gelu(x: T) -> T:
    return 0.5 * x * (1.0 + tanh(GELU_C * (x + 0.044715 * x * x * x)))


def relu(x: T) -> T:
    return max(x, 0.0)


OP = template(add, sub, mul, max, min, div, pow)
FN = template(copy, neg, abs, inv, exp, log, sqrt, silu, gelu, relu)
FLOAT_ONLY = T != f32 and OP in (div, pow)


# --- the skeletons ----------------------------------------------------------------------------------------------

def grid_threads() -> u32:
    """The threads of the whole grid: the distance between the elements one thread handles on the dense path."""
    return num_workgroups().x * WORKGROUP


def map_unary(out: MutBuf[T], a: Buf[T], lay: Strided, n: u32, dense: bool, fn: Helper):
    """out = fn(a)."""
    va = array(T, PER_THREAD)
    i = global_id().x
    if dense:
        step = grid_threads()
        for k in static_range(PER_THREAD):
            va[k] = a[min(i + k * step, n - 1)]
        for k in static_range(PER_THREAD):
            j = i + k * step
            if j < n:
                out[j] = fn(va[k])
    elif i < n:
        out[out_at(lay, i)] = fn(a[a_at(lay, i)])


def map_binary(out: MutBuf[T], a: Buf[T], b: Buf[T], lay: Strided, n: u32, dense: bool, op: Helper,
               in_place: Const[bool]):
    """out = op(a, b); `in_place`: `a` is `out` itself (`out op= b`), addressed through the output's strides."""
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
                out[j] = op(va[k], vb[k])
    elif i < n:
        if in_place:
            j = out_at(lay, i)
            out[j] = op(a[j], b[b_at(lay, i)])
        else:
            out[out_at(lay, i)] = op(a[a_at(lay, i)], b[b_at(lay, i)])


def with_scalar(op: Helper, x: T, s: T, reverse: bool, in_place: Const[bool]) -> T:
    if in_place:
        return op(x, s)             # x op= s is never reversed
    return op(s, x) if reverse else op(x, s)


def map_scalar(out: MutBuf[T], a: Buf[T], s: T, lay: Strided, n: u32, dense: bool, reverse: bool, op: Helper,
               in_place: Const[bool]):
    """out = op(a, s), or op(s, a) when `reverse`; `in_place` as for map_binary."""
    va = array(T, PER_THREAD)
    i = global_id().x
    if dense:
        step = grid_threads()
        for k in static_range(PER_THREAD):
            va[k] = a[min(i + k * step, n - 1)]
        for k in static_range(PER_THREAD):
            j = i + k * step
            if j < n:
                out[j] = with_scalar(op, va[k], s, reverse, in_place)
    elif i < n:
        if in_place:
            j = out_at(lay, i)
            out[j] = with_scalar(op, a[j], s, reverse, in_place)
        else:
            out[out_at(lay, i)] = with_scalar(op, a[a_at(lay, i)], s, reverse, in_place)


# --- the kernels ------------------------------------------------------------------------------------------------

@kernel(workgroup_size=(WORKGROUP,), exclude=FLOAT_ONLY)
def binary(out: MutBuf[T], a: Buf[T], b: Buf[T], lay: Strided, n: u32, dense: bool):
    map_binary(out, a, b, lay, n, dense, OP, False)


@kernel(workgroup_size=(WORKGROUP,), exclude=FLOAT_ONLY)
def binary_scalar(out: MutBuf[T], a: Buf[T], s: T, lay: Strided, n: u32, dense: bool, reverse: bool):
    """out = a OP s, or s OP a when `reverse`."""
    map_scalar(out, a, s, lay, n, dense, reverse, OP, False)


@kernel(workgroup_size=(WORKGROUP,), exclude=T != f32 and FN not in (copy, neg, abs))
def unary(out: MutBuf[T], a: Buf[T], lay: Strided, n: u32, dense: bool):
    map_unary(out, a, lay, n, dense, FN)


# In place: `x OP= b`. A kernel cannot bind one buffer as both output and input (CUDA marks buffers __restrict__,
# WebGPU refuses a writable buffer bound twice), so updates read and write through the output view only.

@kernel(workgroup_size=(WORKGROUP,), exclude=FLOAT_ONLY)
def update(x: MutBuf[T], b: Buf[T], lay: Strided, n: u32, dense: bool):
    map_binary(x, x, b, lay, n, dense, OP, True)


@kernel(workgroup_size=(WORKGROUP,), exclude=FLOAT_ONLY)
def update_scalar(x: MutBuf[T], s: T, lay: Strided, n: u32, dense: bool):
    map_scalar(x, x, s, lay, n, dense, False, OP, True)


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
