"""The printer shared by the GLSL and CUDA renderers: `Printer` turns a kernel's IR statements, functions and
prelude into C-family text (its expressions are `ExpressionPrinter`'s); the renderers put the file around it."""

from __future__ import annotations

from khal_runtime import ir

from .common import HELPER_CALL, REL, SHIFT, SYMBOLS
from .expressions import ExpressionPrinter
from .names import Scope
from .placement import place_locals


class Printer(ExpressionPrinter):
    """Prints one kernel for a target: its functions' bodies, struct declarations and the prelude helpers that the
    printed text calls."""

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
        names, chosen = set(HELPER_CALL.findall(text)), set()
        grown = True
        while grown:
            grown = False
            for name, snippet, over in self.t.snippets:
                for t in over or (None,):
                    if (name, t) not in chosen and ((name, t) in typed if over else name in names):
                        chosen.add((name, t))
                        names |= set(HELPER_CALL.findall(snippet))
                        typed |= {(n, t) for n in HELPER_CALL.findall(snippet)}
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
