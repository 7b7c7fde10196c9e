"""The vocabulary of the kernel language: what shader modules import.

Kernels are ordinary Python functions written in a typed subset of Python. The build hook reads them with `ast`
and never calls anything here: these definitions exist so that shader modules import cleanly, read well in an
editor, and give the host side its scalar type tags (`f32`, `u32`, ...). The builtins, intrinsics and atomics are
those of the IR's table of operations (`khal_runtime.ir.ops`), which gives their signatures and types;
tests/test_ops_table.py keeps this module in step with it.

    from khal_runtime.lang import kernel, Buf, MutBuf, f32, global_id

    @kernel(workgroup_size=(64,))
    def add_assign(a: MutBuf[f32], b: Buf[f32]):
        i = global_id().x
        if i < len(a):
            a[i] += b[i]

See docs/LANGUAGE.md for the whole language.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, NamedTuple, TypeVar

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


# --- scalar types: casts inside kernels, element-type tags on the host --------------------------------------------

class _ScalarType:
    """Mixin naming the IR type and the numpy dtype of a scalar type."""
    ir: str
    numpy: str


class i32(int, _ScalarType):
    ir, numpy = "i32", "int32"


class u32(int, _ScalarType):
    ir, numpy = "u32", "uint32"


class i64(int, _ScalarType):
    ir, numpy = "i64", "int64"


class u64(int, _ScalarType):
    ir, numpy = "u64", "uint64"


class f16(float, _ScalarType):
    ir, numpy = "f16", "float16"


class f32(float, _ScalarType):
    ir, numpy = "f32", "float32"


class f64(float, _ScalarType):
    ir, numpy = "f64", "float64"


SCALAR_TYPES = {t.ir: t for t in (i32, u32, i64, u64, f16, f32, f64)}


# --- parameters and memory ----------------------------------------------------------------------------------------

class Buf(Generic[T]):
    """A read-only storage buffer parameter: `x: Buf[f32]`."""

    def __getitem__(self, index: Any) -> T: ...
    def __len__(self) -> int: ...


class MutBuf(Buf[T]):
    """A read-write storage buffer parameter: `out: MutBuf[f32]`."""

    def __setitem__(self, index: Any, value: T) -> None: ...


class Array(Generic[T]):
    """A shared (`shared(f32, 16, 17)`) or private (`array(f32, 4)`) array; indexed `a[i, j]`."""

    def __getitem__(self, index: Any) -> T: ...
    def __setitem__(self, index: Any, value: T) -> None: ...
    def __len__(self) -> int: ...


def shared(elem: type[T], *shape: int) -> Array[T]:
    """Workgroup memory, one array per workgroup; contents start unspecified."""
    raise _outside("shared")


def array(elem: type[T], *shape: int) -> Array[T]:
    """Private memory, one array per invocation, zero-initialised."""
    raise _outside("array")


# --- declarations -------------------------------------------------------------------------------------------------

def kernel(*, workgroup_size: tuple[int, ...], exclude: Any = False) -> Callable[[F], F]:
    """Marks a kernel entry point. `workgroup_size` has one to three compile-time dimensions. `exclude` is a
    compile-time condition on the templates (`exclude=T != f32 and OP in (div, pow)`): the instances for which it
    holds are not generated (the compiler evaluates it per instance; its value here means nothing)."""
    def mark(fn: F) -> F:
        fn.__khal_kernel__ = {"workgroup_size": workgroup_size}  # type: ignore[attr-defined]
        return fn
    return mark


def struct(cls: type[T]) -> type[T]:
    """A struct of scalar fields, usable as a kernel or helper parameter: `class Shape: n: u32`."""
    cls.__khal_struct__ = True  # type: ignore[attr-defined]
    return cls


class template:
    """A template parameter: `T = template(f32, f16)`, `OP = template("sum", "max")`, `TILE = template(8, 16)`.
    Every kernel that uses it is compiled once per value (the cartesian product over several templates)."""

    def __init__(self, *values: Any) -> None:
        self.values = values

    def __call__(self, value: Any) -> Any:
        raise _outside("a template cast")

    def _derived(self, *_: Any) -> template:
        # `BM = 16 * TM` at module level must import: the compiler evaluates it per value; Python gets a stand-in
        return template()

    __add__ = __radd__ = __sub__ = __rsub__ = __mul__ = __rmul__ = _derived
    __floordiv__ = __rfloordiv__ = __mod__ = __rmod__ = __pow__ = __rpow__ = __neg__ = _derived
    __lshift__ = __rlshift__ = __rshift__ = __rrshift__ = __and__ = __rand__ = __or__ = __ror__ = _derived


class Helper:
    """A helper's compile-time parameter that takes a function: another helper, a math intrinsic (`exp`, `max`) or
    a type (a cast): `def map_elements(out: MutBuf[f32], a: Buf[f32], op: Helper)`, called
    `map_elements(out, a, silu)`. The helper is compiled once per function it is given."""

    def __call__(self, *args: Any) -> Any:
        raise _outside("a Helper parameter")


class Const(Generic[T]):
    """A helper's compile-time parameter of a scalar type: `def tile(x: Buf[f32], n: Const[u32])` takes a literal,
    a constant or a template, and the helper is compiled once per value (an `if` on it compiles one branch)."""


def static_range(*bounds: int) -> range:
    """`range` over compile-time constants, unrolled by the compiler."""
    return range(*bounds)


def require(condition: bool) -> None:
    """A precondition on the arguments, checked by the host before each dispatch, written at the top of a kernel:
    `require(len(out) >= n)`. It may use len() of buffers, scalar parameters, struct fields and constants."""


def bitcast(to: type[T], value: Any) -> T:
    raise _outside("bitcast")


# --- builtins -----------------------------------------------------------------------------------------------------

class UVec3(NamedTuple):
    x: int
    y: int
    z: int


def _outside(what: str) -> RuntimeError:
    return RuntimeError(f"{what} only has a meaning inside a kernel compiled by khal")


def _builtin(name: str, doc: str) -> Callable[..., Any]:
    def fn(*args: Any) -> Any:
        raise _outside(name + "()")
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    return fn


global_id: Callable[[], UVec3] = _builtin("global_id", "The invocation's id in the whole grid.")
local_id: Callable[[], UVec3] = _builtin("local_id", "The invocation's id in its workgroup.")
workgroup_id: Callable[[], UVec3] = _builtin("workgroup_id", "The workgroup's id in the grid.")
num_workgroups: Callable[[], UVec3] = _builtin("num_workgroups", "The grid's size in workgroups.")
workgroup_size: Callable[[], UVec3] = _builtin("workgroup_size", "The workgroup size (a compile-time constant).")
local_index: Callable[[], int] = _builtin("local_index", "The invocation's linear index in its workgroup.")
subgroup_size: Callable[[], int] = _builtin("subgroup_size", "Invocations per subgroup (32 on NVIDIA).")
subgroup_invocation_id: Callable[[], int] = _builtin("subgroup_invocation_id", "The lane in the subgroup.")
subgroup_id: Callable[[], int] = _builtin("subgroup_id", "The subgroup's index in the workgroup.")
num_subgroups: Callable[[], int] = _builtin("num_subgroups", "Subgroups per workgroup.")

barrier: Callable[[], None] = _builtin("barrier", "Workgroup execution barrier; shared-memory writes visible.")
storage_barrier: Callable[[], None] = _builtin("storage_barrier", "barrier() that also orders storage writes.")

# math on float types; abs, min, max and clamp also take integers (and Python's abs, min and max work too)
def sqrt(x: T) -> T: raise _outside("sqrt")
def rsqrt(x: T) -> T: raise _outside("rsqrt")
def exp(x: T) -> T: raise _outside("exp")
def exp2(x: T) -> T: raise _outside("exp2")
def log(x: T) -> T: raise _outside("log")
def log2(x: T) -> T: raise _outside("log2")
def sin(x: T) -> T: raise _outside("sin")
def cos(x: T) -> T: raise _outside("cos")
def tan(x: T) -> T: raise _outside("tan")
def tanh(x: T) -> T: raise _outside("tanh")
def floor(x: T) -> T: raise _outside("floor")
def ceil(x: T) -> T: raise _outside("ceil")
def trunc(x: T) -> T: raise _outside("trunc")
def fma(a: T, b: T, c: T) -> T: raise _outside("fma")
def clamp(x: T, lo: T, hi: T) -> T: raise _outside("clamp")
def isnan(x: Any) -> bool: raise _outside("isnan")
def isinf(x: Any) -> bool: raise _outside("isinf")

# bits and packing
def count_ones(x: Any) -> u32: raise _outside("count_ones")
def leading_zeros(x: Any) -> u32: raise _outside("leading_zeros")
def trailing_zeros(x: Any) -> u32: raise _outside("trailing_zeros")
def extract_bits(x: T, offset: Any, count: Any) -> T: raise _outside("extract_bits")
def insert_bits(base: T, insert: T, offset: Any, count: Any) -> T: raise _outside("insert_bits")
def half_to_f32(bits: Any) -> f32: raise _outside("half_to_f32")
def f32_to_half(x: Any) -> u32: raise _outside("f32_to_half")
def unpack_half2x16(word: Any) -> tuple[f32, f32]: raise _outside("unpack_half2x16")
def pack_half2x16(lo: Any, hi: Any) -> u32: raise _outside("pack_half2x16")
def dot4_i8(a: Any, b: Any, acc: Any) -> i32:
    """acc + the dot product of the four signed bytes packed in the u32 words a and b (wrapping)."""
    raise _outside("dot4_i8")
def dot4_u8(a: Any, b: Any, acc: Any) -> u32:
    """acc + the dot product of the four unsigned bytes packed in the u32 words a and b (wrapping)."""
    raise _outside("dot4_u8")


# vector loads: `a, b, c, d = load_u32x4(words, i)` reads words[4i] .. words[4i+3] of a u32 buffer in one aligned load
def load_u32x4(buf: Buf[u32], group: Any) -> tuple[u32, u32, u32, u32]: raise _outside("load_u32x4")

# atomics on a buffer or shared array element; each returns the old value
def atomic_add(mem: Any, index: Any, value: T) -> T: raise _outside("atomic_add")
def atomic_sub(mem: Any, index: Any, value: T) -> T: raise _outside("atomic_sub")
def atomic_min(mem: Any, index: Any, value: T) -> T: raise _outside("atomic_min")
def atomic_max(mem: Any, index: Any, value: T) -> T: raise _outside("atomic_max")
def atomic_and(mem: Any, index: Any, value: T) -> T: raise _outside("atomic_and")
def atomic_or(mem: Any, index: Any, value: T) -> T: raise _outside("atomic_or")
def atomic_xor(mem: Any, index: Any, value: T) -> T: raise _outside("atomic_xor")
def atomic_exchange(mem: Any, index: Any, value: T) -> T: raise _outside("atomic_exchange")
def atomic_compare_exchange(mem: Any, index: Any, compare: T, value: T) -> T:
    raise _outside("atomic_compare_exchange")

# subgroup operations: every invocation of the subgroup must reach them
def subgroup_add(x: T) -> T: raise _outside("subgroup_add")
def subgroup_mul(x: T) -> T: raise _outside("subgroup_mul")
def subgroup_min(x: T) -> T: raise _outside("subgroup_min")
def subgroup_max(x: T) -> T: raise _outside("subgroup_max")
def subgroup_and(x: T) -> T: raise _outside("subgroup_and")
def subgroup_or(x: T) -> T: raise _outside("subgroup_or")
def subgroup_xor(x: T) -> T: raise _outside("subgroup_xor")
def subgroup_inclusive_add(x: T) -> T: raise _outside("subgroup_inclusive_add")
def subgroup_exclusive_add(x: T) -> T: raise _outside("subgroup_exclusive_add")
def subgroup_shuffle(x: T, lane: Any) -> T: raise _outside("subgroup_shuffle")
def subgroup_shuffle_xor(x: T, mask: Any) -> T: raise _outside("subgroup_shuffle_xor")
def subgroup_shuffle_down(x: T, delta: Any) -> T: raise _outside("subgroup_shuffle_down")
def subgroup_shuffle_up(x: T, delta: Any) -> T: raise _outside("subgroup_shuffle_up")
def subgroup_broadcast_first(x: T) -> T: raise _outside("subgroup_broadcast_first")
def subgroup_any(x: bool) -> bool: raise _outside("subgroup_any")
def subgroup_all(x: bool) -> bool: raise _outside("subgroup_all")


__all__ = [
    "i32", "u32", "i64", "u64", "f16", "f32", "f64", "Buf", "MutBuf", "Array", "shared", "array", "kernel",
    "struct", "template", "static_range", "require", "bitcast", "global_id", "local_id", "workgroup_id",
    "num_workgroups", "workgroup_size", "local_index", "subgroup_size", "subgroup_invocation_id", "subgroup_id",
    "num_subgroups",
    "Helper", "Const",
    "barrier", "storage_barrier", "sqrt", "rsqrt", "exp", "exp2", "log", "log2", "sin", "cos", "tan", "tanh",
    "floor", "ceil", "trunc", "fma", "clamp", "isnan", "isinf", "count_ones", "leading_zeros", "trailing_zeros",
    "extract_bits", "insert_bits", "half_to_f32", "f32_to_half", "unpack_half2x16", "pack_half2x16",
    "dot4_i8", "dot4_u8", "load_u32x4",
    "atomic_add", "atomic_sub", "atomic_min", "atomic_max", "atomic_and", "atomic_or", "atomic_xor",
    "atomic_exchange", "atomic_compare_exchange", "subgroup_add", "subgroup_mul", "subgroup_min", "subgroup_max",
    "subgroup_and", "subgroup_or", "subgroup_xor", "subgroup_inclusive_add", "subgroup_exclusive_add",
    "subgroup_shuffle", "subgroup_shuffle_xor", "subgroup_shuffle_down", "subgroup_shuffle_up",
    "subgroup_broadcast_first", "subgroup_any", "subgroup_all",
]
