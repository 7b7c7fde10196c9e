"""Where a function's locals are declared: as close to their uses as the IR's semantics allow."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from khal_runtime import ir


@dataclass
class Placement:
    """Declarations of one function's locals: `before[(id(block), i)]` lists the locals declared before statement i
    of a block; the `Assign` and `For` statements in `at_assign` / `in_for` declare their variable themselves."""
    before: dict[tuple[int, int], list[str]] = field(default_factory=dict)
    at_assign: set[int] = field(default_factory=set)
    in_for: set[int] = field(default_factory=set)


def _reads(node: Any) -> set[str]:
    return {n.name for n in ir.walk(node) if isinstance(n, ir.Var) or (isinstance(n, ir.Load) and n.space == "private")}


def _header(s: ir.Stmt) -> list[ir.Expr]:
    """The expressions of a statement outside its nested blocks."""
    if isinstance(s, (ir.If, ir.While)):
        return [s.cond]
    if isinstance(s, ir.For):
        return [s.start, s.stop, s.step]
    if isinstance(s, ir.Store):
        return [*s.index, s.value]
    if isinstance(s, (ir.Assign, ir.ExprStmt, ir.Return)) and s.value is not None:
        return [s.value]
    return []


def _blocks(s: ir.Stmt) -> list[list]:
    return [s.then, s.orelse] if isinstance(s, ir.If) else [s.body] if isinstance(s, (ir.For, ir.While)) else []


def place_locals(body: list, names: set[str]) -> Placement:
    """Declare each local as close to its uses as is correct. Locals start at zero, and keep their value from one
    loop iteration to the next, so a declaration may sit inside a loop only where it is also the first write:
    `T x = value;` for an `Assign` (whose value does not read x) that comes before every other use in the innermost
    block holding them all, or the init of a `for` that holds every use of its variable. Any other local is
    zero-initialised before its first use, outside every loop around it."""
    refs: dict[str, list[list[tuple[list, int]]]] = {}

    def visit(block: list, path: list) -> None:
        for i, s in enumerate(block):
            here = path + [(block, i)]
            own = _reads(_header(s))
            if isinstance(s, (ir.Assign, ir.For)):
                own.add(s.name if isinstance(s, ir.Assign) else s.var)
            elif isinstance(s, ir.Store) and s.space == "private":
                own.add(s.name)
            for name in own & names:
                refs.setdefault(name, []).append(here)
            for inner in _blocks(s):
                visit(inner, here)

    visit(body, [])
    plan = Placement()
    for name in sorted(refs):
        paths = refs[name]
        depth = 0       # every path runs through the block paths[0][depth][0], the innermost such block
        while all(len(p) > depth + 1 for p in paths) and len({p[depth][1] for p in paths}) == 1 \
                and len({id(p[depth + 1][0]) for p in paths}) == 1:
            depth += 1
        block, first = paths[0][depth][0], min(p[depth][1] for p in paths)
        s = block[first]
        if isinstance(s, ir.Assign) and s.name == name and name not in _reads(s.value):
            plan.at_assign.add(id(s))
            continue
        if isinstance(s, ir.For) and s.var == name and name not in _reads(_header(s)) \
                and all(p[depth][1] == first for p in paths):
            plan.in_for.add(id(s))
            continue
        loops = [step for step in paths[0][:depth] if isinstance(step[0][step[1]], (ir.For, ir.While))]
        where = loops[0] if loops else (block, first)
        plan.before.setdefault((id(where[0]), where[1]), []).append(name)
    return plan
