"""Invalid kernels whose declarations are wrong: parameters and their access, workgroup sizes, shared memory,
require(), helpers' signatures, templates and names. Each comes with the message the compiler must give; the line
marked `# <-` is where the error is.

Part of frontend_cases.INVALID: compiled as module `m` of a fresh shader package, after frontend_cases.PRELUDE.
"""

DECLARATION_ERRORS = [
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
    ("assigning a kernel parameter", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32], n: u32):
    n = n + 1  # <-
""", "the kernel parameter 'n' is read-only"),
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
    ("a kernel named like a C++ keyword", """
@kernel(workgroup_size=(64,))
def new(a: MutBuf[f32]):  # <-
    pass
""", "the kernel name 'new' is reserved in GLSL or CUDA"),
]
