"""The documentation runs: every kernel in docs/LANGUAGE.md and README.md compiles."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hatch_khal.frontend import compile_package

ROOT = Path(__file__).resolve().parents[1]
BLOCKS = [(doc, i, block) for doc in ("docs/LANGUAGE.md", "README.md") if (ROOT / doc).is_file()
          for i, block in enumerate(re.findall(r"```python\n(.*?)```", (ROOT / doc).read_text(), re.S))
          if "@kernel" in block]


@pytest.mark.parametrize("doc,index,block", BLOCKS, ids=[f"{d}#{i}" for d, i, _ in BLOCKS])
def test_documented_kernels_compile(tmp_path, doc, index, block):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "doc.py").write_text(block)
    kernels = compile_package(tmp_path, "pkg")["doc"]
    assert kernels, f"{doc}: block {index} defines no kernel"


def test_the_language_page_has_examples():
    assert sum(1 for d, _, _ in BLOCKS if d == "docs/LANGUAGE.md") >= 5


def readme_blocks(marker: str) -> list[str]:
    return [block for block in re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
            if marker in block]


# (what marks the block, what it prints): the host example with a bare backend, capture and replay, and vortx
# running a kernel
RUNNABLE = [("khal.backend()", "[1. 2. 3. 4.]"), ("backend.capture()", "[15. 15. 15. 15.]"),
            ("vx.run(", "[2. 4. 6. 8.]")]


@pytest.mark.parametrize("marker,printed", RUNNABLE, ids=[m for m, _ in RUNNABLE])
def test_readme_host_code_runs(marker, printed, monkeypatch, capsys):
    blocks = readme_blocks(marker)
    assert blocks, f"README.md has no example with {marker}"
    monkeypatch.setenv("KHAL_BACKEND", "cpu")
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})
        assert printed in capsys.readouterr().out
