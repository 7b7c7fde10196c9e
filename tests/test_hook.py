"""The Hatch hook under a real `pip wheel` of throwaway projects: a compile error or a BuildError is the first thing
pip shows of the failure, with no traceback of the hook; a shader package that another distribution owns is refused.

These builds target the CPU only (no toolchain needed) and skip pip's build isolation: the hook comes from this
checkout (PYTHONPATH), loaded as a custom hook the way build_hooks.py loads it for this project.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

pytest.importorskip("hatchling", reason="the hook tests build wheels with hatchling (pip install 'khal-gpu[build]')")

ROOT = Path(__file__).resolve().parents[1]

PYPROJECT = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "throwaway"
version = "0"

[tool.hatch.build.targets.wheel]
packages = ["{package}"]

[tool.hatch.build.targets.wheel.hooks.custom]
path = "khal_hook.py"
packages = ["{package}"]
targets = ["cpu"]
{extra}"""

HOOK = """\
from hatch_khal.plugin import KhalBuildHook


class Hook(KhalBuildHook):
    PLUGIN_NAME = "custom"


def get_build_hook():
    return Hook
"""

SCALE = """\
from khal_runtime.lang import MutBuf, f32, global_id, kernel


@kernel(workgroup_size=(64,))
def scale(x: MutBuf[f32], factor: f32):
    i = global_id().x
    if i < len(x):
        x[i] = x[i] * factor
"""


def make_project(folder: Path, package: str = "throwaway_kernels", source: str = SCALE, extra: str = "") -> Path:
    (folder / package).mkdir(parents=True)
    (folder / package / "__init__.py").write_text("")
    (folder / package / "scale.py").write_text(source)
    (folder / "pyproject.toml").write_text(PYPROJECT.format(package=package, extra=extra))
    (folder / "khal_hook.py").write_text(HOOK)
    return folder


def pip_wheel(project: Path, pythonpath: tuple[Path, ...] = ()) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(map(str, (ROOT, *pythonpath))),
               KHAL_CACHE_DIR=str(project / "cache"))
    return subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                           "-w", str(project / "dist"), str(project)], capture_output=True, env=env,
                          encoding="utf-8")     # pip writes UTF-8 (a ×)


def failure_lines(done: subprocess.CompletedProcess) -> list[str]:
    """The lines of the build backend's output that pip shows under "[N lines of output]"."""
    assert done.returncode != 0, done.stdout + done.stderr
    text = done.stdout + done.stderr
    assert "lines of output]" in text, text
    shown = text.split("lines of output]", 1)[1].split("[end of output]", 1)[0]
    return [line.strip() for line in shown.strip("\n").splitlines()]


def test_a_compile_error_is_the_first_thing_pip_shows(tmp_path):
    project = make_project(tmp_path, source=SCALE.replace("x[i] * factor", "x[i] * i"))
    done = pip_wheel(project)
    lines = failure_lines(done)
    assert lines[:3] == ["throwaway_kernels/scale.py:8:16: error: cannot multiply f32 and u32: kernels do not "
                         "convert types implicitly", "x[i] = x[i] * i", "^^^^^^^^"], lines
    assert "Traceback" not in done.stdout + done.stderr


def test_a_build_error_is_the_first_thing_pip_shows(tmp_path):
    project = make_project(tmp_path, extra='cuda-arch = "sm_90"\n')
    done = pip_wheel(project)
    lines = failure_lines(done)
    assert lines[0].startswith("khal: [tool.hatch.build.targets.wheel.hooks.custom]: cuda-arch must be a virtual "
                               "architecture such as compute_75"), lines
    assert "Traceback" not in done.stdout + done.stderr


def test_the_hook_refuses_a_shader_package_that_another_distribution_owns(tmp_path):
    site = tmp_path / "site"
    info = site / "kernel_zoo-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: kernel-zoo\nVersion: 1.0\n")
    (info / "RECORD").write_text("zoo_kernels/__init__.py,,\n")
    project = make_project(tmp_path / "project", package="zoo_kernels")
    lines = failure_lines(pip_wheel(project, pythonpath=(site,)))
    assert lines[0].startswith("khal: the shader package 'zoo_kernels' of 'throwaway' has the import name "
                               "'zoo_kernels', which the installed distribution 'kernel-zoo' owns"), lines


def test_a_good_project_builds_a_typed_wheel(tmp_path):
    project = make_project(tmp_path)
    done = pip_wheel(project)
    assert done.returncode == 0, done.stdout + done.stderr
    (wheel,) = (project / "dist").glob("throwaway-0-*.whl")
    listed = zipfile.ZipFile(wheel).namelist()
    names = set(listed)
    assert len(names) == len(listed)
    generated = "throwaway_kernels/_generated"
    assert {f"{generated}/py.typed", f"{generated}/scale.py", f"{generated}/scale.pyi", f"{generated}/manifest.json",
            f"{generated}/kernels/scale.scale.kir.json"} <= names
    # the output folder is not git-ignored here, yet the stamp stays out of the wheel, and back in the tree
    assert not any(name.endswith(".khal-stamp") for name in names)
    assert (project / generated / ".khal-stamp").is_file()
