"""inferi.tokenizer against llama.cpp's tokenizer test vectors, and its special-token, streaming and error behaviour.

The vocabularies are llama.cpp's `ggml-vocab-*.gguf` test files (MIT, see tests/data/vocab/LICENSE-llama.cpp), kept
xz-compressed (3.3 MB for the four instead of 16 MB) and unpacked once per session. The `.inp`/`.out` files are read
as llama.cpp's test-tokenizer-0 reads them: texts separated by "\\n__ggml_vocab_test__\\n" (nothing stripped), one line
of expected ids per text, tokenized without BOS and without parsing special tokens.
"""

from __future__ import annotations

import functools
import lzma
import tempfile
from pathlib import Path

import numpy as np
import pytest

from inferi.gguf import read_gguf
from inferi.tokenizer import Tokenizer, TokenizerError

VOCAB = Path(__file__).parent / "data" / "vocab"
VOCABS = ("gpt-2", "llama-bpe", "llama-spm", "qwen2")
SEPARATOR = "\n__ggml_vocab_test__\n"


def gguf_metadata(path: Path) -> dict[str, object]:
    with read_gguf(path) as f:
        return f.metadata


@functools.cache
def vocab_metadata(name: str) -> dict[str, object]:
    """The metadata of llama.cpp's ggml-vocab-NAME.gguf (unpacked to a temporary file, read once a session)."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"ggml-vocab-{name}.gguf"
        path.write_bytes(lzma.decompress((VOCAB / f"ggml-vocab-{name}.gguf.xz").read_bytes()))
        return gguf_metadata(path)


@functools.cache
def vocab(name: str) -> Tokenizer:
    return Tokenizer.from_gguf(vocab_metadata(name))


def vectors(name: str) -> list[tuple[str, list[int]]]:
    raw = (VOCAB / f"ggml-vocab-{name}.gguf.inp").read_bytes().decode()
    texts = raw.split(SEPARATOR)
    if texts[-1] == "":  # the file ends with a separator: llama.cpp's reader takes no empty text after it
        texts.pop()
    lines = (VOCAB / f"ggml-vocab-{name}.gguf.out").read_bytes().decode().split("\n")
    if lines[-1] == "":
        lines.pop()
    assert len(texts) == len(lines) == 46
    return [(text, [int(t) for t in line.split()]) for text, line in zip(texts, lines)]


@pytest.mark.parametrize("name", VOCABS)
def test_llama_cpp_vectors_byte_exact(name):
    tok = vocab(name)
    cases = vectors(name)
    failures = [(text, want, got) for text, want in cases if (got := tok.encode(text, add_bos=False)) != want]
    assert not failures, f"{name}: {len(cases) - len(failures)}/{len(cases)} pass; first failures: {failures[:3]}"


@pytest.mark.parametrize("name", VOCABS)
def test_decode_round_trip(name):
    tok = vocab(name)
    for text, ids in vectors(name):
        assert tok.decode(ids) == text


@pytest.mark.parametrize("name", VOCABS)
def test_streaming_decoder_emits_whole_characters(name):
    tok = vocab(name)
    for text, ids in vectors(name):
        stream = tok.decoder()
        pieces = [stream.push(i) for i in ids]
        assert "".join(pieces) + stream.flush() == tok.decode(ids) == text
        assert not any("\ufffd" in p for p in pieces)


def test_streaming_decoder_holds_an_unfinished_character():
    tok = vocab("llama-spm")
    ids = tok.encode("🦙", add_bos=False)  # no token for the llama: four <0xXX> byte tokens after "▁"
    stream = tok.decoder()
    assert [stream.push(i) for i in ids] == ["", "", "", "", "🦙"]
    stream = tok.decoder()
    assert [stream.push(i) for i in ids[:3]] == ["", "", ""]
    assert stream.flush() == "\ufffd"  # cut short: decode's replacement, never half a character


@pytest.mark.parametrize("name, text, special_id", [
    ("qwen2", "<|im_start|>", 151644), ("qwen2", "<|im_end|>", 151645), ("gpt-2", "<|endoftext|>", 50256),
    ("llama-bpe", "<|begin_of_text|>", 128000), ("llama-spm", "</s>", 2),
])
def test_special_tokens_only_from_special_text(name, text, special_id):
    tok = vocab(name)
    plain = tok.encode(f"a {text} b", add_bos=False)
    assert special_id not in plain and tok.decode(plain) == f"a {text} b"
    assert special_id in tok.encode(f"a {text} b", add_bos=False, special=True)
    assert tok.is_special(special_id)


def test_special_encoding_cuts_at_special_tokens():
    tok = vocab("qwen2")
    ids = tok.encode("<|im_start|>user\nHi<|im_end|>\n", special=True)
    assert ids[0] == 151644 and ids.count(151645) == 1
    assert ids[1:ids.index(151645)] == tok.encode("user\nHi")
    assert tok.decode(ids, skip_special=True) == "user\nHi\n"
    assert tok.decode(ids) == "<|im_start|>user\nHi<|im_end|>\n"


@pytest.mark.parametrize("name", VOCABS)
def test_html_like_text_is_plain_text(name):
    tok = vocab(name)
    for special in (False, True):
        ids = tok.encode("<b>bold</b> <i>x</i>", add_bos=False, special=special)
        assert not any(tok.is_special(i) for i in ids)
        assert tok.decode(ids) == "<b>bold</b> <i>x</i>"


def test_spm_space_prefix_and_bos():
    tok = vocab("llama-spm")
    assert tok.add_bos and tok.bos_id == 1 and tok.eos_id == 2
    assert tok.encode("Hello world") == [1, 15043, 3186]  # "▁Hello" "▁world": the space prefix of SentencePiece
    assert tok.decode([1, 15043, 3186], skip_special=True) == "Hello world"
    # after a special token the text starts a new word, as in llama.cpp (and sentencepiece on each piece)
    assert tok.encode("<s>Hello", add_bos=False, special=True) == [1, 15043]


def test_bos_defaults_follow_llama_cpp():
    assert vocab("llama-bpe").add_bos and vocab("llama-bpe").encode("Hi")[0] == 128000  # llama3 pre-tokenizer
    assert not vocab("gpt-2").add_bos and not vocab("qwen2").add_bos
    assert vocab("gpt-2").encode("Hi", add_bos=True)[0] == 50256


def test_end_of_generation_ids():
    assert {151643, 151645} <= vocab("qwen2").eog_ids  # eos <|endoftext|>, and <|im_end|> by its text
    llama3 = vocab("llama-bpe")
    assert llama3.eog_ids == {128001, 128009} and llama3.token_text(128009) == "<|eot_id|>"
    assert vocab("llama-spm").eog_ids == {2}


def test_smollm_pre_tokenizer_isolates_digits():
    """smollm is gpt-2's regex after a split of every digit (llama.cpp's STARCODER group): on gpt-2's vocabulary it
    matches gpt-2's expected ids on texts without digits, and cuts numbers into single digits."""
    tok = Tokenizer.from_gguf({**vocab_metadata("gpt-2"), "tokenizer.ggml.pre": "smollm"})
    for text, want in vectors("gpt-2"):
        if not any(c.isnumeric() for c in text):
            assert tok.encode(text) == want, text
    ids = tok.encode("year 2024")
    assert [tok.decode([i]) for i in ids] == ["year", " ", "2", "0", "2", "4"]
    assert vocab("gpt-2").encode(" 2024") != tok.encode(" 2024")


def test_user_text_with_markup_round_trips():
    """(Not "▁": SentencePiece reads it as the space it stands for, in llama.cpp too.)"""
    text = "<|im_start|>system\n</s><unk> <0x41> [PAD151646]\n\t é 日本語 🦙"
    for name in VOCABS:
        tok = vocab(name)
        assert tok.decode(tok.encode(text, add_bos=False)) == text, name


def test_bad_metadata_is_named():
    good = vocab_metadata("gpt-2")
    with pytest.raises(TokenizerError, match="'tokenizer.ggml.pre' = 'no-such-pre'.*known: .*smollm"):
        Tokenizer.from_gguf({**good, "tokenizer.ggml.pre": "no-such-pre"})
    with pytest.raises(TokenizerError, match="'tokenizer.ggml.model' = 'bert'"):
        Tokenizer.from_gguf({**good, "tokenizer.ggml.model": "bert"})
    with pytest.raises(TokenizerError, match="no 'tokenizer.ggml.merges'"):
        Tokenizer.from_gguf({k: v for k, v in good.items() if k != "tokenizer.ggml.merges"})
    with pytest.raises(TokenizerError, match="'tokenizer.ggml.token_type' has 3 entries"):
        Tokenizer.from_gguf({**good, "tokenizer.ggml.token_type": np.ones(3, np.int32)})
    with pytest.raises(TokenizerError, match="'tokenizer.ggml.eos_token_id' = 50257 is not a token id"):
        Tokenizer.from_gguf({**good, "tokenizer.ggml.eos_token_id": 50257})
    with pytest.raises(TokenizerError, match=r"'tokenizer.ggml.merges'\[1\] = 'x' is not two tokens"):
        Tokenizer.from_gguf({**good, "tokenizer.ggml.merges": ["Ġ t", "x"]})
    spm = vocab_metadata("llama-spm")
    with pytest.raises(TokenizerError, match="no 'tokenizer.ggml.scores'"):
        Tokenizer.from_gguf({k: v for k, v in spm.items() if k != "tokenizer.ggml.scores"})
    with pytest.raises(TokenizerError, match="token id 50257 is outside the vocabulary"):
        vocab("gpt-2").decode([50257])
