"""Componentwise operations: `out = a OP b`, `out = a OP s`, `out = OP(a)` and type conversions.

Every kernel takes the number of elements `n`, a `Strided` layout and `dense`: when every tensor is contiguous,
of the output's shape and without offset, `dense` skips the index arithmetic (a uniform branch, so it costs
nothing on the GPU); otherwise the linear index is taken apart into (n, c, h, w) and each tensor is addressed
through its own strides, which is how views, broadcasting and in-place updates of views work.
"""

from khal_runtime.lang import Buf, MutBuf, exp, f16, f32, global_id, i32, kernel, log, sqrt, tanh, template, u32

from .layout import Strided, a_at, b_at, out_at

T = template(f32, i32, u32)
INT = template(i32, u32)
ARITH = template("add", "sub", "mul", "max", "min")
FLOAT_OP = template("div", "pow")
UNARY = template("copy", "neg", "abs", "inv", "exp", "log", "sqrt", "silu", "gelu", "relu")
INT_UNARY = template("copy", "neg", "abs")
SRC = template(f32, f16, i32, u32)
DST = template(f32, f16, i32, u32)

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


@kernel(workgroup_size=(256,))
def binary(out: MutBuf[T], a: Buf[T], b: Buf[T], lay: Strided, n: u32, dense: bool):
    i = global_id().x
    if i < n:
        if dense:
            out[i] = arith(a[i], b[i])
        else:
            out[out_at(lay, i)] = arith(a[a_at(lay, i)], b[b_at(lay, i)])


@kernel(workgroup_size=(256,))
def binary_float(out: MutBuf[f32], a: Buf[f32], b: Buf[f32], lay: Strided, n: u32, dense: bool):
    i = global_id().x
    if i < n:
        if dense:
            out[i] = float_op(a[i], b[i])
        else:
            out[out_at(lay, i)] = float_op(a[a_at(lay, i)], b[b_at(lay, i)])


@kernel(workgroup_size=(256,))
def binary_scalar(out: MutBuf[T], a: Buf[T], s: T, lay: Strided, n: u32, dense: bool, reverse: bool):
    """out = a OP s, or s OP a when `reverse`."""
    i = global_id().x
    if i < n:
        x = a[i] if dense else a[a_at(lay, i)]
        y = arith(s, x) if reverse else arith(x, s)
        if dense:
            out[i] = y
        else:
            out[out_at(lay, i)] = y


@kernel(workgroup_size=(256,))
def binary_float_scalar(out: MutBuf[f32], a: Buf[f32], s: f32, lay: Strided, n: u32, dense: bool, reverse: bool):
    i = global_id().x
    if i < n:
        x = a[i] if dense else a[a_at(lay, i)]
        y = float_op(s, x) if reverse else float_op(x, s)
        if dense:
            out[i] = y
        else:
            out[out_at(lay, i)] = y


@kernel(workgroup_size=(256,))
def unary_float(out: MutBuf[f32], a: Buf[f32], lay: Strided, n: u32, dense: bool):
    i = global_id().x
    if i < n:
        if dense:
            out[i] = unary(a[i])
        else:
            out[out_at(lay, i)] = unary(a[a_at(lay, i)])


@kernel(workgroup_size=(256,))
def unary_int(out: MutBuf[INT], a: Buf[INT], lay: Strided, n: u32, dense: bool):
    i = global_id().x
    if i < n:
        if dense:
            out[i] = int_unary(a[i])
        else:
            out[out_at(lay, i)] = int_unary(a[a_at(lay, i)])


@kernel(workgroup_size=(256,))
def convert(out: MutBuf[DST], a: Buf[SRC], lay: Strided, n: u32, dense: bool):
    """A copy that may change the element type (DST == SRC copies between views: `contiguous()`, assignment)."""
    i = global_id().x
    if i < n:
        if dense:
            out[i] = DST(a[i])
        else:
            out[out_at(lay, i)] = DST(a[a_at(lay, i)])


# In place: `x OP= b`. A kernel cannot bind one buffer as both output and input (CUDA marks buffers __restrict__,
# WebGPU refuses a writable buffer bound twice), so updates read and write through the output view only.

@kernel(workgroup_size=(256,))
def update(x: MutBuf[T], b: Buf[T], lay: Strided, n: u32, dense: bool):
    i = global_id().x
    if i < n:
        if dense:
            x[i] = arith(x[i], b[i])
        else:
            j = out_at(lay, i)
            x[j] = arith(x[j], b[b_at(lay, i)])


@kernel(workgroup_size=(256,))
def update_float(x: MutBuf[f32], b: Buf[f32], lay: Strided, n: u32, dense: bool):
    i = global_id().x
    if i < n:
        if dense:
            x[i] = float_op(x[i], b[i])
        else:
            j = out_at(lay, i)
            x[j] = float_op(x[j], b[b_at(lay, i)])


@kernel(workgroup_size=(256,))
def update_scalar(x: MutBuf[T], s: T, lay: Strided, n: u32, dense: bool):
    i = global_id().x
    if i < n:
        j = i if dense else out_at(lay, i)
        x[j] = arith(x[j], s)


@kernel(workgroup_size=(256,))
def update_float_scalar(x: MutBuf[f32], s: f32, lay: Strided, n: u32, dense: bool):
    i = global_id().x
    if i < n:
        j = i if dense else out_at(lay, i)
        x[j] = float_op(x[j], s)


@kernel(workgroup_size=(256,))
def fill(x: MutBuf[T], s: T, lay: Strided, n: u32, dense: bool):
    i = global_id().x
    if i < n:
        if dense:
            x[i] = s
        else:
            x[out_at(lay, i)] = s
