"""C = A @ B for row-major f32 matrices of any size, tiled through shared memory."""

from khal_runtime.lang import Buf, MutBuf, barrier, f32, kernel, local_id, require, shared, struct, u32, workgroup_id

TILE = 16


@struct
class MatmulShape:
    m: u32      # rows of A and C
    k: u32      # columns of A, rows of B
    n: u32      # columns of B and C


@kernel(workgroup_size=(TILE, TILE))
def matmul_tiled(c: MutBuf[f32], a: Buf[f32], b: Buf[f32], shape: MatmulShape):
    require(len(a) >= shape.m * shape.k and len(b) >= shape.k * shape.n and len(c) >= shape.m * shape.n)
    a_tile = shared(f32, TILE, TILE)
    b_tile = shared(f32, TILE, TILE + 1)    # +1 column: no bank conflicts on the transposed read
    tx = local_id().x
    ty = local_id().y
    row = workgroup_id().y * TILE + ty
    col = workgroup_id().x * TILE + tx
    acc = f32(0)
    for t in range(0, shape.k, TILE):
        a_col = t + tx
        b_row = t + ty
        a_tile[ty, tx] = a[row * shape.k + a_col] if row < shape.m and a_col < shape.k else 0.0
        b_tile[ty, tx] = b[b_row * shape.n + col] if b_row < shape.k and col < shape.n else 0.0
        barrier()
        for j in range(TILE):
            acc += a_tile[ty, j] * b_tile[j, tx]
        barrier()
    if row < shape.m and col < shape.n:
        c[row * shape.n + col] = acc
