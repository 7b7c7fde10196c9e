"""Memory access of the CPU interpreter: buffer elements (`StorageRef`), vector loads of buffers (`VectorRef`),
shared and private array elements (`SharedRef`, `PrivateRef`), bounds checks that name the source line, and the
race bookkeeping of checking mode."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

from .races import AccessLog
from .state import Batch, Frame, error
from .values import Affine, dense, is_uniform, where


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


class VectorRef:
    """A vector load: the group `index` of `lanes` consecutive buffer elements, `buffer[lanes * index + k]`, as a
    dict of the vector's field values. The group must lie wholly inside the buffer."""

    def __init__(self, name: str, index, fields: str, line: int):
        self.name, self.index, self.fields, self.line = name, index, fields, line

    def load(self, f: Frame, m):
        buf, n, lanes = f.batch.buffers[self.name], len(f.batch.buffers[self.name]), len(self.fields)
        group = checked_index(f, m, dense(self.index(f, m)), n // lanes, self.line, lambda i: (
            f"vector read of buffer {self.name!r} out of bounds: group {i} of {lanes} elements (elements "
            f"{lanes * int(i)} to {lanes * int(i) + lanes - 1}), length {n}"))
        first = group.astype(np.intp) * lanes
        if f.batch.check:
            for k in range(lanes):
                record_access(f, m, f.batch.dispatch.storage_logs[self.name], first + k, self.line, False,
                              lambda loc: f"buffer {self.name!r} element {loc}", storage=True)
        return {field: buf[first + k] for k, field in enumerate(self.fields)}


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
