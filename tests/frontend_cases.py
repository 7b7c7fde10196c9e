"""Invalid kernels, each with the message the compiler must give. The line marked `# <-` is where the error is.

Every source is compiled as module `m` of a fresh shader package `pkg`, after PRELUDE.
"""

PRELUDE = """\
from khal_runtime.lang import (Buf, MutBuf, Array, kernel, struct, template, shared, array, static_range, require,
    bitcast, barrier, global_id, local_id, f16, f32, f64, i32, u32, i64, atomic_add, atomic_sub, subgroup_add, exp)
import numpy as np

"""

INVALID = [
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
    ("store into a read-only buffer", """
@kernel(workgroup_size=(64,))
def k(a: Buf[f32]):
    a[0] = 1.0  # <-
""", "buffer 'a' is read-only"),
    ("atomic on a read-only buffer", """
@kernel(workgroup_size=(64,))
def k(a: Buf[u32]):
    atomic_add(a, 0, u32(1))  # <-
""", "atomic_add writes buffer 'a', which is read-only"),
    ("atomic_sub on f32", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    atomic_sub(a, 0, 1.0)  # <-
""", "atomic_sub is not available on f32"),
    ("undefined name", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = foo  # <-
""", "name 'foo' is not defined"),
    ("numpy inside a kernel", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = np.sqrt(a[0])  # <-
""", "'np' is the module numpy; kernels cannot use it"),
    ("print", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    print(a[0])  # <-
""", "print() is not available in kernels"),
    ("list comprehension", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    xs = [a[i] for i in range(4)]  # <-
""", "a list comprehension is not supported in kernels"),
    ("exceptions", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    try:  # <-
        a[0] = 1.0
    except IndexError:
        pass
""", "exceptions do not exist in kernels"),
    ("while else", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    while a[0] > 1.0:  # <-
        a[0] = a[0] - 1.0
    else:
        a[0] = 0.0
""", "while ... else is not supported"),
    ("for over a buffer", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    for x in a:  # <-
        pass
""", "kernels loop over range(...) or static_range(...)"),
    ("break outside a loop", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    if a[0] > 0.0:
        break  # <-
""", "break outside a loop"),
    ("kernel returning a value", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    return a[0]  # <-
""", "kernels return nothing"),
    ("recursive helper", """
def fact(n: u32) -> u32:
    if n == 0:
        return u32(1)
    return n * fact(n - 1)  # <-

@kernel(workgroup_size=(64,))
def k(a: MutBuf[u32]):
    a[0] = fact(a[0])
""", "fact calls itself"),
    ("unannotated helper parameter", """
def twice(x):  # <-
    return x + x

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = twice(a[0])
""", "helper parameter 'x' needs a type annotation"),
    ("unannotated kernel parameter", """
@kernel(workgroup_size=(64,))
def k(a):  # <-
    pass
""", "kernel parameter 'a' needs a type annotation"),
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
    ("shared memory declared in a branch", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    if a[0] > 0.0:
        t = shared(f32, 64)  # <-
""", "shared() must be declared at the top level of the function body"),
    ("shared memory declared in a helper", """
def helper(x: f32) -> f32:
    t = shared(f32, 64)  # <-
    return x

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = helper(a[0])
""", "shared memory is declared in the kernel"),
    ("subgroup operation in a workgroup of 48", """
@kernel(workgroup_size=(48,))
def k(a: MutBuf[f32]):
    a[0] = subgroup_add(a[0])  # <-
""", "need a workgroup size that is a multiple of 32; k has 48"),
    ("workgroup too large", """
@kernel(workgroup_size=(2048,))  # <-
def k(a: MutBuf[f32]):
    pass
""", "workgroup size 2048x1x1 exceeds the portable limits"),
    ("@kernel without a workgroup size", """
@kernel  # <-
def k(a: MutBuf[f32]):
    pass
""", "@kernel needs its workgroup size"),
    ("read before assignment", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    for i in range(4):
        if i > 0:
            a[i] = prev  # <-
        prev = a[i]
""", "'prev' is read before it is first assigned"),
    ("assigning a kernel parameter", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32], n: u32):
    n = n + 1  # <-
""", "the kernel parameter 'n' is read-only"),
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
    ("static_range over a run-time bound", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32], n: u32):
    for i in static_range(n):  # <-
        a[i] = 0.0
""", "static_range() bounds must be compile-time integers"),
    ("break in static_range", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    for i in static_range(4):
        if a[i] > 0.0:
            break  # <-
""", "break is not allowed directly in a static_range loop"),
    ("unknown struct field", """
@struct
class Shape:
    n: u32

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32], shape: Shape):
    a[0] = f32(shape.q)  # <-
""", "struct Shape has no field 'q'"),
    ("struct construction", """
@struct
class Shape:
    n: u32

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    s = Shape(u32(1))  # <-
""", "struct Shape cannot be constructed in a kernel"),
    ("kernel calling a kernel", """
@kernel(workgroup_size=(64,))
def other(a: MutBuf[f32]):
    pass

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    other(a)  # <-
""", "other is a kernel; kernels cannot be called from kernels"),
    ("negating an unsigned value", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[u32]):
    a[0] = -a[0]  # <-
""", "cannot negate a u32 value"),
    ("int()", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    i = int(a[0])  # <-
""", "int() is not available in kernels"),
    ("comparing types that differ", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32], n: i32):
    if global_id().x < n:  # <-
        a[0] = 0.0
""", "cannot compare u32 and i32"),
    ("require after code", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32], n: u32):
    a[0] = 0.0
    require(len(a) >= n)  # <-
""", "require() belongs at the top of a kernel body"),
    ("require on a float parameter", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32], x: f32):
    require(len(a) > x)  # <-
""", "x is a f32; only integer parameters can be used"),
    ("keyword arguments", """
def helper(x: f32) -> f32:
    return x

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = helper(x=a[0])  # <-
""", "keyword arguments are not supported in kernel calls"),
    ("f16 scalar parameter", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f16], s: f16):  # <-
    pass
""", "f16 parameters are not supported"),
    ("helper that may not return", """
def sign(x: f32) -> f32:  # <-
    if x > 0.0:
        return 1.0

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = sign(a[0])
""", "sign may reach its end without returning a f32"),
    ("chained assignment", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    x = y = a[0]  # <-
""", "chained assignment (a = b = x) is not supported"),
    ("Python syntax error", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = (1.0 +  # <-
""", "Python syntax error"),
    ("duplicate template value", """
T = template(f32, f32)  # <-

@kernel(workgroup_size=(64,))
def k(a: MutBuf[T]):
    pass
""", "the value f32 appears twice in template T"),
    ("bool buffer", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[bool]):  # <-
    pass
""", "the element type must be a numeric type"),
    ("private array passed to a helper", """
def first(x: Array[f32]) -> f32:
    return x[0]

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    p = array(f32, 4)
    a[0] = first(p)  # <-
""", "first() expects a shared array for 'x', found private array 'p'"),
    ("slice", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    b = a[0:4]  # <-
""", "slices are not supported in kernels"),
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
    ("lambda", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    f = lambda x: x  # <-
""", "a lambda is not supported in kernels"),
    ("global statement", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    global counter  # <-
""", "global is not supported in kernels"),
    ("writing through a read-only helper parameter", """
def clear(x: Buf[f32]):
    x[0] = 0.0  # <-

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    clear(a)
""", "buffer 'x' is read-only"),
    ("a template whose value depends on another template", """
T = template(f32, f16)
U = template(T)  # <-

@kernel(workgroup_size=(64,))
def k(a: MutBuf[U]):
    pass
""", "template values cannot depend on other templates"),
]

INVALID += [
    ("f32 atomic on shared memory", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    t = shared(f32, 4)
    atomic_add(t, 0, a[0])  # <-
""", "atomic_add is not available on f32 in shared memory"),
    ("a kernel named like a C++ keyword", """
@kernel(workgroup_size=(64,))
def new(a: MutBuf[f32]):  # <-
    pass
""", "the kernel name 'new' is reserved in GLSL or CUDA"),
]

INVALID += [
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
