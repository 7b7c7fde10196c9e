"""Matrix products: `matmul(a, b)` (and `a @ b`) with numpy's semantics over the last two dimensions and
broadcasting over the leading (batch) ones, for f32 tensors of rank 2 to 4, on the kernels of shaders/vortx/gemm.py.

Operands are read in place through their views: a transposed view (`a.T @ b`), a slice or a broadcast batch
(stride 0) costs no copy. The batch dimensions (N and C of NCHW, at most two) keep a stride each per operand, so
broadcasting one operand over either needs no copy either. The result is a new contiguous tensor.

Variants (`variant=`): "naive" (a thread per output), "tiled" (16x16 shared-memory tiles), "blocked" (register
blocking: a workgroup computes a 128x128, 128x64, 64x128 or 64x64 block, each thread an 8x8 to 4x4 micro-tile)
and "auto", which picks by size (see `choose`). Square products on the H100, TFLOP/s (torch: TF32 off):

    size   backend  naive  tiled  128x128  128x64  64x64  torch
    1024   CUDA       4.9    6.0     16.5    26.7   24.3   37.5
    2048   CUDA         -    6.2     36.6    34.0   28.7   49.3
    4096   CUDA         -    6.3     39.2    37.8   30.5   51.6
    1024   Vulkan     1.6    4.9      8.0    14.5   14.3
    2048   Vulkan       -    5.9     21.4    20.2   17.9
    4096   Vulkan       -    6.0     23.6    24.7   22.7

Under 64x64 blocks the tiled kernel wins on both (256^3: 2.1 against 1.9 on CUDA, 1.1 against 0.8 on Vulkan), and
for thin products (16 x 4096 x 4096: 2.8 against 1.9). On lavapipe the tiled kernel never wins (its barriers are
costly there), the naive one does up to about 64^3 and for matrix-vector products, the blocked one above.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from khal_runtime import workgroups
from khal_runtime.lang import f32
from shaders._generated.vortx.gemm import GEMM_BLOCKED, Gemm, GemmNaive, GemmTiled
from shaders.vortx.gemm import TILE, WG

from .ops import ShapeError, broadcast_shapes, broadcast_strides, fill, same_device

if TYPE_CHECKING:
    from .tensor import Tensor

VARIANTS = ("auto", "naive", "tiled", "blocked")
MAX_Z = 65535           # workgroups along z in one dispatch (WebGPU and CUDA): larger batches go in slices
SMALL = 1 << 18         # multiply-adds up to which launching costs more than computing: the simplest kernel
THIN = 64               # a side of C under one 64-row block: the blocks would be mostly empty
FEW = 64                # 64x64 blocks under which the tiled kernel's 16 times more workgroups keep a GPU busier
# The workgroups a block shape needs to fill a large GPU: the H100 has 132 SMs, which hold two 8x8-blocked
# workgroups (128 registers a thread) or one and a half of the smaller ones each.
FILL = {(8, 8): 256, (8, 4): 128, (4, 8): 128}


def matmul(a: Tensor, b: Tensor, variant: str = "auto") -> Tensor:
    """`a @ b`: (..., M, K) @ (..., K, N) -> (..., M, N), the leading dimensions broadcast as numpy does;
    `variant` picks the kernel ("auto", "naive", "tiled", "blocked")."""
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
    if out.size and not k:
        return fill(out, 0)                 # sums of nothing (and no kernel binds an empty operand)
    if out.size:
        run(out, a, b, choose(variant, m, n, k, math.prod(batch)))
    return out


def choose(variant: str, m: int, n: int, k: int, batch: int) -> type:
    """The kernel class of a variant for a product of `batch` (m x k) @ (k x n).

    "auto": the naive kernel up to SMALL multiply-adds (launch-bound everywhere, the fastest on lavapipe and in
    the interpreter); the tiled kernel for thin products (a side of C under THIN) and for those that give fewer
    than FEW 64x64 blocks; the blocked kernel otherwise. "blocked" takes the largest block whose FILL the grid
    reaches (128x128, then 128x64 or 64x128 with its longer side along C's), else 64x64. See the table above."""
    if variant == "auto":
        if m * n * k * batch <= SMALL:
            variant = "naive"
        elif min(m, n) < THIN or batch * _tiles(m, n, 4, 4) < FEW:
            variant = "tiled"
        else:
            variant = "blocked"
    if variant == "naive":
        return GemmNaive
    if variant == "tiled":
        return GemmTiled
    shapes = ((8, 8), (8, 4), (4, 8)) if m >= n else ((8, 8), (4, 8), (8, 4))
    tm, tn = next((s for s in shapes if batch * _tiles(m, n, *s) >= FILL[s]), (4, 4))
    return GEMM_BLOCKED.pick(TM=tm, TN=tn)


def _tiles(m: int, n: int, tm: int, tn: int) -> int:
    return -(-m // (WG * tm)) * -(-n // (WG * tn))


def block(cls: type) -> tuple[int, int]:
    """The rows and columns of C that a workgroup of the kernel class `cls` computes."""
    if cls is GemmNaive or cls is GemmTiled:
        return TILE, TILE
    return WG * cls.TEMPLATE["TM"], WG * cls.TEMPLATE["TN"]


def run(out: Tensor, a: Tensor, b: Tensor, cls: type) -> None:
    """Record `out = a @ b` with the kernel class `cls` (out: contiguous, of the broadcast shape)."""
    *batch, m, n = out.shape
    k = a.shape[-1]
    batch = [1] * (2 - len(batch)) + batch
    a_s = broadcast_strides(a, (*batch, m, k))      # (N, C, row, column) strides, 0 where broadcast
    b_s = broadcast_strides(b, (*batch, k, n))
    total = batch[0] * batch[1]
    block_m, block_n = block(cls)
    x, y = -(-n // block_n), -(-m // block_m)
    for z0 in range(0, total, MAX_Z):
        g = Gemm(m, n, k, total, batch[1], z0, a.offset, *a_s, b.offset, *b_s)
        out.device.dispatch(cls, workgroups(x, y, min(MAX_Z, total - z0)), out.buffer, a.buffer, b.buffer, g)

