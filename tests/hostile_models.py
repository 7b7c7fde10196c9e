"""Hostile model files for the loader's tests: a tiny model's GGUF file (tests/tiny_models.py) rewritten with
metadata or tensors that the GGUF reader accepts but that do not describe a model inferi can run.

`rewrite_gguf` copies a file with some metadata entries replaced or dropped and some tensors replaced or dropped;
`MODEL_CASES` maps a case name to (metadata changes, tensor changes, text the error must contain). A metadata change
is key -> (value, GGUF type[, element type]) or None (dropped); a tensor change is name -> (uint8 bytes shaped
(rows, bytes per row), GGML type) or None (dropped).
"""

from __future__ import annotations

from pathlib import Path

import gguf
import numpy as np
from gguf import GGMLQuantizationType as Q
from gguf import GGUFValueType as V

from inferi.gguf import read_gguf


def rewrite_gguf(source: Path, target: Path, metadata: dict | None = None, tensors: dict | None = None) -> None:
    metadata, tensors = metadata or {}, tensors or {}
    with read_gguf(source) as f:
        writer = gguf.GGUFWriter(str(target), "llama")
        writer.kv_data[0] = {}                      # the architecture too comes from the source or the changes
        for key, value in f.metadata.items():
            vtypes = f.types[key]
            entry = (value.tolist() if isinstance(value, np.ndarray) else value, *vtypes)
            entry = metadata.get(key, entry)
            if entry is not None:
                writer.add_key_value(key, *entry)
        for key, entry in metadata.items():
            if key not in f.metadata and entry is not None:
                writer.add_key_value(key, *entry)
        for name, info in f.tensors.items():
            entry = tensors.get(name, (np.array(f.data(name)).reshape(*info.shape[:-1], -1), info.type))
            if entry is not None:
                writer.add_tensor(name, *entry[:1], raw_dtype=entry[1])
        for name, entry in tensors.items():
            if name not in f.tensors and entry is not None:
                writer.add_tensor(name, entry[0], raw_dtype=entry[1])
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()


def f32(*shape: int) -> tuple[np.ndarray, Q]:
    """Zeros of a numpy shape, as an F32 tensor's bytes."""
    return np.zeros(shape, np.float32).view(np.uint8), Q.F32


# the tiny llama model: dim 64, 4 heads of 16 (2 kv heads), ffn 128, 2 layers, vocab 320, context 256
MODEL_CASES: dict[str, tuple[dict, dict, str]] = {
    "architecture an integer": ({"general.architecture": (7, V.UINT32)}, {}, "general.architecture is 7"),
    "architecture unknown": ({"general.architecture": ("gpt5", V.STRING)}, {}, "'gpt5'"),
    "block count a string": ({"llama.block_count": ("2", V.STRING)}, {}, "llama.block_count is '2', not an integer"),
    "block count missing": ({"llama.block_count": None}, {}, "llama.block_count is missing"),
    "block count 2^31 - 1": ({"llama.block_count": (2**31 - 1, V.UINT32)}, {}, "blk.2.attn_norm.weight"),
    "block count 2^40": ({"llama.block_count": (2**40, V.UINT64)}, {}, "llama.block_count is 1099511627776"),
    "embedding length 0": ({"llama.embedding_length": (0, V.UINT32)}, {}, "llama.embedding_length is 0"),
    "embedding length 2^30": ({"llama.embedding_length": (2**30, V.UINT32)}, {}, "token_embd.weight"),
    "head count 2^30": ({"llama.attention.head_count": (2**30, V.UINT32)}, {},
                        "not a multiple of llama.attention.head_count (1073741824)"),
    "head count a float": ({"llama.attention.head_count": (4.0, V.FLOAT32)}, {}, "not an integer"),
    "kv heads not dividing": ({"llama.attention.head_count_kv": (3, V.UINT32)}, {}, "not a multiple"),
    "key length 2^20": ({"llama.attention.key_length": (2**20, V.UINT32)}, {}, "blk.0.attn_q.weight"),
    "feed-forward length 2^31 - 1": ({"llama.feed_forward_length": (2**31 - 1, V.UINT32)}, {},
                                     "blk.0.ffn_gate.weight"),
    "context length 2^31 - 1": ({"llama.context_length": (2**31 - 1, V.UINT32)}, {}, None),   # loads: ctx 4096
    "context length 0": ({"llama.context_length": (0, V.UINT32)}, {}, "llama.context_length is 0"),
    "rope base NaN": ({"llama.rope.freq_base": (float("nan"), V.FLOAT32)}, {}, "llama.rope.freq_base is nan"),
    "rope dimensions odd": ({"llama.rope.dimension_count": (15, V.UINT32)}, {}, "llama.rope.dimension_count is 15"),
    "rope scaling an array": ({"llama.rope.scaling.type": (["linear"], V.ARRAY, V.STRING)}, {},
                              "llama.rope.scaling.type"),
    "epsilon negative": ({"llama.attention.layer_norm_rms_epsilon": (-1.0, V.FLOAT32)}, {},
                         "llama.attention.layer_norm_rms_epsilon is -1.0"),
    "vocab size over the tokens": ({"llama.vocab_size": (1000, V.UINT32)}, {},
                                   "llama.vocab_size is 1000, but tokenizer.ggml.tokens has 320"),
    "tokens fewer than the embedding rows": (
        {"llama.vocab_size": None,
         "tokenizer.ggml.tokens": (["a", "b", "ab"] + [f"t{i}" for i in range(297)], V.ARRAY, V.STRING),
         "tokenizer.ggml.token_type": ([1] * 300, V.ARRAY, V.INT32), "tokenizer.ggml.bos_token_id": None,
         "tokenizer.ggml.eos_token_id": None, "tokenizer.ggml.merges": (["a b"], V.ARRAY, V.STRING)}, {},
        "token_embd.weight"),
    "vocab size beside the tokens": ({"llama.vocab_size": (300, V.UINT32)}, {"token_embd.weight": f32(300, 64),
                                                                            "output.weight": f32(300, 64)},
                                     "tokenizer.ggml.tokens"),
    "tokenizer model an array": ({"tokenizer.ggml.model": (["gpt2"], V.ARRAY, V.STRING)}, {},
                                 "tokenizer.ggml.model"),
    "tokenizer pre an array": ({"tokenizer.ggml.pre": (["gpt-2"], V.ARRAY, V.STRING)}, {}, "tokenizer.ggml.pre"),
    "tokenizer model unknown": ({"tokenizer.ggml.model": ("bert", V.STRING)}, {}, "tokenizer.ggml.model"),
    "merge of unknown tokens": ({"tokenizer.ggml.merges": (["zz\u0100 qq\u0101"], V.ARRAY, V.STRING)}, {},
                                "tokenizer.ggml.merges"),
    "merge without a space": ({"tokenizer.ggml.merges": (["ab"], V.ARRAY, V.STRING)}, {}, "tokenizer.ggml.merges"),
    "tokens missing": ({"tokenizer.ggml.tokens": None, "tokenizer.ggml.token_type": None}, {},
                       "tokenizer.ggml.tokens"),
    "bos id past the vocabulary": ({"tokenizer.ggml.bos_token_id": (5000, V.UINT32)}, {},
                                   "tokenizer.ggml.bos_token_id"),
    "bos id a string": ({"tokenizer.ggml.bos_token_id": ("1", V.STRING)}, {}, "tokenizer.ggml.bos_token_id"),
    "add_bos an array": ({"tokenizer.ggml.add_bos_token": ([True], V.ARRAY, V.BOOL)}, {},
                         "tokenizer.ggml.add_bos_token"),
    "chat template an integer": ({"tokenizer.chat_template": (3, V.INT32)}, {}, "tokenizer.chat_template"),
    "chat template bad syntax": ({"tokenizer.chat_template": ("{% for %}", V.STRING)}, {}, "line 1"),
    "tensor missing": ({}, {"blk.1.ffn_down.weight": None}, "blk.1.ffn_down.weight is missing"),
    "output norm missing": ({}, {"output_norm.weight": None}, "output_norm.weight is missing"),
    "tensor of the wrong shape": ({}, {"blk.0.attn_q.weight": f32(32, 64)}, "blk.0.attn_q.weight has shape"),
    "norm of the wrong length": ({}, {"blk.0.attn_norm.weight": f32(32)}, "blk.0.attn_norm.weight has shape"),
    "matrix as a 3-d tensor": ({}, {"blk.0.attn_k.weight": (np.zeros((2, 16, 256), np.uint8), Q.F32)},
                               "blk.0.attn_k.weight has shape"),
    "matrix of an integer type": ({}, {"blk.0.attn_v.weight": (np.zeros((32, 64 * 4), np.uint8), Q.I32)},
                                  "blk.0.attn_v.weight"),
    "matrix of type Q8_1": ({}, {"blk.0.attn_v.weight": (np.zeros((32, 2 * 40), np.uint8), Q.Q8_1)},
                            "blk.0.attn_v.weight"),
    "norm of type Q8_1": ({}, {"blk.0.ffn_norm.weight": (np.zeros(80, np.uint8), Q.Q8_1)},
                          "blk.0.ffn_norm.weight"),
    "norm of an integer type": ({}, {"output_norm.weight": (np.zeros(64 * 2, np.uint8), Q.I16)},
                                "output_norm.weight"),
    "rope factors of the wrong length": ({}, {"rope_freqs.weight": f32(3)}, "rope_freqs.weight has shape"),
}
