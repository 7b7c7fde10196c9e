"""The data-race checker of the CPU interpreter's checking mode (`execute(..., check=True)`).

IR.md: between barriers, two invocations of a workgroup must not write the same location, nor one write a location
that another reads. For storage buffers the rule spans the whole dispatch: invocations of different workgroups
are never ordered, and invocations of one workgroup are ordered only by a `storage` barrier. Atomics do not race
and are not recorded.

Each memory (a buffer, or a batch's copy of a shared array) has an `AccessLog`: per location, the last writing
lane and the lanes that read it since, with the source line of each. Lanes are global lane ids
(`workgroup_linear_index * lanes_per_workgroup + local_index`), so that the workgroup is `lane // lanes`. Shared
logs are cleared at every barrier for the workgroups that pass it; storage logs are kept for the dispatch, and a
`storage` barrier instead advances the workgroup's *epoch*: accesses of one workgroup in different epochs do not
race.

A location read by several lanes keeps `MANY` as its reader, with the readers' workgroup (`MANY` when they span
several) and the latest epoch in which one of them read it. A later write by another lane conflicts unless it
comes in a later epoch of that one workgroup. The summary costs one false report, on storage buffers only: a lane
that writes a location after a `storage` barrier, having read it itself after that barrier, when other lanes of
its workgroup read it before the barrier.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NONE = -1
MANY = -2


@dataclass
class Conflict:
    """A race found by `AccessLog.record`: `location` is the conflicting location in the log's memory."""
    location: int
    lane: int
    line: int
    other_lane: int
    other_line: int
    other_writes: bool


class AccessLog:
    def __init__(self, size: int, lanes: int):
        self.lanes = lanes
        self.writer = np.full(size, NONE, np.int64)
        self.write_epoch = np.zeros(size, np.int64)
        self.write_line = np.zeros(size, np.int64)
        self.reader = np.full(size, NONE, np.int64)
        self.read_group = np.full(size, NONE, np.int64)
        self.read_epoch = np.zeros(size, np.int64)
        self.read_line = np.zeros(size, np.int64)

    def clear_groups(self, groups: np.ndarray, size: int) -> None:
        """Forget the accesses of the workgroups in the bool array `groups`, whose memory is `size` locations
        each (a batch's shared array, at a barrier)."""
        for log in (self.writer, self.reader, self.read_group):
            log.reshape(-1, size)[groups] = NONE

    def record(self, locs: np.ndarray, lanes: np.ndarray, epochs: np.ndarray, line: int,
               write: bool) -> Conflict | None:
        """Record one statement's accesses (`locs[k]` by `lanes[k]`, in lane order); the first race found, if any."""
        groups = lanes // self.lanes
        conflict = self._against_writer(locs, lanes, groups, epochs, line)
        if conflict is None and write:
            conflict = self._against_readers(locs, lanes, groups, epochs, line) or _same_statement(locs, lanes, line)
        if conflict is not None:
            return conflict
        if write:
            self.writer[locs] = lanes
            self.write_epoch[locs] = epochs
            self.write_line[locs] = line
        else:
            self._add_readers(locs, lanes, groups, epochs, line)
        return None

    def _unordered(self, other_groups, other_epochs, groups, epochs):
        return (other_groups != groups) | (other_epochs == epochs)

    def _against_writer(self, locs, lanes, groups, epochs, line):
        w = self.writer[locs]
        bad = (w >= 0) & (w != lanes) & self._unordered(w // self.lanes, self.write_epoch[locs], groups, epochs)
        return _first(bad, locs, lanes, line, w, self.write_line[locs], True)

    def _against_readers(self, locs, lanes, groups, epochs, line):
        r = self.reader[locs]
        bad = (r != NONE) & (r != lanes) & self._unordered(self.read_group[locs], self.read_epoch[locs], groups,
                                                           epochs)
        return _first(bad, locs, lanes, line, r, self.read_line[locs], False)

    def _add_readers(self, locs, lanes, groups, epochs, line):
        first = self.reader[locs] == NONE
        self.reader[locs] = np.where(first | (self.reader[locs] == lanes), lanes, MANY)
        self.read_group[locs] = np.where(first | (self.read_group[locs] == groups), groups, MANY)
        # several lanes of this statement on one location: the assignment kept one of them, mark the rest
        self.reader[locs[self.reader[locs] != lanes]] = MANY
        self.read_group[locs[self.read_group[locs] != groups]] = MANY
        self.read_epoch[locs] = epochs
        self.read_line[locs] = line


def _first(bad, locs, lanes, line, others, other_lines, other_writes) -> Conflict | None:
    if not bad.any():
        return None
    k = int(np.argmax(bad))
    return Conflict(int(locs[k]), int(lanes[k]), line, int(others[k]), int(other_lines[k]), other_writes)


def _same_statement(locs, lanes, line) -> Conflict | None:
    """Two lanes of one store writing one location."""
    order = np.argsort(locs, kind="stable")
    dup = locs[order[1:]] == locs[order[:-1]]
    if not dup.any():
        return None
    k = int(np.argmax(dup))
    a, b = order[k], order[k + 1]
    return Conflict(int(locs[b]), int(lanes[b]), line, int(lanes[a]), line, True)
