"""A generated package imported from a source tree (an editable install) warns when its kernels' sources changed
since the build that wrote it, naming the files and the command that rebuilds; without a stamp (a wheel) it reads
nothing. The builds here target the CPU only, so no toolchain is needed."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

from hatch_khal.build import Options, build, up_to_date, write_outputs
from hatch_khal.cache import Cache
from khal_runtime import freshness
from khal_runtime.freshness import StaleBuildWarning, warn_if_stale

ROOT = Path(__file__).resolve().parents[1]

SCALE = """\
from khal_runtime.lang import MutBuf, f32, global_id, kernel


@kernel(workgroup_size=(64,))
def scale(x: MutBuf[f32], factor: f32):
    i = global_id().x
    if i < len(x):
        x[i] = x[i] * factor
"""


class Project:
    """A project in `root` with the shader package `fresh_kernels` (modules scale and sub/twice), built for the CPU."""

    def __init__(self, root: Path):
        self.root, self.package = root, root / "fresh_kernels"
        self.options = Options(packages=("fresh_kernels",), targets=("cpu",))
        (self.package / "sub").mkdir(parents=True)
        for init in (self.package / "__init__.py", self.package / "sub" / "__init__.py"):
            init.write_text("")
        (self.package / "scale.py").write_text(SCALE)
        (self.package / "sub" / "twice.py").write_text(SCALE.replace("scale", "twice"))
        self.build()

    def build(self) -> None:
        write_outputs(self.root, build(self.root, self.options, Cache(None)), self.options)

    @property
    def init(self) -> str:
        return str(self.package / "_generated" / "__init__.py")

    def warnings(self) -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            warn_if_stale("fresh_kernels._generated", self.init)
        assert all(w.category is StaleBuildWarning for w in caught)
        return [str(w.message) for w in caught]


@pytest.fixture
def project(tmp_path):
    return Project(tmp_path)


def test_a_fresh_build_is_quiet_even_when_its_sources_were_touched(project):
    assert project.warnings() == []
    source = project.package / "scale.py"
    info = source.stat()
    os.utime(source, ns=(info.st_atime_ns, info.st_mtime_ns + 10**9))  # a checkout: new time, same bytes
    assert project.warnings() == []


def test_an_edited_kernel_is_named_with_the_command_that_rebuilds(project):
    (project.package / "scale.py").write_text(SCALE.replace("x[i] * factor", "x[i] * factor + 1.0"))
    (message,) = project.warnings()
    assert message == ("the kernels of fresh_kernels._generated were compiled before their sources changed "
                       "(fresh_kernels/scale.py (changed)): they run as they were compiled. Rebuild them with "
                       f"`khal-gpu build` (or `python -m hatch_khal build`) in {project.root}, or reinstall the "
                       "project")
    assert not up_to_date(project.root, project.options)
    project.build()
    assert project.warnings() == []


def test_new_and_removed_modules_are_named(project):
    (project.package / "sub" / "twice.py").unlink()
    (project.package / "extra.py").write_text(SCALE.replace("scale", "extra"))
    (message,) = project.warnings()
    assert "(fresh_kernels/extra.py (new), fresh_kernels/sub/twice.py (removed))" in message


def test_the_generated_package_warns_when_imported(project):
    twice = project.package / "sub" / "twice.py"
    twice.write_text(twice.read_text().replace("* factor", "* factor * 2.0"))
    code = "import fresh_kernels._generated.sub.twice"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(project.root), str(ROOT)]))
    done = subprocess.run([sys.executable, "-W", "error::UserWarning", "-c", code], capture_output=True, text=True,
                          env=env, cwd=project.root)
    assert done.returncode == 1
    assert "khal_runtime.freshness.StaleBuildWarning: the kernels of fresh_kernels._generated were compiled before " \
           "their sources changed (fresh_kernels/sub/twice.py (changed))" in done.stderr


def test_a_copy_imported_under_another_name_is_not_compared(project):
    """A generated folder copied elsewhere (vendored, or a test's tampered copy) is away from its sources."""
    (project.package / "scale.py").write_text(SCALE.replace("x[i] * factor", "x[i] * factor + 1.0"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warn_if_stale("vendored._generated", project.init)


def test_without_a_stamp_nothing_is_read(project, monkeypatch):
    """An installed wheel has no stamp (its sources cannot change): the check stops at the missing file."""
    (project.package / "_generated" / freshness.STAMP).unlink()
    (project.package / "scale.py").write_text(SCALE.replace("x[i] * factor", "x[i] * factor + 1.0"))
    monkeypatch.setattr(freshness, "shader_sources", lambda *a: pytest.fail("read the sources without a stamp"))
    assert project.warnings() == []
