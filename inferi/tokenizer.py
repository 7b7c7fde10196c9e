"""Tokenizers built from a GGUF file's metadata on the `tokenizers` library, byte-exact with llama.cpp.

Two vocabulary kinds (`tokenizer.ggml.model`):
- `gpt2`: byte-level BPE with the GGUF merges, split first by the regexes of the pre-tokenizer that
  `tokenizer.ggml.pre` names (llama.cpp's `llm_tokenizer_bpe` table; several regexes apply one after the other, each
  splitting the pieces of the previous one). An unknown pre-tokenizer is an error naming it: guessing one gives
  silently different token ids.
- `llama`: SentencePiece BPE. The GGUF holds scores, not merges; the merges are derived from them (a pair merges
  when its concatenation is a token, higher score first), which is how llama.cpp's `llm_tokenizer_spm` merges;
  `<0xXX>` byte tokens take characters outside the vocabulary; spaces become `▁`, with one prepended to the text and
  after each special token (`tokenizer.ggml.add_space_prefix`, default on).

Token types (`tokenizer.ggml.token_type`, llama.cpp's numbering): control and unknown tokens are *special*: matched
in the text only with `encode(special=True)` (chat templates), otherwise `<|im_start|>` is encoded as the plain
characters it is made of. `encode(special=True)` cuts the text at special tokens first (`split_special`) and hands
`tokenizers` only the runs between them, so the backend itself never matches one. User-defined tokens are matched in
any text, as llama.cpp and transformers do.

Decoding does not go through `tokenizers`: each id maps to its bytes (byte-level characters mapped back, `▁` to a
space, `<0xXX>` to the byte, added tokens as their text), and one incremental UTF-8 decoder turns the byte stream into
text, so `decode` and the streaming `decoder()` are one code path and a character split over tokens is never emitted
in halves (`StreamDecoder.flush()` ends a stream: a cut-off character becomes U+FFFD, as in `decode`). SentencePiece
loses the space it prepended, once, before the first non-special token. Tokenization spaces are not "cleaned up"
(llama.cpp's `clean_spaces`): text round-trips exactly.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping, Sequence

import tokenizers
from tokenizers import AddedToken, Regex, models, normalizers, pre_tokenizers

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
SPECIAL_TYPES = (CONTROL, UNKNOWN)  # matched only when encoding with special=True

_CONTRACTIONS = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)"
_LLAMA3 = (_CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2 = _CONTRACTIONS + r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
_STARCODER = (r"\p{N}", _GPT2)
_FALCON = (r"[\p{P}\$\+<=>\^~\|`]+", _GPT2, r"[0-9][0-9][0-9]")

# tokenizer.ggml.pre -> the regexes of llama.cpp's pre-tokenizer of that name (llama-vocab.cpp)
PRE_TOKENIZERS: dict[str, tuple[str, ...]] = {
    **dict.fromkeys(("llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2",
                     "dbrx", "smaug-bpe", "glm4", "chatglm-bpe"), (_LLAMA3,)),
    **dict.fromkeys(("qwen2", "deepseek-r1-qwen", "kormo", "megrez", "stablelm2", "hunyuan", "grok-2"), (_QWEN2,)),
    **dict.fromkeys(("gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0",
                     "mellum", "jina-v1-en", "jina-v2-code", "roberta-bpe", "mpt", "olmo", "jais", "exaone4",
                     "trillion", "granite-docling"), (_GPT2,)),
    **dict.fromkeys(("smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"), _STARCODER),
    "falcon": _FALCON,
}
# llama.cpp's LLAMA3 group: a word already in the vocabulary skips the merges, and BOS is added unless the file says
_LLAMA3_LIKE = frozenset(("llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2"))
# texts of end-of-generation tokens (llama.cpp's list), beside tokenizer.ggml.{eos,eot,eom}_token_id
_EOG_TEXTS = frozenset(("<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<end_of_turn>",
                        "<|endoftext|>", "<|eom_id|>", "<EOT>", "_<EOT>", "<|end_of_text|>", "<end_of_utterance>"))


class TokenizerError(ValueError):
    """A GGUF tokenizer block that cannot be used, or an id outside the vocabulary; the message names the key."""


def _byte_level_table() -> dict[str, int]:
    """GPT-2's byte-level alphabet, character -> byte: printable bytes stand for themselves, the rest from U+0100."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    table = {chr(b): b for b in printable}
    extra = 0
    for b in range(256):
        if b not in printable:
            table[chr(256 + extra)] = b
            extra += 1
    return table


_BYTE_LEVEL = _byte_level_table()


def _byte_level_bytes(text: str) -> bytes:
    try:
        return bytes(_BYTE_LEVEL[c] for c in text)
    except KeyError:  # not a byte-level token (a malformed vocabulary): its own text is the best rendering
        return text.encode()


def _spm_bytes(text: str, token_type: int) -> bytes:
    if token_type == BYTE and len(text) == 6 and text.startswith("<0x") and text.endswith(">"):
        return bytes([int(text[3:5], 16)])
    return text.replace("\u2581", " ").encode()


def _array(metadata: Mapping[str, object], key: str, n: int | None) -> list:
    if key not in metadata:
        raise TokenizerError(f"GGUF metadata has no {key!r}")
    values = metadata[key]
    values = values.tolist() if hasattr(values, "tolist") else list(values)  # numpy arrays from the reader
    if n is not None and len(values) != n:
        raise TokenizerError(f"GGUF metadata {key!r} has {len(values)} entries, tokenizer.ggml.tokens has {n}")
    return values


def _token_id(metadata: Mapping[str, object], key: str, vocab_size: int) -> int | None:
    value = metadata.get(key)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value < vocab_size:
        raise TokenizerError(f"GGUF metadata {key!r} = {value!r} is not a token id below the vocabulary size "
                             f"{vocab_size}")
    return value


def _spm_merges(tokens: list[str], scores: list[float]) -> list[tuple[str, str]]:
    """Merges equivalent to SentencePiece BPE: every split of a token into two tokens, higher merged score first."""
    ids = {t: i for i, t in enumerate(tokens)}
    ranked = []
    for merged_id, merged in enumerate(tokens):
        for cut in range(1, len(merged)):
            left, right = merged[:cut], merged[cut:]
            if left in ids and right in ids:
                ranked.append((-scores[merged_id], ids[left], ids[right], left, right))
    ranked.sort()
    return [(left, right) for *_, left, right in ranked]


def _bpe(key: str, vocab: dict[str, int], merges: list[tuple[str, str]], **options) -> models.BPE:
    try:
        return models.BPE(vocab, merges, **options)
    except Exception as e:  # the library's own error type, a bare Exception ("Token `x` out of vocabulary")
        raise TokenizerError(f"GGUF metadata {key!r} does not make a BPE vocabulary: {e}") from None


def _byte_level_model(metadata: Mapping[str, object], tokens: list[str]) -> tuple[tokenizers.Tokenizer, str]:
    pre = metadata.get("tokenizer.ggml.pre", "default")
    if pre not in PRE_TOKENIZERS:
        raise TokenizerError(f"GGUF metadata 'tokenizer.ggml.pre' = {pre!r} names a pre-tokenizer this tokenizer "
                             f"does not know (known: {', '.join(sorted(PRE_TOKENIZERS))})")
    merges = []
    for i, merge in enumerate(_array(metadata, "tokenizer.ggml.merges", None)):
        left, sep, right = merge.partition(" ")
        if not sep:
            raise TokenizerError(f"GGUF metadata 'tokenizer.ggml.merges'[{i}] = {merge!r} is not two tokens")
        merges.append((left, right))
    vocab = {t: i for i, t in enumerate(tokens)}
    backend = tokenizers.Tokenizer(_bpe("tokenizer.ggml.merges", vocab, merges, ignore_merges=pre in _LLAMA3_LIKE))
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(regex), behavior="isolated") for regex in PRE_TOKENIZERS[pre]]
        + [pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    return backend, pre


def _spm_model(metadata: Mapping[str, object], tokens: list[str]) -> tuple[tokenizers.Tokenizer, bool]:
    scores = [float(s) for s in _array(metadata, "tokenizer.ggml.scores", len(tokens))]
    vocab = {t: i for i, t in enumerate(tokens)}
    unk_id = _token_id(metadata, "tokenizer.ggml.unknown_token_id", len(tokens))
    backend = tokenizers.Tokenizer(_bpe("tokenizer.ggml.tokens", vocab, _spm_merges(tokens, scores),
                                        unk_token=None if unk_id is None else tokens[unk_id], byte_fallback=True,
                                        fuse_unk=True))
    add_space_prefix = bool(metadata.get("tokenizer.ggml.add_space_prefix", True))
    replace = normalizers.Replace(" ", "\u2581")
    backend.normalizer = (normalizers.Sequence([normalizers.Prepend("\u2581"), replace]) if add_space_prefix
                          else replace)
    return backend, add_space_prefix


class StreamDecoder:
    """Turns token ids into text one at a time; `push` returns only whole characters (the rest waits)."""

    def __init__(self, tokenizer: Tokenizer, skip_special: bool):
        self._tokenizer = tokenizer
        self._skip_special = skip_special
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._strip_space = tokenizer._strip_leading_space  # SentencePiece: the prepended space of the first word

    def push(self, token_id: int) -> str:
        piece = self._tokenizer._piece(token_id)
        if self._tokenizer._types[token_id] in SPECIAL_TYPES:
            if self._skip_special:
                return ""
        elif self._strip_space:
            self._strip_space = False
            piece = piece.removeprefix(b" ")
        return self._utf8.decode(piece)

    def flush(self) -> str:
        """The end of the stream: an unfinished UTF-8 sequence left over becomes U+FFFD."""
        return self._utf8.decode(b"", final=True)


class Tokenizer:
    """A GGUF vocabulary: `encode` text to ids, `decode` ids to text, `decoder()` for streaming."""

    def __init__(self, backend: tokenizers.Tokenizer, tokens: list[str], types: list[int], *, byte_level: bool,
                 strip_leading_space: bool, bos_id: int | None, eos_id: int | None, eog_ids: frozenset[int],
                 add_bos: bool):
        self._backend = backend
        self._tokens = tokens
        self._types = types
        self._byte_level = byte_level
        self._strip_leading_space = strip_leading_space
        self._pieces: list[bytes | None] = [None] * len(tokens)  # filled on first use: decoding is token by token
        self._special_ids = [i for i, t in enumerate(types) if t in SPECIAL_TYPES]
        # first id of each special text (a vocabulary may repeat one); the pattern is built on first use
        self._special_by_text = {}
        for i in reversed(self._special_ids):
            self._special_by_text[tokens[i]] = i
        self._special_pattern: re.Pattern[str] | None = None
        # special tokens are cut out of the text by split_special, before `tokenizers` sees it: to the backend, the
        # text of a special token is plain text
        backend.encode_special_tokens = True
        self.vocab_size = len(tokens)
        self.bos_id, self.eos_id, self.eog_ids, self.add_bos = bos_id, eos_id, eog_ids, add_bos

    @classmethod
    def from_gguf(cls, metadata: Mapping[str, object]) -> Tokenizer:
        """The tokenizer that a GGUF file's `tokenizer.ggml.*` metadata describes."""
        kind = metadata.get("tokenizer.ggml.model")
        tokens = _array(metadata, "tokenizer.ggml.tokens", None)
        if not tokens:
            raise TokenizerError("GGUF metadata 'tokenizer.ggml.tokens' is empty")
        if "tokenizer.ggml.token_type" in metadata:
            types = [int(t) for t in _array(metadata, "tokenizer.ggml.token_type", len(tokens))]
        else:
            types = [NORMAL] * len(tokens)
        if kind == "gpt2":
            backend, pre = _byte_level_model(metadata, tokens)
            default_add_bos, strip_space = pre in _LLAMA3_LIKE, False
        elif kind == "llama":
            backend, strip_space = _spm_model(metadata, tokens)
            default_add_bos = True
        else:
            raise TokenizerError(f"GGUF metadata 'tokenizer.ggml.model' = {kind!r} is not a supported tokenizer "
                                 f"(supported: 'gpt2' byte-level BPE, 'llama' SentencePiece)")
        backend.add_tokens([AddedToken(tokens[i], special=types[i] in SPECIAL_TYPES, normalized=False)
                            for i in range(len(tokens)) if types[i] in (*SPECIAL_TYPES, USER_DEFINED)])

        bos_id = _token_id(metadata, "tokenizer.ggml.bos_token_id", len(tokens))
        eos_id = _token_id(metadata, "tokenizer.ggml.eos_token_id", len(tokens))
        add_bos = bool(metadata.get("tokenizer.ggml.add_bos_token", default_add_bos))
        if add_bos and bos_id is None:
            if "tokenizer.ggml.add_bos_token" in metadata:
                raise TokenizerError("GGUF metadata 'tokenizer.ggml.add_bos_token' is true but there is no "
                                     "'tokenizer.ggml.bos_token_id'")
            add_bos = False
        eog = {i for i in (eos_id, *(_token_id(metadata, f"tokenizer.ggml.{k}_token_id", len(tokens))
                                     for k in ("eot", "eom"))) if i is not None}
        eog.update(i for i, t in enumerate(tokens) if t in _EOG_TEXTS and types[i] in (CONTROL, USER_DEFINED))
        return cls(backend, tokens, types, byte_level=kind == "gpt2", strip_leading_space=strip_space,
                   bos_id=bos_id, eos_id=eos_id, eog_ids=frozenset(eog), add_bos=add_bos)

    def encode(self, text: str, *, add_bos: bool | None = None, special: bool = False) -> list[int]:
        """Token ids of `text`; `special=True` matches control tokens written in it (templates, never user text);
        `add_bos` (default: the vocabulary's `add_bos`) puts the BOS id first."""
        ids = [self.bos_id] if self._wants_bos(add_bos) else []
        for run in self.split_special(text) if special else [text]:
            if isinstance(run, int):
                ids.append(run)
            else:
                ids.extend(self._backend.encode(run, add_special_tokens=False).ids)
        return ids

    def split_special(self, text: str) -> list[str | int]:
        """`text` cut at the special tokens written in it: plain-text runs and special ids, in order (leftmost,
        longest match first, as `tokenizers` matches added tokens)."""
        if self._special_pattern is None:
            texts = sorted({self._tokens[i] for i in self._special_ids}, key=len, reverse=True)
            self._special_pattern = re.compile("|".join(map(re.escape, texts))) if texts else re.compile(r"(?!)")
        runs: list[str | int] = []
        start = 0
        for match in self._special_pattern.finditer(text):
            if match.start() > start:
                runs.append(text[start:match.start()])
            runs.append(self._special_by_text[match.group()])
            start = match.end()
        if start < len(text):
            runs.append(text[start:])
        return runs

    def _wants_bos(self, add_bos: bool | None) -> bool:
        if not (self.add_bos if add_bos is None else add_bos):
            return False
        if self.bos_id is None:
            raise TokenizerError("add_bos: this vocabulary has no BOS token (tokenizer.ggml.bos_token_id)")
        return True

    def decode(self, ids: Sequence[int], *, skip_special: bool = False) -> str:
        """The text of `ids`; `skip_special` leaves out control and unknown tokens (BOS, <|im_end|>, ...)."""
        stream = self.decoder(skip_special=skip_special)
        return "".join([stream.push(i) for i in ids]) + stream.flush()

    def decoder(self, *, skip_special: bool = False) -> StreamDecoder:
        """A streaming decoder: `.push(id)` returns the text completed by that token."""
        return StreamDecoder(self, skip_special)

    def is_special(self, token_id: int) -> bool:
        """A control or unknown token (matched in text only with `encode(special=True)`)."""
        return self._types[self._check(token_id)] in SPECIAL_TYPES

    def token_text(self, token_id: int) -> str:
        """The token as the vocabulary spells it (byte-level or `▁` form)."""
        return self._tokens[self._check(token_id)]

    def _check(self, token_id: int) -> int:
        if not 0 <= token_id < self.vocab_size:
            raise TokenizerError(f"token id {token_id} is outside the vocabulary (size {self.vocab_size})")
        return token_id

    def _piece(self, token_id: int) -> bytes:
        piece = self._pieces[self._check(token_id)]
        if piece is None:
            text, kind = self._tokens[token_id], self._types[token_id]
            if kind in (*SPECIAL_TYPES, USER_DEFINED):
                piece = text.encode()
            elif self._byte_level:
                piece = _byte_level_bytes(text)
            else:
                piece = _spm_bytes(text, kind)
            self._pieces[token_id] = piece
        return piece
