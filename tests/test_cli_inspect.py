"""`inferi inspect`: the metadata and tensor table of a good file; for a bad or missing one, `inferi: error:` with
the reader's message and exit status 2, never a traceback. Run as `python -m inferi` in a subprocess (the
console script appears only once the project is reinstalled), and in-process over the whole hostile corpus."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest
from gguf_files import hostile_files, write_valid

from inferi.cli import main

ROOT = Path(__file__).resolve().parents[1]
HOSTILE = hostile_files()


def inferi(*args) -> subprocess.CompletedProcess:
    # from the repository root, so that `-m inferi` imports this checkout's package
    return subprocess.run([sys.executable, "-m", "inferi", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


def test_inspect_shows_metadata_tensors_and_totals(tmp_path):
    path = tmp_path / "good.gguf"
    written = write_valid(path)
    done = inferi("inspect", path)
    assert done.returncode == 0 and not done.stderr, done.stderr
    out = done.stdout
    assert out.startswith(f"{path}: GGUF version 3")
    assert "t.u32                      UINT32           4000000000" in out
    assert "'héllo, wörld ✓'" in out and "[STRING; 5]" in out and "[FLOAT32; 3]" in out
    for name, (qtype, shape, array) in written.items():
        line = next(line for line in out.splitlines() if line.strip().startswith(name + " "))
        assert line.split()[1] == qtype.name and " x ".join(map(str, shape)) in line
        assert line.endswith(f"{array.nbytes:,}")
    total, params = sum(a.nbytes for _, _, a in written.values()), sum(np.prod(s) for _, s, _ in written.values())
    assert f"total: 5 tensors, {params:,} parameters, {total:,} bytes" in out


def test_long_arrays_and_strings_are_summarised(tmp_path, capsys):
    path = tmp_path / "long.gguf"
    w = gguf.GGUFWriter(path, "llama")
    w.add_array("long.numbers", list(range(100_000, 101_000)))
    w.add_array("long.words", [f"word{i}" for i in range(1000)])
    w.add_string("long.text", "x" * 5000)
    w.add_string("\x1b[31mred", "escape")                   # a key that would drive the terminal
    w.add_tensor("t", np.zeros(4, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    assert main(["inspect", str(path), "--items", "3"]) == 0
    out = capsys.readouterr().out
    assert "[100000, 100001, 100002, ... (1,000 in all)]" in out and "100999" not in out
    assert "['word0', 'word1', 'word2', ... (1,000 in all)]" in out and "word999" not in out
    assert "... (5,000 characters)" in out and "x" * 100 not in out
    assert "\x1b" not in out and "'\\x1b[31mred'" in out


@pytest.mark.parametrize("case", ["2^40-element string array", "array of arrays of arrays", "5 dimensions",
                                  "overlapping tensors", "bad UTF-8 key", "tokens as INT32", "empty file"])
def test_a_hostile_file_is_one_error_line(tmp_path, case):
    data, expected = HOSTILE[case]
    path = tmp_path / "bad.gguf"
    path.write_bytes(data)
    done = inferi("inspect", path)
    assert done.returncode == 2 and not done.stdout
    assert done.stderr.startswith(f"inferi: error: {path}: ") and expected in done.stderr
    assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr


def test_a_truncated_file_is_one_error_line(tmp_path):
    good = tmp_path / "good.gguf"
    write_valid(good)
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(good.read_bytes()[:700])
    done = inferi("inspect", cut)
    assert done.returncode == 2 and done.stderr.startswith(f"inferi: error: {cut}: ") and "Traceback" not in done.stderr


@pytest.mark.parametrize("which", ["missing", "directory"])
def test_a_missing_file_or_a_directory_is_one_error_line(tmp_path, which):
    path = tmp_path / "nope.gguf" if which == "missing" else tmp_path
    done = inferi("inspect", path)
    reason = "No such file or directory" if which == "missing" else "Is a directory"
    assert done.returncode == 2 and done.stderr == f"inferi: error: {path}: {reason}\n"


def test_every_hostile_file_exits_2_in_process(tmp_path, capsys):
    for case, (data, expected) in HOSTILE.items():
        path = tmp_path / "bad.gguf"
        path.write_bytes(data)
        with pytest.raises(SystemExit) as e:
            main(["inspect", str(path)])
        err = capsys.readouterr().err
        assert e.value.code == 2 and err.startswith(f"inferi: error: {path}: ") and expected in err, case


def test_commands_are_only_those_that_work():
    done = inferi("--help")
    assert done.returncode == 0 and "inspect" in done.stdout
    done = inferi()
    assert done.returncode == 2 and "inferi: error:" in done.stderr
