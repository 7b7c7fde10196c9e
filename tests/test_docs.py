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
