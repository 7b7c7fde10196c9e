"""Unpacking packed u32 words, the way quantized weights travel: 4-bit nibbles, bytes and half pairs."""

from khal_runtime.lang import Buf, MutBuf, extract_bits, f32, global_id, i32, kernel, static_range, u32, unpack_half2x16


@kernel(workgroup_size=(64,))
def unpack_nibbles(out: MutBuf[f32], words: Buf[u32], scale: f32):
    """Each word holds eight unsigned 4-bit values; out = (q - 8) * scale."""
    w = global_id().x
    if w < len(words):
        word = words[w]
        for k in static_range(8):
            q = (word >> (4 * k)) & 0xF
            out[w * 8 + k] = f32(i32(q) - 8) * scale


@kernel(workgroup_size=(64,))
def unpack_signed_bytes(out: MutBuf[i32], words: Buf[u32]):
    """Each word holds four signed bytes, sign-extended with extract_bits."""
    w = global_id().x
    if w < len(words):
        signed = i32(words[w])
        for k in static_range(4):
            out[w * 4 + k] = extract_bits(signed, u32(8 * k), u32(8))


@kernel(workgroup_size=(64,))
def unpack_halves(out: MutBuf[f32], words: Buf[u32]):
    """Each word holds two IEEE halves, low half first."""
    w = global_id().x
    if w < len(words):
        word = words[w]
        lo, hi = unpack_half2x16(word)
        out[2 * w] = lo
        out[2 * w + 1] = hi
