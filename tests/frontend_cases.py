"""Invalid kernels, each with the message the compiler must give. The line marked `# <-` is where the error is.

Every source is compiled as module `m` of a fresh shader package `pkg`, after PRELUDE. INVALID is the whole
corpus: the type and value errors below, the Python that kernels cannot use (frontend_cases_unsupported.py),
the declarations that are wrong (frontend_cases_declarations.py) and the misused compile-time arguments and
`exclude=` conditions (frontend_cases_compile_time.py).
"""

from frontend_cases_compile_time import COMPILE_TIME_ERRORS
from frontend_cases_declarations import DECLARATION_ERRORS
from frontend_cases_unsupported import UNSUPPORTED_PYTHON

PRELUDE = """\
from khal_runtime.lang import (Buf, MutBuf, Array, kernel, struct, template, shared, array, static_range, require,
    bitcast, barrier, global_id, local_id, f16, f32, f64, i32, u32, i64, atomic_add, atomic_sub, subgroup_add, exp)
import numpy as np

"""

TYPE_ERRORS = [
    ("mixed types", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    i = global_id().x
    a[i] = a[i] + i  # <-
""", "cannot add f32 and u32"),
    ("integer true division", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[u32]):
    i = global_id().x
    a[i] = a[i] / 2  # <-
""", "/ is float division and the operands are u32"),
    ("float literal into an integer buffer", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[u32]):
    a[0] = 1.5  # <-
""", "the float literal 1.5 cannot be a u32"),
    ("literal too large", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[u32]):
    a[0] = a[0] + 5000000000  # <-
""", "the literal 5000000000 does not fit in u32"),
    ("atomic_sub on f32", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    atomic_sub(a, 0, 1.0)  # <-
""", "atomic_sub is not available on f32"),
    ("integer condition", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    i = global_id().x
    if i:  # <-
        a[i] = 0.0
""", "the condition must be a bool, found u32"),
    ("local changing type", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    x = global_id().x
    x = a[0]  # <-
""", "expected a u32 value, found a f32 value"),
    ("float index", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[a[0]] = 1.0  # <-
""", "an index must be i32 or u32, found f32"),
    ("too many indices", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0, 1] = 1.0  # <-
""", "too many indices for buffer 'a'"),
    ("read before assignment", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    for i in range(4):
        if i > 0:
            a[i] = prev  # <-
        prev = a[i]
""", "'prev' is read before it is first assigned"),
    ("exp of f64", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f64]):
    a[0] = exp(a[0])  # <-
""", "exp() is not available for f64"),
    ("bitcast between sizes", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    b = bitcast(i64, a[0])  # <-
""", "bitcast needs types of one size: f32 is 4 bytes, i64 is 8"),
    ("negative step on an unsigned loop", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32], n: u32):
    for i in range(n, 0, -1):  # <-
        a[i] = 0.0
""", "a negative step needs a signed loop variable, not u32"),
    ("unknown struct field", """
@struct
class Shape:
    n: u32

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32], shape: Shape):
    a[0] = f32(shape.q)  # <-
""", "struct Shape has no field 'q'"),
    ("negating an unsigned value", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[u32]):
    a[0] = -a[0]  # <-
""", "cannot negate a u32 value"),
    ("comparing types that differ", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32], n: i32):
    if global_id().x < n:  # <-
        a[0] = 0.0
""", "cannot compare u32 and i32"),
    ("integer power", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[u32]):
    a[0] = a[0] ** 2  # <-
""", "** needs float operands, found u32"),
    ("shifting a float", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = a[0] << 1  # <-
""", "<< needs integer operands, found f32"),
    ("len of a scalar", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32], n: u32):
    m = len(n)  # <-
""", "len() takes a buffer or array, found a u32 value"),
    ("constant index out of bounds", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    t = shared(f32, 64)
    t[64] = 1.0  # <-
""", "index 64 is out of bounds for shared array 't' of size 64"),
    ("f32 atomic on shared memory", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    t = shared(f32, 4)
    atomic_add(t, 0, a[0])  # <-
""", "atomic_add is not available on f32 in shared memory"),
    ("tuples as the branches of a conditional", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    x = (a[0], a[1]) if a[0] > 0.0 else (a[1], a[0])  # <-
""", "2 values is not a number"),
    ("a huge compile-time power", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[u32]):
    a[0] = 2 ** 100000  # <-
""", "** 100000 in a compile-time expression is too large"),
    ("a built-in as a value", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    x = shared  # <-
""", "a local cannot hold the built-in shared"),
]

INVALID = TYPE_ERRORS + UNSUPPORTED_PYTHON + DECLARATION_ERRORS + COMPILE_TIME_ERRORS
