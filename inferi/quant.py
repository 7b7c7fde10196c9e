"""Weight matrices kept on the device in their GGUF block format: `QuantizedWeight.upload(...)`, then `matvec`
(decode), `matmul` (prefill) and `rows_of` (token embeddings), on the kernels of shaders/inferi/quant.py.

Upload layout: every block padded to whole u32 words (shaders/inferi/decoders.py says where the pad goes), so that
blocks and rows start on a word and the decoders never straddle a word for a scale; this costs 2 bytes per block
for Q4_0 (18 -> 20), Q5_0 (22 -> 24), Q8_0 (34 -> 36), Q3_K (110 -> 112) and Q6_K (210 -> 212), none for the rest.
F32, F16 and BF16 travel as blocks of 8 values, a row padded with zeros to whole blocks.
"""

from __future__ import annotations

from dataclasses import dataclass

import gguf
import numpy as np

import vortx
from khal_runtime import workgroups
from shaders._generated.inferi.quant import MATMUL, MATVEC, MATVEC_CPU, ROWS_OF, Out, Weights
from shaders.inferi.quant import CPU_ROWS, GROUP, THREADS, TILE_N, TILE_R

T = gguf.GGMLQuantizationType


@dataclass(frozen=True)
class Format:
    qk: int             # values per block (F32, F16, BF16: the kernels' blocks of 8)
    nbytes: int         # bytes per block in the file
    pad_at: int         # where the upload inserts zero bytes to make the block whole words (-1: at the end)
    decoder: str        # the decoder template value of the kernels


FORMATS = {
    T.F32: Format(8, 32, -1, "decode_f32"), T.F16: Format(8, 16, -1, "decode_f16"),
    T.BF16: Format(8, 16, -1, "decode_bf16"),
    T.Q4_0: Format(32, 18, 2, "decode_q4_0"), T.Q4_1: Format(32, 20, -1, "decode_q4_1"),
    T.Q5_0: Format(32, 22, 2, "decode_q5_0"), T.Q5_1: Format(32, 24, -1, "decode_q5_1"),
    T.Q8_0: Format(32, 34, 2, "decode_q8_0"), T.Q2_K: Format(256, 84, -1, "decode_q2_k"),
    T.Q3_K: Format(256, 110, -1, "decode_q3_k"), T.Q4_K: Format(256, 144, -1, "decode_q4_k"),
    T.Q5_K: Format(256, 176, -1, "decode_q5_k"), T.Q6_K: Format(256, 210, -1, "decode_q6_k"),
}
SUPPORTED = frozenset(FORMATS)
MAX_GRID = 65535         # workgroups along one side of a grid (WebGPU and CUDA)
GATHER_ROWS = 1 << 23     # values that rows_of gathers in one dispatch, at most (512 a workgroup)
UPLOAD_CHUNK = 4 << 20    # bytes of a weight's rows padded and uploaded at a time


def matvec_grid(groups: int):
    """`groups` workgroups: past a grid's 65,535 along x they go on along y."""
    return workgroups(min(groups, MAX_GRID), -(-groups // MAX_GRID))


def from_start(t: vortx.Tensor) -> vortx.Tensor:
    """`t`, or a contiguous copy when it is a view: a kernel reads a buffer from its first element."""
    return t if t.is_contiguous() and not t.offset else t.contiguous()


class QuantError(ValueError):
    """A weight that cannot be kept quantized: its message names the tensor and the type."""


def pad_blocks(name: str, type: T, shape: tuple[int, int], raw: np.ndarray) -> np.ndarray:
    """The file's bytes of a (rows, cols) tensor as the u32 words the kernels read (see the module docstring)."""
    fmt = FORMATS[type]
    rows, cols = shape
    if type in (T.F32, T.F16, T.BF16):
        data = np.asarray(raw, np.uint8).reshape(rows, -1)
        pad = -cols % fmt.qk * (fmt.nbytes // fmt.qk)
        if pad:
            data = np.concatenate([data, np.zeros((rows, pad), np.uint8)], axis=1)
        return np.ascontiguousarray(data).view(np.uint32).reshape(-1)
    blocks = np.asarray(raw, np.uint8).reshape(rows * (cols // fmt.qk), fmt.nbytes)
    pad = -fmt.nbytes % 4
    if pad:
        at = fmt.nbytes if fmt.pad_at < 0 else fmt.pad_at
        zeros = np.zeros((blocks.shape[0], pad), np.uint8)
        blocks = np.concatenate([blocks[:, :at], zeros, blocks[:, at:]], axis=1)
    return np.ascontiguousarray(blocks).view(np.uint32).reshape(-1)


def layout(type: T, rows: int, cols: int) -> Weights:
    """The kernels' description of a (rows, cols) weight of this type, as `pad_blocks` lays it out."""
    fmt = FORMATS[type]
    block_words = -(-fmt.nbytes // 4)
    return Weights(rows, cols, -(-cols // fmt.qk) * block_words, block_words, fmt.qk.bit_length() - 1)


def checked_type(name: str, type: T, shape: tuple[int, ...], raw: np.ndarray) -> T:
    """The GGML type of a (rows, cols) tensor whose file bytes are `raw`, or a QuantError naming the tensor."""
    try:
        type = T(type)
    except ValueError:
        raise QuantError(f"{name}: unknown GGML type {type!r}") from None
    if type not in FORMATS:
        supported = ", ".join(sorted(t.name for t in SUPPORTED))
        raise QuantError(f"{name}: type {type.name} is not supported on the device (supported: {supported})")
    if len(shape) != 2 or min(shape) < 1:
        raise QuantError(f"{name}: a {type.name} weight must be a (rows, cols) matrix, not shape {tuple(shape)}")
    rows, cols = (int(d) for d in shape)
    block, block_bytes = gguf.GGML_QUANT_SIZES[type]
    if cols % block:
        raise QuantError(f"{name}: {type.name} rows hold whole blocks of {block} values, not {cols}")
    expected = rows * cols // block * block_bytes
    if raw.size != expected:
        raise QuantError(f"{name}: {type.name} ({rows}, {cols}) takes {expected} bytes, not {raw.size}")
    return type


class QuantizedWeight:
    """A (rows, cols) weight matrix on a vortx device, kept in its GGUF block format (packed as u32 words)."""

    def __init__(self, name: str, type: T, shape: tuple[int, int], words: vortx.Tensor, nbytes: int):
        self.name, self.type, self.nbytes = name, type, nbytes
        self.rows, self.cols = shape
        self.words = words
        self.weights = layout(type, self.rows, self.cols)
        pick = dict(DECODE=FORMATS[type].decoder)
        # lavapipe (a CPU's Vulkan) runs products on matvec_cpu, and a norm or a gate on LANES 1; the interpreter
        # runs a workgroup's invocations as numpy vectors, so the GPU's wide workgroups suit it best (2.5x faster
        # tests of the tiny models than with matvec_cpu)
        self.cpu_shaped = words.device.on_cpu and words.device.backend.name != "cpu"
        self.lanes = 1 if self.cpu_shaped else 64          # matvec's invocations a row (LANES)
        self.matvec_kernel = MATVEC.pick(**pick, LANES=self.lanes)
        self.matmul_kernel, self.rows_kernel = MATMUL.pick(**pick), ROWS_OF.pick(**pick)
        self.cpu_kernel = MATVEC_CPU.pick(**pick)

    def __repr__(self) -> str:
        return f"<QuantizedWeight {self.name} {self.type.name} ({self.rows}, {self.cols})>"

    @property
    def device(self) -> vortx.Device:
        return self.words.device

    @classmethod
    def upload(cls, device: vortx.Device, name: str, type: T, shape: tuple[int, int],
               raw: np.ndarray) -> QuantizedWeight:
        """The tensor `name` of GGUF type `type` and numpy shape (rows, cols), from its file bytes `raw`."""
        return cls.stack(device, [(name, type, shape, raw)])

    @classmethod
    def stack(cls, device: vortx.Device, parts: list[tuple[str, T, tuple[int, int], np.ndarray]]) -> QuantizedWeight:
        """Matrices of one type and width, (name, type, shape, raw) each, stacked by rows into one weight (a fused
        projection: q | k | v, gate | up), so that one kernel computes them all."""
        types = [checked_type(*part) for part in parts]
        (name, _, (_, cols), _), type = parts[0], types[0]
        for (other, _, shape, _), t in zip(parts, types):
            if t != type or shape[1] != cols:
                raise QuantError(f"{other}: {t.name} ({shape[0]}, {shape[1]}) cannot be stacked under {name}, "
                                 f"{type.name} with {cols} columns")
        rows, row_words = sum(s[0] for _, _, s, _ in parts), layout(type, 1, cols).row_words
        words = vortx.empty((rows * row_words,), vortx.u32, device)
        at = 0
        for part_name, _, (part_rows, _), raw in parts:
            # padded and uploaded a few MiB of rows at a time: the host holds one chunk's copy, not the matrix's
            raw = raw.reshape(part_rows, -1)
            step = max(1, UPLOAD_CHUNK // raw.shape[1])
            for start in range(0, part_rows, step):
                chunk = raw[start:start + step]
                device.upload(pad_blocks(part_name, type, (len(chunk), cols), chunk), words.buffer,
                              (at + start) * row_words)
            at += part_rows
        return cls("+".join(n for n, _, _, _ in parts), type, (rows, cols), words,
                   sum(int(raw.size) for *_, raw in parts))

    def _check(self, op: str, x: vortx.Tensor, shape: tuple[int, ...], what: str = "x") -> None:
        if x.device is not self.device:
            raise ValueError(f"{self.name}.{op}: {what} is on {x.device.backend.name}, the weight on "
                             f"{self.device.backend.name}")
        if x.shape != shape or x.dtype is not vortx.f32:
            raise ValueError(f"{self.name}.{op}: expected {what}: an f32 tensor of shape {shape}, not {x.dtype.ir} "
                             f"{x.shape}")

    def _out(self, op: str, out: vortx.Tensor | None, shape: tuple[int, ...], add: bool = False,
             at: int | None = None) -> vortx.Tensor:
        """The output: a new tensor of `shape`, or `out`, of that shape or (given `at`) one whose last axis holds
        the columns at .. at + shape[-1]."""
        if out is None:
            if add or at:
                raise ValueError(f"{self.name}.{op}: add and at write into `out`, which is missing")
            return self.device.empty(shape, vortx.f32)
        fits = out.shape == shape if at is None else (out.shape[:-1] == shape[:-1]
                                                       and 0 <= at <= out.shape[-1] - shape[-1])
        if out.device is not self.device or out.dtype is not vortx.f32 or not fits:
            want = shape if at is None else shape[:-1] + (f">= {at + shape[-1]}",)
            raise ValueError(f"{self.name}.{op}: out must be an f32 tensor on {self.device.backend.name} of shape "
                             f"({', '.join(map(str, want))}), not {out.dtype.ir} {out.shape}")
        return out

    def matvec(self, x: vortx.Tensor, out: vortx.Tensor | None = None, *, add: bool = False, at: int = 0,
               norm: vortx.Tensor | None = None, eps: float = 1e-6, gated: bool = False) -> vortx.Tensor:
        """y = W @ x: x (cols,) f32 -> (rows,) f32, or into out[at .. at + rows], added with `add`. `norm` (cols,):
        W @ (rms_norm(x, eps) * norm), the norm in the same kernel; `gated`: W stacks gate over up (rows / 2
        each), and y (rows / 2,) = silu(gate @ h) * (up @ h)."""
        self._check("matvec", x, (self.cols,))
        if gated and (self.rows % 2 or norm is None):
            raise ValueError(f"{self.name}.matvec: gated needs gate over up (an even number of rows, not "
                             f"{self.rows}) and a norm")
        if norm is not None:
            self._check("matvec", norm, (self.cols,), "norm")
        x, norm = from_start(x), norm if norm is None else from_start(norm)
        y = self._out("matvec", out, (self.rows >> gated,), add, at)
        if y.ndim != 1 or not y.is_contiguous() or y.offset:
            raise ValueError(f"{self.name}.matvec: out must be 1-D and start its storage (use `at` for a slice)")
        o = Out(at, y.shape[0], int(add), int(norm is not None), int(gated), float(eps))
        if self.cpu_shaped and norm is None:
            self._cpu_product(x, y, o, 1)
        else:
            groups = -(-(self.rows >> gated) * self.lanes // THREADS)
            vortx.run(self.matvec_kernel, matvec_grid(groups), y, self.words, x, x if norm is None else norm,
                      self.weights, o)
        return y

    def matmul(self, x: vortx.Tensor, out: vortx.Tensor | None = None, *, add: bool = False,
               at: int = 0) -> vortx.Tensor:
        """y = x @ W.T: x (n, cols) f32 -> (n, rows) f32, or into out[:, at .. at + rows], added with `add`; each
        block of W decoded once for 16 rows of x."""
        if x.ndim != 2:
            raise ValueError(f"{self.name}.matmul: expected x of shape (n, {self.cols}), not {x.shape}")
        n = x.shape[0]
        self._check("matmul", x, (n, self.cols))
        x = from_start(x)
        y = self._out("matmul", out, (n, self.rows), add, at)
        if y.ndim != 2 or not y.is_contiguous() or y.offset:
            raise ValueError(f"{self.name}.matmul: out must be 2-D and start its storage (use `at` for columns)")
        o = Out(at, y.shape[1], int(add), 0, 0, 0.0)
        if n and self.cpu_shaped:
            self._cpu_product(x, y, o, n)
        elif n:
            grid = workgroups(-(-self.rows // TILE_R), -(-n // TILE_N))
            vortx.run(self.matmul_kernel, grid, y, self.words, x, self.weights, n, o)
        return y

    def _cpu_product(self, x: vortx.Tensor, y: vortx.Tensor, o: Out, n: int) -> None:
        """matvec_cpu: a CPU device's matvec and matmul, the n tokens along the grid's z."""
        if n > MAX_GRID:
            raise ValueError(f"{self.name}: {n} tokens in one product; at most {MAX_GRID} on a CPU device")
        grid = workgroups(-(-self.rows // (THREADS * CPU_ROWS)), 1, n)
        vortx.run(self.cpu_kernel, grid, y, self.words, x, self.weights, o, n)

    def rows_of(self, ids: vortx.Tensor, out: vortx.Tensor | None = None) -> vortx.Tensor:
        """Embedding gather: ids (n,) u32/i32 -> (n, cols) f32, the rows dequantized (ids past the end give 0)."""
        if ids.ndim != 1 or ids.dtype not in (vortx.u32, vortx.i32):
            raise ValueError(f"{self.name}.rows_of: expected ids of shape (n,) u32 or i32, not {ids.dtype.ir} "
                             f"{ids.shape}")
        if ids.device is not self.device:
            raise ValueError(f"{self.name}.rows_of: ids are on {ids.device.backend.name}, the weight on "
                             f"{self.device.backend.name}")
        n = ids.shape[0]
        ids = from_start(ids)
        if ids.dtype is vortx.i32:
            ids = ids.to(vortx.u32)             # a negative id becomes one past the last row: zeros
        y = self._out("rows_of", out, (n, self.cols))
        if n:
            groups = n * -(-self.cols // GROUP)
            vortx.run(self.rows_kernel, workgroups(-(-groups // 64)), y, self.words, ids, self.weights, n)
        return y

    def dequantize(self) -> np.ndarray:
        """(rows, cols) f32, decoded on the device and read back."""
        step = max(1, GATHER_ROWS // self.cols)          # rows per dispatch, within a grid's 65,535 workgroups
        parts = [self.rows_of(vortx.tensor(np.arange(r, min(r + step, self.rows), dtype=np.uint32), vortx.u32,
                                           self.device)).numpy() for r in range(0, self.rows, step)]
        return np.concatenate(parts)
