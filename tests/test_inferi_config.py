"""ModelConfig from GGUF metadata: each architecture's flags, defaults, and errors that name the key."""

from __future__ import annotations

import numpy as np
import pytest

from inferi.config import ConfigError, ModelConfig

# SmolLM2-135M-Instruct's metadata, as its GGUF file states it
SMOLLM2 = {
    "general.architecture": "llama", "llama.block_count": 30, "llama.context_length": 8192,
    "llama.embedding_length": 576, "llama.feed_forward_length": 1536, "llama.attention.head_count": 9,
    "llama.attention.head_count_kv": 3, "llama.rope.freq_base": 100000.0,
    "llama.attention.layer_norm_rms_epsilon": 9.999999747378752e-06, "llama.vocab_size": 49152,
    "llama.rope.dimension_count": 64,
}


def qwen(arch: str, **more) -> dict:
    return {"general.architecture": arch, f"{arch}.block_count": 2, f"{arch}.context_length": 4096,
            f"{arch}.embedding_length": 64, f"{arch}.feed_forward_length": 128, f"{arch}.attention.head_count": 4,
            f"{arch}.attention.head_count_kv": 2, f"{arch}.attention.layer_norm_rms_epsilon": 1e-6,
            "tokenizer.ggml.tokens": [f"t{i}" for i in range(300)], **{f"{arch}.{k}": v for k, v in more.items()}}


def test_smollm2():
    c = ModelConfig.from_metadata(SMOLLM2)
    assert (c.n_layers, c.dim, c.ffn_dim, c.n_heads, c.n_kv_heads, c.head_dim) == (30, 576, 1536, 9, 3, 64)
    assert (c.rope_dims, c.rope_theta, c.rope_neox, c.rope_scale) == (64, 100000.0, False, 1.0)
    assert (c.context_length, c.vocab_size, c.qk_norm, c.has_qkv_bias) == (8192, 49152, False, False)
    assert c.norm_eps == pytest.approx(1e-5)


def test_qwen_flags_and_defaults():
    q2 = ModelConfig.from_metadata(qwen("qwen2"))
    assert (q2.rope_neox, q2.has_qkv_bias, q2.qk_norm, q2.head_dim, q2.rope_dims) == (True, True, False, 16, 16)
    assert (q2.rope_theta, q2.vocab_size) == (10000.0, 300)         # defaults: theta 10000, vocab from the tokens
    q3 = ModelConfig.from_metadata(qwen("qwen3", **{"attention.key_length": 32, "attention.value_length": 32}))
    assert (q3.rope_neox, q3.has_qkv_bias, q3.qk_norm, q3.head_dim, q3.rope_dims) == (True, False, True, 32, 32)


def test_linear_rope_scaling():
    c = ModelConfig.from_metadata({**SMOLLM2, "llama.rope.scaling.type": "linear", "llama.rope.scaling.factor": 4.0})
    assert c.rope_scale == 4.0


@pytest.mark.parametrize("change, message", [
    ({"general.architecture": "gpt2"}, "general.architecture is 'gpt2'"),
    ({"general.architecture": None}, "general.architecture is None"),
    ({"llama.block_count": None}, "llama.block_count is missing"),
    ({"llama.block_count": "30"}, "llama.block_count is '30', not an integer"),
    ({"llama.block_count": 2.5}, "not an integer"),
    ({"llama.block_count": True}, "not an integer"),
    ({"llama.block_count": 0}, r"llama.block_count is 0, outside \[1, 2\^31\)"),
    ({"llama.embedding_length": 1 << 40}, "outside"),
    ({"llama.attention.head_count_kv": 4}, r"head_count \(9\) is not a multiple of llama.attention.head_count_kv"),
    ({"llama.rope.dimension_count": 66}, "dimension_count is 66: it must be even and at most the head size 64"),
    ({"llama.attention.value_length": 32}, "value_length differs"),
    ({"llama.rope.scaling.type": "yarn"}, "rope.scaling.type 'yarn' is not supported"),
    ({"llama.attention.layer_norm_rms_epsilon": float("nan")}, "outside"),
])
def test_errors_name_the_key(change, message):
    metadata = {k: v for k, v in {**SMOLLM2, **change}.items() if v is not None or k == "general.architecture"}
    with pytest.raises(ConfigError, match=message) as caught:
        ModelConfig.from_metadata(metadata, "m.gguf")
    assert str(caught.value).startswith("m.gguf: ")


def test_head_size_must_be_stated_when_heads_do_not_divide():
    metadata = {**SMOLLM2, "llama.attention.head_count": 7, "llama.attention.head_count_kv": 7}
    with pytest.raises(ConfigError, match="llama.attention.key_length is missing"):
        ModelConfig.from_metadata(metadata)


def test_numpy_scalars_are_numbers():
    c = ModelConfig.from_metadata({**SMOLLM2, "llama.block_count": np.uint32(30)})
    assert c.n_layers == 30 and type(c.n_layers) is int
