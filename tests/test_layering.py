"""The layering rules of the design, read from the sources: which top-level package may import which.

The runtime (with the IR it executes) never imports the compiler or anything above it; a library's kernels never
import the library; nothing imports upward. Imports are read with `ast`, so a rule is checked whether or not the
code path runs in a test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PROJECT = ("hatch_khal", "khal_runtime", "shaders", "vortx", "inferi")
# what each package may import from the project (beside itself)
ALLOWED = {
    "khal_runtime": set(),
    "hatch_khal": {"khal_runtime"},
    "shaders": {"khal_runtime"},
    "vortx": {"khal_runtime", "shaders"},
    "inferi": {"khal_runtime", "shaders", "vortx"},
}


def imported(path: Path) -> set[tuple[str, int]]:
    """(top-level project package, line) of every absolute import in a file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
            [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else []
        found |= {(n.split(".")[0], node.lineno) for n in names if n.split(".")[0] in PROJECT}
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_no_import_runs_up_or_sideways(package):
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        if "_generated" in path.parts:
            continue
        for other, line in sorted(imported(path)):
            if other != package and other not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {other}")
    assert not wrong, f"{package} may import only {sorted(ALLOWED[package]) or 'nothing of the project'}: {wrong}"


def test_the_rule_reads_imports(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import os\nfrom hatch_khal.build import build\nif True:\n    import vortx.ops as ops\n"
                     "from . import sibling\n")
    assert imported(probe) == {("hatch_khal", 2), ("vortx", 4)}
