"""The IR's nodes: expressions, statements, functions and kernels (dataclasses), and `walk` over them.

One kernel instance is one `Kernel`. Its body and its helper `Function`s are lists of statements; statements
nest (`If`, `For`, `While`) instead of forming a graph of basic blocks, so the IR maps one-to-one onto GLSL and
CUDA and onto masked lockstep interpretation. Every expression carries its type.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any, Union

from .types import SCALARS, parse_array

# ---------------------------------------------------------------------------------------------------------------
# Expressions. `type` is the type of the value the expression produces.

@dataclass
class Const:
    type: str
    value: bool | int | float


@dataclass
class Var:
    """A local variable or a helper-function parameter."""
    type: str
    name: str


@dataclass
class Param:
    """A scalar or struct kernel parameter (push constant on WebGPU, kernel argument on CUDA)."""
    type: str
    name: str


@dataclass
class Field:
    type: str
    value: Expr
    field: str


@dataclass
class Builtin:
    """`global_id`, `local_id`, `workgroup_id`, `num_workgroups` (with `dim` 0..2), `local_index`,
    `subgroup_size`, `subgroup_invocation_id`, `subgroup_id`, `num_subgroups` (`dim` 0)."""
    type: str
    name: str
    dim: int = 0


@dataclass
class Unary:
    """`neg` (numbers), `not` (bool), `bit_not` (integers)."""
    type: str
    op: str
    a: Expr


@dataclass
class Binary:
    """Arithmetic `add sub mul div floordiv mod`, bitwise `bit_and bit_or bit_xor shl shr`, comparisons
    `eq ne lt le gt ge` (type bool), short-circuit logic `and or` (bool). Both operands have the same type,
    except for shifts, whose amount is any integer type."""
    type: str
    op: str
    a: Expr
    b: Expr


@dataclass
class Select:
    """`a if cond else b`; only the chosen operand is evaluated."""
    type: str
    cond: Expr
    a: Expr
    b: Expr


@dataclass
class Cast:
    """Numeric conversion to `type` (see docs/IR.md for the rules)."""
    type: str
    value: Expr


@dataclass
class Bitcast:
    """Reinterpret the bits of a value as another type of the same size."""
    type: str
    value: Expr


@dataclass
class Call:
    """A call of a helper `Function` of the same kernel."""
    type: str
    func: str
    args: list[Expr]


@dataclass
class Intrinsic:
    """A named operation of the vocabulary: math, bit operations, packing, subgroup operations."""
    type: str
    name: str
    args: list[Expr]


@dataclass
class Load:
    """Read from `storage` (a buffer, one index), `shared` or `private` memory (one index per dimension)."""
    type: str
    space: str
    name: str
    index: list[Expr]


@dataclass
class Len:
    """The length in elements of a buffer, as a u32."""
    type: str
    name: str


@dataclass
class Atomic:
    """Atomic read-modify-write on storage or shared memory; produces the old value.
    op: `add sub min max and or xor exchange compare_exchange` (args: [value] or [compare, value])."""
    type: str
    op: str
    space: str
    name: str
    index: list[Expr]
    args: list[Expr]


Expr = Union[Const, Var, Param, Field, Builtin, Unary, Binary, Select, Cast, Bitcast, Call, Intrinsic, Load, Len,
             Atomic]

# ---------------------------------------------------------------------------------------------------------------
# Statements. `loc` is (line, column) in the function's source file, for error messages.

Loc = tuple[int, int]


@dataclass
class Assign:
    name: str
    value: Expr
    loc: Loc = (0, 0)


@dataclass
class Store:
    space: str
    name: str
    index: list[Expr]
    value: Expr
    loc: Loc = (0, 0)


@dataclass
class If:
    cond: Expr
    then: list[Stmt]
    orelse: list[Stmt]
    loc: Loc = (0, 0)


@dataclass
class For:
    """`var = start; while (step > 0 ? var < stop : var > stop) { body; var += step; }`. `stop` and `step` are
    evaluated once, before the first iteration. `continue` goes to the increment."""
    var: str
    start: Expr
    stop: Expr
    step: Expr
    body: list[Stmt]
    loc: Loc = (0, 0)


@dataclass
class While:
    cond: Expr
    body: list[Stmt]
    loc: Loc = (0, 0)


@dataclass
class Break:
    loc: Loc = (0, 0)


@dataclass
class Continue:
    loc: Loc = (0, 0)


@dataclass
class Return:
    value: Expr | None = None
    loc: Loc = (0, 0)


@dataclass
class ExprStmt:
    """An expression evaluated for its effect (an atomic or a call whose result is discarded)."""
    value: Expr
    loc: Loc = (0, 0)


@dataclass
class Barrier:
    """`workgroup`: execution barrier for the workgroup plus shared-memory visibility;
    `storage`: the same, plus storage-buffer visibility inside the workgroup."""
    scope: str = "workgroup"
    loc: Loc = (0, 0)


Stmt = Union[Assign, Store, If, For, While, Break, Continue, Return, ExprStmt, Barrier]

# ---------------------------------------------------------------------------------------------------------------
# Declarations


@dataclass
class Buffer:
    """A storage buffer parameter. `access` is `read` or `read_write`. Bound at `binding` on WebGPU (group 0);
    passed as a pointer followed by its u32 length on CUDA."""
    name: str
    elem: str
    access: str
    binding: int


@dataclass
class Scalar:
    """A scalar or struct parameter, in the order of the kernel's signature."""
    name: str
    type: str


@dataclass
class Function:
    name: str
    params: list[Scalar]
    ret: str | None
    locals: dict[str, str]
    body: list[Stmt]
    line: int = 0
    source: str = ""                        # the Python file that defines it, when not the kernel's


@dataclass
class Requirement:
    """A precondition the host checks before a dispatch, from `require(...)` at the top of the kernel: a Python
    expression over the kernel's arguments (`len(c) >= shape.m * shape.n`), constants already substituted."""
    text: str
    line: int


@dataclass
class Kernel:
    name: str                               # the instance's entry-point name, unique in the shader package
    source: str                             # the Python source file, relative to the project root
    line: int                               # line of the `def`
    function: str                           # the Python function's name
    template: dict[str, Any]                # template parameters of this instance (types as their names)
    workgroup_size: tuple[int, int, int]
    buffers: list[Buffer]
    scalars: list[Scalar]                   # push constants / kernel arguments, in signature order
    structs: dict[str, list[tuple[str, str]]]
    shared: dict[str, str]                  # name -> array type
    locals: dict[str, str]                  # the entry's locals (arrays are private memory)
    body: list[Stmt]
    functions: list[Function] = field(default_factory=list)
    requires: list[Requirement] = field(default_factory=list)
    params: list[str] = field(default_factory=list)     # every parameter's name, in signature order

    def uses(self) -> set[str]:
        """Names of the intrinsics, builtins and memory operations used, for feature detection."""
        found: set[str] = set()
        for node in walk(self):
            if isinstance(node, Intrinsic):
                found.add(node.name)
            elif isinstance(node, Builtin):
                found.add(node.name)
            elif isinstance(node, Atomic):
                found.add(f"atomic_{node.type}")
        return found

    def types(self) -> set[str]:
        """Every scalar type that occurs in the kernel."""
        found = {b.elem for b in self.buffers} | {s.type for s in self.scalars}
        found |= {t for fields in self.structs.values() for _, t in fields}
        found |= set(self.shared.values()) | set(self.locals.values())
        for f in self.functions:
            found |= set(f.locals.values()) | {p.type for p in f.params}
        for node in walk(self):
            t = getattr(node, "type", None)
            if isinstance(t, str):
                found.add(t)
        scalars = set()
        for t in found:
            arr = parse_array(t)
            scalars.add(arr[0] if arr else t)
        return scalars & set(SCALARS)


# ---------------------------------------------------------------------------------------------------------------
# Traversal

NODES = {cls.__name__: cls for cls in (
    Const, Var, Param, Field, Builtin, Unary, Binary, Select, Cast, Bitcast, Call, Intrinsic, Load, Len, Atomic,
    Assign, Store, If, For, While, Break, Continue, Return, ExprStmt, Barrier)}


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def walk(root: Any):
    """Yield every statement and expression below `root` (a Kernel, Function, statement, expression or list)."""
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
        elif isinstance(node, Kernel):
            stack.extend([node.body, [f.body for f in node.functions]])
        elif isinstance(node, Function):
            stack.append(node.body)
        elif type(node).__name__ in NODES:
            yield node
            for name in _field_names(type(node)):
                child = getattr(node, name)
                if isinstance(child, list) or type(child).__name__ in NODES:
                    stack.append(child)


