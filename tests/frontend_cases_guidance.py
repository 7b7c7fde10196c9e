"""Invalid kernels whose errors once misled a client (issue 8, point 11), each with what the message must say now:
every string of the expected tuple appears in the error's text. The line marked `# <-` is where the error is.

Compiled like frontend_cases.INVALID: as module `m` of a fresh shader package, after frontend_cases.PRELUDE.
"""

GUIDANCE = [
    ("Python's int as a kernel parameter type", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32], n: int, factor: f32):  # <-
    pass
""", ("`int` is not a kernel type: annotate u32 or i32", "u32, i32, u64, i64")),
    ("Python's float as a kernel parameter type", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32], n: u32, factor: float):  # <-
    pass
""", ("`float` is not a kernel type: annotate f32",)),
    ("Python's float as a helper's return type", """
def half(x: f32) -> float:  # <-
    return x * 0.5

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = half(a[0])
""", ("`float` is not a kernel type: annotate f32", "in half, called from pkg/m.py:")),
    ("Python's int as a buffer's element type", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[int]):  # <-
    pass
""", ("`int` is not a kernel type: annotate u32 or i32",)),
    ("float('-inf')", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = float("-inf")  # <-
""", ("float('-inf') is not available in kernels", 'f32("-inf")', 'f32("nan")')),
    ("an infinity of an integer type", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[i32]):
    a[0] = i32("inf")  # <-
""", ("i32 has no inf: infinities and NaN are float values",)),
    ("a string that is no float constant", """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = f32("1.5")  # <-
""", ('f32() of a string takes "inf", "-inf" or "nan", not \'1.5\'',)),
    ("math.inf", """
import math

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = -math.inf  # <-
""", ("math.inf is not available in kernels", 'f32("inf")')),
    ("math.erf", """
import math

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = math.erf(a[0])  # <-
""", ("erf does not exist in kernels", "the math functions of kernels are khal_runtime.lang's: sqrt, rsqrt, floor",
      "exp, exp2, log")),
    ("erf imported from math", """
from math import erf

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = erf(a[0])  # <-
""", ("erf does not exist in kernels (math.erf is Python's)",)),
    ("math.sqrt", """
import math

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = math.sqrt(a[0])  # <-
""", ("math.sqrt is Python's math module", "from khal_runtime.lang import sqrt")),
    ("math.pi", """
import math

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = a[0] * math.pi  # <-
""", ("math.pi is not available in kernels", "PI = 3.141592653589793")),
    ("true division in one template instance", """
T = template(f32, i32)

@kernel(workgroup_size=(64,))
def k(a: MutBuf[T], b: Buf[T]):
    i = global_id().x
    a[i] = a[i] / b[i]  # <-
""", ("/ is float division and the operands are i32", "in the instance of k with T=i32; k_f32 compiles",
      "`if T == i32:`")),
    ("one template instance of a helper, among two templates", """
T = template(f32, i32)
OP = template("add", "max")

def combine(x: T, y: T) -> T:
    if OP == "add":
        return x + y
    else:
        return max(x, y) ** y  # <-

@kernel(workgroup_size=(64,))
def k(a: MutBuf[T], b: Buf[T]):
    a[0] = combine(a[0], b[0])
""", ("** needs float operands, found i32", 'in the instance of k with T=i32, OP="max"; k_f32_max compiles',
      "`if T == i32:`")),
    ("a local that started as an integer literal", """
@kernel(workgroup_size=(64,))
def k(out: MutBuf[f32], x: Buf[f32]):
    acc = 0
    for i in range(len(x)):
        acc += x[i]  # <-
    out[0] = acc
""", ("cannot add i32 and f32", "note: pkg/m.py:8:5: acc got its type i32 here\n          acc = 0\n",
      "hint: give acc its type where it starts: acc = f32(0)")),
    ("a local given a value of another type", """
@kernel(workgroup_size=(64,))
def k(out: MutBuf[f32], x: Buf[f32]):
    best = 0
    best = x[0]  # <-
""", ("expected a i32 value, found a f32 value", "best got its type i32 here", "best = f32(0)")),
]
