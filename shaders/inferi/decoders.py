"""Block decoders of the GGUF weight formats, one helper per format: `decode_<fmt>(w, wb, j)` is element j of the
block that starts at word `wb` of `w`, dequantized to f32. The kernels of `quant.py` take one as a compile-time
argument.

Layout (what `inferi/quant.py` uploads): every block padded to a whole number of u32 words, so that a block and a
row start on a word. Q4_0, Q5_0 and Q8_0 get two zero bytes after their f16 scale (their quants then start on a
word); the other formats are whole words already (F16 and BF16 rows: a zero half appended to an odd row). Byte k
of a word is bits 8k .. 8k+7 (little-endian, as in the file).
"""

from khal_runtime.lang import Buf, bitcast, f32, half_to_f32, i32, u32


def byte_at(w: Buf[u32], wb: u32, o: u32) -> u32:
    """Byte `o` of the block at word `wb`."""
    return (w[wb + (o >> 2)] >> ((o & 3) * 8)) & 0xFF


def half_at(w: Buf[u32], wb: u32, o: u32) -> f32:
    """The f16 at byte `o` (even) of the block, as f32."""
    return half_to_f32((w[wb + (o >> 2)] >> ((o & 2) * 8)) & 0xFFFF)


def nibble(w: Buf[u32], wb: u32, qs: u32, j: u32) -> u32:
    """ggml's 32-value nibble order: element j < 16 is the low nibble of byte qs + j, j >= 16 the high one of
    byte qs + j - 16."""
    return (byte_at(w, wb, qs + (j & 15)) >> ((j >> 4) * 4)) & 0xF


def decode_f32(w: Buf[u32], wb: u32, j: u32) -> f32:
    return bitcast(f32, w[wb])


def decode_f16(w: Buf[u32], wb: u32, j: u32) -> f32:
    return half_at(w, wb, j * 2)


def decode_bf16(w: Buf[u32], wb: u32, j: u32) -> f32:
    return bitcast(f32, ((w[wb] >> (j * 16)) & 0xFFFF) << 16)


def decode_q4_0(w: Buf[u32], wb: u32, j: u32) -> f32:
    return half_at(w, wb, 0) * f32(i32(nibble(w, wb, 4, j)) - 8)


def decode_q4_1(w: Buf[u32], wb: u32, j: u32) -> f32:
    return half_at(w, wb, 0) * f32(nibble(w, wb, 4, j)) + half_at(w, wb, 2)


def decode_q5_0(w: Buf[u32], wb: u32, j: u32) -> f32:
    q = nibble(w, wb, 8, j) | (((w[wb + 1] >> j) & 1) << 4)
    return half_at(w, wb, 0) * f32(i32(q) - 16)


def decode_q5_1(w: Buf[u32], wb: u32, j: u32) -> f32:
    q = nibble(w, wb, 8, j) | (((w[wb + 1] >> j) & 1) << 4)
    return half_at(w, wb, 0) * f32(q) + half_at(w, wb, 2)


def decode_q8_0(w: Buf[u32], wb: u32, j: u32) -> f32:
    q = i32(byte_at(w, wb, 4 + j) << 24) >> 24
    return half_at(w, wb, 0) * f32(q)


def decode_q2_k(w: Buf[u32], wb: u32, j: u32) -> f32:
    # scales[16] at 0, qs[64] at 16, d at 80, dmin at 82; element j: scale j // 16, 2 bits of qs[32 (j // 128) +
    # j % 32] at shift 2 ((j % 128) // 32)
    sc = byte_at(w, wb, j >> 4)
    q = (byte_at(w, wb, 16 + (j >> 7) * 32 + (j & 31)) >> (((j >> 5) & 3) * 2)) & 3
    return half_at(w, wb, 80) * f32(sc & 0xF) * f32(q) - half_at(w, wb, 82) * f32(sc >> 4)


def decode_q3_k(w: Buf[u32], wb: u32, j: u32) -> f32:
    # hmask[32] at 0, qs[64] at 32, scales[12] at 96 (16 six-bit scales), d at 108
    s = j >> 4
    low = (byte_at(w, wb, 96 + (s & 7)) >> ((s >> 3) * 4)) & 0xF
    high = (byte_at(w, wb, 104 + (s & 3)) >> ((s >> 2) * 2)) & 3
    sc = i32(low | (high << 4)) - 32
    group = ((j >> 7) * 4) + ((j >> 5) & 3)
    q = i32((byte_at(w, wb, 32 + (j >> 7) * 32 + (j & 31)) >> (((j >> 5) & 3) * 2)) & 3)
    hbit = (byte_at(w, wb, j & 31) >> group) & 1
    if hbit == 0:
        q -= 4
    return half_at(w, wb, 108) * f32(sc) * f32(q)


def scale_min_k4(w: Buf[u32], wb: u32, s: u32, want_min: bool) -> f32:
    """ggml's get_scale_min_k4: the six-bit scale (or minimum) s of the 12 bytes at byte 4 of a Q4_K/Q5_K block."""
    if s < 4:
        v = byte_at(w, wb, 4 + s + (u32(4) if want_min else u32(0))) & 63
    elif want_min:
        v = (byte_at(w, wb, 4 + s + 4) >> 4) | ((byte_at(w, wb, 4 + s) >> 6) << 4)
    else:
        v = (byte_at(w, wb, 4 + s + 4) & 0xF) | ((byte_at(w, wb, 4 + s - 4) >> 6) << 4)
    return f32(v)


def k4_value(w: Buf[u32], wb: u32, j: u32, q: u32) -> f32:
    s = j >> 5
    return half_at(w, wb, 0) * scale_min_k4(w, wb, s, False) * f32(q) - half_at(w, wb, 2) * scale_min_k4(w, wb, s, True)


def decode_q4_k(w: Buf[u32], wb: u32, j: u32) -> f32:
    # d, dmin, scales[12], qs[128] at 16: groups of 64 values, the low nibbles of 32 bytes then the high ones
    q = (byte_at(w, wb, 16 + (j >> 6) * 32 + (j & 31)) >> (((j >> 5) & 1) * 4)) & 0xF
    return k4_value(w, wb, j, q)


def decode_q5_k(w: Buf[u32], wb: u32, j: u32) -> f32:
    # d, dmin, scales[12], qh[32] at 16, qs[128] at 48
    q = (byte_at(w, wb, 48 + (j >> 6) * 32 + (j & 31)) >> (((j >> 5) & 1) * 4)) & 0xF
    q = q | (((byte_at(w, wb, 16 + (j & 31)) >> (j >> 5)) & 1) << 4)
    return k4_value(w, wb, j, q)


def decode_q6_k(w: Buf[u32], wb: u32, j: u32) -> f32:
    # ql[128] at 0, qh[64] at 128, scales[16] (int8) at 192, d at 208
    n = j >> 7
    quarter = (j >> 5) & 3
    low = (byte_at(w, wb, n * 64 + (j & 31) + (quarter & 1) * 32) >> ((quarter >> 1) * 4)) & 0xF
    high = (byte_at(w, wb, 128 + n * 32 + (j & 31)) >> (quarter * 2)) & 3
    sc = i32(byte_at(w, wb, 192 + (j >> 4)) << 24) >> 24
    return half_at(w, wb, 208) * f32(sc) * f32(i32(low | (high << 4)) - 32)
