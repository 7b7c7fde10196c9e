"""Runtime state of the CPU interpreter (`khal_runtime.interpreter`): lane values, masks, batches, frames,
memory access and the errors that name the kernel's source line.

Values. A batch runs `count` workgroups of `lanes` invocations: lane `p` is local index `p % lanes` of the batch's
workgroup `p // lanes`. A value is a numpy array that broadcasts to the batch's shape `(count, lanes)`: `(1, lanes)`
when it depends on the local index only (local ids, shared-memory indices derived from them), `(count, 1)` when it
depends on the workgroup only, a numpy scalar when it is the same in every lane (uniform). numpy's broadcasting
combines them, so index arithmetic is done once per workgroup or once per local index, not once per lane. A
value may also be an `Affine` (integer lanes `start + stride * p`, kept symbolic) or a dict of field values for
a struct parameter. Inactive lanes hold unspecified values.

Masks. A statement runs under a mask: None (every lane of the batch) or a boolean array with at least one lane
set, of any shape that broadcasts to the batch's; `EMPTY` (no lane) is only ever returned, never run under.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from khal_runtime import ir

from .interpreter_ops import COMPARISONS, DTYPE, InvalidIR, is_uniform, where
from .interpreter_races import AccessLog


class KernelExecutionError(RuntimeError):
    """A kernel did something that IR.md makes an error in the interpreter: an out-of-bounds access, a barrier or
    subgroup operation not reached by all the invocations it needs, an integer division by zero, a data race
    (checking mode). The message names the kernel, the source `file:line`, and the invocation."""


# ---------------------------------------------------------------------------------------------------------------
# Affine lane values

class Affine:
    """Integer lane values `start + stride * p` for the lanes p of a batch of shape `shape`. The 1-D global id
    is one: comparing it with a uniform bound (`i < len(a)`) is uniform for all batches but the last, and loads
    and stores through it are slices instead of gathers and scatters. Every value is inside the type's range:
    operations that would wrap produce arrays instead."""
    __slots__ = ("_dense", "shape", "start", "stride", "t")

    def __init__(self, t: str, start: int, stride: int, shape: tuple[int, int]):
        self.t, self.start, self.stride, self.shape = t, start, stride, shape
        self._dense: np.ndarray | None = None

    @property
    def last(self) -> int:
        return self.start + self.stride * (self.shape[0] * self.shape[1] - 1)

    def dense(self) -> np.ndarray:
        """The lane values as an array (made once: values are never modified)."""
        if self._dense is None:
            p = np.arange(self.shape[0] * self.shape[1], dtype=np.int64).reshape(self.shape)
            self._dense = (self.start + self.stride * p).astype(DTYPE[self.t])
        return self._dense

    def slice(self, length: int) -> slice | None:
        """The lanes' elements of a buffer of `length` elements, when all are in bounds and ascending."""
        if self.stride > 0 and self.start >= 0 and self.last < length:
            return slice(self.start, self.last + 1, self.stride)
        return None


def affine(t: str, start: int, stride: int, shape: tuple[int, int]):
    """The value `start + stride * p` (a scalar when stride is 0); None when it leaves `t`'s range."""
    lo, hi = ir.int_range(t)
    last = start + stride * (shape[0] * shape[1] - 1)
    if min(start, last) < lo or max(start, last) > hi or max(abs(start), abs(last)) >= 1 << 63:
        return None
    return DTYPE[t].type(start) if stride == 0 else Affine(t, start, stride, shape)


def dense(v):
    return v.dense() if type(v) is Affine else v


def affine_binary(op: str, t: str, a, b):
    """`a op b` kept symbolic when one side is Affine and the other uniform or Affine; None when it cannot be."""
    pa, pb = _parts(a), _parts(b)
    if pa is None or pb is None:
        return None
    shape = a.shape if type(a) is Affine else b.shape
    if op in COMPARISONS:
        return _compare(op, pa[0] - pb[0], pa[1] - pb[1], shape[0] * shape[1])
    if op == "add":
        return affine(t, pa[0] + pb[0], pa[1] + pb[1], shape)
    if op == "sub":
        return affine(t, pa[0] - pb[0], pa[1] - pb[1], shape)
    if op == "mul" and not (pa[1] and pb[1]):
        return affine(t, pa[0] * pb[0], pa[0] * pb[1] + pa[1] * pb[0], shape)
    return None


def _parts(v):
    if type(v) is Affine:
        return v.start, v.stride
    return (int(v), 0) if is_uniform(v) else None


_INT_COMPARE = {"eq": int.__eq__, "ne": int.__ne__, "lt": int.__lt__, "le": int.__le__, "gt": int.__gt__,
                "ge": int.__ge__}


def _compare(op: str, start: int, stride: int, n: int):
    """Compare `a - b = start + stride * p` with 0: uniform when the comparison agrees at both ends of the
    batch, which for a monotone sequence means at every lane; except equality, which can hold in between."""
    last = start + stride * (n - 1)
    if op in ("eq", "ne") and stride != 0 and min(start, last) <= 0 <= max(start, last):
        return None
    at_start, at_last = _INT_COMPARE[op](start, 0), _INT_COMPARE[op](last, 0)
    return np.bool_(at_start) if at_start == at_last else None


# ---------------------------------------------------------------------------------------------------------------
# Masks

class _Empty:
    def __repr__(self) -> str:
        return "EMPTY"


EMPTY = _Empty()


def _norm(mask: np.ndarray):
    if not mask.any():
        return EMPTY
    return None if mask.all() else mask


def mask_and(m, cond):
    """Lanes of mask `m` where the bool value `cond` holds."""
    if is_uniform(cond):
        return m if cond else EMPTY
    return _norm(cond if m is None else m & cond)


def mask_or(a, b):
    if a is EMPTY:
        return b
    if b is EMPTY:
        return a
    if a is None or b is None:
        return None
    return _norm(a | b)


def mask_minus(m, gone):
    """Lanes of mask `m` not in mask `gone`."""
    if gone is EMPTY:
        return m
    if gone is None:
        return EMPTY
    return _norm(~gone if m is None else m & ~gone)


def merge(m, new, old):
    """`new` in the lanes of mask `m`, `old` elsewhere."""
    if m is None:
        return new
    if isinstance(new, dict):   # a struct value: merge field by field
        return {k: merge(m, v, old[k]) for k, v in new.items()} if isinstance(old, dict) else new
    return where(m, dense(new), dense(old))


# ---------------------------------------------------------------------------------------------------------------
# Dispatches, batches and frames

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
        if name == "global_id":
            fast = self._affine_global_x() if dim == 0 else None
            if fast is not None:
                return fast
            return self.builtin("workgroup_id", dim) * u32(ws[dim]) + self.builtin("local_id", dim)
        raise InvalidIR(f"unknown builtin {name!r}")

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


# ---------------------------------------------------------------------------------------------------------------
# Memory

def checked_index(f: Frame, m, idx, length: int, line: int, describe: Callable[[Any], str]):
    """`idx` after bounds-checking its active lanes against [0, length); inactive lanes that are out of range
    read index 0 instead (active ones would have raised, so 0 is in range)."""
    bad = (idx >= length) if idx.dtype.kind == "u" else (idx < 0) | (idx >= length)
    if not np.any(bad):
        return idx
    p = f.batch.first_active(bad, m)
    if p is not None:
        raise error(f, line, describe(f.batch.at(idx, p)), p)
    return where(bad, idx.dtype.type(0), idx)


def scatter(b: Batch, mem: np.ndarray, idx, value, m) -> None:
    """`mem[idx] = value` for the lanes of mask m (mem flat); several lanes storing to one location: the last
    in lane order wins, as numpy assigns in order."""
    value = dense(value)
    if m is None and np.shape(idx) == b.shape and np.shape(value) in (b.shape, ()):
        mem[idx] = value
        return
    active = b.active(m)
    mem[b.full(idx)[active]] = value if is_uniform(value) else b.full(value)[active]


class StorageRef:
    """A storage buffer element: `buffer[index]` (the index may be Affine)."""

    def __init__(self, name: str, index, line: int):
        self.name, self.index, self.line = name, index, line

    def load(self, f: Frame, m):
        b = f.batch
        buf, idx = b.buffers[self.name], self.index(f, m)
        if type(idx) is Affine and m is None and not b.check:
            sl = idx.slice(len(buf))
            if sl is not None:   # a copy: a later store must not change a value already loaded
                return buf[sl].copy().reshape(b.shape)
        return buf[self.locate(f, m, "read", buf, dense(idx))]

    def store(self, f: Frame, m, value) -> None:
        b = f.batch
        buf, idx = b.buffers[self.name], self.index(f, m)
        if type(idx) is Affine and m is None and not b.check:
            sl = idx.slice(len(buf))
            if sl is not None:
                buf[sl] = b.full(dense(value))
                return
        scatter(b, buf, self.locate(f, m, "write", buf, dense(idx)), value, m)

    def atomic_target(self, f: Frame, m):
        buf = f.batch.buffers[self.name]
        return buf, self.locate(f, m, None, buf, dense(self.index(f, m)))

    def locate(self, f: Frame, m, access: str | None, buf: np.ndarray, idx):
        """The checked index; in checking mode also records the access (`access` None: an atomic)."""
        idx = checked_index(f, m, idx, len(buf), self.line, lambda i: (
            f"{access or 'atomic'} of buffer {self.name!r} out of bounds: index {i}, length {len(buf)}"))
        if f.batch.check and access:
            record_access(f, m, f.batch.dispatch.storage_logs[self.name], idx, self.line, access == "write",
                          lambda loc: f"buffer {self.name!r} element {loc}", storage=True)
        return idx


class ArrayRef:
    """An element of a shared or private array, indexed per dimension."""

    def __init__(self, space: str, name: str, shape: tuple[int, ...], index: list, line: int):
        self.space, self.name, self.shape, self.index, self.line = space, name, shape, index, line
        self.size = math.prod(shape)

    def element(self, f: Frame, m, access: str):
        """The flat element index (uniform or per lane), each dimension bounds-checked."""
        flat = 0
        for d, (ev, n) in enumerate(zip(self.index, self.shape)):
            i = checked_index(f, m, dense(ev(f, m)), n, self.line, lambda i, d=d, n=n: (
                f"{access} of {self.space} array {self.name!r} out of bounds: index {i} of dimension {d}, "
                f"size {n}"))
            flat = flat * n + i.astype(np.intp)
        return flat


def _same_for_every_workgroup(v) -> bool:
    return v is None or is_uniform(v) or v.shape[0] == 1


class SharedRef(ArrayRef):
    """A batch holds shared array `name` as a (workgroups, elements) array. An element index that is the same
    in every workgroup (uniform, or shaped (1, lanes)) reads and writes whole columns."""

    def load(self, f: Frame, m):
        b = f.batch
        mem, e = b.shared[self.name], self.element(f, m, "read")
        if b.check:
            self.record(f, m, e, write=False)
        if is_uniform(e):   # one value per workgroup; `[e]` makes a copy, not a view that a store would change
            return mem[0, e] if b.count == 1 else mem[:, [e]]
        if e.shape[0] == 1:
            return mem[:, e[0]]
        return np.take_along_axis(mem, e, axis=1)

    def store(self, f: Frame, m, value) -> None:
        b = f.batch
        mem, e, value = b.shared[self.name], self.element(f, m, "write"), dense(value)
        if b.check:
            self.record(f, m, e, write=True)
        if _same_for_every_workgroup(m) and _same_for_every_workgroup(e):
            cols = np.arange(b.lanes) if m is None else np.flatnonzero(np.broadcast_to(m, (1, b.lanes)))
            mem[:, np.broadcast_to(e, (1, b.lanes))[0, cols]] = np.broadcast_to(value, b.shape)[:, cols]
        else:
            scatter(b, mem.reshape(-1), self.flat(b, e), value, m)

    def atomic_target(self, f: Frame, m):
        b = f.batch
        return b.shared[self.name].reshape(-1), self.flat(b, self.element(f, m, "atomic"))

    def flat(self, b: Batch, e):
        """Element index e of each lane's workgroup, as an index into the flattened (workgroups, elements)."""
        return np.arange(b.count)[:, None] * self.size + e

    def record(self, f: Frame, m, e, write: bool) -> None:
        record_access(f, m, f.batch.shared_logs[self.name], self.flat(f.batch, e), self.line, write, self.describe)

    def describe(self, loc: int) -> str:
        index = tuple(int(i) for i in np.unravel_index(loc % self.size, self.shape))
        return f"shared array {self.name!r} element {list(index)}"


class PrivateRef(ArrayRef):
    """A frame holds private array `name` as an (elements, workgroups, lanes) array: a uniform index reads one
    contiguous plane."""

    def load(self, f: Frame, m):
        arr, e = f.arrays[self.name], self.element(f, m, "read")
        if is_uniform(e):
            return arr[e].copy()   # a copy: a later store must not change a value already loaded
        rows, cols = np.ogrid[:arr.shape[1], :arr.shape[2]]
        return arr[e, rows, cols]

    def store(self, f: Frame, m, value) -> None:
        arr, e, value = f.arrays[self.name], self.element(f, m, "write"), dense(value)
        if is_uniform(e):
            if m is None:
                arr[e] = value
            else:
                np.copyto(arr[e], value, where=m)
            return
        b = f.batch
        lanes = b.active(m)
        arr.reshape(self.size, -1)[b.full(e)[lanes], lanes] = value if is_uniform(value) else b.full(value)[lanes]


def record_access(f: Frame, m, log: AccessLog, loc, line: int, write: bool, describe: Callable[[int], str],
                  storage: bool = False) -> None:
    """Checking mode: log one statement's accesses and raise on a data race."""
    b = f.batch
    active = b.active(m)
    locs = b.full(loc)[active].astype(np.int64)
    epochs = b.storage_epoch[active // b.lanes] if storage else np.zeros(len(active), np.int64)
    race = log.record(locs, b.first * b.lanes + active, epochs, line, write)
    if race is not None:
        who, source = b.dispatch.describe, b.prog.kernel.source
        raise error(f, line, (
            f"data race on {describe(race.location)}: {who(race.lane)} {'writes' if write else 'reads'} it here, "
            f"and {who(race.other_lane)} {'wrote' if race.other_writes else 'read'} it at {source}:"
            f"{race.other_line} with no barrier between"))


def barrier_passed(b: Batch, reached: np.ndarray | None, storage: bool) -> None:
    """Checking mode: the workgroups in `reached` (all: None) passed a barrier."""
    rows = np.ones(b.count, bool) if reached is None else reached
    for name, (_, size) in b.prog.shared.items():
        b.shared_logs[name].clear_groups(rows, size)
    if storage:
        b.storage_epoch[rows] += 1
