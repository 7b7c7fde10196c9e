"""A decoder model's hyperparameters, read from GGUF metadata (the `{arch}.*` keys llama.cpp's converter writes).

One `ModelConfig` covers the decoder family that inferi runs: the Llama family (SmolLM2, TinyLlama, Llama 2 and 3),
Qwen2 and Qwen3. They differ in a few flags, which the model code reads instead of the architecture's name:

| arch | RoPE pairing | q/k/v biases | q/k RMS norms | head size |
| --- | --- | --- | --- | --- |
| llama | adjacent pairs (the converter permuted q/k rows) | no | no | embedding / heads |
| qwen2 | NEOX (first half with second half) | yes | no | embedding / heads |
| qwen3 | NEOX | no | yes | `attention.key_length` |

Biases and norms are in fact read from which tensors the file has (`has_qkv_bias` is only the expectation); a file
that lacks one the flags require is an error at load, naming the tensor.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from dataclasses import dataclass

ARCHITECTURES = ("llama", "qwen2", "qwen3")
# the other metadata that inferi reads (tokenizer, chat template, RoPE scaling), with the Python type that
# inferi.gguf gives its GGUF type; a file with another type there is refused at load, naming the key, rather than
# misread (an array's truth value, an unhashable list) deep in the tokenizer or at the first chat
OTHER_KEYS: dict[str, type] = {
    "tokenizer.ggml.model": str, "tokenizer.ggml.pre": str, "tokenizer.chat_template": str,
    "tokenizer.ggml.add_bos_token": bool, "tokenizer.ggml.add_space_prefix": bool,
    **{f"tokenizer.ggml.{name}_token_id": int for name in ("bos", "eos", "eot", "eom", "unknown", "padding")},
    **{f"{arch}.rope.scaling.type": str for arch in ARCHITECTURES}}


class ConfigError(ValueError):
    """Metadata that does not describe a model inferi can run; the message names the key."""


@dataclass(frozen=True)
class ModelConfig:
    arch: str
    n_layers: int
    dim: int                        # embedding length
    ffn_dim: int                    # feed-forward (SiLU-gated) width
    n_heads: int
    n_kv_heads: int                 # grouped-query attention: n_heads is a multiple of it
    head_dim: int
    rope_dims: int                  # the leading part of each head that RoPE rotates
    rope_theta: float
    rope_neox: bool                 # pairs (i, i + rope_dims/2) instead of (2i, 2i + 1)
    rope_scale: float               # linear position scaling (1 = none)
    norm_eps: float
    context_length: int             # what the model was trained for
    vocab_size: int
    qk_norm: bool                   # Qwen3: RMS norms of q and k per head

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, object], where: str = "the model") -> ModelConfig:
        """The config of `metadata` (as `inferi.gguf.read_gguf` gives it); `where` names the file in errors."""
        arch = metadata.get("general.architecture")
        if arch not in ARCHITECTURES:
            raise ConfigError(f"{where}: general.architecture is {arch!r}; inferi runs {', '.join(ARCHITECTURES)}")
        check_types(metadata, where)

        def number(key: str, kind: type, default: object = None, low: float = 1) -> int | float:
            value = metadata.get(f"{arch}.{key}", default)
            if value is None:
                raise ConfigError(f"{where}: {arch}.{key} is missing")
            wanted = numbers.Integral if kind is int else numbers.Real      # numpy scalars register as these
            if isinstance(value, bool) or not isinstance(value, wanted):
                kind_name = "an integer" if kind is int else "a number"
                raise ConfigError(f"{where}: {arch}.{key} is {value!r}, not {kind_name}")
            if not low <= value < 2**31:
                raise ConfigError(f"{where}: {arch}.{key} is {value}, outside [{low}, 2^31)")
            return kind(value)

        dim, n_heads = number("embedding_length", int), number("attention.head_count", int)
        n_kv_heads = number("attention.head_count_kv", int, n_heads)
        if n_heads % n_kv_heads:
            raise ConfigError(f"{where}: {arch}.attention.head_count ({n_heads}) is not a multiple of "
                              f"{arch}.attention.head_count_kv ({n_kv_heads})")
        if dim % n_heads and f"{arch}.attention.key_length" not in metadata:
            raise ConfigError(f"{where}: {arch}.embedding_length ({dim}) is not a multiple of "
                              f"{arch}.attention.head_count ({n_heads}), and {arch}.attention.key_length is missing")
        head_dim = number("attention.key_length", int, dim // n_heads)
        if number("attention.value_length", int, head_dim) != head_dim:
            raise ConfigError(f"{where}: {arch}.attention.value_length differs from the key length {head_dim}")
        rope_dims = number("rope.dimension_count", int, head_dim)
        if rope_dims > head_dim or rope_dims % 2:
            raise ConfigError(f"{where}: {arch}.rope.dimension_count is {rope_dims}: it must be even and at most "
                              f"the head size {head_dim}")
        scaling = metadata.get(f"{arch}.rope.scaling.type", "none")
        if scaling not in ("none", "linear"):
            raise ConfigError(f"{where}: {arch}.rope.scaling.type {scaling!r} is not supported (none, linear)")
        tokens = metadata.get("tokenizer.ggml.tokens")
        vocab_size = number("vocab_size", int, len(tokens) if tokens is not None else None)
        if tokens is not None and vocab_size != len(tokens):
            # the model could produce ids that the tokenizer cannot decode, or never produce some tokens
            raise ConfigError(f"{where}: {arch}.vocab_size is {vocab_size}, but tokenizer.ggml.tokens has "
                              f"{len(tokens)} tokens")
        return cls(
            arch=arch,
            n_layers=number("block_count", int),
            dim=dim,
            ffn_dim=number("feed_forward_length", int),
            n_heads=n_heads,
            n_kv_heads=n_kv_heads,
            head_dim=head_dim,
            rope_dims=rope_dims,
            rope_theta=number("rope.freq_base", float, 10000.0),
            rope_neox=arch != "llama",
            rope_scale=number("rope.scaling.factor", float, 1.0) if scaling == "linear" else 1.0,
            norm_eps=number("attention.layer_norm_rms_epsilon", float, low=0),
            context_length=number("context_length", int),
            vocab_size=vocab_size,
            qk_norm=arch == "qwen3",
        )

    @property
    def has_qkv_bias(self) -> bool:
        return self.arch == "qwen2"


TYPE_NAMES = {str: "a string", bool: "a boolean", int: "an integer"}


def check_types(metadata: Mapping[str, object], where: str) -> None:
    """ConfigError for a key of OTHER_KEYS that holds a value of another type (bool is no integer here)."""
    for key, kind in OTHER_KEYS.items():
        value = metadata.get(key)
        if value is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
            shown = f"{type(value).__name__} {value!r}" if len(repr(value)) < 60 else type(value).__name__
            raise ConfigError(f"{where}: {key} is a {shown}, not {TYPE_NAMES[kind]}")
