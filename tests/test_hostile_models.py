"""Hostile model files through the whole loader (`inferi.load_model`: reader, config, tokenizer, weights) and the
CLI (`inferi inspect`, `inferi generate`): files whose header parses but whose metadata or tensors do not describe a
runnable model (tests/hostile_models.py), truncations of a real tiny model at many offsets, and seeded random byte
flips. Each is refused with an inferi error (a ValueError) that begins with the file's path and names the key or
tensor, within a second and without a large allocation; the CLI prints one `inferi: error:` line and exits 2."""

from __future__ import annotations

import random
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path

import pytest
from hostile_models import MODEL_CASES, rewrite_gguf
from tiny_models import require_transformers, tiny_gguf_fixture  # noqa: F401

import inferi
from inferi.chat_template import ChatTemplateError
from inferi.cli import main
from inferi.gguf import read_gguf

require_transformers()
ROOT = Path(__file__).resolve().parents[1]
LIMIT_S = 1.0
ALLOCATION_LIMIT = 64 << 20          # the tiny model's weights and tokenizer take a few MiB


@pytest.fixture(scope="module")
def tiny(tiny_gguf) -> Path:
    return tiny_gguf("llama", "F32")[0]


def load(path: Path):
    return inferi.load_model(path, backend="cpu", progress=False)


def refused_by_load(path: Path) -> str:
    """load_model(path) raises a ValueError beginning with the path, within LIMIT_S; its message."""
    start = time.perf_counter()
    try:
        load(path)
    except ValueError as e:
        message = str(e)
    else:
        pytest.fail(f"{path}: loaded without an error")
    took = time.perf_counter() - start
    assert took < LIMIT_S, f"{path}: {took:.2f} s"
    assert message.startswith(f"{path}: "), message
    return message


def cli_outcome(capsys, *args: str) -> tuple[int, str]:
    """main(args) in this process: (exit status, stderr after the progress bar that a successful load erases);
    only SystemExit may leave it, never another exception."""
    start = time.perf_counter()
    try:
        status = main(list(args))
    except SystemExit as e:
        status = e.code
    took = time.perf_counter() - start
    assert took < LIMIT_S + 0.5, f"{args}: {took:.2f} s"
    return status, capsys.readouterr().err.rsplit("\r", 1)[-1]


def assert_one_error_line(status: int, err: str, path: Path) -> None:
    assert status == 2 and err.startswith(f"inferi: error: {path}: ") and err.count("\n") == 1, err


def generate_args(path: Path) -> tuple[str, ...]:
    return ("generate", "--model", str(path), "--backend", "cpu", "--prompt", "hi", "--max-tokens", "1",
            "--ctx", "16")


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_hostile_model_is_refused_by_the_api_and_the_cli(tiny, tmp_path, capsys, case):
    changes, tensors, expected = MODEL_CASES[case]
    path = tmp_path / "hostile.gguf"
    rewrite_gguf(tiny, path, changes, tensors)
    if expected is None:                 # a context length of 2^31 - 1: the cache takes the default 4096
        assert load(path).ctx == inferi.llm.DEFAULT_CONTEXT
        # asked for all of it, the cache (512 GiB) is refused, and the CLI says so in one line
        with pytest.raises(inferi.llm.ContextError, match=r"KV cache of 2147483647 tokens \(512.0 GiB\)"):
            inferi.load_model(path, backend="cpu", context_length=2**31 - 1, progress=False)
        status, err = cli_outcome(capsys, *generate_args(path)[:-1], str(2**31 - 1))
        assert_one_error_line(status, err, path)
        return
    if case == "chat template bad syntax":      # compiled when a chat first renders it, and refused then
        with pytest.raises(ChatTemplateError, match=expected):
            next(load(path).chat([{"role": "user", "content": "hi"}]))
        status, err = cli_outcome(capsys, *generate_args(path))
        assert status == 2 and err.startswith("inferi: error: tokenizer.chat_template, line 1: ") and \
            err.count("\n") == 1, err
        return
    tracemalloc.start()
    try:
        message = refused_by_load(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert expected in message, message
    assert peak < ALLOCATION_LIMIT, f"{peak} bytes allocated"
    status, err = cli_outcome(capsys, *generate_args(path))
    assert_one_error_line(status, err, path)
    assert expected in err


def test_a_hostile_model_through_the_console(tiny, tmp_path):
    # a real process: exit status 2, one line on stderr, no traceback
    path = tmp_path / "hostile.gguf"
    rewrite_gguf(tiny, path, *MODEL_CASES["block count 2^31 - 1"][:2])
    done = subprocess.run([sys.executable, "-m", "inferi", *generate_args(path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)
    assert done.returncode == 2 and not done.stdout and "Traceback" not in done.stderr
    assert done.stderr == f"inferi: error: {path}: tensor blk.2.attn_norm.weight is missing (llama.block_count is " \
                          f"2147483647)\n"


def cut_points(tiny: Path) -> list[int]:
    """Every byte of the header, then every 7th byte of the metadata and tensor table, then every 4 KiB of data."""
    with read_gguf(tiny) as f:
        data_offset, data_end = f.data_offset, max(t.offset + t.nbytes for t in f.tensors.values())
    return [*range(0, 256), *range(256, data_offset, 7), *range(data_offset, data_end, 4096), data_end - 1]


def test_truncations_are_refused(tiny, tmp_path, capsys):
    data, cut = tiny.read_bytes(), tmp_path / "cut.gguf"
    points = cut_points(tiny)
    for n in points:
        cut.write_bytes(data[:n])
        refused_by_load(cut)
    for n in points[::10]:                # the CLI path shares the loader's checks: a tenth of the cuts
        cut.write_bytes(data[:n])
        for args in (("inspect", str(cut)), generate_args(cut)):
            assert_one_error_line(*cli_outcome(capsys, *args), cut)


def test_random_byte_flips_load_or_are_refused(tiny, tmp_path, capsys):
    data = tiny.read_bytes()
    with read_gguf(tiny) as f:
        head = f.data_offset              # metadata and tensor table: flips in tensor data change only values
    rng, flipped = random.Random(20261202), tmp_path / "flip.gguf"
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(150):
        mutated = bytearray(data)
        for _ in range(rng.randint(1, 3)):
            mutated[rng.randrange(head)] ^= 1 << rng.randrange(8) if rng.random() < 0.7 else rng.randrange(1, 256)
        flipped.write_bytes(bytes(mutated))
        start = time.perf_counter()
        try:
            load(flipped)
            outcomes["loaded"] += 1
        except ValueError as e:
            assert str(e).startswith(f"{flipped}: "), str(e)
            outcomes["refused"] += 1
            if i % 5 == 0:
                assert_one_error_line(*cli_outcome(capsys, *generate_args(flipped)), flipped)
        assert time.perf_counter() - start < LIMIT_S
        if i % 5 == 0:
            status, err = cli_outcome(capsys, "inspect", str(flipped))
            assert status == 0 or (status == 2 and err.startswith(f"inferi: error: {flipped}: ")), err
    assert outcomes["loaded"] and outcomes["refused"], outcomes
