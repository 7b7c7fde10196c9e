"""mypy, reading the generated .pyi stubs, rejects a buffer of the wrong element type and a read-only buffer where
the kernel writes, and accepts correct calls."""

from __future__ import annotations

from pathlib import Path

import pytest

api = pytest.importorskip("mypy.api")
ROOT = Path(__file__).resolve().parents[1]

SCRIPT = """\
import numpy as np

import khal_runtime as khal
from shaders._generated.examples.add_assign import AddAssign
from khal_runtime.lang import f32, u32
from shaders._generated.examples.matmul import MatmulShape, MatmulTiled


def run(backend: khal.Backend, pass_: khal.Pass) -> None:
    a = backend.init_buffer(np.zeros(4, dtype=np.float32), dtype=f32)
    b = backend.uninit_buffer(f32, 4)
    ints = backend.init_buffer([1, 2, 3, 4], dtype=u32)
    add = AddAssign(backend)
    add.call(pass_, 4, a, b)
    add.call(pass_, 4, a, b.read_only())
    add.call(pass_, 4, a, ints)  # wrong element type
    add.call(pass_, 4, a.read_only(), b)  # the kernel writes `a`
    MatmulTiled(backend).call(pass_, (2, 2), a, b, b, MatmulShape(m=2, k=2, n=2))
    MatmulTiled(backend).call(pass_, (2, 2), a, b, b, 7)  # not a MatmulShape
"""


def test_mypy_checks_kernel_calls(tmp_path, monkeypatch):
    monkeypatch.setenv("MYPYPATH", str(ROOT))
    script = tmp_path / "calls.py"
    script.write_text(SCRIPT)
    out, err, status = api.run([str(script), "--follow-imports=silent", "--no-error-summary",
                                "--cache-dir", str(tmp_path / "cache"), "--python-version", "3.10"])
    lines = SCRIPT.splitlines()
    flagged = {int(line.split(":")[1]) for line in out.splitlines() if ": error:" in line}
    wanted = {i + 1 for i, line in enumerate(lines) if line.endswith(("# wrong element type", "# the kernel writes `a`",
                                                                        "# not a MatmulShape"))}
    assert flagged == wanted, out + err
    assert 'Argument 4 to "call" of "AddAssign" has incompatible type "Buffer[u32]"; expected ' \
           '"ReadOnlyBuffer[f32]"' in out
    assert 'Argument 3 to "call" of "AddAssign" has incompatible type "ReadOnlyBuffer[f32]"; expected ' \
           '"Buffer[f32]"' in out
