"""Block decoders of the GGUF weight formats, one helper per format: `decode_<fmt>(w, wb, j0, i)` is element
j0 + i of the block that starts at word `wb` of `w`, dequantized to f32, where j0 is a multiple of 8 and i a
compile-time 0 .. 7. The kernels of `quant.py` take one as a compile-time argument and call it for the eight i of a
group: every word that the group needs is then one expression, read once (the compilers merge the repeated
loads), instead of three loads an element.

Layout (what `inferi/quant.py` uploads): every block padded to a whole number of u32 words, so that a block and a
row start on a word. Q4_0, Q5_0 and Q8_0 get two zero bytes after their f16 scale (their quants then start on a
word); the other formats are whole words already. F32, F16 and BF16 travel in blocks of 8 values (8, 4 and 4
words), a row padded with zeros to whole blocks. Byte k of a word is bits 8k .. 8k+7 (little-endian, as in the
file).
"""

from khal_runtime.lang import Buf, Const, bitcast, extract_bits, f32, half_to_f32, i32, u32


def half_at(w: Buf[u32], wb: u32, o: Const[u32]) -> f32:
    """The f16 at byte `o` (even) of the block, as f32."""
    return half_to_f32((w[wb + o // 4] >> ((o & 2) * 8)) & 0xFFFF)


def byte_of(w: Buf[u32], at: u32, i: Const[u32]) -> u32:
    """Byte i of the eight consecutive bytes that begin at word `at`."""
    return (w[at + i // 4] >> ((i % 4) * 8)) & 0xFF


def nibble_32(w: Buf[u32], wb: u32, qs: Const[u32], j0: u32, i: Const[u32]) -> u32:
    """ggml's 32-value nibble order, the quants at word qs: element j < 16 is the low nibble of byte j, j >= 16 the
    high one of byte j - 16 (so the eight elements of a group lie in two consecutive words)."""
    return (byte_of(w, wb + qs + ((j0 & 15) >> 2), i) >> ((j0 >> 4) * 4)) & 0xF


def decode_f32(w: Buf[u32], wb: u32, j0: u32, i: Const[u32]) -> f32:
    return bitcast(f32, w[wb + i])


def decode_f16(w: Buf[u32], wb: u32, j0: u32, i: Const[u32]) -> f32:
    return half_to_f32((w[wb + i // 2] >> ((i % 2) * 16)) & 0xFFFF)


def decode_bf16(w: Buf[u32], wb: u32, j0: u32, i: Const[u32]) -> f32:
    return bitcast(f32, ((w[wb + i // 2] >> ((i % 2) * 16)) & 0xFFFF) << 16)


def decode_q4_0(w: Buf[u32], wb: u32, j0: u32, i: Const[u32]) -> f32:
    return half_at(w, wb, 0) * f32(i32(nibble_32(w, wb, 1, j0, i)) - 8)


def decode_q4_1(w: Buf[u32], wb: u32, j0: u32, i: Const[u32]) -> f32:
    return half_at(w, wb, 0) * f32(nibble_32(w, wb, 1, j0, i)) + half_at(w, wb, 2)


def q5_high(w: Buf[u32], wb: u32, j0: u32, i: Const[u32]) -> u32:
    """The fifth bit of element j0 + i of a Q5_0/Q5_1 block (qh, the word after the scales)."""
    return ((w[wb + 1] >> (j0 + i)) & 1) << 4


def decode_q5_0(w: Buf[u32], wb: u32, j0: u32, i: Const[u32]) -> f32:
    q = nibble_32(w, wb, 2, j0, i) | q5_high(w, wb, j0, i)
    return half_at(w, wb, 0) * f32(i32(q) - 16)


def decode_q5_1(w: Buf[u32], wb: u32, j0: u32, i: Const[u32]) -> f32:
    q = nibble_32(w, wb, 2, j0, i) | q5_high(w, wb, j0, i)
    return half_at(w, wb, 0) * f32(q) + half_at(w, wb, 2)


def decode_q8_0(w: Buf[u32], wb: u32, j0: u32, i: Const[u32]) -> f32:
    q = extract_bits(i32(w[wb + 1 + (j0 >> 2) + i // 4]), u32((i % 4) * 8), u32(8))
    return half_at(w, wb, 0) * f32(q)


def decode_q2_k(w: Buf[u32], wb: u32, j0: u32, i: Const[u32]) -> f32:
    # scales[16] at word 0, qs[64] at word 4, d and dmin at word 20; element j: scale j // 16, 2 bits of
    # qs[32 (j // 128) + j % 32] at shift 2 ((j % 128) // 32)
    sc = (w[wb + (j0 >> 6)] >> (((j0 >> 4) & 3) * 8)) & 0xFF
    q = (byte_of(w, wb + 4 + (j0 >> 7) * 8 + ((j0 & 31) >> 2), i) >> (((j0 >> 5) & 3) * 2)) & 3
    return half_at(w, wb, 80) * f32(sc & 0xF) * f32(q) - half_at(w, wb, 82) * f32(sc >> 4)


def decode_q3_k(w: Buf[u32], wb: u32, j0: u32, i: Const[u32]) -> f32:
    # hmask[32] at word 0, qs[64] at word 8, scales[12] at byte 96 (16 six-bit scales), d at byte 108
    s = j0 >> 4
    low = (w[wb + 24 + ((s & 7) >> 2)] >> ((s & 3) * 8 + (s >> 3) * 4)) & 0xF
    high = (w[wb + 26] >> ((s & 3) * 8 + (s >> 2) * 2)) & 3
    sc = i32(low | (high << 4)) - 32
    group = ((j0 >> 7) * 4) + ((j0 >> 5) & 3)
    q = i32((byte_of(w, wb + 8 + (j0 >> 7) * 8 + ((j0 & 31) >> 2), i) >> (((j0 >> 5) & 3) * 2)) & 3)
    hbit = (byte_of(w, wb + ((j0 & 31) >> 2), i) >> group) & 1
    return half_at(w, wb, 108) * f32(sc) * f32(q - 4 * i32(1 - hbit))


def scale_min_k4(w: Buf[u32], wb: u32, s: u32, want_min: Const[bool]) -> f32:
    """ggml's get_scale_min_k4: the six-bit scale (or minimum) s of the 12 bytes at byte 4 of a Q4_K/Q5_K block
    (words 1 to 3)."""
    b = (s & 3) * 8
    first = (w[wb + 1] >> b) & 0xFF          # bytes 4 + s: scales of 0 .. 3
    second = (w[wb + 2] >> b) & 0xFF         # bytes 8 + s: minima of 0 .. 3
    third = (w[wb + 3] >> b) & 0xFF          # bytes 12 + s - 4: the low nibbles of 4 .. 7
    if want_min:
        v = second & 63 if s < 4 else (third >> 4) | ((second >> 6) << 4)
    else:
        v = first & 63 if s < 4 else (third & 0xF) | ((first >> 6) << 4)
    return f32(v)


def k4_value(w: Buf[u32], wb: u32, j0: u32, q: u32) -> f32:
    s = j0 >> 5
    return half_at(w, wb, 0) * scale_min_k4(w, wb, s, False) * f32(q) - half_at(w, wb, 2) * scale_min_k4(w, wb, s, True)


def decode_q4_k(w: Buf[u32], wb: u32, j0: u32, i: Const[u32]) -> f32:
    # d, dmin, scales[12], qs[128] at word 4: groups of 64 values, the low nibbles of 32 bytes then the high ones
    q = (byte_of(w, wb + 4 + (j0 >> 6) * 8 + ((j0 & 31) >> 2), i) >> (((j0 >> 5) & 1) * 4)) & 0xF
    return k4_value(w, wb, j0, q)


def decode_q5_k(w: Buf[u32], wb: u32, j0: u32, i: Const[u32]) -> f32:
    # d, dmin, scales[12], qh[32] at word 4, qs[128] at word 12
    q = (byte_of(w, wb + 12 + (j0 >> 6) * 8 + ((j0 & 31) >> 2), i) >> (((j0 >> 5) & 1) * 4)) & 0xF
    q = q | (((byte_of(w, wb + 4 + ((j0 & 31) >> 2), i) >> (j0 >> 5)) & 1) << 4)
    return k4_value(w, wb, j0, q)


def decode_q6_k(w: Buf[u32], wb: u32, j0: u32, i: Const[u32]) -> f32:
    # ql[128] at word 0, qh[64] at word 32, scales[16] (int8) at word 48, d at byte 208
    n = j0 >> 7
    quarter = (j0 >> 5) & 3
    at = (j0 & 31) >> 2
    low = (byte_of(w, wb + n * 16 + (quarter & 1) * 8 + at, i) >> ((quarter >> 1) * 4)) & 0xF
    high = (byte_of(w, wb + 32 + n * 8 + at, i) >> (quarter * 2)) & 3
    sc = extract_bits(i32(w[wb + 48 + (j0 >> 6)]), ((j0 >> 4) & 3) * 8, u32(8))
    return half_at(w, wb, 208) * f32(sc) * f32(i32(low | (high << 4)) - 32)
