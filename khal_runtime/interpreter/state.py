"""Run-time state of the CPU interpreter: a dispatch, its batches of workgroups (with their builtins and shared
memory), the frames of function calls, and the errors that name the kernel's source line and the invocation."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from khal_runtime import ir

from .races import AccessLog
from .values import DTYPE, EMPTY, affine, is_uniform


class KernelExecutionError(RuntimeError):
    """A kernel did something that IR.md makes an error in the interpreter: an out-of-bounds access, a barrier or
    subgroup operation not reached by all the invocations it needs, an integer division by zero, a data race
    (checking mode). The message names the kernel, the source `file:line`, and the invocation."""



class Dispatch:
    """What one `execute` call shares between its batches. `prog` is the compiled program (`lanes`, `kernel`,
    `shared`: name -> (element type, elements))."""

    def __init__(self, prog, grid, buffers, params, subgroup_size: int, check: bool):
        self.prog, self.grid, self.buffers, self.params = prog, grid, buffers, params
        self.lengths = {name: np.uint32(len(a)) for name, a in buffers.items()}
        self.sg = subgroup_size
        self.total = grid[0] * grid[1] * grid[2]
        self.check = check
        self.storage_logs = {name: AccessLog(len(a), prog.lanes) for name, a in buffers.items()} if check else {}

    def describe(self, lane: int) -> str:
        """Name a global lane (`workgroup_linear_index * lanes + local_index`) by workgroup and local ids."""
        (gx, gy, _), (wx, wy, _) = self.grid, self.prog.kernel.workgroup_size
        group, local = divmod(lane, self.prog.lanes)
        return (f"workgroup ({group % gx}, {group // gx % gy}, {group // (gx * gy)}), local_index {local} = "
                f"local_id ({local % wx}, {local // wx % wy}, {local // (wx * wy)})")


class Batch:
    """The `count` consecutive workgroups from linear index `first`, executed in lockstep."""

    def __init__(self, dispatch: Dispatch, first: int, count: int):
        prog = dispatch.prog
        self.dispatch, self.prog, self.first, self.count = dispatch, prog, first, count
        self.lanes = prog.lanes
        self.shape = (count, prog.lanes)
        self.n = count * prog.lanes
        self.buffers, self.params, self.lengths = dispatch.buffers, dispatch.params, dispatch.lengths
        self.check = dispatch.check
        self.shared = {name: _new_shared(t, (count, size), self.check) for name, (t, size) in prog.shared.items()}
        self.cache: dict[Any, Any] = {}
        if self.check:
            self.shared_logs = {name: AccessLog(size * count, self.lanes) for name, (_, size) in prog.shared.items()}
            self.storage_epoch = np.zeros(count, np.int64)

    def describe(self, p: int) -> str:
        return self.dispatch.describe(self.first * self.lanes + p)

    def at(self, v, p: int):
        """Lane p's entry of value v."""
        return v if is_uniform(v) else np.broadcast_to(v, self.shape)[divmod(p, self.lanes)]

    def full(self, v) -> np.ndarray:
        """Value v as a flat array of every lane's entry, in lane order."""
        return np.broadcast_to(v, self.shape).reshape(-1)

    def active(self, m) -> np.ndarray:
        """The lane numbers of mask m, ascending."""
        return np.arange(self.n) if m is None else np.flatnonzero(np.broadcast_to(m, self.shape))

    def first_active(self, bad, m) -> int | None:
        """The first lane of mask m where the bool value `bad` holds, or None."""
        if is_uniform(bad):
            if not bad:
                return None
            if m is None:
                return 0
            hit = m
        else:
            hit = bad if m is None else bad & m
        k = int(np.argmax(hit))
        row, col = divmod(k, hit.shape[1])
        return row * self.lanes + col if hit.flat[k] else None

    def builtin(self, name: str, dim: int):
        key = (name, dim)
        v = self.cache.get(key)
        if v is None:
            v = self.cache[key] = self._builtin(name, dim)
        return v

    def _builtin(self, name: str, dim: int):
        u32, ws, lanes, sg = np.uint32, self.prog.kernel.workgroup_size, self.lanes, self.dispatch.sg
        if name == "num_workgroups":
            return u32(self.dispatch.grid[dim])
        if name == "workgroup_size":
            return u32(ws[dim])
        if name == "subgroup_size":
            return u32(sg)
        if name == "num_subgroups":
            return u32(-(-lanes // sg))
        if name == "local_index":
            return np.arange(lanes, dtype=u32)[None, :]
        if name == "subgroup_invocation_id":
            return self.builtin("local_index", 0) % u32(sg)
        if name == "subgroup_id":
            return self.builtin("local_index", 0) // u32(sg)
        if name == "local_id":
            if ws[dim] == 1:
                return u32(0)
            return self.builtin("local_index", 0) // u32(math.prod(ws[:dim])) % u32(ws[dim])
        if name == "workgroup_id":
            ids = self._group_coords(dim)
            return ids[0] if (ids == ids[0]).all() else ids[:, None]
        # global_id (the table of builtins is checked by ir.verify)
        fast = self._affine_global_x() if dim == 0 else None
        if fast is not None:
            return fast
        return self.builtin("workgroup_id", dim) * u32(ws[dim]) + self.builtin("local_id", dim)

    def _group_coords(self, dim: int) -> np.ndarray:
        gx, gy, _ = self.dispatch.grid
        linear = np.arange(self.first, self.first + self.count, dtype=np.int64)
        coord = linear % gx if dim == 0 else linear // gx % gy if dim == 1 else linear // (gx * gy)
        return coord.astype(np.uint32)

    def _affine_global_x(self):
        """global_id.x for a workgroup size (x, 1, 1) when the batch's workgroups are consecutive in x."""
        gx = self.dispatch.grid[0]
        if self.lanes != self.prog.kernel.workgroup_size[0] or self.first // gx != (self.first + self.count - 1) // gx:
            return None
        return affine("u32", self.first % gx * self.lanes, 1, self.shape)


def _new_shared(t: str, shape: tuple[int, int], check: bool) -> np.ndarray:
    """Shared memory starts unspecified: zeros, or in checking mode a poison that exposes reads before writes."""
    if not check:
        return np.zeros(shape, DTYPE[t])
    if t in ir.FLOATS:
        return np.full(shape, np.nan, DTYPE[t])
    if t == "bool":
        return np.ones(shape, bool)
    unsigned = np.uint64 if ir.BITS[t] == 64 else np.uint32
    return np.full(shape, 0xDEADBEEFDEADBEEF & np.iinfo(unsigned).max, unsigned).view(DTYPE[t])


class Frame:
    """One call of a function (the entry or a helper) for the lanes of a batch. `func` is its compiled form
    (`zeros`: the locals at zero, `arrays`: private arrays, `retval`: the return value's zero). `ret` holds the
    lanes that returned, `cont` those that took `continue` in the current iteration of the innermost loop."""
    __slots__ = ("arrays", "batch", "call_line", "caller", "cont", "ret", "retval", "source", "vars")

    def __init__(self, batch: Batch, func, caller: Frame | None = None, call_line: int = 0):
        self.batch, self.caller, self.call_line, self.source = batch, caller, call_line, func.source
        self.vars = dict(func.zeros)
        self.arrays = {name: np.zeros((size, *batch.shape), DTYPE[t]) for name, (t, size) in func.arrays.items()}
        self.ret = self.cont = EMPTY
        self.retval = func.retval

    def returned(self, p: int) -> bool:
        """Whether lane p has left this function, or one of its callers, through `return`."""
        frame: Frame | None = self
        while frame is not None:
            if frame.ret is None or (frame.ret is not EMPTY and self.batch.at(frame.ret, p)):
                return True
            frame = frame.caller
        return False


def error(f: Frame, line: int, message: str, lane: int | None = None) -> KernelExecutionError:
    k = f.batch.prog.kernel
    text = f"kernel {k.name!r} at {f.source}:{line}: {message}"
    if lane is not None:
        text += f" [{f.batch.describe(lane)}]"
    frame = f
    while frame.caller is not None:
        text += f"\n  called from {frame.caller.source}:{frame.call_line}"
        frame = frame.caller
    return KernelExecutionError(text)


def check_together(f: Frame, m, width: int, line: int, what: str, unit: str) -> np.ndarray:
    """Raise unless each run of `width` consecutive lanes (a workgroup, a subgroup) is wholly in mask `m` or
    wholly out of it; return which runs are in."""
    rows = np.broadcast_to(m, f.batch.shape).reshape(-1, width)
    reached = rows.any(axis=1)
    partial = reached & ~rows.all(axis=1)
    if partial.any():
        r = int(np.argmax(partial))
        missing = r * width + int(np.argmax(~rows[r]))
        why = "returned before it" if f.returned(missing) else "is on another path through the control flow"
        raise error(f, line, f"{what} reached by {int(rows[r].sum())} of the {width} invocations of a {unit}; "
                              f"this one {why}", missing)
    return reached
