"""The expression half of the printer shared by the GLSL and CUDA renderers: names and types of one kernel, and IR
expressions as C-family text with the parentheses that C's precedence (the same in both languages) and clarity
need. `printer.Printer` adds statements and whole kernels."""

from __future__ import annotations

from typing import Any

from khal_runtime import ir

from .common import (
    BITWISE,
    COND,
    EQ,
    F16_EXACT,
    HELPER_CALL,
    LAND,
    LOR,
    MUL,
    OPERATORS,
    PRIMARY,
    REL,
    SYMBOLS,
    TOP,
    UNARY,
    Target,
    literal,
    lookup,
    vector_buffers,
)
from .names import Scope, legal_name


class ExpressionPrinter:
    """Prints the expressions of one kernel for a target, in the scope of its names (globals, then the current
    function's)."""

    def __init__(self, kernel: ir.Kernel, target: Target, entry_name: str | None = None):
        self.k, self.t = kernel, target
        self.globals = Scope()
        # user names never start with `khal_`, but reserved ones get that prefix: keep the generated ones apart
        self.globals.taken |= {name for name, _, _ in target.snippets} | target.generated
        if entry_name:      # the CUDA entry point keeps the kernel's name: it is the ABI
            self.globals.taken.add(entry_name)
        for name in [*kernel.structs, *(f.name for f in kernel.functions), *(b.name for b in kernel.buffers),
                     *(s.name for s in kernel.scalars), *kernel.shared]:
            self.globals.add(name)
        self.lens = {b.name: self.globals.add(f"{b.name}_len") for b in kernel.buffers}
        self.fields = {s: {f: legal_name(f) for f, _ in fs} for s, fs in kernel.structs.items()}
        self.buffers = {b.name: b for b in kernel.buffers}
        self.params = {s.name: s.type for s in kernel.scalars}
        self.uses = self._global_uses()
        self.vector_buffers = vector_buffers(kernel)        # buffers read by vector loads only
        self.scope = self.globals
        self.needs: set[tuple[str, str | None]] = set()     # (prelude helper, IR type) that templates called

    # --- types and names ---------------------------------------------------------------------------------------

    def type(self, t: str) -> str:
        return self.globals[t] if t in self.k.structs else self.t.types[t]

    @staticmethod
    def abi_type(t: str) -> str:
        """The type that a parameter or struct field of type `t` travels as: bool travels as u32 (abi.FORMAT)."""
        return "u32" if t == "bool" else t

    def declarator(self, t: str, name: str, memory: bool = False) -> str:
        """`T name[n][m]` for a scalar, struct or array type; `memory` picks the element type of shared memory."""
        arr = ir.parse_array(t)
        elem, dims = arr if arr else (t, ())
        tname = self.t.memory_types.get(elem, self.type(elem)) if memory else self.type(elem)
        return f"{tname} {name}" + "".join(f"[{n}]" for n in dims)

    def zero(self, t: str) -> str:
        if t in self.k.structs:
            return self.t.zero_struct(self, t)
        if t in ir.VECTORS:
            return self.t.vector_zero.format(self.type(t))
        return literal(self.t, t, 0)[0]

    def _global_uses(self) -> dict[str, list[tuple[str, str]]]:
        """Per helper, the buffers, lengths and parameters it uses, itself or through the helpers it calls, in the
        kernel's parameter order (the extra arguments of helpers on CUDA)."""
        direct: dict[str, set[tuple[str, str]]] = {}
        calls: dict[str, set[str]] = {}
        for f in self.k.functions:
            used: set[tuple[str, str]] = set()
            callees: set[str] = set()
            for n in ir.walk(f.body):
                if isinstance(n, (ir.Load, ir.Store, ir.Atomic)) and n.space == "storage":
                    used.add(("buf", n.name))
                elif isinstance(n, ir.Len):
                    used.add(("len", n.name))
                elif isinstance(n, ir.Param):
                    used.add(("param", n.name))
                elif isinstance(n, ir.Call):
                    callees.add(n.func)
            direct[f.name], calls[f.name] = used, callees
        order = [(kind, b.name) for b in self.k.buffers for kind in ("buf", "len")]     # abi.cuda_params' order
        order += [("param", s.name) for s in self.k.scalars]
        out = {}
        for f in self.k.functions:
            seen: set[str] = set()
            todo, used = [f.name], set()
            while todo:
                g = todo.pop()
                if g not in seen:
                    seen.add(g)
                    used |= direct[g]
                    todo += sorted(calls[g])
            out[f.name] = [u for u in order if u in used]
        return out

    def global_args(self, func: str) -> list[tuple[str, str]]:
        """(kind, name) of the extra arguments of a helper: kind is `buf`, `len` or `param`."""
        return self.uses[func] if self.t.pass_globals else []

    def ordered_functions(self) -> list[ir.Function]:
        """Helpers, each after the helpers it calls (GLSL and C need a declaration before a call)."""
        by_name = {f.name: f for f in self.k.functions}
        out: list[ir.Function] = []

        def add(f: ir.Function) -> None:
            if f not in out:
                for n in ir.walk(f.body):
                    if isinstance(n, ir.Call):
                        add(by_name[n.func])
                out.append(f)
        for f in self.k.functions:
            add(f)
        return out

    # --- expressions -------------------------------------------------------------------------------------------

    def expr(self, e: ir.Expr, need: int = TOP) -> str:
        text, prec = self.emit(e)
        return f"({text})" if prec < need else text

    def fill(self, template: Any, args: list[ir.Expr], t: str) -> tuple[str, int]:
        """Print a template over operands of type `t`; the prelude helpers it calls are needed for `t`."""
        text, prec = template if isinstance(template, tuple) else (template, PRIMARY)
        self.needs |= {(name, t) for name in HELPER_CALL.findall(text)}
        return text.format(*(self.expr(a) for a in args), T=self.t.types[t]), prec

    def operand(self, x: ir.Expr, parent: int, need: int) -> str:
        text, prec = self.emit(x)
        # legal but misleading mixes get parentheses too: `(a & b) == c`, `(x >> 8u) & 255u`, `(a && b) || c`
        clarify = prec != parent and LOR <= prec <= MUL and (
            parent in BITWISE or prec in BITWISE or (parent == LOR and prec == LAND) or {parent, prec} <= {REL, EQ})
        return f"({text})" if prec < need or clarify else text

    def operator(self, symbol: str, a: ir.Expr, b: ir.Expr) -> tuple[str, int]:
        prec = SYMBOLS[symbol]
        return f"{self.operand(a, prec, prec)} {symbol} {self.operand(b, prec, prec + 1)}", prec

    def rounded(self, result: tuple[str, int], t: str, op: str) -> tuple[str, int]:
        if t == "f16" and self.t.f16_round and op not in F16_EXACT:
            return self.t.f16_round.format(result[0]), PRIMARY
        return result

    def emit(self, e: ir.Expr) -> tuple[str, int]:
        return getattr(self, "e_" + type(e).__name__)(e)

    def e_Const(self, e: ir.Const) -> tuple[str, int]:
        return literal(self.t, e.type, e.value)

    def e_Var(self, e: ir.Var) -> tuple[str, int]:
        return self.scope[e.name], PRIMARY

    def e_Param(self, e: ir.Param) -> tuple[str, int]:
        name = self.globals[e.name]
        if e.type in self.k.structs and self.t.struct_param:
            return self.t.struct_param(self, name, e.type), PRIMARY
        # bool parameters travel as u32 (abi.FORMAT)
        return (f"{name} != 0u", EQ) if e.type == "bool" else (name, PRIMARY)

    def e_Field(self, e: ir.Field) -> tuple[str, int]:
        struct = e.value.type
        if struct in ir.VECTORS:            # GLSL's uvec4 and CUDA's uint4 both name their lanes x, y, z, w
            return f"{self.expr(e.value, PRIMARY)}.{e.field}", PRIMARY
        base = self.globals[e.value.name] if isinstance(e.value, ir.Param) else self.expr(e.value, PRIMARY)
        text = f"{base}.{self.fields[struct][e.field]}"
        return (f"{text} != 0u", EQ) if e.type == "bool" else (text, PRIMARY)

    def e_Builtin(self, e: ir.Builtin) -> tuple[str, int]:
        return self.t.builtin(self.k, e.name, e.dim)

    def e_Unary(self, e: ir.Unary) -> tuple[str, int]:
        if e.op == "neg" and e.type in ("u32", "u64"):     # naga rejects unsigned negation; C and GLSL agree on 0 - x
            return self.emit(ir.Binary(e.type, "sub", ir.Const(e.type, 0), e.a))
        template = lookup(self.t.unary, e.op, e.type)
        if template:
            return self.fill(template, [e.a], e.type)
        symbol = {"neg": "-", "not": "!", "bit_not": "~"}[e.op]
        inner = self.expr(e.a, UNARY)
        return f"{symbol}({inner})" if inner.startswith(symbol) else symbol + inner, UNARY

    def binary(self, e: ir.Binary) -> tuple[str, ir.Expr, ir.Expr, str]:
        """(op, a, b, template or operator) of a binary operation, shift amounts already reduced."""
        a, b, op = e.a, e.b, e.op
        if op in ("shl", "shr"):            # the amount is taken modulo the bit width of `a`
            bits = ir.BITS[a.type]
            b = ir.Const(b.type, b.value % bits) if isinstance(b, ir.Const) else \
                ir.Binary(b.type, "bit_and", b, ir.Const(b.type, bits - 1))
        if op in ("floordiv", "mod") and a.type in ("u32", "u64"):     # Python's and C's agree on unsigned values
            op = "div" if op == "floordiv" else "rem"
        entry = lookup(self.t.binary, op, a.type) or {"rem": "%"}.get(op) or OPERATORS[op]
        return op, a, b, entry

    def e_Binary(self, e: ir.Binary) -> tuple[str, int]:
        rewrite = lookup(self.t.rewrites, e.op, e.a.type)
        if rewrite:
            return self.emit(rewrite(e))
        op, a, b, entry = self.binary(e)
        result = self.fill(entry, [a, b], a.type) if "{" in entry else self.operator(entry, a, b)
        return self.rounded(result, e.type, op)

    def e_Select(self, e: ir.Select) -> tuple[str, int]:
        # a condition other than a comparison gets parentheses: `(a && b) ? x : y`
        return f"{self.expr(e.cond, EQ)} ? {self.expr(e.a, LOR)} : {self.expr(e.b, COND)}", COND

    def e_Cast(self, e: ir.Cast) -> tuple[str, int]:
        if e.type == e.value.type:
            return self.emit(e.value)
        return self.t.cast(e.type, e.value.type, self, e.value)

    def e_Bitcast(self, e: ir.Bitcast) -> tuple[str, int]:
        if ir.is_int(e.type) and ir.is_int(e.value.type):     # same size: the conversion keeps the bits
            return self.e_Cast(ir.Cast(e.type, e.value))
        return self.fill(self.t.bitcasts[(e.value.type, e.type)], [e.value], e.type)

    def e_Call(self, e: ir.Call) -> tuple[str, int]:
        args = [self.expr(a) for a in e.args] + [self.global_ref(kind, name) for kind, name in self.global_args(e.func)]
        return f"{self.globals[e.func]}({', '.join(args)})", PRIMARY

    def global_ref(self, kind: str, name: str) -> str:
        return self.lens[name] if kind == "len" else self.globals[name]

    def e_Intrinsic(self, e: ir.Intrinsic) -> tuple[str, int]:
        t = e.args[0].type
        if e.name == "abs" and t in ("u32", "u64"):
            return self.emit(e.args[0])
        template = lookup(self.t.intrinsics, e.name, t)
        if template is None:
            raise ValueError(f"intrinsic {e.name} on {t} has no rendering")
        return self.rounded(self.fill(template, e.args, t), e.type, e.name)

    def element(self, space: str, name: str, index: list[ir.Expr]) -> str:
        base = self.globals[name] if space != "private" else self.scope[name]
        return base + "".join(f"[{self.expr(i)}]" for i in index)

    def e_Load(self, e: ir.Load) -> tuple[str, int]:
        if e.type in ir.VECTORS:
            return self.t.vector_load(self, e)
        text = self.element(e.space, e.name, e.index)
        if e.space != "private" and e.type in self.t.load:
            return self.t.load[e.type].format(text), PRIMARY
        return text, PRIMARY

    def e_Len(self, e: ir.Len) -> tuple[str, int]:
        return self.t.length.format(name=self.globals[e.name], len=self.lens[e.name]), PRIMARY

    def e_Atomic(self, e: ir.Atomic) -> tuple[str, int]:
        template = lookup(self.t.atomics, e.op, e.type)
        args = list(e.args)
        if template is None and e.op == "sub" and e.type in ir.INTS:   # GLSL has no atomicSub: add the negation
            template, args = lookup(self.t.atomics, "add", e.type), [ir.Unary(e.type, "neg", e.args[0])]
        if template is None:
            raise ValueError(f"atomic {e.op} on {e.type} {e.space} memory has no rendering")
        mem = self.element(e.space, e.name, e.index)
        text, prec = template if isinstance(template, tuple) else (template, PRIMARY)
        return text.format(mem, *(self.expr(a) for a in args)), prec
