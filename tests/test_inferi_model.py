"""inferi's model against the numpy reference (tests/reference_llm.py, itself checked against transformers) on tiny
random Llama, Qwen2 and Qwen3 files, on every backend present; the cache reuse and the captured decode step against
a fresh prefill."""

from __future__ import annotations

import numpy as np
import pytest
from reference_llm import reference_logits
from tiny_models import require_transformers, tiny_gguf_fixture  # noqa: F401

import inferi
from inferi.sampling import SamplingParams

require_transformers()
PROMPT = [5, 71, 200, 3, 99, 12, 250, 42]


def relative(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.fixture(params=["cpu", pytest.param("webgpu", marks=[pytest.mark.webgpu, pytest.mark.gpu]),
                        pytest.param("cuda", marks=[pytest.mark.cuda, pytest.mark.gpu])])
def kind(request):
    from conftest import get_backend
    get_backend(request.param)             # skips, saying why, where this machine has no such backend
    return request.param


@pytest.mark.parametrize("arch, tied", [("llama", False), ("llama", True), ("qwen2", False), ("qwen3", False)])
def test_f32_logits_match_the_reference(tiny_gguf, kind, arch, tied):
    path, _ = tiny_gguf(arch, "F32", tied=tied)
    model = inferi.load_model(path, backend=kind, context_length=64, progress=False)
    assert relative(model.logits(PROMPT), reference_logits(path, PROMPT)) < 1e-3


@pytest.mark.parametrize("type", ["Q8_0", "Q4_K"])
def test_quantized_logits_match_the_reference_on_the_same_weights(tiny_gguf, kind, type):
    path, _ = tiny_gguf("llama", type)
    model = inferi.load_model(path, backend=kind, context_length=64, progress=False)
    assert relative(model.logits(PROMPT), reference_logits(path, PROMPT)) < 1e-3


def test_llama3_rope_factors(tiny_gguf, kind):
    path, _ = tiny_gguf("llama", "F32", llama3_rope=True)
    model = inferi.load_model(path, backend=kind, context_length=64, progress=False)
    assert relative(model.logits(PROMPT), reference_logits(path, PROMPT)) < 1e-3


def test_greedy_decoding_equals_the_reference_argmax_and_the_cache_is_reused(tiny_gguf, kind):
    path, _ = tiny_gguf("qwen2", "F32")
    model = inferi.load_model(path, backend=kind, context_length=64, progress=False)
    greedy = SamplingParams(temperature=0, max_tokens=6)
    tokens = list(model.generate_tokens(PROMPT, greedy))
    # each generated token is the reference's argmax after the tokens before it (ties aside, which random
    # weights make improbable)
    ids = list(PROMPT)
    for token in tokens:
        assert token == int(np.argmax(reference_logits(path, ids)[-1]))
        ids.append(token)
    # a prompt that extends the cached one runs only the new tokens, and gives what a fresh model gives
    longer = ids + [7, 8]
    again = list(model.generate_tokens(longer, greedy))
    assert model.cached[:len(longer)] == longer
    fresh = inferi.load_model(path, backend=kind, context_length=64, progress=False)
    assert again == list(fresh.generate_tokens(longer, greedy))
    # greedy picks on the device inside the captured step; top_k = 1 at a temperature samples on the host from
    # the step's logits: the same tokens, also when the two alternate on one cache
    one_best = SamplingParams(temperature=0.7, top_k=1, max_tokens=6, seed=1)
    assert list(fresh.generate_tokens(PROMPT, one_best)) == tokens
    assert list(fresh.generate_tokens(longer, one_best)) == again
