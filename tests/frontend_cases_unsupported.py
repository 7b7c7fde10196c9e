"""Invalid kernels that use Python which kernels cannot: names from outside, statements and expressions outside
the kernel subset, calls that kernels do not make. Each comes with the message the compiler must give; the line
marked `# <-` is where the error is.

Part of frontend_cases.INVALID: compiled as module `m` of a fresh shader package, after frontend_cases.PRELUDE.
"""

UNSUPPORTED_PYTHON = [
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
    ("int()", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    i = int(a[0])  # <-
""", "int() is not available in kernels"),
    ("keyword arguments", """
def helper(x: f32) -> f32:
    return x

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = helper(x=a[0])  # <-
""", "keyword arguments are not supported in kernel calls"),
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
    ("slice", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    b = a[0:4]  # <-
""", "slices are not supported in kernels"),
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
]
