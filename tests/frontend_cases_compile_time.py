"""Invalid uses of compile-time arguments and of `exclude=`: helpers given the wrong kind of argument (`Helper`,
`Const[T]`), function-valued names called with the wrong arity, compile-time parameters on kernels, templates of
things that are not values, and conditions that cannot decide which instances exist. The line marked `# <-` is
where the error is.

Part of frontend_cases.INVALID: compiled as module `m` of a fresh shader package, after frontend_cases.PRELUDE.
"""

IMPORTS = "from khal_runtime.lang import Const, Helper\n"

COMPILE_TIME_ERRORS = [
    ("a run-time value for a Const parameter", IMPORTS + """
def repeat(x: f32, n: Const[u32]) -> f32:
    return x * f32(n)

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32], n: u32):
    a[0] = repeat(a[0], n)  # <-
""", ("repeat() takes a compile-time u32 for 'n' (Const[u32]), found a u32 value", "pass a literal")),
    ("a float literal for a Const[u32]", IMPORTS + """
def repeat(x: f32, n: Const[u32]) -> f32:
    return x * f32(n)

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = repeat(a[0], 2.5)  # <-
""", "the float literal 2.5 cannot be a u32"),
    ("a number for a Helper parameter", IMPORTS + """
def apply(op: Helper, x: f32) -> f32:
    return op(x)

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = apply(3, a[0])  # <-
""", ("apply() takes a function for 'op' (Helper), found a literal", "pass a helper function, a math intrinsic")),
    ("a kernel for a Helper parameter", IMPORTS + """
def apply(op: Helper, x: f32) -> f32:
    return op(x)

@kernel(workgroup_size=(64,))
def other(a: MutBuf[f32]):
    pass

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = apply(other, a[0])  # <-
""", "apply() takes a function for 'op' (Helper), found a kernel"),
    ("a builtin that is not a math function for a Helper parameter", IMPORTS + """
def apply(op: Helper, x: f32) -> f32:
    return op(x)

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = apply(global_id, a[0])  # <-
""", "found the built-in global_id, which is not a math function"),
    ("a Helper called with too many arguments", IMPORTS + """
def twice(x: f32) -> f32:
    return x + x

def apply(op: Helper, x: f32) -> f32:
    return op(x, x)  # <-

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = apply(twice, a[0])
""", ("op is twice here, which takes 1 argument; 2 given", "in apply, called from pkg/m.py:")),
    ("a template of intrinsics called with too few arguments", """
FN = template(exp, max)

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = FN(a[0])  # <-
""", ("FN is max here, which takes 2 or more arguments; 1 given", "in the instance of k with FN=max")),
    ("a Const parameter on a kernel", IMPORTS + """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32], n: Const[u32]):  # <-
    pass
""", ("a kernel's parameters are run-time values", "compile-time choices are templates")),
    ("a Helper parameter on a kernel", IMPORTS + """
@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32], op: Helper):  # <-
    pass
""", "Helper and Const[...] are parameters of helper functions"),
    ("Const without its type", IMPORTS + """
def repeat(x: f32, n: Const) -> f32:  # <-
    return x

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = repeat(a[0], 2)
""", "Const needs the constant's type"),
    ("a template of a kernel", """
@kernel(workgroup_size=(64,))
def other(a: MutBuf[f32]):
    pass

FN = template(exp, other)  # <-

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = FN(a[0])
""", "a template value must be a type, number, bool, string or function (a helper or a math intrinsic), not "
     "the kernel other"),
    ("functions ordered with <", """
FN = template(exp, max)

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    if FN < exp:  # <-
        a[0] = 1.0
""", "types and functions can only be compared with == and !="),
    ("a function in arithmetic", """
FN = template(exp, max)

@kernel(workgroup_size=(64,))
def k(a: MutBuf[f32]):
    a[0] = FN + 1.0  # <-
""", "the function exp is not a number"),
    ("an exclude= that is not a condition", """
T = template(f32, i32)

@kernel(workgroup_size=(64,), exclude=T)  # <-
def k(a: MutBuf[T]):
    pass
""", ("exclude= is a compile-time condition on the templates, not the type f32", "exclude=T != f32 and")),
    ("an exclude= on a template the kernel does not use", """
T = template(f32, i32)
U = template(1, 2)

@kernel(workgroup_size=(64,), exclude=T == i32 and U == 2)  # <-
def k(a: MutBuf[T]):
    pass
""", "exclude= reads the template U, which k does not use"),
    ("an exclude= that leaves nothing", """
T = template(f32, i32)

@kernel(workgroup_size=(64,), exclude=T == f32 or T == i32)  # <-
def k(a: MutBuf[T]):
    pass
""", "exclude= leaves k without any instance"),
    ("an unknown keyword on @kernel", """
@kernel(workgroup_size=(64,), only=True)  # <-
def k(a: MutBuf[f32]):
    pass
""", "@kernel takes the keyword arguments workgroup_size and (for a template kernel) exclude"),
]
