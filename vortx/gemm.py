"""Matrix products: `matmul(a, b)` (and `a @ b`) with numpy's semantics over the last two dimensions and
broadcasting over the leading (batch) ones, for f32 tensors of rank 2 to 4, on the kernels of shaders/vortx/gemm.py.

Operands are read in place through their views: a transposed view (`a.T @ b`), a slice or a broadcast batch
(stride 0) costs no copy. The batch dimensions (N and C of NCHW, at most two) keep a stride each per operand, so
broadcasting one operand over either needs no copy either. The result is a new contiguous tensor.

Variants (`variant=`): "naive" (a thread per output), "tiled" (16x16 shared-memory tiles), "blocked" (register
blocking: a workgroup computes a 128x128, 128x64, 64x128 or 64x64 block, each thread an 8x8 to 4x4 micro-tile)
and "auto", which picks by size (see `choose`).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from shaders._generated.vortx.gemm import GEMM_BLOCKED, Gemm, GemmNaive, GemmTiled
from shaders.vortx.gemm import TILE, WG

from khal_runtime import workgroups
from khal_runtime.lang import f32

from .ops import ShapeError, broadcast_shapes, broadcast_strides, same_device

if TYPE_CHECKING:
    from .device import Device
    from .tensor import Tensor

VARIANTS = ("auto", "naive", "tiled", "blocked")
MAX_Z = 65535           # workgroups along z in one dispatch (WebGPU and CUDA): larger batches go in slices
SMALL = 1 << 18         # multiply-adds below which the naive kernel is as fast as any: launch cost dominates
FILL = 128              # workgroups that keep a large GPU busy (the H100 has 132 SMs; lavapipe's threads fewer)
BLOCKS = {(cls.TEMPLATE["TM"], cls.TEMPLATE["TN"]): cls for cls in GEMM_BLOCKED}


def matmul(a: Tensor, b: Tensor, variant: str = "auto") -> Tensor:
    """`a @ b`: (..., M, K) @ (..., K, N) -> (..., M, N), the leading dimensions broadcast as numpy does."""
    from .tensor import Tensor
    if not isinstance(a, Tensor) or not isinstance(b, Tensor):
        raise TypeError(f"vortx.matmul: expected two tensors, not {type(a).__name__} and {type(b).__name__}")
    if a.dtype is not f32 or b.dtype is not f32:
        raise TypeError(f"vortx.matmul: only f32 tensors are multiplied, not {a.dtype.ir} and {b.dtype.ir}; "
                        "convert with .to(vortx.f32)")
    if a.ndim < 2 or b.ndim < 2:
        raise ShapeError(f"vortx.matmul: shapes {a.shape} and {b.shape}: both operands need 2 to 4 dimensions; "
                         "make a vector a matrix with unsqueeze()")
    (m, k), (k2, n) = a.shape[-2:], b.shape[-2:]
    if k != k2:
        raise ShapeError(f"vortx.matmul: shapes {a.shape} and {b.shape} do not match: {k} columns against {k2} rows")
    try:
        batch = broadcast_shapes("matmul", a.shape[:-2], b.shape[:-2])
    except ShapeError:
        raise ShapeError(f"vortx.matmul: shapes {a.shape} and {b.shape}: the batch dimensions {a.shape[:-2]} and "
                         f"{b.shape[:-2]} cannot be broadcast together") from None
    if variant not in VARIANTS:
        raise ValueError(f"vortx.matmul: unknown variant {variant!r}; the variants are {', '.join(VARIANTS)}")
    same_device("matmul", a, b)
    out = a.device.empty(batch + (m, n), f32)
    if out.size:
        run(out, a, b, choose(variant, m, n, k, math.prod(batch)))
    return out


def choose(variant: str, m: int, n: int, k: int, batch: int) -> type:
    """The kernel class of a variant for this problem. "auto": the naive kernel for small products, where
    launching costs more than computing, and for matrix-vector shapes (a side under a tile), where tiles would
    sit mostly empty; the blocked kernel where its largest block still gives FILL workgroups, or where it gives
    more than the tiled one's 16x16 tiles would at all; the tiled kernel in between. "blocked" takes the largest
    block that gives FILL workgroups (the smallest, 64x64, when none does), the longer side along the longer
    side of C. Measured on lavapipe and on the H100: see README / bench_gemm."""
    if variant == "auto":
        if m * n * k * batch <= SMALL or min(m, n) < TILE:
            return GemmNaive
        variant = "blocked" if batch * _tiles(m, n, 8, 8) >= FILL or min(m, n) >= 256 else "tiled"
    if variant == "naive":
        return GemmNaive
    if variant == "tiled":
        return GemmTiled
    shapes = ((8, 8), (8, 4), (4, 8)) if m >= n else ((8, 8), (4, 8), (8, 4))
    return next((BLOCKS[s] for s in shapes if batch * _tiles(m, n, *s) >= FILL), BLOCKS[4, 4])


def _tiles(m: int, n: int, tm: int, tn: int) -> int:
    return -(-m // (WG * tm)) * -(-n // (WG * tn))


def run(out: Tensor, a: Tensor, b: Tensor, cls: type) -> None:
    """Record `out = a @ b` with the kernel class `cls` (out: contiguous, of the broadcast shape)."""
    *batch, m, n = out.shape
    k = a.shape[-1]
    batch = [1] * (2 - len(batch)) + batch
    a_s = _batch_strides(a, batch, m, k)
    b_s = _batch_strides(b, batch, k, n)
    total = batch[0] * batch[1]
    if cls is GemmNaive or cls is GemmTiled:
        x, y = -(-n // TILE), -(-m // TILE)
    else:
        x, y = -(-n // (WG * cls.TEMPLATE["TN"])), -(-m // (WG * cls.TEMPLATE["TM"]))
    for z0 in range(0, total, MAX_Z):
        g = Gemm(m, n, k, total, batch[1], z0, a.offset, *a_s, b.offset, *b_s)
        out.device.dispatch(cls, workgroups(x, y, min(MAX_Z, total - z0)), out.buffer, a.buffer, b.buffer, g)


def _batch_strides(t: Tensor, batch: list[int], rows: int, cols: int) -> tuple[int, ...]:
    """(N stride, C stride, row stride, column stride) of `t` seen with the batch shape (N, C)."""
    return broadcast_strides(t, (*batch, rows, cols))


# --- benchmark ---------------------------------------------------------------------------------------------------

def gemm_seconds(device: Device, size: int, variant: str = "auto", repeats: int = 5) -> float:
    """Median seconds of one f32 (size x size) @ (size x size) on `device`, timing batches of runs after a
    warm-up."""
    import numpy as np

    import vortx as vx
    rng = np.random.default_rng(0)
    a, b = (vx.tensor(rng.random((size, size), dtype=np.float32), device=device) for _ in range(2))
    loops = max(1, min(50, int(2e10 // size**3)))
    return _median(lambda: [matmul(a, b, variant) for _ in range(loops)], device.synchronize, repeats) / loops


def torch_seconds(size: int, repeats: int = 5) -> float | None:
    """Median seconds of torch.matmul at `size` on CUDA with TF32 off, or None without torch or a GPU."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    a, b = (torch.rand(size, size, device="cuda") for _ in range(2))
    loops = max(1, min(50, int(2e10 // size**3)))
    return _median(lambda: [torch.matmul(a, b) for _ in range(loops)], torch.cuda.synchronize, repeats) / loops


def _median(run: Any, sync: Any, repeats: int) -> float:
    run()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        sync()
        times.append(time.perf_counter() - start)
    return sorted(times)[repeats // 2]


def bench_gemm(device: Device, sizes: tuple[int, ...] = (1024, 2048, 4096)) -> list[tuple[str, ...]]:
    """Rows of a table (a header, then a row per size): vortx's f32 gemm in TFLOP/s, torch.matmul's with TF32
    off on the same GPU when torch has CUDA, their ratio and the target."""
    goal = ">= 0.5x" if device.backend.name == "cuda" else ">= 0.35x"
    rows = [("f32 gemm (variant)", "TFLOP/s", "torch TFLOP/s", "ratio", "target")]
    for size in sizes:
        tflops = 2 * size**3 / 1e12
        ours = tflops / gemm_seconds(device, size)
        theirs = torch_seconds(size)
        name = f"{size}^3 ({choose('auto', size, size, size, 1).ID.rsplit('.', 1)[-1]})"
        if theirs is None:
            rows.append((name, f"{ours:.1f}", "-", "-", goal))
        else:
            rows.append((name, f"{ours:.1f}", f"{tflops / theirs:.1f}", f"{ours * theirs / tflops:.2f}x", goal))
    return rows
