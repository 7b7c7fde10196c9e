"""Uniform control flow at barriers and subgroup operations, checked on a kernel instance's IR.

Every invocation of a workgroup must reach the same `barrier()` and `storage_barrier()`, and every invocation of a
subgroup the same subgroup operations (docs/IR.md). WebGPU and CUDA run a barrier that only some invocations reach
as undefined behaviour, silently; the interpreter stops at it at run time. This analysis refuses at compile time
what it can see.

Each value has a uniformity, from least to most thread-dependent: *uniform* (the same in every invocation of the
workgroup), *subgroup* (the same within each subgroup) and *varying*.
- varying: `global_id()`, `local_id()` (both except along a dimension of workgroup size 1) and `local_index()`,
  `subgroup_invocation_id()`, the result of an atomic, subgroup scans and shuffles;
- subgroup: `subgroup_id()`, subgroup reductions, `subgroup_any`/`subgroup_all`, `subgroup_broadcast_first`;
- uniform: constants, kernel parameters and their fields, `len()`, `workgroup_id()`, `num_workgroups()`,
  `subgroup_size()`, `num_subgroups()`;
- any other expression is as thread-dependent as its most thread-dependent operand: a load at a varying index is
  varying, a load at a uniform index uniform (a buffer or shared element read by all); a helper's result is the
  join of the values it returns and of the control flow at its returns.
Locals and private arrays are tracked through the statements in order (through both branches of an `if`, and
around loops to a fixed point): an assignment under control flow that is not uniform gives the local at least that
control flow's uniformity.

Control flow is not uniform inside an `if` whose condition is not, inside a loop whose trip count is not (the
bounds of a `range`, a `while` condition, a `break` under non-uniform control), in the rest of a function after a
`return` taken under non-uniform control, and in the rest of a loop body after a `break` or `continue` taken so.
A helper runs under the control flow of its call; when it returns, its caller's holds again.

A barrier under control flow that is not uniform is an error, located at the barrier or, when the divergence lies
in a caller, at the call that leads to it, with a note at the statement that diverges. A subgroup operation after
a `return`, `break` or `continue` taken under varying control is an error too. Inside a varying `if` a subgroup
operation is allowed: a condition such as `local_id().x < 32` may be uniform in each subgroup, which the compiler
cannot know.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from khal_runtime import ir

from .diagnostics import KernelCompileError, Note, Source

UNIFORM, SUBGROUP, VARYING = 0, 1, 2
_INVOCATION = {"local_index", "subgroup_invocation_id"}
_SUBGROUP_UNIFORM = {"subgroup_id"} | {f"subgroup_{op}" for op in (
    "add", "mul", "min", "max", "and", "or", "xor", "any", "all", "broadcast_first")}
_XYZ = "xyz"


@dataclass(frozen=True)
class Level:
    """A uniformity with its reason. For a value, `why` names the thread-dependent source; for control flow, it
    says how the statement at `where` (source, loc, call depth) diverges, and `hint` what to do about it."""
    rank: int = UNIFORM
    why: str = ""
    where: tuple[str, ir.Loc, int] | None = None
    hint: str = ""


UNIFORM_LEVEL = Level()


def join(*levels: Level) -> Level:
    """The most thread-dependent of `levels` (the first of those that tie)."""
    best = UNIFORM_LEVEL
    for level in levels:
        if level.rank > best.rank:
            best = level
    return best


@dataclass
class Flow:
    """What holds at a point of a function: the uniformity of its locals, and the divergence that earlier returns
    (`ret`), breaks and continues of this loop iteration (`jump`) and breaks of the loop (`brk`) left behind."""
    env: dict[str, Level]
    ret: Level = UNIFORM_LEVEL
    jump: Level = UNIFORM_LEVEL
    brk: Level = UNIFORM_LEVEL

    def copy(self) -> Flow:
        return replace(self, env=dict(self.env))

    def merge(self, *others: Flow) -> Flow:
        env = dict(self.env)
        for other in others:
            for name, level in other.env.items():
                env[name] = join(env.get(name, UNIFORM_LEVEL), level)
        return Flow(env, join(self.ret, *(o.ret for o in others)), join(self.jump, *(o.jump for o in others)),
                    join(self.brk, *(o.brk for o in others)))

    def ranks(self) -> tuple:
        return tuple(sorted((n, v.rank) for n, v in self.env.items())) + (self.ret.rank, self.brk.rank)


@dataclass
class Frame:
    """One function being analysed, with the divergence that its callers' earlier exits left (`exits`)."""
    name: str
    source: str
    depth: int
    calls: tuple[tuple[str, ir.Loc, str], ...]     # the call sites from the kernel down to this function
    exits: Level = UNIFORM_LEVEL
    returns: Level = UNIFORM_LEVEL
    loops: list[tuple[list[Flow], list[Flow]]] = field(default_factory=list)   # (breaks, continues) per loop


def check_uniformity(kernel: ir.Kernel, source: Callable[[str], Source]) -> None:
    """Raise a located KernelCompileError where a barrier or subgroup operation of `kernel` is not reached by every
    invocation that must reach it (the rules are in this module's docstring). A kernel without barriers and
    subgroup operations always passes: callers that know it may skip the call."""
    _Analysis(kernel, source).run()


class _Analysis:
    def __init__(self, kernel: ir.Kernel, source: Callable[[str], Source]):
        self.kernel, self.source = kernel, source
        self.functions = {f.name: f for f in kernel.functions}
        self.results: dict[tuple, Level] = {}
        self.at: ir.Loc = (0, 0)                        # the statement being analysed, for subgroup errors

    def run(self) -> None:
        frame = Frame(self.kernel.function, self.kernel.source, 0, ())
        self.block(self.kernel.body, frame, Flow({}), UNIFORM_LEVEL)

    # --- statements -----------------------------------------------------------------------------------------

    def block(self, stmts: list[ir.Stmt], frame: Frame, flow: Flow, cond: Level) -> Flow:
        for s in stmts:
            flow = self.stmt(s, frame, flow, cond)
        return flow

    def stmt(self, s: ir.Stmt, frame: Frame, flow: Flow, cond: Level) -> Flow:
        self.at = s.loc
        control = join(cond, flow.ret, flow.jump)
        if isinstance(s, ir.Assign):
            value = self.value(s.value, frame, flow, control)
            flow.env[s.name] = value if control.rank == UNIFORM else join(
                flow.env.get(s.name, UNIFORM_LEVEL), value, self.assigned_under(s.name, control))
        elif isinstance(s, ir.Store):
            levels = [self.value(e, frame, flow, control) for e in [*s.index, s.value]]
            if s.space == "private":
                flow.env[s.name] = join(flow.env.get(s.name, UNIFORM_LEVEL), *levels,
                                        self.assigned_under(s.name, control))
        elif isinstance(s, ir.ExprStmt):
            self.value(s.value, frame, flow, control)
        elif isinstance(s, ir.Barrier):
            if control.rank != UNIFORM:
                name = "barrier()" if s.scope == "workgroup" else "storage_barrier()"
                raise self.unreached(frame, s.loc, name, "workgroup", control)
        elif isinstance(s, ir.If):
            c = self.value(s.cond, frame, flow, control)
            why = f"this condition depends on the invocation, through {c.why}"
            inner = join(cond, self.diverges(c, frame, s.loc, why, _IF_HINT))
            then = self.block(s.then, frame, flow.copy(), inner)
            orelse = self.block(s.orelse, frame, flow.copy(), inner)
            flow = then.merge(orelse)
        elif isinstance(s, (ir.For, ir.While)):
            flow = self.loop(s, frame, flow, cond, control)
        elif isinstance(s, ir.Break):
            frame.loops[-1][0].append(flow.copy())
            left = self.diverges(control, frame, s.loc, "some invocations leave the loop here, under control flow "
                                 "that depends on the invocation", _EXIT_HINT)
            flow.brk, flow.jump = join(flow.brk, left), join(flow.jump, left)
        elif isinstance(s, ir.Continue):
            frame.loops[-1][1].append(flow.copy())
            flow.jump = join(flow.jump, self.diverges(control, frame, s.loc, "some invocations skip the rest of the "
                                                      "loop body here, under control flow that depends on the "
                                                      "invocation", _EXIT_HINT))
        elif isinstance(s, ir.Return):
            value = self.value(s.value, frame, flow, control) if s.value is not None else UNIFORM_LEVEL
            frame.returns = join(frame.returns, value, self.assigned_under(f"the result of {frame.name}()", control))
            flow.ret = join(flow.ret, self.diverges(control, frame, s.loc, "some invocations return here, under "
                                                    "control flow that depends on the invocation", _EXIT_HINT))
        return flow

    def loop(self, s: ir.For | ir.While, frame: Frame, flow: Flow, cond: Level, control: Level) -> Flow:
        outer_jump, outer_brk = flow.jump, flow.brk
        bounds = join(*(self.value(e, frame, flow, control) for e in (s.start, s.stop, s.step))) \
            if isinstance(s, ir.For) else UNIFORM_LEVEL
        head = flow.copy()
        head.jump = head.brk = UNIFORM_LEVEL
        if isinstance(s, ir.For):
            head.env[s.var] = join(self.value(s.start, frame, flow, control), self.value(s.step, frame, flow, control))
        while True:
            body = head.copy()
            trip = bounds if isinstance(s, ir.For) else self.value(s.cond, frame, body, join(control, head.brk))
            inner = join(cond, head.brk, self.diverges(trip, frame, s.loc, "the trip count of this loop depends on "
                                                       f"the invocation, through {trip.why}", _LOOP_HINT))
            frame.loops.append(([], []))
            body = self.block(s.body, frame, body, inner)
            breaks, continues = frame.loops.pop()
            end = body.merge(*continues)
            if isinstance(s, ir.For):           # the increment, under the loop's control flow
                step = self.value(s.step, frame, end, inner)
                end.env[s.var] = join(end.env.get(s.var, UNIFORM_LEVEL), step, self.assigned_under(s.var, inner))
            end.jump = UNIFORM_LEVEL
            new_head = head.merge(end)
            if new_head.ranks() == head.ranks():
                break
            head = new_head
        after = head.merge(*breaks)
        after.jump, after.brk = outer_jump, outer_brk
        return after

    # --- values ---------------------------------------------------------------------------------------------

    def value(self, e: ir.Expr, frame: Frame, flow: Flow, control: Level) -> Level:
        kind = type(e)
        if kind is ir.Const or kind is ir.Param or kind is ir.Len:
            return UNIFORM_LEVEL
        if kind is ir.Var:
            return flow.env.get(e.name, UNIFORM_LEVEL)
        if isinstance(e, ir.Builtin):
            return self.builtin(e)
        if isinstance(e, ir.Atomic):
            for a in [*e.index, *e.args]:
                self.value(a, frame, flow, control)
            return Level(VARYING, f"the result of atomic_{e.op}")
        if isinstance(e, ir.Call):
            args = [self.value(a, frame, flow, control) for a in e.args]
            return self.call(e, args, frame, flow, control)
        operands = UNIFORM_LEVEL
        for a in _operands(e):
            level = self.value(a, frame, flow, control)
            if level.rank > operands.rank:
                operands = level
        if isinstance(e, ir.Load) and e.space == "private":
            operands = join(operands, flow.env.get(e.name, UNIFORM_LEVEL))
        if isinstance(e, ir.Intrinsic) and e.name.startswith("subgroup_"):
            exits = join(frame.exits, flow.ret, flow.jump)
            if exits.rank == VARYING:
                raise self.unreached(frame, self.at, f"{e.name}()", "subgroup", exits)
            if e.name in _SUBGROUP_UNIFORM:
                return Level(SUBGROUP, f"the result of {e.name}")
            return join(operands, Level(VARYING, f"the result of {e.name}"))
        return operands

    def builtin(self, e: ir.Builtin) -> Level:
        size = self.kernel.workgroup_size
        if e.name in ("global_id", "local_id"):
            return UNIFORM_LEVEL if size[e.dim] == 1 else Level(VARYING, f"{e.name}().{_XYZ[e.dim]}")
        if e.name in _INVOCATION:
            return UNIFORM_LEVEL if size == (1, 1, 1) else Level(VARYING, f"{e.name}()")
        if e.name in _SUBGROUP_UNIFORM:
            return Level(SUBGROUP, f"{e.name}()")
        return UNIFORM_LEVEL

    def call(self, e: ir.Call, args: list[Level], frame: Frame, flow: Flow, control: Level) -> Level:
        fn = self.functions[e.func]
        exits = join(frame.exits, flow.ret, flow.jump)
        key = (fn.name, tuple(a.rank for a in args), control.rank, exits.rank)
        if key not in self.results:
            at = self.at
            callee = Frame(fn.name, fn.source or self.kernel.source, frame.depth + 1,
                           frame.calls + ((frame.source, at, fn.name),), exits)
            self.block(fn.body, callee, Flow({p.name: a for p, a in zip(fn.params, args)}), control)
            self.at = at
            self.results[key] = callee.returns
        return self.results[key]

    # --- divergence and its errors --------------------------------------------------------------------------

    def diverges(self, level: Level, frame: Frame, loc: ir.Loc, why: str, hint: str) -> Level:
        """Control flow as thread-dependent as `level`, diverging at `loc` of `frame`'s function."""
        if level.rank == UNIFORM:
            return UNIFORM_LEVEL
        return Level(level.rank, why, (frame.source, loc, frame.depth), hint)

    def assigned_under(self, name: str, control: Level) -> Level:
        """What assigning `name` (at the statement being analysed) under `control` makes of it."""
        if control.rank == UNIFORM:
            return UNIFORM_LEVEL
        return Level(control.rank, f"{name}, assigned at line {self.at[0]} under control flow that depends on the "
                                   "invocation")

    def unreached(self, frame: Frame, loc: ir.Loc, what: str, group: str, cause: Level) -> KernelCompileError:
        """The error for `what` at `loc`, which not every invocation of the `group` reaches because of `cause`:
        located there, or at the call that brings it under a divergence of a caller."""
        _, _, depth = cause.where
        undefined = "undefined behaviour on WebGPU and CUDA"
        if depth == frame.depth:
            error = self.error(frame.source, loc, f"not every invocation of the {group} reaches this {what} "
                                                  f"({undefined})", cause)
            if frame.calls:
                call_src, call_loc, callee = frame.calls[-1]
                error.context = f"in {callee}, called from {call_src}:{call_loc[0]}"
            return error
        call_src, call_loc, callee = frame.calls[depth]
        return self.error(call_src, call_loc, f"not every invocation of the {group} reaches this call of {callee}(), "
                                              f"which executes a {what} ({undefined})", cause,
                          self.source(frame.source).note(self.node(frame.source, loc), f"the {what}"))

    def error(self, src: str, loc: ir.Loc, message: str, cause: Level, *notes: Note) -> KernelCompileError:
        cause_src, cause_loc, _ = cause.where
        stmt = self.source(cause_src).statement_at(cause_loc)
        # point at the condition of an `if` or `while` and at the bounds of a `for`
        at = getattr(stmt, "test", None) or getattr(stmt, "iter", None) or stmt or cause_loc
        causes = self.source(cause_src).note(at, cause.why)
        return self.source(src).error(self.node(src, loc), message, hint=cause.hint, notes=[causes, *notes])

    def node(self, src: str, loc: ir.Loc):
        return self.source(src).statement_at(loc) or loc


_IF_HINT = ("move the barrier out of the `if`, or make the condition the same for the whole workgroup "
            "(from workgroup_id(), parameters, constants)")
_EXIT_HINT = ("let every invocation run on to the barrier or subgroup operation: guard the work with the condition "
              "instead of leaving early (`if i < n: ...`)")
_LOOP_HINT = ("give the loop a trip count that the whole workgroup shares (bounds from parameters, constants and "
              "workgroup_id()), and guard the work inside it")


_OPERANDS: dict[type, Callable[..., list[ir.Expr]]] = {
    ir.Unary: lambda e: [e.a], ir.Cast: lambda e: [e.value], ir.Bitcast: lambda e: [e.value],
    ir.Field: lambda e: [e.value], ir.Binary: lambda e: [e.a, e.b], ir.Select: lambda e: [e.cond, e.a, e.b],
    ir.Intrinsic: lambda e: e.args, ir.Load: lambda e: e.index,
}


def _operands(e: ir.Expr) -> list[ir.Expr]:
    """The operands of an expression whose uniformity is theirs (for the kinds `value` does not treat itself)."""
    return _OPERANDS[type(e)](e)
