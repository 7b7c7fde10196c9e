"""This project as a distribution, and a third-party project that uses its plugin.

The wheel of this checkout (built once a session, without build isolation) is `khal-gpu`, has the `khal-gpu`
command and no `khal`, a `py.typed` in every package and every compiled kernel. A client project made exactly as
README's "Using khal in another project" says is built from that wheel under pip's build isolation, installed into
a fresh virtual environment, its kernel run on the CPU and WebGPU, and mypy, run there without flags, flags exactly
the five wrong calls of a script. The client tests need a package index (PyPI, or pip's cache) for the isolated
build and the environment; without one they skip, saying so.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import venv
import zipfile
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("hatch_khal", "khal_runtime", "shaders", "vortx", "inferi")

pytestmark = [pytest.mark.toolchains, pytest.mark.slow]


def pip(python: Path | str, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "pip", *args], capture_output=True, text=True, cwd=cwd)


def checked(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"{' '.join(map(str, done.args))}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="session")
def khal_wheel(tmp_path_factory) -> Path:
    pytest.importorskip("hatchling", reason="building the wheel needs hatchling (pip install 'khal-gpu[build]')")
    folder = tmp_path_factory.mktemp("khal-wheel")
    checked(pip(sys.executable, "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(folder), str(ROOT)))
    (wheel,) = folder.glob("khal_gpu-*.whl")
    return wheel


def test_the_wheel_is_khal_gpu_with_typed_packages_and_every_kernel(khal_wheel):
    archive = zipfile.ZipFile(khal_wheel)
    names = set(archive.namelist())
    info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert re.search(r"^Name: khal-gpu$", archive.read(f"{info}/METADATA").decode(), re.MULTILINE)
    entry_points = archive.read(f"{info}/entry_points.txt").decode()
    # hatchling lists console scripts sorted by name: inferi's comes first
    assert "[console_scripts]\ninferi = inferi.cli:main\nkhal-gpu = hatch_khal.cli:main\n" in entry_points
    assert not re.search(r"^khal\s*=", entry_points.split("[console_scripts]")[1].split("[")[0], re.MULTILINE)
    assert "[hatch]\nkhal = hatch_khal.plugin\n" in entry_points
    assert {f"{package}/py.typed" for package in (*PACKAGES, "shaders/_generated")} <= names

    manifest = json.loads(archive.read("shaders/_generated/manifest.json"))
    assert len(manifest["kernels"]) >= 13
    for kid, entry in manifest["kernels"].items():
        for suffix in (".comp", ".cu", ".spv", ".ptx", ".kir.json"):
            assert f"shaders/_generated/kernels/{kid}{suffix}" in names
        binding = "shaders/_generated/" + entry["module"].replace(".", "/")
        assert {binding + ".py", binding + ".pyi"} <= names
    assert {"hatch_khal/frontend/kernels.py", "khal_runtime/kernels.py", "khal_runtime/lang.py"} <= names
    assert not any("__pycache__" in n or n.endswith(".khal-stamp") for n in names)


# --- a client project --------------------------------------------------------------------------------------------

AFFINE = """\
from khal_runtime.lang import Buf, MutBuf, f32, global_id, kernel, struct, u32


@struct
class Line:
    slope: f32
    offset: f32


@kernel(workgroup_size=(64,))
def affine(y: MutBuf[f32], x: Buf[f32], n: u32, line: Line):
    i = global_id().x
    if i < n:
        y[i] = x[i] * line.slope + line.offset
"""

RUN = """\
import sys

import numpy as np

import khal_runtime as khal
from khal_runtime.lang import f32
from my_kernels._generated.affine import Affine, Line

for kind in sys.argv[1:]:
    backend = khal.backend(kind)
    x = np.arange(1000, dtype=np.float32)
    xs, ys = backend.init_buffer(x, dtype=f32), backend.uninit_buffer(f32, 1000)
    encoder = backend.begin_encoding()
    with encoder.begin_pass("affine") as pass_:
        Affine(backend).call(pass_, 1000, ys, xs, 1000, Line(slope=2.0, offset=0.5))
    backend.submit(encoder)
    np.testing.assert_array_equal(ys.read(), x * 2 + 0.5)
    print(kind, "ok")
"""

CALLS = """\
import numpy as np

import khal_runtime as khal
from khal_runtime.lang import f32, u32
from my_kernels._generated.affine import Affine, Line


def run(backend: khal.Backend, pass_: khal.Pass) -> None:
    x = backend.init_buffer(np.zeros(4, dtype=np.float32), dtype=f32)
    y = backend.uninit_buffer(f32, 4)
    ints = backend.init_buffer([1, 2, 3, 4], dtype=u32)
    affine = Affine(backend)
    affine.call(pass_, 4, y, x.read_only(), 4, Line(slope=2.0, offset=1.0))
    affine.call(pass_, 4, y, ints, 4, Line(slope=2.0, offset=1.0))  # wrong: a buffer of u32
    affine.call(pass_, 4, y.read_only(), x, 4, Line(slope=2.0, offset=1.0))  # wrong: the kernel writes y
    affine.call(pass_, 4, y, x, Line(slope=2.0, offset=1.0))  # wrong: an argument missing
    affine.call(pass_, 4, y, x, "4", Line(slope=2.0, offset=1.0))  # wrong: a string for a u32
    affine.call(pass_, 4, y, x, 4, (2.0, 1.0))  # wrong: a tuple for a struct
"""


def readme_pyproject() -> str:
    """The pyproject.toml that README's "Using khal in another project" gives."""
    section = (ROOT / "README.md").read_text().split("## Using khal in another project", 1)[1].split("\n## ", 1)[0]
    (toml,) = re.findall(r"```toml\n(.*?)```", section, re.DOTALL)
    assert 'requires = ["hatchling", "khal-gpu[build]"]' in toml
    assert "[tool.hatch.build.targets.wheel.hooks.khal]" in toml
    return toml


@dataclass
class Client:
    folder: Path
    python: Path            # of a fresh virtual environment with the client's wheel installed (and khal-gpu's)

    @property
    def site_packages(self) -> Path:
        (found,) = (self.folder / "venv" / "lib").glob("python*/site-packages")
        return found

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(self.python), *args], capture_output=True, text=True, cwd=self.folder / "scripts")


@pytest.fixture(scope="session")
def client(khal_wheel, tmp_path_factory) -> Client:
    folder = tmp_path_factory.mktemp("client")
    probe = pip(sys.executable, "download", "-q", "--no-deps", "--retries", "0", "--timeout", "20", "-d",
                str(folder / "probe"), "hatchling==1.33.0")
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["(no output)"])[-1]
        pytest.skip(f"no package index for pip here (the client's isolated build and environment need one): {last}")

    project = folder / "project"
    (project / "my_kernels").mkdir(parents=True)
    (project / "pyproject.toml").write_text(readme_pyproject())
    (project / "my_kernels" / "__init__.py").write_text("")
    (project / "my_kernels" / "affine.py").write_text(AFFINE)
    wheels = str(khal_wheel.parent)     # where pip finds khal-gpu, for the build requirement and the dependency
    checked(pip(sys.executable, "wheel", "-q", "--no-deps", "--find-links", wheels, "-w", str(folder / "dist"),
                str(project)))
    (client_wheel,) = (folder / "dist").glob("my_kernels-*.whl")

    venv.create(folder / "venv", with_pip=True)
    python = folder / "venv" / "bin" / "python"
    checked(pip(python, "install", "-q", "--find-links", wheels, str(client_wheel), "mypy"))
    (folder / "scripts").mkdir()
    (folder / "scripts" / "run.py").write_text(RUN)
    (folder / "scripts" / "calls.py").write_text(CALLS)
    return Client(folder, python)


def test_an_installed_wheel_is_khal_gpu_typed_without_a_khal_command(client):
    shown = checked(client.run("-c", "import importlib.metadata as m; d = m.distribution('khal-gpu'); "
                                     "print(d.metadata['Name'], sorted(e.name for e in d.entry_points))"))
    # the hook `khal` and the commands
    assert shown.stdout.split() == ["khal-gpu", "['inferi',", "'khal',", "'khal-gpu']"]
    scripts = client.python.parent
    assert (scripts / "khal-gpu").is_file() and not (scripts / "khal").exists()
    help_text = checked(subprocess.run([str(scripts / "khal-gpu"), "--help"], capture_output=True, text=True)).stdout
    assert help_text.startswith("usage: khal-gpu [-h]") and "build, check, inspect" in help_text
    for package in (*PACKAGES, "shaders/_generated", "my_kernels/_generated"):
        assert (client.site_packages / package / "py.typed").is_file(), package
    assert not list(client.site_packages.glob("my_kernels/_generated/.khal-stamp"))


def test_a_client_kernel_runs_on_the_cpu_and_webgpu(client):
    from khal_runtime import BackendError, backend

    assert checked(client.run("run.py", "cpu")).stdout == "cpu ok\n"
    try:
        backend("webgpu")
    except BackendError as e:
        pytest.skip(f"no WebGPU device here for the client's kernel: {e}")
    assert checked(client.run("run.py", "webgpu")).stdout == "webgpu ok\n"


def test_mypy_without_flags_flags_exactly_the_five_wrong_calls(client):
    done = client.run("-m", "mypy", "calls.py")
    wrong = {n for n, line in enumerate(CALLS.splitlines(), 1) if "# wrong:" in line}
    flagged = {int(line.split(":")[1]) for line in done.stdout.splitlines() if ": error:" in line}
    assert len(wrong) == 5 and flagged == wrong, done.stdout + done.stderr
    assert done.stdout.rstrip().endswith("Found 5 errors in 1 file (checked 1 source file)")
