"""Every kernel the build ships, and a corpus of the shapes naga mishandles (tests/naga_corpus), load through wgpu:
naga in wgpu-native 29 panics, aborting the process, on a subgroup operation of a value that the optimizer carried
out of a loop, and refuses an atomic of one (hatch_khal/toolchains/naga.py). Each kernel loads in a child process
(tests/naga_loading.py), so a panic fails the test that names its kernel, and the other kernels still load."""

from __future__ import annotations

import importlib
import importlib.resources
import json
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, get_backend
from naga_loading import Loaded, load_in_children

from hatch_khal.build import Options, build, output_directory
from hatch_khal.cache import Cache, default_directory
from hatch_khal.cli import read_options
from hatch_khal.frontend import compile_package
from hatch_khal.manifest import kernel_id
from hatch_khal.toolchains import glslang, naga, spirv_tools

TESTS = Path(__file__).parent
CORPUS = "naga_corpus"
# What naga 29 refuses whatever the build does. A refusal is an error that the runtime reports, not a panic; when a
# wgpu-py release loads it, this test fails, and the limitation can go.
REFUSED_BY_NAGA = {"shared_memory.compare_exchange": "naga 29 refuses every OpAtomicCompareExchange"}
_OP_COPY_OBJECT, _OP_GROUP_NON_UNIFORM_FADD = 83, 350


@cache
def shipped_kernels() -> dict[str, tuple[dict, Path]]:
    """Every instance of every shader package that this project's build makes for WebGPU: {name: (manifest
    entry, SPIR-V file)}."""
    options = read_options(ROOT)
    kernels = {}
    for package in options.packages if "webgpu" in options.targets else ():
        out = ROOT / output_directory(package, options)
        for name, info in json.loads((out / "manifest.json").read_text())["kernels"].items():
            kernels[f"{package}.{name}"] = (info, out / info["artifacts"]["spirv"]["path"])
    return kernels


@cache
def corpus_names() -> list[str]:
    return [kernel_id(module, k) for module, kernels in compile_package(TESTS, CORPUS).items() for k in kernels]


@pytest.fixture(scope="module")
def webgpu():
    return get_backend("webgpu")


@pytest.fixture(scope="module")
def corpus_build() -> tuple[dict[str, dict], dict[str, bytes]]:
    """The corpus built as the project's kernels are (optimize on): its manifest entries and its files."""
    options = Options(packages=(CORPUS,), targets=("webgpu",))
    files = build(TESTS, options, Cache(default_directory()))
    out = output_directory(CORPUS, options)
    return json.loads(files[f"{out}/manifest.json"])["kernels"], {p[len(out) + 1:]: d for p, d in files.items()
                                                                   if p.startswith(out + "/")}


def artifact(corpus_build, name: str, kind: str) -> bytes:
    entries, files = corpus_build
    return files[entries[name]["artifacts"][kind]["path"]]


@pytest.fixture(scope="module")
def shipped_loaded(webgpu) -> dict[str, Loaded]:
    return load_in_children({name: (info, path.read_bytes()) for name, (info, path) in shipped_kernels().items()})


@pytest.fixture(scope="module")
def corpus_loaded(webgpu, corpus_build) -> dict[str, Loaded]:
    entries = corpus_build[0]
    return load_in_children({name: (entries[name], artifact(corpus_build, name, "spirv")) for name in entries})


def expect_loaded(loaded: Loaded, name: str) -> None:
    if loaded.status == "skipped":
        pytest.skip(f"{name}: {loaded.message}")
    assert loaded.status == "ok", f"kernel {name} {loaded.status} in wgpu: {loaded.message}"


@pytest.mark.webgpu
@pytest.mark.parametrize("name", sorted(shipped_kernels()))
def test_a_shipped_kernel_loads_through_naga(shipped_loaded, name):
    expect_loaded(shipped_loaded[name], name)


@pytest.mark.webgpu
@pytest.mark.toolchains
@pytest.mark.parametrize("name", corpus_names())
def test_a_corpus_kernel_loads_through_naga(corpus_loaded, name):
    if name in REFUSED_BY_NAGA:
        assert corpus_loaded[name].status == "rejected", f"{name}: {REFUSED_BY_NAGA[name]}, and no longer does"
    else:
        expect_loaded(corpus_loaded[name], name)


def optimized_without_the_rewrite(glsl: bytes) -> bytes:
    """The SPIR-V that the build made before hatch_khal.toolchains.naga: glslang, then `spirv-opt -O`."""
    return spirv_tools.optimize(spirv_tools.strip_relaxed_precision(glslang.compile_glsl(glsl.decode())))


@pytest.mark.webgpu
@pytest.mark.toolchains
def test_a_panic_fails_the_kernel_that_caused_it_and_the_kernels_after_it_still_load(webgpu, corpus_build):
    entries = corpus_build[0]
    name = "loop_subgroups.strided_sum"
    panics = optimized_without_the_rewrite(artifact(corpus_build, name, "glsl"))
    results = load_in_children({"before": (entries[name], artifact(corpus_build, name, "spirv")),
                                "panics": (entries[name], panics),
                                "after": (entries[name], artifact(corpus_build, name, "spirv"))})
    assert results["before"] == results["after"] == Loaded("ok")
    assert results["panics"].status == "crashed" and "panicked at" in results["panics"].message, results["panics"]


@pytest.mark.toolchains
def test_the_rewrite_copies_the_loop_value_of_a_subgroup_operation_into_its_block(corpus_build):
    before = optimized_without_the_rewrite(artifact(corpus_build, "loop_subgroups.strided_sum", "glsl"))
    after = naga.for_naga(before)
    (header, old), (new_header, new) = spirv_tools.parse(before), spirv_tools.parse(after)
    assert new_header[3] == header[3] + 1                   # one new id: the copy
    [copy] = [i for i in new if i.opcode == _OP_COPY_OBJECT]
    [reduce] = [i for i in new if i.opcode == _OP_GROUP_NON_UNIFORM_FADD]
    assert new.index(reduce) == new.index(copy) + 1 and reduce.words[-1] == copy.result_id
    [original] = [i for i in old if i.opcode == _OP_GROUP_NON_UNIFORM_FADD]
    assert copy.words[-1] == original.words[-1]             # the copy reads what the reduction read
    assert [i for i in new if i not in (copy, reduce)] == [i for i in old if i != original]
    assert spirv_tools.assemble(header, [i.words for i in old]) == before


@pytest.mark.toolchains
def test_the_rewrite_is_done_once_and_for_all_in_every_kernel(corpus_build):
    """Every built kernel is its own rewrite: no subgroup or atomic operand is left in another block."""
    spirv = [info_path[1].read_bytes() for info_path in shipped_kernels().values()]
    spirv += [artifact(corpus_build, name, "spirv") for name in corpus_build[0]]
    assert spirv and all(naga.for_naga(s) is s for s in spirv)


SUMS = """
from khal_runtime.lang import Buf, MutBuf, atomic_add, atomic_exchange, f32, kernel, local_id, subgroup_add
from khal_runtime.lang import subgroup_size, u32


@kernel(workgroup_size=(32,))
def strided_sum(y: MutBuf[f32], size: MutBuf[u32], x: Buf[f32], cols: u32):
    lid = local_id().x
    acc = f32(0)
    for b in range(lid, cols, 32):
        acc += x[b]
    y[lid] = subgroup_add(acc)
    size[0] = subgroup_size()


@kernel(workgroup_size=(32,))
def atomic_sum(total: MutBuf[u32], last: MutBuf[u32], x: Buf[u32], cols: u32):
    lid = local_id().x
    acc = u32(0)
    for b in range(lid, cols, 32):
        acc += x[b]
    atomic_add(total, 0, acc)
    atomic_exchange(last, lid, acc)
"""


@pytest.mark.webgpu
@pytest.mark.toolchains
def test_rewritten_kernels_compute_their_sums(webgpu, shader_package):
    package = shader_package({"sums": SUMS}, targets=("webgpu",))
    entries = json.loads(importlib.resources.files(package).joinpath("manifest.json").read_text())["kernels"]
    spirv = {name: importlib.resources.files(package).joinpath(info["artifacts"]["spirv"]["path"]).read_bytes()
             for name, info in entries.items()}
    loaded = load_in_children({name: (entries[name], spirv[name]) for name in entries})
    for name in entries:            # loading here what would panic would abort the test run
        expect_loaded(loaded[name], name)
    sums = importlib.import_module(f"{package}.sums")
    cols = 1000
    x = np.random.default_rng(3).integers(0, 100, cols)
    y, size = webgpu.init_buffer(np.zeros(32, np.float32)), webgpu.init_buffer(np.zeros(1, np.uint32))
    total, last = webgpu.init_buffer(np.zeros(1, np.uint32)), webgpu.init_buffer(np.zeros(32, np.uint32))
    xf, xu = webgpu.init_buffer(x.astype(np.float32)), webgpu.init_buffer(x.astype(np.uint32))
    encoder = webgpu.begin_encoding()
    with encoder.begin_pass() as pass_:
        sums.StridedSum(webgpu).call(pass_, 32, y, size, xf, cols)
        sums.AtomicSum(webgpu).call(pass_, 32, total, last, xu, cols)
    webgpu.submit(encoder)
    lanes = np.array([x[lane::32].sum() for lane in range(32)])
    width = min(int(size.read()[0]), 32)          # a subgroup of 64 lanes holds the whole workgroup
    np.testing.assert_array_equal(y.read(), lanes.reshape(-1, width).sum(axis=1).repeat(width))
    assert int(total.read()[0]) == x.sum()
    np.testing.assert_array_equal(last.read(), lanes)
