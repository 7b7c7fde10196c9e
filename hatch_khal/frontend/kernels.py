"""One kernel instance: its signature, structs and compile-time names (`templates.py` makes the instances,
`helpers.py` specialises the helpers it calls)."""

from __future__ import annotations

import ast
from typing import Any

from khal_runtime import ir

from ..render.names import legal_name, template_text
from .diagnostics import KernelCompileError
from .expressions import ExpressionLowering
from .helpers import call_helper, plain_parameters
from .package import Constant, Function, ShaderPackage, Struct, Template, Vocab, _decorator_name
from .refusals import python_type_annotation
from .statements import FunctionLowering
from .uniformity import check_uniformity
from .values import Callee, Comptime, MemRef, RValue, TypeName, Value, describe

MAX_INSTANCES = 256
SUBGROUP_MULTIPLE = 32


class NeedTemplate(Exception):
    def __init__(self, template: Template):
        self.template = template


def value_name(v: Value) -> str:
    return template_text(python_value(v))


def python_value(v: Value) -> Any:
    """A template value as the manifest stores it: a type or function by its name, anything else as it is."""
    return v.name if isinstance(v, (TypeName, Callee)) else v.value


class KernelBuilder:
    """The state of one kernel instance while it is compiled."""

    def __init__(self, package: ShaderPackage, fn: Function | None, env: dict[tuple[str, str], Value]):
        self.package, self.fn, self.env = package, fn, env
        self.structs: dict[str, list[tuple[str, str]]] = {}
        self.struct_sources: dict[str, Struct] = {}
        self.buffers: list[ir.Buffer] = []
        self.scalars: list[ir.Scalar] = []
        self.shared: dict[str, str] = {}
        self.functions: list[ir.Function] = []
        self.specialised: dict[tuple, tuple[str, str | None]] = {}
        self.in_progress: list[tuple] = []
        self.global_names: set[str] = set()
        self.constants: dict[tuple[str, str], Value] = {}
        self.evaluating: list[tuple[str, str]] = []
        self.subgroup_use: ast.AST | None = None
        self.synchronises = False                  # whether the kernel or a helper has a barrier
        self.reserved: set[str] = set()
        self.workgroup_size: tuple[int, int, int] = (1, 1, 1)

    # --- compile-time names ---------------------------------------------------------------------------------

    def template_value(self, t: Template) -> Value:
        if t.key not in self.env:
            raise NeedTemplate(t)
        return self.env[t.key]

    def constant(self, c: Constant) -> Value:
        key = (c.module.name, c.name)
        if key not in self.constants:
            if key in self.evaluating:
                raise c.module.error(c.node, f"the constant {c.name} is defined in terms of itself")
            self.evaluating.append(key)
            try:
                value = ExpressionLowering(self, c.module).expr(c.node)
            finally:
                self.evaluating.pop()
            if not isinstance(value, (Comptime, TypeName)):
                raise c.module.error(c.node, f"{c.name} is used in a kernel but is not a compile-time constant",
                                     hint="module-level constants are literals or expressions of other constants")
            self.constants[key] = value
        return self.constants[key]

    def annotation(self, module, node: ast.expr) -> Value:
        """The value of a type annotation (or of the element type inside one)."""
        refused = python_type_annotation(module, node)
        if refused:
            raise refused
        return ExpressionLowering(self, module).expr(node)

    def scalar_annotation(self, module, node: ast.expr) -> str:
        v = self.annotation(module, node)
        if not isinstance(v, TypeName):
            raise module.error(node, f"expected a scalar type such as f32 or u32, found {describe(v)}")
        return v.name

    def note_subgroups(self, node: ast.AST) -> None:
        self.subgroup_use = self.subgroup_use or node

    # --- IR names -------------------------------------------------------------------------------------------

    def global_name(self, name: str) -> str:
        """`name`, or `name_2`, `name_3`... when the kernel already has a global of that name."""
        candidate = self.local_name(name, {})
        self.global_names.add(candidate)
        return candidate

    def local_name(self, name: str, taken: dict[str, str]) -> str:
        candidate, n = name, 1
        while candidate in taken or candidate in self.global_names:
            n += 1
            candidate = f"{name}_{n}"
        return candidate

    def add_shared(self, name: str, t: str) -> str:
        ir_name = name if name in self.reserved and name not in self.shared else self.global_name(name)
        self.shared[ir_name] = t
        return ir_name

    # --- the kernel -----------------------------------------------------------------------------------------

    def build(self) -> ir.Kernel:
        fn = self.fn
        module, node = fn.module, fn.node
        self.workgroup_size = self.read_workgroup_size()
        bindings = self.kernel_parameters()
        lowering = FunctionLowering(self, module, node, bindings, {}, None, is_kernel=True)
        # shared arrays are globals: reserve their names before a helper's local could take one
        self.reserved = {s.targets[0].id for s in node.body if isinstance(s, ast.Assign) and len(s.targets) == 1
                         and isinstance(s.targets[0], ast.Name) and _is_shared_call(s.value)}
        self.global_names |= self.reserved | {fn.name}
        body = lowering.body()
        total = self.workgroup_size[0] * self.workgroup_size[1] * self.workgroup_size[2]
        if self.subgroup_use is not None and total % SUBGROUP_MULTIPLE:
            raise module.error(self.subgroup_use, f"kernels that use subgroup operations need a workgroup size "
                                                  f"that is a multiple of {SUBGROUP_MULTIPLE}; {fn.name} has {total}",
                               hint="a partial subgroup would leave a CUDA warp incomplete")
        name = "_".join([fn.name] + [value_name(v) for v in self.env.values()])
        if legal_name(name) != name:
            raise module.error(node, f"the kernel name {name!r} is reserved in GLSL or CUDA, where it names the "
                                     "entry point", hint="rename the function")
        kernel = ir.Kernel(
            name=name, source=module.source.display, line=node.lineno, function=fn.name,
            template={key[1]: python_value(v) for key, v in self.env.items()},
            workgroup_size=self.workgroup_size, buffers=self.buffers, scalars=self.scalars,
            structs=self.structs, shared=self.shared, locals=lowering.locals, body=body,
            functions=self.functions, requires=lowering.requires, params=[a.arg for a in node.args.args])
        if self.synchronises or self.subgroup_use is not None:
            check_uniformity(kernel, self.package.source)
        return kernel

    def read_workgroup_size(self) -> tuple[int, int, int]:
        deco, module = self.fn.kernel, self.fn.module
        keywords = {k.arg: k for k in deco.keywords}
        unknown = set(keywords) - {"workgroup_size", "exclude"}
        if deco.args or unknown or "workgroup_size" not in keywords:
            raise module.error(deco, "@kernel takes the keyword arguments workgroup_size and (for a template "
                                     "kernel) exclude", hint="write @kernel(workgroup_size=(64,))")
        node = keywords["workgroup_size"].value
        v = ExpressionLowering(self, module).expr(node)
        dims = v.value if isinstance(v, Comptime) and isinstance(v.value, tuple) else (
            (v.value,) if isinstance(v, Comptime) else None)
        if dims is None or not 1 <= len(dims) <= 3 or not all(isinstance(d, int) and d >= 1 for d in dims):
            raise module.error(node, "workgroup_size must be one to three positive compile-time integers")
        x, y, z = (tuple(dims) + (1, 1))[:3]
        if x * y * z > 1024 or x > 1024 or y > 1024 or z > 64:
            raise module.error(node, f"workgroup size {x}x{y}x{z} exceeds the portable limits "
                                     "(1024 invocations, z at most 64)")
        return (x, y, z)

    def kernel_parameters(self) -> dict[str, Value]:
        module, node = self.fn.module, self.fn.node
        args = node.args
        if not plain_parameters(args):
            raise module.error(node, "kernel parameters are plain positional parameters without defaults")
        if node.returns is not None and not self.returns_nothing(node):
            raise module.error(node.returns, "kernels return nothing", hint="remove the return annotation")
        for deco in node.decorator_list:
            if deco is not self.fn.kernel:
                raise module.error(deco, "a kernel takes no decorator other than @kernel")
        bindings: dict[str, Value] = {}
        for arg in args.args:
            name = arg.arg
            if name.startswith("khal_"):
                raise module.error(arg, "names starting with khal_ are reserved for generated code")
            if arg.annotation is None:
                raise module.error(arg, f"kernel parameter {name!r} needs a type annotation",
                                   hint="e.g. x: Buf[f32], out: MutBuf[f32], n: u32")
            kind, t = self.parameter_type(module, arg.annotation, in_helper=False)
            self.global_names.add(name)
            if kind in ("read", "read_write"):
                self.buffers.append(ir.Buffer(name, t, kind, len(self.buffers)))
                bindings[name] = MemRef("storage", name, t, (), kind, label=name)
            else:
                if t == "f16":
                    raise module.error(arg, "f16 parameters are not supported",
                                       hint="pass an f32 and convert with f16(x) in the kernel")
                self.scalars.append(ir.Scalar(name, t))
                bindings[name] = RValue(ir.Param(t, name))
        return bindings

    def parameter_type(self, module, node: ast.expr, in_helper: bool) -> tuple[str, str]:
        """("read" | "read_write" | "array", elem) for memory, ("scalar", type) for scalars and structs; for a
        helper also ("const", type) for `Const[T]` and ("helper", "") for `Helper`."""
        lowering = ExpressionLowering(self, module)
        if isinstance(node, ast.Subscript):
            kind = lowering.expr(node.value)
            names = {"Buf": "read", "MutBuf": "read_write"} | ({"Array": "array", "Const": "const"} if in_helper
                                                             else {})
            if isinstance(kind, Vocab) and kind.name in names:
                elem = self.annotation(module, node.slice)
                if kind.name == "Const":
                    if not isinstance(elem, TypeName):
                        raise module.error(node.slice, f"Const takes a scalar type, e.g. Const[u32], not "
                                                       f"{describe(elem)}")
                    return "const", elem.name
                if not isinstance(elem, TypeName) or elem.name == "bool":
                    raise module.error(node.slice, "the element type must be a numeric type such as f32 or u32",
                                       hint="bool values travel in buffers as u32")
                return names[kind.name], elem.name
            if isinstance(kind, Vocab) and kind.name == "Const":
                raise _compile_time_kernel_parameter(module, node)
            raise module.error(node, "expected Buf[T] or MutBuf[T]" + (" or Array[T]" if in_helper else ""))
        v = self.annotation(module, node)
        if isinstance(v, TypeName):
            return "scalar", v.name
        if isinstance(v, Struct):
            return "scalar", self.struct(v)
        if isinstance(v, Vocab) and v.name in ("Helper", "Const"):
            if not in_helper:
                raise _compile_time_kernel_parameter(module, node)
            if v.name == "Const":
                raise module.error(node, "Const needs the constant's type: Const[u32], Const[f32], Const[bool]")
            return "helper", ""
        raise module.error(node, f"{describe(v)} is not a parameter type",
                           hint="use a scalar type, a @struct, Buf[T] or MutBuf[T]")

    def struct(self, s: Struct) -> str:
        if s.name in self.struct_sources:
            if self.struct_sources[s.name] is not s:
                raise s.module.error(s.node, f"two different structs named {s.name} are used by one kernel")
            return s.name
        fields: list[tuple[str, str]] = []
        for stmt in s.node.body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is None):
                raise s.module.error(stmt, "a @struct body holds only typed fields: `n: u32`")
            t = self.scalar_annotation(s.module, stmt.annotation)
            if t == "f16":
                raise s.module.error(stmt, "f16 struct fields are not supported", hint="use f32")
            fields.append((stmt.target.id, t))
        if not fields:
            raise s.module.error(s.node, f"struct {s.name} has no fields")
        self.struct_sources[s.name] = s
        self.structs[s.name] = fields
        self.global_names.add(s.name)
        return s.name

    # --- helpers --------------------------------------------------------------------------------------------

    def returns_nothing(self, node: ast.FunctionDef) -> bool:
        return isinstance(node.returns, ast.Constant) and node.returns.value is None

    def call_helper(self, caller: ExpressionLowering, call: ast.Call, fn: Function) -> Value:
        return call_helper(self, caller, call, fn)


def _compile_time_kernel_parameter(module, node: ast.expr) -> KernelCompileError:
    return module.error(node, "a kernel's parameters are run-time values: Helper and Const[...] are parameters "
                              "of helper functions", hint="a kernel's compile-time choices are templates: "
                                                          "OP = template(add, max)")


def _is_shared_call(node: ast.expr) -> bool:
    return isinstance(node, ast.Call) and _decorator_name(node) == "shared"
