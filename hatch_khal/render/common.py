"""The printer shared by the GLSL and CUDA renderers.

One `Printer` turns IR expressions and statements into C-family text; everything that differs between the two
targets lives in a `Target` (type names, literals, casts, memory access, operator and intrinsic templates, prelude
snippets), defined in `glsl.py` and `cuda.py`. Both languages share C's operator precedence, so one precedence table
decides the parentheses.

Templates are strings with `{0}`, `{1}`, ... for the operands, each printed as a complete expression: a template must
put every operand inside parentheses or a call's argument list, and use it once. A template whose result is not a
primary expression is written `(text, precedence)`. An entry without `{` names an operator instead (`"!="`).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from khal_runtime import ir

from .names import Scope, legal_name
from .placement import place_locals

# C precedence levels, higher binds tighter. TOP is a complete expression (assignment and comma excluded).
PRIMARY, UNARY, MUL, ADD, SHIFT, REL, EQ, BAND, BXOR, BOR, LAND, LOR, COND, TOP = (
    16, 15, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 0)
SYMBOLS = {"*": MUL, "/": MUL, "%": MUL, "+": ADD, "-": ADD, "<<": SHIFT, ">>": SHIFT, "<": REL, "<=": REL, ">": REL,
           ">=": REL, "==": EQ, "!=": EQ, "&": BAND, "^": BXOR, "|": BOR, "&&": LAND, "||": LOR}
OPERATORS = {"add": "+", "sub": "-", "mul": "*", "div": "/", "bit_and": "&", "bit_or": "|", "bit_xor": "^",
             "shl": "<<", "shr": ">>", "eq": "==", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=",
             "and": "&&", "or": "||"}
# Writing `a & b == c` or `a << b + c` is legal but misleading: operands of bitwise and shift operators that are
# themselves other binary operators get parentheses even where precedence makes them redundant.
_BITWISE = {BAND, BXOR, BOR, SHIFT}
# Operations whose f16 result is exact given f16 operands: no rounding needed where f16 lives in f32 registers.
F16_EXACT = {"abs", "min", "max", "clamp", "floor", "ceil", "trunc", "round"} | {
    f"subgroup_{op}" for op in ("min", "max", "shuffle", "shuffle_xor", "shuffle_down", "shuffle_up",
                                "broadcast_first")}
_HELPER = re.compile(r"\b(khal_\w+)\(")


def type_class(t: str) -> str:
    return "sint" if t in ir.SIGNED else "uint" if t in ir.INTS else "float" if t in ir.FLOATS else t


def lookup(table: dict, key: str, t: str) -> Any:
    """A table entry for `key` and type `t`: entries are keyed `key`, or `(key, t)`, `(key, class)` or
    `(key, "int")` where they differ by type; the most specific one wins."""
    keys = [(key, t), (key, type_class(t))] + ([(key, "int")] if t in ir.INTS else []) + [key]
    return next((table[k] for k in keys if k in table), None)


def over(types: tuple[str, ...], **templates: Any) -> dict[tuple[str, str], Any]:
    """The table entries `(name, t)` of every template for each of `types` (types or type classes)."""
    return {(name, t): template for name, template in templates.items() for t in types}


NUMBERS = ("int", "float")      # type classes: every numeric type
INTS32 = ("i32", "u32")


def shortest_float(value: Any, t: str) -> str | None:
    """The shortest decimal text that a compiler parsing it as a double and rounding that to the nearest `t` (f32
    or f64) turns back into exactly `value` as a `t`; None for inf and NaN."""
    x = ir.round_float(float(value), t)
    if not math.isfinite(x):
        return None
    if t == "f64":
        return repr(x)
    # the fewest digits whose double rounds back to x as an f32 (nine always do)
    text = next(s for s in (f"{x:.{d}g}" for d in range(1, 10)) if ir.round_float(float(s), "f32") == x)
    return text if "." in text or "e" in text else text + ".0"


def literal(target: Target, t: str, value: Any) -> tuple[str, int]:
    """A literal that the target's compiler turns back into exactly `value` of type `t`."""
    if t == "bool":
        return ("true" if value else "false"), PRIMARY
    suffix = target.suffix[t]
    if ir.is_int(t):
        value = int(value)
        if t in ir.SIGNED and value == ir.int_range(t)[0]:   # the positive half of -2147483648 does not fit
            return f"{value + 1}{suffix} - 1{suffix}", ADD
        return f"{value}{suffix}", UNARY if value < 0 else PRIMARY
    if t == "f16":
        value = ir.round_float(float(value), "f16")
    text = shortest_float(value, target.f16_digits if t == "f16" else t)
    if text is None:
        text = target.non_finite(t, value != value)
        return ("-" + text, UNARY) if value < 0 else (text, PRIMARY)
    return text + suffix, UNARY if text.startswith("-") else PRIMARY


# ---------------------------------------------------------------------------------------------------------------
# Targets

@dataclass
class Target:
    """What differs between GLSL and CUDA. The callables get the printer and already printed operands."""
    types: dict[str, str]                              # IR scalar type -> the type of values
    memory_types: dict[str, str]                       # element types of buffers and shared arrays, where different
    suffix: dict[str, str]                             # literal suffixes
    f16_digits: str                                    # f16 literals: printed exactly ("f64") or as f32 values
    non_finite: Callable[[str, bool], str]             # (type, NaN rather than inf) -> an expression of that value
    cast: Callable[[str, str, Printer, ir.Expr], tuple[str, int]]   # (to, from, printer, value)
    bitcasts: dict[tuple[str, str], Any]               # (from, to) -> template
    binary: dict[Any, Any]                             # op, or (op, type or class) -> template or operator
    rewrites: dict[Any, Callable[[ir.Binary], ir.Expr]]   # like `binary`: an equivalent expression to print instead
    unary: dict[Any, Any]
    intrinsics: dict[Any, Any]
    atomics: dict[Any, Any]
    builtin: Callable[[ir.Kernel, str, int], tuple[str, int]]
    length: str                                        # template of Len over the buffer's name
    load: dict[str, str]                               # element type -> template that reads memory of that type
    store: dict[str, str]                              # element type -> template that converts a value to store
    f16_round: str | None                              # template rounding a value to f16 (where f16 lives in f32)
    zero_array: Callable[[Printer, str, str, str], list[str]]   # (printer, type, name, indent) -> lines
    zero_struct: Callable[[Printer, str], str]
    struct_param: Callable[[Printer, str, str], str] | None   # (printer, name, struct): a struct parameter's value
    pass_globals: bool                                 # helpers get the buffers and parameters they use as arguments
    snippets: Sequence[tuple[str, str, tuple[str, ...] | None]]   # (helper, text with {T}, IR types it serves)
    barrier: dict[str, str]
    generated: frozenset[str]                          # global identifiers the target itself declares


class Printer:
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
        self.needs |= {(name, t) for name in _HELPER.findall(text)}
        return text.format(*(self.expr(a) for a in args), T=self.t.types[t]), prec

    def operand(self, x: ir.Expr, parent: int, need: int) -> str:
        text, prec = self.emit(x)
        # legal but misleading mixes get parentheses too: `(a & b) == c`, `(x >> 8u) & 255u`, `(a && b) || c`
        clarify = prec != parent and LOR <= prec <= MUL and (
            parent in _BITWISE or prec in _BITWISE or (parent == LOR and prec == LAND) or {parent, prec} <= {REL, EQ})
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

    # --- statements --------------------------------------------------------------------------------------------

    def function_body(self, params: list[ir.Scalar], locals_: dict[str, str],
                      body: list) -> tuple[list[str], list[str]]:
        """(parameter names, body lines) of a function, in a new scope."""
        self.scope = Scope(self.globals)
        pnames = [self.scope.add(p.name) for p in params]
        self.locals = {n: t for n, t in locals_.items() if n not in {p.name for p in params}}
        for name in sorted(self.locals):
            self.scope.add(name)
        self.plan = place_locals(body, set(self.locals))
        lines: list[str] = []
        self.block(body, "    ", lines)
        return pnames, lines

    def fresh(self, base: str) -> str:
        """A generated local (user names never start with `khal_`), known to the scope under its own name."""
        name = self.scope.add(base)
        self.scope.names[name] = name
        return name

    def block(self, stmts: list, indent: str, out: list[str]) -> None:
        for i, s in enumerate(stmts):
            for name in self.plan.before.get((id(stmts), i), []):
                self.declare_zero(name, indent, out)
            getattr(self, "s_" + type(s).__name__)(s, indent, out)

    def declare_zero(self, name: str, indent: str, out: list[str]) -> None:
        t, var = self.locals[name], self.scope[name]
        if ir.parse_array(t):
            out += self.t.zero_array(self, t, var, indent)
        else:
            out.append(f"{indent}{self.declarator(t, var)} = {self.zero(t)};")

    def assignment(self, name: str, value: ir.Expr) -> str:
        """`x = v`, or `x op= b` when v is `x op b` printed as a plain arithmetic or bitwise operator."""
        var = self.scope[name]
        if isinstance(value, ir.Binary) and isinstance(value.a, ir.Var) and value.a.name == name and not (
                value.type == "f16" and self.t.f16_round):
            op, _, b, entry = self.binary(value)
            if "{" not in entry and SYMBOLS[entry] >= SHIFT:
                return f"{var} {entry}= {self.expr(b)}"
        return f"{var} = {self.expr(value)}"

    def s_Assign(self, s: ir.Assign, indent: str, out: list[str]) -> None:
        if id(s) in self.plan.at_assign:
            out.append(f"{indent}{self.declarator(self.locals[s.name], self.scope[s.name])} = {self.expr(s.value)};")
        else:
            out.append(f"{indent}{self.assignment(s.name, s.value)};")

    def s_Store(self, s: ir.Store, indent: str, out: list[str]) -> None:
        value = self.expr(s.value)
        if s.space != "private":
            elem = self.buffers[s.name].elem if s.space == "storage" else self.k.shared[s.name].split("[")[0]
            value = self.t.store.get(elem, "{}").format(value)
        out.append(f"{indent}{self.element(s.space, s.name, s.index)} = {value};")

    def s_If(self, s: ir.If, indent: str, out: list[str]) -> None:
        out.append(f"{indent}if ({self.expr(s.cond)}) {{")
        self.block(s.then, indent + "    ", out)
        orelse = s.orelse
        while len(orelse) == 1 and isinstance(orelse[0], ir.If) and not self.plan.before.get((id(orelse), 0)):
            out.append(f"{indent}}} else if ({self.expr(orelse[0].cond)}) {{")
            self.block(orelse[0].then, indent + "    ", out)
            orelse = orelse[0].orelse
        if orelse:
            out.append(f"{indent}}} else {{")
            self.block(orelse, indent + "    ", out)
        out.append(f"{indent}}}")

    def s_For(self, s: ir.For, indent: str, out: list[str]) -> None:
        t, var = self.locals[s.var], self.scope[s.var]
        written = {s.var}
        for n in ir.walk(s.body):
            if isinstance(n, ir.Assign):
                written.add(n.name)
            elif isinstance(n, ir.For):
                written.add(n.var)
        start, stop, step = s.start, s.stop, s.step
        hoist = [(k, x) for k, x in (("stop", stop), ("step", step)) if not invariant(x, written)]
        if hoist and not pure(start):   # keep the IR's order of evaluation: start, then stop and step
            hoist.insert(0, ("start", start))
        for what, x in hoist:
            temp = self.fresh(f"khal_{what}")
            out.append(f"{indent}{self.declarator(x.type, temp)} = {self.expr(x)};")
            start, stop, step = [ir.Var(x.type, temp) if k == what else y
                                 for k, y in (("start", start), ("stop", stop), ("step", step))]
        down = isinstance(s.step, ir.Const) and s.step.value < 0
        init = f"{self.declarator(t, var)} = {self.expr(start)}" if id(s) in self.plan.in_for \
            else f"{var} = {self.expr(start)}"
        cond = f"{var} {'>' if down else '<'} {self.expr(stop, REL + 1)}"
        if isinstance(step, ir.Const) and step.value in (1, -1):
            incr = ("--" if step.value < 0 else "++") + var
        else:
            incr = self.assignment(s.var, ir.Binary(t, "add", ir.Var(t, s.var), step))
        out.append(f"{indent}for ({init}; {cond}; {incr}) {{")
        self.block(s.body, indent + "    ", out)
        out.append(f"{indent}}}")

    def s_While(self, s: ir.While, indent: str, out: list[str]) -> None:
        out.append(f"{indent}while ({self.expr(s.cond)}) {{")
        self.block(s.body, indent + "    ", out)
        out.append(f"{indent}}}")

    def s_Break(self, s: ir.Break, indent: str, out: list[str]) -> None:
        out.append(f"{indent}break;")

    def s_Continue(self, s: ir.Continue, indent: str, out: list[str]) -> None:
        out.append(f"{indent}continue;")

    def s_Return(self, s: ir.Return, indent: str, out: list[str]) -> None:
        out.append(f"{indent}return {self.expr(s.value)};" if s.value else f"{indent}return;")

    def s_ExprStmt(self, s: ir.ExprStmt, indent: str, out: list[str]) -> None:
        out.append(f"{indent}{self.expr(s.value)};")

    def s_Barrier(self, s: ir.Barrier, indent: str, out: list[str]) -> None:
        out += [indent + line for line in self.t.barrier[s.scope].splitlines()]

    # --- whole kernels -------------------------------------------------------------------------------------------

    def prelude(self, text: str) -> list[str]:
        """The prelude helpers that `text` calls, and those they call, in the target's order. A helper made for a
        list of types is emitted for each type a template needed it for; the others when `text` names them."""
        typed: set[tuple[str, str | None]] = set(self.needs)
        names, chosen = set(_HELPER.findall(text)), set()
        grown = True
        while grown:
            grown = False
            for name, snippet, over in self.t.snippets:
                for t in over or (None,):
                    if (name, t) not in chosen and ((name, t) in typed if over else name in names):
                        chosen.add((name, t))
                        names |= set(_HELPER.findall(snippet))
                        typed |= {(n, t) for n in _HELPER.findall(snippet)}
                        grown = True
        return [snippet.replace("{T}", self.t.types[t]) if t else snippet
                for name, snippet, over in self.t.snippets for t in over or (None,) if (name, t) in chosen]

    def struct_decls(self) -> list[str]:
        """Struct declarations; bool fields are stored as u32, as they travel (abi.FORMAT)."""
        out = []
        for name, fields in self.k.structs.items():
            out.append(f"struct {self.globals[name]} {{")
            out += [f"    {self.t.types[self.abi_type(t)]} {self.fields[name][f]};" for f, t in fields]
            out += ["};", ""]
        return out


def invariant(e: ir.Expr, written: set[str]) -> bool:
    """Whether evaluating `e` again at every iteration of a loop that writes `written` gives the same value."""
    return all(not isinstance(n, (ir.Load, ir.Call, ir.Atomic)) and
               not (isinstance(n, ir.Intrinsic) and n.name.startswith("subgroup_")) and
               not (isinstance(n, ir.Var) and n.name in written) for n in ir.walk(e))


def pure(e: ir.Expr) -> bool:
    return not any(isinstance(n, (ir.Call, ir.Atomic)) for n in ir.walk(e))


def header(kernel: ir.Kernel, target: str) -> list[str]:
    """The comment that opens a generated file: where the kernel comes from and what it was instantiated with."""
    template = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(kernel.template.items())) or "none"
    return [f"// khal kernel {kernel.name}: {target}",
            f"// from {kernel.source}:{kernel.line}, function {kernel.function}; template: {template}; "
            f"workgroup size {'x'.join(map(str, kernel.workgroup_size))}",
            "// Generated by hatch_khal.render: edit the Python source, not this file."]
