"""The CPU interpreter: runs a kernel of the khal IR with numpy. It is the IR's executable reference (docs/IR.md).

    execute(kernel, grid, buffers, scalars, subgroup_size=32, check=False)

The lanes (invocations) of a batch of consecutive workgroups execute in lockstep: a value is a numpy array over
the batch's (workgroups, lanes), possibly of a broadcastable shape, or a numpy scalar when it is the same in every
lane. A batch's lanes are in the order in which IR.md applies atomics (workgroup linear index, then local index),
and a barrier is exact because every lane of a workgroup reaches a statement at the same time. A kernel is
verified (`ir.verify`) and compiled into closures once, then run batch by batch.

    __init__.py    `execute` and the binding of its arguments
    program.py     a kernel verified and compiled, cached per kernel
    compiler.py    IR statements and expressions to closures; divergence as masks
    values.py      lane values (uniform, per workgroup, per lane, Affine) and masks
    state.py       dispatches, batches (builtins, shared memory), frames, located errors
    memory.py      buffer, shared and private accesses, bounds checks
    arithmetic.py  operators, conversions and intrinsics on numpy values
    subgroups.py   subgroup reductions, scans and shuffles
    atomics.py     atomics applied in order
    races.py       the data-race checker of checking mode
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from khal_runtime import ir
from khal_runtime.ir import InvalidIR

from .program import program
from .state import Batch, Dispatch, KernelExecutionError
from .values import DTYPE

__all__ = ["InvalidIR", "KernelExecutionError", "execute"]

# Lanes per batch: arrays of 2**18 elements stay in the caches of common CPUs, which measured 1.7x faster than
# 2**20 lanes on a chain of elementwise operations; the Python overhead per batch is negligible at this size.
BATCH_LANES = 1 << 18
# Bound on the per-batch memory that grows with the lanes (locals, temporaries, private and shared arrays).
BATCH_BYTES = 256 << 20


def _keep_batch_memory_mapped() -> None:
    """A batch frees its temporaries all at once; with glibc's initial thresholds that free space is returned
    to the system and the next batch faults it in again page by page, which measured 7x slower on an
    elementwise kernel. glibc raises its trim threshold to twice the size of the largest mmap-backed block ever
    freed, so freeing one untouched 16 MiB block lets the temporaries of a batch stay mapped. On other
    allocators this costs one allocation."""
    np.empty(16 << 20, np.uint8)


_keep_batch_memory_mapped()


def execute(kernel: ir.Kernel, grid: tuple[int, int, int], buffers: Sequence[np.ndarray],
            scalars: Sequence[object], *, subgroup_size: int = 32, check: bool = False) -> None:
    """Run `kernel` over `grid` workgroups. `buffers[i]` is a 1-D array of buffer i's element dtype
    (`ir.NUMPY`), written in place; `scalars[i]` a number, or a mapping of field name to number for a struct
    parameter. `check=True` adds the data-race checker and fills shared memory with NaN / 0xDEADBEEF. Raises
    InvalidIR when the kernel is not valid IR for the interpreter (verified on its first run)."""
    prog = program(kernel)
    if subgroup_size < 1 or subgroup_size & (subgroup_size - 1):
        raise ValueError(f"subgroup_size must be a power of two, got {subgroup_size}")
    if prog.uses_subgroup_ops and prog.lanes % subgroup_size:
        raise ValueError(f"{kernel.name} uses subgroup operations: its workgroup size ({prog.lanes} invocations) "
                         f"must be a multiple of subgroup_size {subgroup_size}")
    dispatch = Dispatch(prog, _grid(grid), _bind_buffers(kernel, buffers), _bind_scalars(kernel, scalars),
                        subgroup_size, check)
    per_batch = max(1, min(BATCH_LANES, BATCH_BYTES // prog.bytes_per_lane) // prog.lanes)
    with np.errstate(all="ignore"):   # wrap-around is the semantics, and inactive lanes' garbage must not warn
        for first in range(0, dispatch.total, per_batch):
            prog.run(Batch(dispatch, first, min(per_batch, dispatch.total - first)))


def _grid(grid) -> tuple[int, int, int]:
    g = tuple(int(n) for n in grid)
    if len(g) != 3 or min(g) < 0:
        raise ValueError(f"grid must be three workgroup counts >= 0, got {grid!r}")
    return g  # type: ignore[return-value]


def _bind_buffers(kernel: ir.Kernel, buffers: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    if len(buffers) != len(kernel.buffers):
        raise TypeError(f"{kernel.name} takes {len(kernel.buffers)} buffers, got {len(buffers)}")
    for decl, arr in zip(kernel.buffers, buffers):
        want = DTYPE[decl.elem]
        if not isinstance(arr, np.ndarray) or arr.ndim != 1 or arr.dtype != want:
            got = f"{arr.dtype} array of shape {arr.shape}" if isinstance(arr, np.ndarray) else type(arr).__name__
            raise TypeError(f"{kernel.name}: buffer {decl.name!r} must be a 1-D {want} array, got {got}")
        if decl.access == "read_write" and not arr.flags.writeable:
            raise TypeError(f"{kernel.name}: buffer {decl.name!r} is read_write but the array is read-only")
    return {decl.name: arr for decl, arr in zip(kernel.buffers, buffers)}


def _bind_scalars(kernel: ir.Kernel, scalars: Sequence[object]) -> dict[str, Any]:
    if len(scalars) != len(kernel.scalars):
        raise TypeError(f"{kernel.name} takes {len(kernel.scalars)} scalars, got {len(scalars)}")
    bound: dict[str, Any] = {}
    for decl, value in zip(kernel.scalars, scalars):
        if decl.type not in kernel.structs:
            bound[decl.name] = _scalar(kernel, decl.name, decl.type, value)
        elif isinstance(value, Mapping):
            bound[decl.name] = {f: _scalar(kernel, f"{decl.name}.{f}", t, value.get(f))
                                for f, t in kernel.structs[decl.type]}
        else:
            raise TypeError(f"{kernel.name}: {decl.name!r} is a struct {decl.type}: pass a mapping of its fields")
    return bound


def _scalar(kernel: ir.Kernel, name: str, t: str, value: object):
    is_bool = isinstance(value, (bool, np.bool_))
    is_int = isinstance(value, (int, np.integer)) and not is_bool
    if t == "bool" and (is_bool or is_int and value in (0, 1)):
        return np.bool_(bool(value))
    if t in ir.INTS and is_int:
        lo, hi = ir.int_range(t)
        if not lo <= int(value) <= hi:
            raise ValueError(f"{kernel.name}: {name} = {value} does not fit in {t}")
        return DTYPE[t].type(int(value))
    if t in ir.FLOATS and (is_int or isinstance(value, (float, np.floating))):
        return DTYPE[t].type(value)
    raise TypeError(f"{kernel.name}: {name} is a {t}, got {value!r}")
