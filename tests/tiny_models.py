"""Tiny random Llama, Qwen2 and Qwen3 models for inferi's correctness tests: built by transformers from a config and
written as GGUF files with the `gguf` package, with the conversions llama.cpp's convert_hf_to_gguf.py makes.

What the files hold (the conventions the khal model is tested against):
- Tensors `token_embd`, `blk.N.{attn_norm, attn_q, attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_up,
  ffn_down}`, `output_norm`, `output` (absent when the embeddings are tied); Qwen2 adds `blk.N.attn_{q,k,v}.bias`,
  Qwen3 `blk.N.attn_q_norm` / `attn_k_norm` (one weight of head_dim, shared by the heads).
- Llama's q and k rows are permuted as convert_hf_to_gguf's `LlamaModel.permute` does, so that the GGUF model rotates
  adjacent pairs (2i, 2i+1); Qwen2/3 keep transformers' rows and rotate NEOX pairs (i, i + head_dim/2).
- Metadata as the converter writes it for the real models: every arch has `{arch}.context_length`,
  `embedding_length`, `block_count`, `feed_forward_length`, `attention.head_count`, `attention.head_count_kv`,
  `rope.freq_base`, `attention.layer_norm_rms_epsilon`, `vocab_size`; Llama adds `rope.dimension_count` (like
  SmolLM2), Qwen3 `attention.key_length` / `value_length` (its head_dim, 32 here, is not hidden/heads = 16); Qwen2
  has neither (like Qwen2.5), so a loader must fall back to hidden/heads.
- Types: "F32" everything F32; "Q8_0" / "Q4_K": every 2-D weight (token_embd and output included) in that type,
  1-D tensors (norms, biases) F32, as `convert_hf_to_gguf --outtype q8_0` does. The row lengths divide the block
  (32 for Q8_0, 256 for Q4_K): Q4_K models are made wider (hidden 256, intermediate 512) so no tensor falls back.
  gguf 0.19 has no Q4_K quantizer (only its dequantizer): `quantize_q4_k` below is a plain one (min/max scales per
  32-value sub-block, no llama.cpp-style search), a valid encoding that `gguf.quants.dequantize` reads back.
- `llama3_rope=True` (llama only): transformers' "llama3" RoPE scaling (factor 8, low/high frequency factors 1 and 4,
  original context 64, so that of the 8 frequencies of a 16-dim head one is kept, two are smoothed and five divided
  by 8), written as convert_hf_to_gguf's LlamaModel does: a `rope_freqs.weight` tensor of per-pair divisors.
- A tokenizer block: a synthetic byte-level BPE vocabulary of 320 tokens (256 bytes, 61 merges learnt from a fixed
  English text, `<|endoftext|>`, `<|im_start|>`, `<|im_end|>`), `tokenizer.ggml.model` "gpt2", `pre` "gpt-2", a ChatML
  `chat_template`; the model's vocabulary is the tokenizer's (a real 50k-150k vocabulary would make files of MBs).

Weights are drawn wider than transformers' initializer (std 1.6/sqrt(hidden), 0.2 at hidden 64; norms
1 + N(0, 0.1^2); biases N(0, 0.1^2)) so that logits spread over a few units and every norm weight and bias matters.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from pathlib import Path

import gguf
import numpy as np
import pytest

ARCHS = ("llama", "qwen2", "qwen3")
TYPES = ("F32", "Q8_0", "Q4_K")
VOCAB_SIZE = 320
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
CHATML = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
          "'<|im_end|>\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
MERGE_TEXT = ("The capital of France is Paris. The quick brown fox jumps over the lazy dog, and then the dog "
              "sleeps in the sun. What is the answer? It is there in the text, in the other one, and in this one.")
FILE_TYPES = {"F32": gguf.LlamaFileType.ALL_F32, "Q8_0": gguf.LlamaFileType.MOSTLY_Q8_0,
              "Q4_K": gguf.LlamaFileType.MOSTLY_Q4_K_M}
# transformers' names -> GGUF's, per layer (llama.cpp's tensor_mapping)
LAYER_TENSORS = {"input_layernorm.weight": "attn_norm.weight", "self_attn.q_proj.weight": "attn_q.weight",
                 "self_attn.k_proj.weight": "attn_k.weight", "self_attn.v_proj.weight": "attn_v.weight",
                 "self_attn.o_proj.weight": "attn_output.weight", "self_attn.q_proj.bias": "attn_q.bias",
                 "self_attn.k_proj.bias": "attn_k.bias", "self_attn.v_proj.bias": "attn_v.bias",
                 "self_attn.q_norm.weight": "attn_q_norm.weight", "self_attn.k_norm.weight": "attn_k_norm.weight",
                 "post_attention_layernorm.weight": "ffn_norm.weight", "mlp.gate_proj.weight": "ffn_gate.weight",
                 "mlp.up_proj.weight": "ffn_up.weight", "mlp.down_proj.weight": "ffn_down.weight"}
GLOBAL_TENSORS = {"model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                  "lm_head.weight": "output.weight"}


def require_transformers():
    """transformers and torch are test-only dependencies: skip, naming them, where they are not installed."""
    pytest.importorskip("torch", reason="the tiny-model tests need torch (a test dependency: pip install '.[test]')")
    return pytest.importorskip("transformers", reason="the tiny-model tests need transformers (a test dependency: "
                                                      "pip install '.[test]')")


def tiny_config(arch: str, type: str = "F32", tied: bool = False, llama3_rope: bool = False):
    """The transformers config of a tiny model: 2 layers, 4 heads, 2 kv heads (grouped-query attention)."""
    transformers = require_transformers()
    if arch not in ARCHS:
        raise ValueError(f"tiny model arch {arch!r}: expected one of {ARCHS}")
    if type not in TYPES:
        raise ValueError(f"tiny model type {type!r}: expected one of {TYPES}")
    if llama3_rope and arch != "llama":
        raise ValueError(f"llama3_rope is Llama's RoPE scaling, not {arch}'s")
    wide = type == "Q4_K"                      # Q4_K blocks are 256 values: every row length a multiple of 256
    hidden = 256 if wide else 64
    head_dim = hidden // 4 * (2 if arch == "qwen3" else 1)
    rope_parameters = {"rope_type": "default", "rope_theta": 10000.0}
    if llama3_rope:
        rope_parameters.update(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                               original_max_position_embeddings=64)
    config_class = {"llama": transformers.LlamaConfig, "qwen2": transformers.Qwen2Config,
                    "qwen3": transformers.Qwen3Config}[arch]
    return config_class(vocab_size=VOCAB_SIZE, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, head_dim=head_dim, max_position_embeddings=256,
                        rms_norm_eps=1e-6 if arch == "qwen3" else 1e-5, rope_parameters=rope_parameters,
                        tie_word_embeddings=tied, bos_token_id=VOCAB_SIZE - len(SPECIAL_TOKENS),
                        eos_token_id=VOCAB_SIZE - 1, attn_implementation="eager")


def make_tiny_model(arch: str, *, type: str = "F32", seed: int = 0, tied: bool = False, llama3_rope: bool = False):
    """A random tiny transformers model (float32, eval mode)."""
    transformers = require_transformers()
    import torch

    config = tiny_config(arch, type, tied, llama3_rope)
    model_class = {"llama": transformers.LlamaForCausalLM, "qwen2": transformers.Qwen2ForCausalLM,
                   "qwen3": transformers.Qwen3ForCausalLM}[arch]
    torch.manual_seed(seed)
    model = model_class(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.copy_(1 + 0.1 * torch.randn_like(parameter))
            elif name.endswith(".bias"):
                parameter.copy_(0.1 * torch.randn_like(parameter))
            else:                              # logits of a few units whatever the width
                parameter.copy_(1.6 / config.hidden_size ** 0.5 * torch.randn_like(parameter))
    return model


def permute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """convert_hf_to_gguf's LlamaModel.permute: each head's rows from transformers' rotate-half order (i, i + d/2)
    to adjacent pairs (2i, 2i + 1)."""
    return weights.reshape(n_head, 2, weights.shape[0] // n_head // 2, *weights.shape[1:]).swapaxes(1, 2) \
        .reshape(weights.shape)


def unpermute(weights: np.ndarray, n_head: int) -> np.ndarray:
    """The inverse of `permute` (GGUF rows back to transformers' order)."""
    return weights.reshape(n_head, weights.shape[0] // n_head // 2, 2, *weights.shape[1:]).swapaxes(1, 2) \
        .reshape(weights.shape)


def gguf_tensors(model, arch: str) -> dict[str, np.ndarray]:
    """The model's weights under their GGUF names, float32, rows as convert_hf_to_gguf writes them."""
    config = model.config
    tensors = {}
    for hf_name, parameter in model.state_dict().items():
        if hf_name == "lm_head.weight" and config.tie_word_embeddings:
            continue                           # tied: the output projection is token_embd, no output.weight
        data = parameter.detach().float().numpy().copy()
        if hf_name.startswith("model.layers."):
            layer, rest = hf_name[len("model.layers."):].split(".", 1)
            name = f"blk.{layer}.{LAYER_TENSORS[rest]}"
            if arch == "llama" and rest in ("self_attn.q_proj.weight", "self_attn.k_proj.weight"):
                heads = config.num_attention_heads if "q_proj" in rest else config.num_key_value_heads
                data = permute(data, heads)
        else:
            name = GLOBAL_TENSORS[hf_name]
        tensors[name] = data
    if config.rope_parameters["rope_type"] == "llama3":
        tensors["rope_freqs.weight"] = llama3_rope_factors(config)
    return tensors


def llama3_rope_factors(config) -> np.ndarray:
    """convert_hf_to_gguf's rope_freqs for "llama3" scaling: a divisor per rotated pair, 1 for short wavelengths,
    `factor` for long ones, smoothed between."""
    rope, dim = config.rope_parameters, config.head_dim
    freqs = 1.0 / rope["rope_theta"] ** (np.arange(0, dim, 2, dtype=np.float32) / dim)
    old_context = rope["original_max_position_embeddings"]
    low_wavelength, high_wavelength = old_context / rope["low_freq_factor"], old_context / rope["high_freq_factor"]
    factors = []
    for freq in freqs:
        wavelength = 2 * np.pi / freq
        if wavelength < high_wavelength:
            factors.append(1.0)
        elif wavelength > low_wavelength:
            factors.append(rope["factor"])
        else:
            smooth = (old_context / wavelength - rope["low_freq_factor"]) / (rope["high_freq_factor"]
                                                                              - rope["low_freq_factor"])
            factors.append(1 / ((1 - smooth) / rope["factor"] + smooth))
    return np.array(factors, dtype=np.float32)


def quantize_q4_k(data: np.ndarray) -> np.ndarray:
    """Q4_K blocks of a float array whose rows are multiples of 256: x = d * sc_j * q - dmin * m_j per 32-value
    sub-block j, q in 0..15, sc_j and m_j 6-bit, d and dmin f16. Returns uint8 (rows, row_bytes)."""
    rows, cols = data.shape
    x = data.astype(np.float32).reshape(-1, 8, 32)                     # blocks, sub-blocks, values
    low = np.minimum(x.min(axis=-1), 0)                                  # the offset is never positive, as ggml's
    scale = (x.max(axis=-1) - low) / 15
    d = (scale.max(axis=-1) / 63).astype(np.float16)
    dmin = ((-low).max(axis=-1) / 63).astype(np.float16)
    safe = np.where(d == 0, 1, d.astype(np.float32))[:, None]
    safe_min = np.where(dmin == 0, 1, dmin.astype(np.float32))[:, None]
    sc = np.clip(np.rint(scale / safe), 0, 63).astype(np.uint8)
    m = np.clip(np.rint(-low / safe_min), 0, 63).astype(np.uint8)
    step = d.astype(np.float32)[:, None] * sc
    offset = dmin.astype(np.float32)[:, None] * m
    q = np.clip(np.rint((x + offset[..., None]) / np.where(step == 0, 1, step)[..., None]), 0, 15).astype(np.uint8)
    # scales: 12 bytes, the inverse of gguf.quants.Q4_K.get_scale_min
    packed = np.empty((x.shape[0], 12), np.uint8)
    packed[:, 0:4] = (sc[:, :4] & 0x3F) | ((sc[:, 4:] >> 4) << 6)
    packed[:, 4:8] = (m[:, :4] & 0x3F) | ((m[:, 4:] >> 4) << 6)
    packed[:, 8:12] = (sc[:, 4:] & 0x0F) | ((m[:, 4:] & 0x0F) << 4)
    # values: 4 chunks of 32 bytes; a chunk's low nibbles are sub-block 2c, its high nibbles sub-block 2c + 1
    qs = (q[:, 0::2] | (q[:, 1::2] << 4)).reshape(x.shape[0], 128)
    blocks = np.concatenate([d.reshape(-1, 1).view(np.uint8), dmin.reshape(-1, 1).view(np.uint8), packed, qs], axis=1)
    return blocks.reshape(rows, cols // 256 * 144)


def encode_tensor(data: np.ndarray, type: str) -> tuple[np.ndarray, gguf.GGMLQuantizationType]:
    """A tensor's bytes in the file's type: 2-D weights quantized, 1-D tensors F32."""
    if type == "F32" or data.ndim == 1:
        return data.astype(np.float32), gguf.GGMLQuantizationType.F32
    qtype = gguf.GGMLQuantizationType[type]
    if qtype == gguf.GGMLQuantizationType.Q4_K:
        return quantize_q4_k(data), qtype
    return gguf.quants.quantize(data.astype(np.float32), qtype), qtype


def byte_level_vocabulary() -> tuple[list[str], list[str]]:
    """The synthetic byte-level BPE vocabulary: tokens (256 byte characters in byte order, then one per merge, then
    the special tokens) and merges, learnt greedily from MERGE_TEXT split as GPT-2's pre-tokenizer splits."""
    characters = gguf_byte_characters()
    words = Counter(tuple(characters[b] for b in word.encode()) for word in re.findall(r" ?\w+| ?[^\w\s]+|\s+",
                                                                                        MERGE_TEXT))
    tokens, merges = [characters[b] for b in range(256)], []
    while len(tokens) < VOCAB_SIZE - len(SPECIAL_TOKENS):
        pairs = Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        (left, right), _ = max(pairs.items(), key=lambda item: (item[1], item[0]))   # ties: a fixed order
        merges.append(f"{left} {right}")
        tokens.append(left + right)
        words = Counter({merge_pair(word, left, right): count for word, count in words.items()})
    return tokens + list(SPECIAL_TOKENS), merges


def merge_pair(word: tuple[str, ...], left: str, right: str) -> tuple[str, ...]:
    merged, i = [], 0
    while i < len(word):
        if i + 1 < len(word) and word[i] == left and word[i + 1] == right:
            merged.append(left + right)
            i += 2
        else:
            merged.append(word[i])
            i += 1
    return tuple(merged)


def gguf_byte_characters() -> dict[int, str]:
    """GPT-2's bytes_to_unicode: printable bytes stand for themselves, the others for code points from 256 up."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    characters, extra = {b: chr(b) for b in printable}, 0
    for b in range(256):
        if b not in characters:
            characters[b] = chr(256 + extra)
            extra += 1
    return characters


def write_gguf(model, arch: str, path: str | Path, type: str) -> None:
    config = model.config
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(f"tiny-random-{arch}")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)
    if arch == "llama":
        writer.add_rope_dimension_count(config.head_dim)
    if arch == "qwen3":
        writer.add_key_length(config.head_dim)
        writer.add_value_length(config.head_dim)
    writer.add_file_type(FILE_TYPES[type])
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    tokens, merges = byte_level_vocabulary()
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL if t in SPECIAL_TOKENS else gguf.TokenType.NORMAL for t in tokens])
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokens.index("<|endoftext|>"))
    writer.add_eos_token_id(tokens.index("<|im_end|>"))
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHATML)
    for name, data in gguf_tensors(model, arch).items():
        encoded, qtype = encode_tensor(data, type)
        writer.add_tensor(name, encoded, raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def make_tiny_gguf(arch: str, path: str | Path, *, type: str = "F32", seed: int = 0, tied: bool = False,
                   llama3_rope: bool = False):
    """A random tiny model of `arch` written to `path` as GGUF weights of `type`; returns the transformers model
    (float32, the weights before quantization)."""
    model = make_tiny_model(arch, type=type, seed=seed, tied=tied, llama3_rope=llama3_rope)
    write_gguf(model, arch, path, type)
    return model


def with_gguf_weights(model, path: str | Path):
    """A copy of the transformers model holding the weights the GGUF file holds (dequantized, rows back in
    transformers' order): transformers on exactly what a GGUF reader sees."""
    import torch

    arch = gguf.GGUFReader(path).fields["general.architecture"].contents()
    config = model.config
    by_gguf_name = {gguf_name: hf_name for hf_name, gguf_name in GLOBAL_TENSORS.items()}
    by_gguf_name.update({f"blk.{i}.{gguf_name}": f"model.layers.{i}.{hf_name}"
                         for i in range(config.num_hidden_layers) for hf_name, gguf_name in LAYER_TENSORS.items()})
    state = {}
    for tensor in gguf.GGUFReader(path).tensors:
        data = gguf.quants.dequantize(tensor.data, tensor.tensor_type).reshape(tuple(reversed(tensor.shape.tolist())))
        if tensor.name == "rope_freqs.weight":
            continue                           # computed from the config by transformers
        hf_name = by_gguf_name[tensor.name]
        if arch == "llama" and tensor.name.endswith(("attn_q.weight", "attn_k.weight")):
            heads = config.num_attention_heads if "attn_q" in tensor.name else config.num_key_value_heads
            data = unpermute(data, heads)
        state[hf_name] = torch.from_numpy(np.array(data, dtype=np.float32))   # a writable copy
    if config.tie_word_embeddings:
        state["lm_head.weight"] = state["model.embed_tokens.weight"]
    copied = copy.deepcopy(model)
    copied.load_state_dict(state, strict=True)
    return copied


def transformers_logits(model, token_ids, dtype: str = "float64") -> np.ndarray:
    """The model's logits (len(token_ids), vocab) for one sequence, computed in `dtype` (float64 by default, so
    that transformers' own rounding is far below every tolerance)."""
    import torch

    computed = copy.deepcopy(model).to(getattr(torch, dtype))
    with torch.no_grad():
        out = computed(torch.tensor([list(token_ids)], dtype=torch.long))
    return out.logits[0].double().numpy()


# built once per test session, whichever module asks: (arch, type, tied, seed) -> (path, model)
_SESSION_FILES: dict[tuple, tuple[Path, object]] = {}


@pytest.fixture(scope="session", name="tiny_gguf")
def tiny_gguf_fixture(tmp_path_factory):
    """tiny_gguf(arch, type="F32", tied=False, seed=0, llama3_rope=False) -> (path, model), each file built once per
    session. Import it into a test module (`from tiny_models import tiny_gguf_fixture`) to use it there; the models
    are shared, so a test must not change them (transformers_logits and with_gguf_weights work on copies)."""
    directory = tmp_path_factory.mktemp("tiny_gguf")

    def get(arch: str, type: str = "F32", tied: bool = False, seed: int = 0,
            llama3_rope: bool = False) -> tuple[Path, object]:
        key = (arch, type, tied, seed, llama3_rope)
        if key not in _SESSION_FILES:
            path = directory / f"{arch}{'3' if llama3_rope else ''}-{type}{'-tied' if tied else ''}-{seed}.gguf"
            _SESSION_FILES[key] = (path, make_tiny_gguf(arch, path, type=type, seed=seed, tied=tied,
                                                        llama3_rope=llama3_rope))
        return _SESSION_FILES[key]

    return get
