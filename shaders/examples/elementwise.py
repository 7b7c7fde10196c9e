"""One source, four kernels: a binary operation instantiated over two element types and two operations."""

from khal_runtime.lang import Buf, MutBuf, f32, global_id, i32, kernel, template

T = template(f32, i32)
OP = template("add", "max")


def combine(x: T, y: T) -> T:
    if OP == "add":
        return x + y
    return max(x, y)


@kernel(workgroup_size=(64,))
def binary_op(out: MutBuf[T], a: Buf[T], b: Buf[T]):
    i = global_id().x
    if i < len(out):
        out[i] = combine(a[i], b[i])
