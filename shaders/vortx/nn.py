"""Kernels of the neural-network operations of `vortx/nn.py`: RMS norm, softmax, rotary embeddings (RoPE), the
SiLU gate of a gated MLP, and embedding gathers.

The row operations (rms_norm, softmax) take a workgroup per row of `Rows.n` elements (the last axis, stride 1);
rows lie `stride` elements apart from an offset, so a row-major tensor or an evenly spaced view of one is read in
place. The WORKGROUP threads walk the row a workgroup apart (coalesced loads), each combines its share, and shared
memory combines the threads in a fixed tree (deterministic; no subgroup operation, see shaders/vortx/reduce.py on
naga and values carried through loops). The others take a thread per element (per rotated pair for RoPE).

A kernel cannot bind one buffer both where it reads and where it writes (CUDA's __restrict__, WebGPU's binding
rules), so each operation that vortx runs in place (`out=x`) has an `_in_place` kernel that reads and writes its
output binding only; both share one helper. No kernel relies on an infinity (lavapipe does not carry them through
arithmetic): softmax measures each thread's sum against the row's first element until it finds a larger one.
"""

from khal_runtime.lang import (
    Array,
    Buf,
    MutBuf,
    barrier,
    cos,
    exp,
    f16,
    f32,
    fma,
    global_id,
    i32,
    kernel,
    local_id,
    rsqrt,
    shared,
    sin,
    static_range,
    struct,
    template,
    u32,
    workgroup_id,
)

WORKGROUP = 256                 # threads per row of rms_norm and softmax, and per workgroup of the others
HALVINGS = 8                    # log2(WORKGROUP): the steps of the shared-memory tree
TWO_PI_HI = 6.28125             # 2 pi in two parts (Cody and Waite): 8 significant bits, so that its product with a
TWO_PI_LO = 0.0019353071795864769   # whole number of turns below 2^15 is exact
INV_TWO_PI = 0.15915494309189535

E = template(f32, f16)          # the element type of an embedding table
ID = template(u32, i32)         # the type of token ids and positions


@struct
class Rows:
    rows: u32
    n: u32              # elements per row
    x_off: u32          # the input: offset of its first row, elements between rows
    x_stride: u32
    o_off: u32          # the output (the input itself in place)
    o_stride: u32


@struct
class Pair:
    """The layout of silu_gate: rows of n elements of gate, up and out, each at its own offset and row stride."""
    rows: u32
    n: u32
    g_off: u32
    g_stride: u32
    u_off: u32
    u_stride: u32
    o_off: u32
    o_stride: u32


@struct
class Rope:
    tokens: u32
    heads: u32
    head_dim: u32
    dims: u32           # the rotated leading part of each head (even)
    x_off: u32          # the input: offset, strides between tokens and between heads (head_dim has stride 1)
    x_s0: u32
    x_s1: u32
    o_off: u32          # the output
    o_s0: u32
    o_s1: u32
    p_off: u32          # the positions: offset and stride
    p_stride: u32


@struct
class Gather:
    n: u32              # ids
    dim: u32            # elements per table row
    vocab: u32          # rows of the table
    t_off: u32          # the table: offset, elements between rows
    t_stride: u32
    i_off: u32          # the ids: offset, stride
    i_stride: u32
    o_off: u32          # the output: offset, elements between rows
    o_stride: u32


# --- reductions over a workgroup ------------------------------------------------------------------------------

def workgroup_sum(partial: Array[f32], lid: u32, value: f32) -> f32:
    """The sum of every thread's `value`, in a fixed order; every thread gets it."""
    partial[lid] = value
    barrier()
    for step in static_range(HALVINGS):
        half = u32(WORKGROUP >> (step + 1))
        if lid < half:
            partial[lid] = partial[lid] + partial[lid + half]
        barrier()
    total = partial[0]
    barrier()                   # everyone has read it before the array is used again
    return total


# --- rms_norm ---------------------------------------------------------------------------------------------------

def rms_norm_row(out: MutBuf[f32], x: Buf[f32], weight: Buf[f32], v: Rows, eps: f32, partial: Array[f32]):
    """out = x / sqrt(mean(x^2) + eps) * weight, for the row of this workgroup."""
    lid = local_id().x
    row = workgroup_id().x
    src = v.x_off + row * v.x_stride
    dst = v.o_off + row * v.o_stride
    acc = f32(0)
    for j in range(lid, v.n, WORKGROUP):
        e = x[src + j]
        acc += e * e
    scale = rsqrt(workgroup_sum(partial, lid, acc) / f32(v.n) + eps)
    # in place, a thread rewrites only the elements it read itself, after the whole row was summed
    for j in range(lid, v.n, WORKGROUP):
        out[dst + j] = x[src + j] * scale * weight[j]


@kernel(workgroup_size=(WORKGROUP,))
def rms_norm(out: MutBuf[f32], x: Buf[f32], weight: Buf[f32], v: Rows, eps: f32):
    partial = shared(f32, WORKGROUP)
    rms_norm_row(out, x, weight, v, eps, partial)


@kernel(workgroup_size=(WORKGROUP,))
def rms_norm_in_place(x: MutBuf[f32], weight: Buf[f32], v: Rows, eps: f32):
    partial = shared(f32, WORKGROUP)
    rms_norm_row(x, x, weight, v, eps, partial)


# --- softmax ----------------------------------------------------------------------------------------------------

def softmax_row(out: MutBuf[f32], x: Buf[f32], v: Rows, top: Array[f32], total: Array[f32]):
    """out = exp(x - max) / sum(exp(x - max)) over the row of this workgroup: one pass finds each thread's maximum
    `m` and its sum of exp(x - m) together (rescaling the sum when `m` grows), the tree combines the pairs, a
    second pass writes. Elements of -inf (masked) count for nothing once a finite one is seen; a row of nothing but
    -inf is NaN, as in numpy."""
    lid = local_id().x
    row = workgroup_id().x
    src = v.x_off + row * v.x_stride
    dst = v.o_off + row * v.o_stride
    m = x[src]                  # at most the row's maximum: a thread without elements contributes s = 0
    s = f32(0)
    for j in range(lid, v.n, WORKGROUP):
        e = x[src + j]
        if e > m:
            s = s * exp(m - e) + 1.0
            m = e
        elif e == m:            # not exp(e - m): -inf - -inf is NaN (masked scores are -inf)
            s += 1.0
        else:
            s += exp(e - m)
    top[lid] = m
    total[lid] = s
    barrier()
    for step in static_range(HALVINGS):
        half = u32(WORKGROUP >> (step + 1))
        if lid < half:
            m0 = top[lid]
            m1 = top[lid + half]
            both = max(m0, m1)
            s0 = total[lid]
            s1 = total[lid + half]
            # rescale only the smaller: equal maxima (both -inf among them) add as they are
            if m0 != both:
                s0 = s0 * exp(m0 - both)
            if m1 != both:
                s1 = s1 * exp(m1 - both)
            total[lid] = s0 + s1
            top[lid] = both
        barrier()
    peak = top[0]
    inv = 1.0 / total[0]
    for j in range(lid, v.n, WORKGROUP):
        out[dst + j] = exp(x[src + j] - peak) * inv


@kernel(workgroup_size=(WORKGROUP,))
def softmax(out: MutBuf[f32], x: Buf[f32], v: Rows):
    top = shared(f32, WORKGROUP)
    total = shared(f32, WORKGROUP)
    softmax_row(out, x, v, top, total)


@kernel(workgroup_size=(WORKGROUP,))
def softmax_in_place(x: MutBuf[f32], v: Rows):
    top = shared(f32, WORKGROUP)
    total = shared(f32, WORKGROUP)
    softmax_row(x, x, v, top, total)


# --- rope -------------------------------------------------------------------------------------------------------

def rotate(out: MutBuf[f32], x: Buf[f32], positions: Buf[ID], inv_freq: Buf[f32], factors: Buf[f32], v: Rope,
           neox: bool, scaled: bool, in_place: bool):
    """One slot of a head: slot k < dims / 2 rotates the pair (2k, 2k + 1), or (k, k + dims / 2) when `neox`, by
    position * inv_freq[k] (divided by factors[k] when `scaled`); the slots past it copy one element of the
    unrotated tail (nothing to do in place).

    The angle (hundreds of turns at long contexts) is brought into [-pi, pi] before cos and sin, whose precision
    Vulkan guarantees only there: minus a whole number of turns times 2 pi in two parts, so that the f32 angle is
    reduced without error. lavapipe's LLVM undoes that (it reassociates float arithmetic into one rounded 2 pi:
    measured, its cos and sin err by about 3e-8 per radian of the angle, 1e-4 at position 3000 for the first
    pair); the interpreter and CUDA keep it."""
    half = v.dims // 2
    slots = half + v.head_dim - v.dims
    i = global_id().x
    if i < v.tokens * v.heads * slots:
        k = i % slots
        head = (i // slots) % v.heads
        token = i // (slots * v.heads)
        src = v.x_off + token * v.x_s0 + head * v.x_s1
        dst = v.o_off + token * v.o_s0 + head * v.o_s1
        if k < half:
            angle = f32(positions[v.p_off + token * v.p_stride]) * inv_freq[k]
            if scaled:
                angle = angle / factors[k]
            turns = round(angle * INV_TWO_PI)
            angle = fma(-turns, TWO_PI_LO, fma(-turns, TWO_PI_HI, angle))
            c = cos(angle)
            s = sin(angle)
            a = k * 2
            b = a + 1
            if neox:
                a = k
                b = k + half
            x0 = x[src + a]
            x1 = x[src + b]
            out[dst + a] = x0 * c - x1 * s
            out[dst + b] = x0 * s + x1 * c
        elif not in_place:
            j = v.dims + (k - half)
            out[dst + j] = x[src + j]


@kernel(workgroup_size=(WORKGROUP,))
def rope(out: MutBuf[f32], x: Buf[f32], positions: Buf[ID], inv_freq: Buf[f32], factors: Buf[f32], v: Rope,
         neox: bool, scaled: bool):
    rotate(out, x, positions, inv_freq, factors, v, neox, scaled, False)


@kernel(workgroup_size=(WORKGROUP,))
def rope_in_place(x: MutBuf[f32], positions: Buf[ID], inv_freq: Buf[f32], factors: Buf[f32], v: Rope, neox: bool,
                  scaled: bool):
    rotate(x, x, positions, inv_freq, factors, v, neox, scaled, True)


# --- silu_gate --------------------------------------------------------------------------------------------------

def silu(x: f32) -> f32:
    return x / (1.0 + exp(-x))


@kernel(workgroup_size=(WORKGROUP,))
def silu_gate(out: MutBuf[f32], gate: Buf[f32], up: Buf[f32], v: Pair):
    """out = silu(gate) * up."""
    i = global_id().x
    if i < v.rows * v.n:
        r = i // v.n
        j = i % v.n
        out[v.o_off + r * v.o_stride + j] = silu(gate[v.g_off + r * v.g_stride + j]) * up[v.u_off + r * v.u_stride + j]


@kernel(workgroup_size=(WORKGROUP,))
def silu_gate_in_place(x: MutBuf[f32], other: Buf[f32], v: Pair, x_is_gate: bool):
    """x = silu(x) * other when `x_is_gate`, else x = silu(other) * x; `x` is laid out as the gate (g_off,
    g_stride), `other` as up."""
    i = global_id().x
    if i < v.rows * v.n:
        r = i // v.n
        j = i % v.n
        at = v.g_off + r * v.g_stride + j
        y = other[v.u_off + r * v.u_stride + j]
        if x_is_gate:
            x[at] = silu(x[at]) * y
        else:
            x[at] = silu(y) * x[at]


@kernel(workgroup_size=(WORKGROUP,))
def silu_gate_within(x: MutBuf[f32], v: Pair):
    """out = silu(gate) * up, all three in the memory of `x` (halves of a fused projection; out is one of them)."""
    i = global_id().x
    if i < v.rows * v.n:
        r = i // v.n
        j = i % v.n
        y = silu(x[v.g_off + r * v.g_stride + j]) * x[v.u_off + r * v.u_stride + j]
        x[v.o_off + r * v.o_stride + j] = y


# --- embedding --------------------------------------------------------------------------------------------------

@kernel(workgroup_size=(WORKGROUP,))
def embedding(out: MutBuf[f32], table: Buf[E], ids: Buf[ID], v: Gather):
    """out[r] = table[ids[r]] as f32; an id outside the table (a negative i32 among them) gives a row of NaN: the
    ids live on the device, where the host cannot check them without a read."""
    i = global_id().x
    if i < v.n * v.dim:
        r = i // v.dim
        j = i % v.dim
        row = u32(ids[v.i_off + r * v.i_stride])
        value = f32("nan")
        if row < v.vocab:
            value = f32(table[v.t_off + row * v.t_stride + j])
        out[v.o_off + r * v.o_stride + j] = value
