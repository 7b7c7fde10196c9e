"""benchmarks/transformers_decode.py, the transformers baseline of the decode benchmark: its cached greedy loop
gives transformers' own greedy tokens, its timings are positive, and without what transformers needs to read GGUF
(accelerate, here) it says so, and benchmarks.inferi_decode --transformers goes on without the baseline."""

from __future__ import annotations

import importlib.util

import pytest
from tiny_models import make_tiny_model, require_transformers, tiny_gguf_fixture  # noqa: F401

from benchmarks import inferi_decode, transformers_decode

require_transformers()


def test_the_cached_greedy_loop_is_transformers_greedy_decoding():
    import torch
    model = make_tiny_model("llama")
    prompt = [5, 77, 140, 9]
    tokens, speed = transformers_decode.greedy(model, "cpu", prompt, 6)
    with torch.no_grad():
        expected = model.generate(torch.tensor([prompt]), max_new_tokens=6, min_new_tokens=6, do_sample=False)
    assert tokens == expected[0, len(prompt):].tolist() and speed > 0
    assert transformers_decode.prompt_speed(model, "cpu", 16, model.config.vocab_size) > 0


@pytest.mark.skipif(importlib.util.find_spec("accelerate") is not None, reason="accelerate is installed here")
def test_without_accelerate_the_baseline_says_why_and_the_run_goes_on(tiny_gguf, capsys):
    path = tiny_gguf("llama", "F32")[0]
    with pytest.raises(transformers_decode.BaselineUnavailable, match="missing here: accelerate"):
        transformers_decode.benchmark(path, [4], 4)
    inferi_decode.main([str(path), "--backend", "cpu", "--prompt-sizes", "4", "--decode", "4", "--ctx", "64",
                        "--transformers"])
    out = capsys.readouterr().out
    assert "transformers: skipped (transformers reads a GGUF file only with" in out and "| cpu |" in out


@pytest.mark.skipif(importlib.util.find_spec("accelerate") is None,
                    reason="transformers reads GGUF files only with accelerate, which is not installed here")
def test_the_baseline_on_a_tiny_file_joins_the_inferi_table(tiny_gguf, capsys):
    path = tiny_gguf("llama", "F32")[0]
    b = transformers_decode.benchmark(path, [1, 8], 4, device="cpu")
    assert set(b.prompt) == {1, 8} and all(s > 0 for s in b.prompt.values()) and b.decode > 0 and b.produced == 4
    inferi_decode.main([str(path), "--backend", "cpu", "--prompt-sizes", "4", "--decode", "4", "--ctx", "64",
                        "--transformers"])
    out = capsys.readouterr().out
    assert "| transformers (eager f32) |" in out and "| cpu |" in out
