"""`inferi generate`, `chat` and `tokenize` on a tiny random model (the interpreter): the greedy text equals the
API's, chat keeps the conversation and obeys /reset and /exit, bad flags are one-line errors with exit status 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from tiny_models import require_transformers, tiny_gguf_fixture  # noqa: F401

import inferi
from inferi.sampling import SamplingParams

require_transformers()
ROOT = Path(__file__).resolve().parents[1]


def run(*args, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "inferi", *map(str, args)], input=stdin, capture_output=True,
                          text=True, cwd=ROOT, timeout=120, env={**__import__("os").environ, "KHAL_BACKEND": "cpu"})


@pytest.fixture
def tiny(tiny_gguf):
    return tiny_gguf("llama", "F32")[0]


def test_generate_prints_the_greedy_answer(tiny):
    done = run("generate", "--model", tiny, "--backend", "cpu", "--prompt", "the dog", "--temperature", "0",
               "--max-tokens", "6", "--ctx", "64")
    assert done.returncode == 0, done.stderr
    model = inferi.load_model(tiny, backend="cpu", context_length=64, progress=False)
    expected = "".join(model.chat([{"role": "user", "content": "the dog"}],
                                  SamplingParams(temperature=0, max_tokens=6)))
    assert done.stdout == expected + "\n"


def replies(stdout: str) -> list[str]:
    # input() writes its "> " prompt to stdout when stdin is not a terminal; each reply ends with a newline
    return [piece[:-1] for piece in stdout.split("> ")[1:] if piece.endswith("\n")]


def test_chat_keeps_the_conversation_and_resets(tiny):
    common = ("chat", "--model", tiny, "--backend", "cpu", "--temperature", "0", "--max-tokens", "3", "--ctx", "128")
    twice, reset = run(*common, stdin="hello\nhello\n/exit\n"), run(*common, stdin="hello\n/reset\nhello\n")
    assert twice.returncode == reset.returncode == 0, twice.stderr + reset.stderr
    model = inferi.load_model(tiny, backend="cpu", context_length=128, progress=False)
    greedy = SamplingParams(temperature=0, max_tokens=3)
    first = "".join(model.chat([{"role": "user", "content": "hello"}], greedy))
    second = "".join(model.chat([{"role": "user", "content": "hello"}, {"role": "assistant", "content": first},
                                 {"role": "user", "content": "hello"}], greedy))
    assert replies(twice.stdout) == [first, second]
    assert replies(reset.stdout) == [first, first]


@pytest.mark.parametrize("flags, message", [
    (["--temperature", "3"], "temperature"),
    (["--top-p", "1.5"], "top_p"),
    (["--max-tokens", "0"], "max_tokens"),
    (["--ctx", "100000"], "context of 100000 tokens is outside"),
])
def test_bad_flags_are_one_line_errors(tiny, flags, message):
    done = run("generate", "--model", tiny, "--backend", "cpu", "--prompt", "x", *flags)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("inferi: error: ") and message in done.stderr


def test_a_missing_model_is_an_error(tmp_path):
    done = run("generate", "--model", tmp_path / "none.gguf", "--prompt", "x")
    assert done.returncode == 2 and "no such file, and not a model that inferi can pull" in done.stderr


def test_tokenize(tiny):
    done = run("tokenize", "--model", tiny, "--prompt", "the dog")
    assert done.returncode == 0, done.stderr
    model = inferi.load_model(tiny, backend="cpu", context_length=16, progress=False)
    assert [int(line.split()[0]) for line in done.stdout.splitlines()] == model.tokenizer.encode("the dog")


def test_bench_prints_llama_bench_columns_and_memory(tiny):
    done = run("bench", "--model", tiny, "--backend", "cpu", "-p", "4", "8", "-n", "2", "-r", "2", "--ctx", "32")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "| model | size | params | backend | test | t/s | weights GB/s |"
    rows = [line.split("|")[1:-1] for line in lines[2:5]]
    assert [r[4].strip() for r in rows] == ["pp4", "pp8", "tg2"] and all(r[3].strip() == "cpu" for r in rows)
    assert all(float(r[5].split("±")[0].replace(",", "")) > 0 for r in rows)
    assert any(line.startswith("device memory at peak: ") and "KV cache" in line for line in lines)
    assert any(line.startswith("load: ") for line in lines)
    if Path("/proc/self/status").exists():
        assert any(line.startswith("host memory added by the load: ") and " x the file)" in line for line in lines)
    bad = run("bench", "--model", tiny, "--backend", "cpu", "-p", "64", "--ctx", "32")
    assert bad.returncode == 2 and "longer than the context of 32 tokens" in bad.stderr
