"""The WebGPU backend (khal_runtime/backends/webgpu/) on a real device: lavapipe on a machine without a GPU.

Kernels come from two places: hand-written GLSL that follows docs/IR.md's ABI (compiled with glslang and put, with a
hand-made manifest, into a temporary package, so that they go through the generated-binding path `Kernel.call`), and
the example kernels of `shaders/` once `khal-gpu build` has produced `shaders/_generated`.
"""

from __future__ import annotations

import gc
import hashlib
import importlib
import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from hatch_khal import abi
from khal_runtime import BackendError, BufferUsage, Kernel, indirect, workgroups
from khal_runtime.backends import webgpu as webgpu_module

pytestmark = pytest.mark.webgpu
rng = np.random.default_rng(11)

DTYPES = [np.float32, np.float16, np.float64, np.int32, np.uint32, np.int64, np.uint64]


@pytest.fixture(scope="module")
def backend():
    try:
        return webgpu_module.WebGpuBackend()
    except BackendError as e:
        pytest.skip(f"no WebGPU adapter: {e}")


@pytest.fixture(scope="module")
def public_backend(backend):
    """A second device whose dispatches go through wgpu-py's public API only."""
    return webgpu_module.WebGpuBackend(native_calls=False)


@pytest.fixture(params=["native", "public"])
def any_backend(request, backend):
    return backend if request.param == "native" else request.getfixturevalue("public_backend")


# --- hand-written kernels in a temporary package -------------------------------------------------------------------

GLSL_TYPES = {"f32": "float", "u32": "uint", "i32": "int", "bool": "uint", "f64": "double", "i64": "int64_t",
              "u64": "uint64_t", "f16": "float16_t"}

HEADER = """#version 450
#extension GL_EXT_shader_explicit_arithmetic_types_int64 : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_shader_16bit_storage : require
layout(local_size_x = {x}, local_size_y = {y}, local_size_z = 1) in;
{buffers}
{structs}
layout(push_constant, std430) uniform khal_params {{
    uvec4 khal_grid;
{params}
}};
uvec3 khal_workgroup_id;
uvec3 khal_num_workgroups;     // the builtin when not folded (indirect dispatches), the logical grid when folded

void khal_prologue() {{
    khal_workgroup_id = uvec3(gl_WorkGroupID.x + gl_WorkGroupID.z * khal_grid.w, gl_WorkGroupID.y,
                              khal_grid.w == 0u ? gl_WorkGroupID.z : 0u);
    khal_num_workgroups = khal_grid.w == 0u ? gl_NumWorkGroups : khal_grid.xyz;
}}
"""


def kernel_source(name, body, buffers, scalars=(), structs=None, workgroup=(64, 1)):
    """GLSL following the ABI, and its manifest entry (without artifacts)."""
    structs = structs or {}
    stub = SimpleNamespace(structs=structs, scalars=[SimpleNamespace(name=n, type=t) for n, t in scalars])
    fields, size = abi.push_constants(stub)
    buffer_decls = "\n".join(
        f"layout(std430, set = 0, binding = {i}) {'readonly ' if access == 'read' else ''}buffer B{i} "
        f"{{ {GLSL_TYPES[elem]} {bname}[]; }};" for i, (bname, elem, access) in enumerate(buffers))
    struct_decls = "\n".join(f"struct {s} {{ " + " ".join(f"{GLSL_TYPES[t]} {f};" for f, t in fs) + " };"
                             for s, fs in structs.items())
    params = "\n".join(f"    layout(offset = {e['offset']}) "
                       f"{e['type'] if e['kind'] == 'struct' else GLSL_TYPES[e['type']]} "
                       f"{e['name']};" for e in fields[1:])
    source = HEADER.format(x=workgroup[0], y=workgroup[1], buffers=buffer_decls, structs=struct_decls,
                           params=params) + "void main() {\n    khal_prologue();\n" + body + "\n}\n"
    features = {"immediates"}
    types = {t for _, t, _ in buffers} | {t for _, t in scalars} | {t for fs in structs.values() for _, t in fs}
    features |= {"f64" for t in types if t == "f64"}
    features |= {"i64" for t in types if t in ("i64", "u64")}
    features |= {"f16" for t in types if t == "f16"}
    info = {
        "id": f"webgpu_tests.{name}", "module": "webgpu_tests", "function": name, "class": name,
        "entry": {"spirv": "main"},
        "source": "tests/test_webgpu_backend.py", "line": 1, "template": {},
        "params": [b[0] for b in buffers] + [n for n, _ in scalars], "requires": [],
        "workgroup_size": [workgroup[0], workgroup[1], 1],
        "buffers": [{"name": b, "elem": e, "access": a, "binding": i} for i, (b, e, a) in enumerate(buffers)],
        "scalars": [{"name": n, "type": t} for n, t in scalars],
        "structs": {s: [list(f) for f in fs] for s, fs in structs.items()},
        "push_constants": {"size": size, "fields": fields, "format": abi.pack_format(fields, size)},
        "features": sorted(features)}
    return source, info


AXPY = kernel_source("axpy", """
    uint i = khal_workgroup_id.x * 64u + gl_LocalInvocationID.x;
    if (khal_workgroup_id.x < khal_grid.x && i < a.length()) {
        a[i] += alpha * b[i];
    }""", [("a", "f32", "read_write"), ("b", "f32", "read")], [("alpha", "f32")])

PARAMS = kernel_source("params", """
    if (gl_LocalInvocationID.x == 0u && khal_workgroup_id == uvec3(0u)) {
        out_[0] = uint(k); out_[1] = u; out_[2] = floatBitsToUint(f); out_[3] = flag;
        out_[4] = floatBitsToUint(s.scale); out_[5] = uint(s.bias); out_[6] = s.mask;
        out_[7] = floatBitsToUint(tail);
        out_[8] = khal_grid.x; out_[9] = khal_grid.y; out_[10] = khal_grid.z; out_[11] = khal_grid.w;
    }""", [("out_", "u32", "read_write")],
    [("k", "i32"), ("u", "u32"), ("f", "f32"), ("flag", "bool"), ("s", "Shape"), ("tail", "f32")],
    {"Shape": [("scale", "f32"), ("bias", "i32"), ("mask", "u32")]})

WIDE_PARAMS = kernel_source("wide_params", """
    if (gl_LocalInvocationID.x == 0u && khal_workgroup_id == uvec3(0u)) {
        out_[0] = uint64_t(small); out_[1] = uint64_t(big); out_[2] = doubleBitsToUint64(d);
        out_[3] = uint64_t(p.lo); out_[4] = doubleBitsToUint64(p.x);
    }""", [("out_", "u64", "read_write")],
    [("small", "u32"), ("big", "i64"), ("d", "f64"), ("p", "Pair")], {"Pair": [("lo", "u32"), ("x", "f64")]})

# One invocation per workgroup: counts the workgroups that run and records each logical id where it belongs.
PROBE = kernel_source("probe", """
    if (khal_workgroup_id.x >= khal_grid.x) {
        return;
    }
    atomicAdd(counter[0], 1u);
    atomicMax(counter[1], khal_num_workgroups.x);
    atomicMax(counter[2], khal_num_workgroups.y);
    atomicMax(counter[3], khal_grid.w);
    uint index = khal_workgroup_id.y * khal_num_workgroups.x + khal_workgroup_id.x;
    if (index < seen.length()) {
        seen[index] = khal_workgroup_id.x + 1u + (khal_workgroup_id.y << 20);
    }""", [("seen", "u32", "read_write"), ("counter", "u32", "read_write")], workgroup=(1, 1))

HAND_WRITTEN = [AXPY, PARAMS, WIDE_PARAMS, PROBE]


@pytest.fixture(scope="module")
def kernels(tmp_path_factory, backend):
    """Binding classes of the hand-written kernels, from a temporary package built the way `khal-gpu build` would."""
    from test_render_kit import glsl_to_spirv
    root = tmp_path_factory.mktemp("webgpu_kernels")
    package = "khal_webgpu_test_kernels"
    (root / package).mkdir()
    (root / package / "__init__.py").write_text("")
    entries = {}
    for source, info in HAND_WRITTEN:
        spirv = glsl_to_spirv(source)
        path = f"{info['function']}.spv"
        (root / package / path).write_bytes(spirv)
        digest = hashlib.sha256(spirv).hexdigest()
        entries[info["id"]] = {**info, "artifacts": {"spirv": {"path": path, "sha256": digest,
                                                               "bytes": len(spirv)}}}
    (root / package / "manifest.json").write_text(json.dumps({"khal_manifest": 1, "package": package,
                                                              "kernels": entries}))
    sys.path.insert(0, str(root))
    try:
        classes = {info["function"]: type(info["function"], (Kernel,), {"ID": info["id"], "PACKAGE": package})
                   for _, info in HAND_WRITTEN}
        yield SimpleNamespace(**classes)
    finally:
        sys.path.remove(str(root))


def run_pass(backend, dispatch, timestamps=False):
    encoder = backend.begin_encoding()
    with encoder.begin_pass("test", timestamps=timestamps) as pass_:
        dispatch(pass_)
    backend.submit(encoder)
    return pass_


# --- creation -------------------------------------------------------------------------------------------------------

def test_features_and_description(backend):
    assert "immediates" in backend.features
    assert backend.features <= set(webgpu_module.FEATURES)
    described = backend.describe()
    assert described["backend"] == "webgpu" and described["device"] == backend.device_name
    assert f"max-compute-workgroups-per-dimension={backend.max_workgroups}" in described["limits"]
    assert backend.max_workgroups >= 65535
    assert backend.info["backend_type"] in webgpu_module.GOOD_BACKENDS and described["adapter"]
    for name in backend.features:
        assert set(webgpu_module.FEATURES[name]) <= set(described["wgpu_features"])
    # the limits that matter are the adapter's maxima
    for key in ("max-storage-buffer-binding-size", "max-buffer-size", "max-immediate-size"):
        assert backend.limits[key] == backend.adapter.limits[key]


def test_missing_wgpu_is_a_backend_error(monkeypatch):
    monkeypatch.setattr(webgpu_module.adapter, "wgpu", None)     # as if no backend had imported it yet
    monkeypatch.setitem(sys.modules, "wgpu", None)        # makes `import wgpu` fail
    with pytest.raises(BackendError, match="wgpu-py is not installed"):
        webgpu_module.WebGpuBackend()


def test_missing_vulkan_device_is_a_backend_error(monkeypatch, backend):
    gl = SimpleNamespace(info={"device": "llvmpipe", "backend_type": "OpenGL", "adapter_type": "CPU"},
                         features={"immediates"})
    monkeypatch.setattr(webgpu_module.wgpu.gpu, "enumerate_adapters_sync", lambda: [gl])
    with pytest.raises(BackendError, match="no Vulkan, Metal or D3D12 device.*OpenGL.*lavapipe"):
        webgpu_module.WebGpuBackend()


# --- buffers --------------------------------------------------------------------------------------------------------

def sample(dtype, n):
    if np.dtype(dtype).kind == "f":
        return (rng.standard_normal(n) * 100).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)


COPIES = BufferUsage.COPY_SRC | BufferUsage.COPY_DST


def usage_for(dtype, n):
    """Storage buffers of f16 need an even length on WebGPU; odd ones exercise the word padding as copy buffers."""
    return COPIES if np.dtype(dtype) == np.float16 and n % 2 else BufferUsage.STORAGE | COPIES


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("n", [1, 7, 1000])
def test_buffer_round_trip(backend, dtype, n):
    data = sample(dtype, n)
    buf = backend.init_buffer(data, usage=usage_for(dtype, n))
    got = buf.read()
    assert got.dtype == np.dtype(dtype) and got.shape == (n,)
    np.testing.assert_array_equal(got, data)
    zeros = backend.uninit_buffer(dtype, n, usage=usage_for(dtype, n))
    np.testing.assert_array_equal(zeros.read(), np.zeros(n, dtype))


def test_empty_buffer(backend):
    buf = backend.uninit_buffer(np.float32, 0)
    assert buf.read().shape == (0,)
    buf.write(np.zeros(0, np.float32))


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_write_at_offset(backend, dtype):
    data = sample(dtype, 11)
    buf = backend.init_buffer(data, usage=usage_for(dtype, 11))
    for offset, count in [(0, 4), (3, 5), (5, 1), (10, 1), (1, 10)]:    # odd offsets and counts for 16-bit types
        part = sample(dtype, count)
        buf.write(part, offset)
        data[offset:offset + count] = part
        np.testing.assert_array_equal(buf.read(), data)


def test_write_is_ordered_with_kernels(backend, kernels):
    axpy = kernels.axpy(backend)
    a, b = backend.init_buffer(np.zeros(64, np.float32)), backend.init_buffer(np.ones(64, np.float32))
    run_pass(backend, lambda p: axpy.call(p, 64, a, b, 1.0))
    a.write(np.full(64, 10, np.float32))
    run_pass(backend, lambda p: axpy.call(p, 64, a, b, 2.0))
    np.testing.assert_array_equal(a.read(), np.full(64, 12, np.float32))


def test_copy_buffer_to_buffer(backend):
    source = backend.init_buffer(np.arange(100, dtype=np.float32))
    target = backend.init_buffer(np.zeros(50, np.float32))
    encoder = backend.begin_encoding()
    encoder.copy_buffer_to_buffer(source, 10, target, 5, 20)
    encoder.copy_buffer_to_buffer(source, 99, target, 49, 1)
    backend.submit(encoder)
    expected = np.zeros(50, np.float32)
    expected[5:25] = np.arange(10, 30)
    expected[49] = 99
    np.testing.assert_array_equal(target.read(), expected)


def test_copy_within_one_buffer_overlapping(backend):
    buf = backend.init_buffer(np.arange(20, dtype=np.int32))
    encoder = backend.begin_encoding()
    encoder.copy_buffer_to_buffer(buf, 0, buf, 3, 10)
    backend.submit(encoder)
    expected = np.arange(20, dtype=np.int32)
    expected[3:13] = np.arange(10)
    np.testing.assert_array_equal(buf.read(), expected)


def test_f16_copies_need_word_boundaries(backend):
    source = backend.init_buffer(np.arange(9, dtype=np.float16), usage=COPIES)
    target = backend.init_buffer(np.zeros(9, np.float16), usage=COPIES)
    encoder = backend.begin_encoding()
    with pytest.raises(BackendError, match="4-byte words"):
        encoder.copy_buffer_to_buffer(source, 1, target, 0, 2)
    encoder.copy_buffer_to_buffer(source, 2, target, 2, 7)     # ends at both buffers' ends: allowed
    encoder.copy_buffer_to_buffer(source, 0, target, 0, 2)
    backend.submit(encoder)
    np.testing.assert_array_equal(target.read(), np.arange(9, dtype=np.float16))


def test_odd_f16_write_needs_copy_src(backend):
    buf = backend.init_buffer(np.zeros(6, np.float16), usage=BufferUsage.STORAGE | BufferUsage.COPY_DST)
    buf.write(np.ones(4, np.float16))                      # whole words: fine
    with pytest.raises(BackendError, match="COPY_SRC"):
        buf.write(np.ones(1, np.float16), 1)


def test_read_without_copy_src(backend):
    buf = backend.init_buffer(np.ones(4, np.float32), usage=BufferUsage.STORAGE | BufferUsage.COPY_DST)
    with pytest.raises(BackendError, match="COPY_SRC"):
        buf.read()


def test_async_read(backend, kernels):
    axpy = kernels.axpy(backend)
    a, b = backend.init_buffer(np.zeros(1000, np.float32)), backend.init_buffer(np.arange(1000, dtype=np.float32))
    run_pass(backend, lambda p: axpy.call(p, 1000, a, b, 3.0))
    future = backend.read_buffer_async(a)
    second = backend.read_buffer_async(b)
    np.testing.assert_array_equal(future.result(), np.arange(1000, dtype=np.float32) * 3)
    assert future.result() is future.result()
    np.testing.assert_array_equal(second.result(), np.arange(1000, dtype=np.float32))


def test_copy_while_a_pass_is_open(backend):
    a, b = backend.init_buffer(np.ones(4, np.float32)), backend.init_buffer(np.zeros(4, np.float32))
    encoder = backend.begin_encoding()
    pass_ = encoder.begin_pass("open")
    with pytest.raises(BackendError, match="still open"):
        encoder.copy_buffer_to_buffer(a, 0, b, 0, 4)
    backend.submit(encoder)             # ends the pass that is still open
    assert pass_.ended
    with pytest.raises(RuntimeError, match="already submitted"):
        backend.submit(encoder)


# --- dispatch -------------------------------------------------------------------------------------------------------

def test_axpy(any_backend, kernels):
    axpy = kernels.axpy(any_backend)
    n = 1001
    a, b = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
    ga, gb = any_backend.init_buffer(a), any_backend.init_buffer(b)
    run_pass(any_backend, lambda p: [axpy.call(p, n, ga, gb, 0.5) for _ in range(3)])
    np.testing.assert_allclose(ga.read(), a + 1.5 * b, rtol=1e-5, atol=1e-6)    # may be fused into fma


def test_empty_grid_is_a_no_op(backend, kernels):
    axpy = kernels.axpy(backend)
    a, b = backend.init_buffer(np.ones(8, np.float32)), backend.init_buffer(np.ones(8, np.float32))
    run_pass(backend, lambda p: [axpy.call(p, 0, a, b, 1.0), axpy.call(p, workgroups(0, 2, 1), a, b, 1.0)])
    np.testing.assert_array_equal(a.read(), np.ones(8, np.float32))


def test_scalar_and_struct_packing(any_backend, kernels):
    params = kernels.params(any_backend)
    out = any_backend.uninit_buffer(np.uint32, 12)
    run_pass(any_backend, lambda p: params.call(p, workgroups(3, 2, 1), out, -7, 4000000000, 1.25, True,
                                                {"scale": -2.5, "bias": -3, "mask": 0xDEADBEEF}, 6.5))
    got = out.read()
    expected = [np.uint32(np.int32(-7).view(np.uint32)), 4000000000, np.float32(1.25).view(np.uint32), 1,
                np.float32(-2.5).view(np.uint32), np.int32(-3).view(np.uint32), 0xDEADBEEF,
                np.float32(6.5).view(np.uint32), 3, 2, 1, 0]
    np.testing.assert_array_equal(got, np.array(expected, np.uint32))


def test_64_bit_scalars(backend, kernels):
    if not {"f64", "i64"} <= backend.features:
        pytest.skip("the device has no f64 or i64")
    wide = kernels.wide_params(backend)
    out = backend.uninit_buffer(np.uint64, 5)
    run_pass(backend, lambda p: wide.call(p, 1, out, 5, -2**40 - 3, 1 / 3, SimpleNamespace(lo=9, x=-0.1)))
    expected = [5, np.int64(-2**40 - 3).view(np.uint64), np.float64(1 / 3).view(np.uint64), 9,
                np.float64(-0.1).view(np.uint64)]
    np.testing.assert_array_equal(out.read(), np.array(expected, np.uint64))


def probe(backend, kernels, grid, size):
    kernel = kernels.probe(backend)
    seen, counter = backend.uninit_buffer(np.uint32, size), backend.uninit_buffer(np.uint32, 4)
    run_pass(backend, lambda p: kernel.call(p, grid, seen, counter))
    return seen.read(), counter.read()


def expected_ids(x, y):
    return ((np.arange(x, dtype=np.uint32) + 1)[None, :] + (np.arange(y, dtype=np.uint32) << 20)[:, None]).reshape(-1)


def test_folded_grid(any_backend, kernels, monkeypatch):
    monkeypatch.setattr(any_backend, "fold_threshold", 7)
    seen, counter = probe(any_backend, kernels, workgroups(100, 3), 300)
    np.testing.assert_array_equal(seen, expected_ids(100, 3))
    # 300 logical workgroups ran; the kernel saw the logical grid; fold = ceil(100 / ceil(100 / 7)) = 7
    assert list(counter) == [300, 100, 3, 7]
    seen, counter = probe(any_backend, kernels, workgroups(7, 2), 14)      # at the threshold: not folded
    assert list(counter) == [14, 7, 2, 0]


def test_unfoldable_grids_are_refused(backend, kernels, monkeypatch):
    kernel = kernels.probe(backend)
    seen, counter = backend.uninit_buffer(np.uint32, 4), backend.uninit_buffer(np.uint32, 4)
    monkeypatch.setattr(backend, "fold_threshold", 7)
    encoder = backend.begin_encoding()
    with encoder.begin_pass() as pass_:
        with pytest.raises(BackendError, match="one workgroup along z"):
            kernel.call(pass_, workgroups(8, 1, 2), seen, counter)
        with pytest.raises(BackendError, match="too many even folded"):
            kernel.call(pass_, workgroups(7 * backend.max_workgroups + 1), seen, counter)
        with pytest.raises(BackendError, match="along y"):
            kernel.function.dispatch(pass_, (8, backend.max_workgroups + 1, 1), [seen, counter], ())
    backend.submit(encoder)


def test_more_than_65535_workgroups(backend, kernels):
    x = backend.max_workgroups + 4465        # 70,000 on a device with the WebGPU minimum
    seen, counter = probe(backend, kernels, workgroups(x), x)
    np.testing.assert_array_equal(seen, expected_ids(x, 1))
    assert counter[0] == x and counter[1] == x and counter[3] > 0


def test_large_1d_axpy(backend, kernels):
    axpy = kernels.axpy(backend)
    n = (backend.max_workgroups + 100) * 64 + 5
    a, b = np.ones(n, np.float32), np.arange(n, dtype=np.float32) % 1000
    ga, gb = backend.init_buffer(a), backend.init_buffer(b)
    run_pass(backend, lambda p: axpy.call(p, n, ga, gb, 2.0))
    np.testing.assert_array_equal(ga.read(), a + 2 * b)


def test_indirect_dispatch(any_backend, kernels):
    counts = any_backend.init_buffer(np.array([9, 5, 3, 1, 0], np.uint32),
                                     usage=BufferUsage.INDIRECT | BufferUsage.STORAGE | BufferUsage.COPY_DST)
    seen, counter = probe(any_backend, kernels, indirect(counts, 1), 15)     # (5, 3, 1) from element 1
    np.testing.assert_array_equal(seen, expected_ids(5, 3))
    assert list(counter) == [15, 5, 3, 0]


def test_device_errors_surface_at_submit(backend, kernels, monkeypatch):
    kernel = kernels.probe(backend)
    seen, counter = backend.uninit_buffer(np.uint32, 4), backend.uninit_buffer(np.uint32, 4)
    monkeypatch.setattr(backend, "fold_threshold", 10**6)        # pretend the device took 70,000 workgroups
    encoder = backend.begin_encoding()
    with encoder.begin_pass() as pass_:
        kernel.call(pass_, workgroups(70_000), seen, counter)
    with pytest.raises(BackendError, match="65535"):
        backend.submit(encoder)
    monkeypatch.undo()
    seen, counter = probe(backend, kernels, workgroups(3), 3)    # the device goes on working
    assert counter[0] == 3


def test_bind_groups_are_cached(backend, kernels):
    axpy = kernels.axpy(backend)
    a, b, c = (backend.init_buffer(np.ones(64, np.float32)) for _ in range(3))
    before = backend.bind_groups_created
    for _ in range(2):
        run_pass(backend, lambda p: [axpy.call(p, 64, a, b, 1.0) for _ in range(5)])
    assert backend.bind_groups_created == before + 1
    def three(p, c=c):
        axpy.call(p, 64, a, b.read_only(), 1.0)
        axpy.call(p, 64, a, c, 1.0)
        axpy.call(p, 64, a, b, 1.0)
    run_pass(backend, three)
    del three
    assert backend.bind_groups_created == before + 2
    np.testing.assert_array_equal(a.read(), np.full(64, 14, np.float32))
    # a group is dropped with its buffers, and forgotten by the buffers it shared
    keys = [k for k in backend.bind_groups if id(c.handle) in k]
    assert len(keys) == 1
    del c
    gc.collect()
    assert keys[0] not in backend.bind_groups and keys[0] not in backend._groups_of[id(a.handle)]
    assert backend.bind_groups_created == before + 2


def test_pipelines_are_cached(backend, kernels):
    assert kernels.axpy(backend).function is kernels.axpy(backend).function


def test_pass_timing(backend, kernels):
    axpy = kernels.axpy(backend)
    a, b = backend.init_buffer(np.ones(1 << 16, np.float32)), backend.init_buffer(np.ones(1 << 16, np.float32))
    timed = run_pass(backend, lambda p: axpy.call(p, 1 << 16, a, b, 1.0), timestamps=True)
    untimed = run_pass(backend, lambda p: axpy.call(p, 1 << 16, a, b, 1.0))
    backend.synchronize()
    assert untimed.elapsed is None
    if backend.has_timestamps:
        assert 0 < timed.elapsed < 10
    else:
        assert timed.elapsed is None


# --- the example kernels, once `khal-gpu build` has produced shaders/_generated --------------------------------------

def generated(module):
    try:
        return importlib.import_module(f"shaders._generated.examples.{module}")
    except ImportError:
        pytest.skip("shaders/_generated is not built; run `khal-gpu build`")


def test_example_add_assign(backend):
    mod = generated("add_assign")
    add = mod.AddAssign(backend)
    for n in (1, 1000, 70_000 * 64 + 3):          # the last one needs folding
        a, b = rng.standard_normal(n).astype(np.float32), rng.standard_normal(n).astype(np.float32)
        ga, gb = backend.init_buffer(a), backend.init_buffer(b)
        run_pass(backend, lambda p, n=n, ga=ga, gb=gb: add.call(p, n, ga, gb))
        np.testing.assert_array_equal(ga.read(), a + b)


def test_example_indirect(backend):
    add = generated("add_assign").AddAssign(backend)
    n = 1000
    counts = backend.init_buffer(np.array([-(-n // 64), 1, 1], np.uint32),
                                 usage=BufferUsage.INDIRECT | BufferUsage.STORAGE | BufferUsage.COPY_DST)
    a, b = backend.init_buffer(np.ones(n, np.float32)), backend.init_buffer(np.arange(n, dtype=np.float32))
    run_pass(backend, lambda p: add.call(p, indirect(counts), a, b))
    np.testing.assert_array_equal(a.read(), np.arange(n, dtype=np.float32) + 1)


@pytest.mark.parametrize("t, op", [("f32", "add"), ("f32", "max"), ("i32", "add"), ("i32", "max")])
def test_example_binary_ops(backend, t, op):
    mod = generated("elementwise")
    kernel = getattr(mod, f"BinaryOp_{t}_{op}")(backend)
    dtype = np.float32 if t == "f32" else np.int32
    a, b = (sample(dtype, 777) // (1 if t == "f32" else 4) for _ in range(2))
    out = backend.uninit_buffer(dtype, 777)
    run_pass(backend, lambda p: kernel.call(p, 777, out, backend.init_buffer(a), backend.init_buffer(b)))
    np.testing.assert_array_equal(out.read(), a + b if op == "add" else np.maximum(a, b))


def test_example_half(backend):
    mod = generated("half")
    if "f16" not in backend.features:
        pytest.skip("no f16 on this device")
    x, y = sample(np.float16, 300) / 100, sample(np.float16, 300) / 100
    gy = backend.init_buffer(y)
    out = backend.uninit_buffer(np.float32, 300)
    gx = backend.init_buffer(x)
    run_pass(backend, lambda p: [mod.AxpyF16(backend).call(p, 300, gy, gx, 0.5),
                                 mod.WidenF16(backend).call(p, 300, out, gx)])
    np.testing.assert_allclose(gy.read().astype(np.float32), (np.float16(0.5) * x + y).astype(np.float32),
                               rtol=2e-3, atol=1e-3)
    np.testing.assert_array_equal(out.read(), x.astype(np.float32))


def test_example_matmul(backend):
    mod = generated("matmul")
    m, k, n = 37, 45, 29
    a, b = rng.standard_normal((m, k)).astype(np.float32), rng.standard_normal((k, n)).astype(np.float32)
    c = backend.uninit_buffer(np.float32, m * n)
    run_pass(backend, lambda p: mod.MatmulTiled(backend).call(p, (n, m), c, backend.init_buffer(a),
                                                              backend.init_buffer(b), SimpleNamespace(m=m, k=k, n=n)))
    np.testing.assert_allclose(c.read().reshape(m, n), a @ b, rtol=1e-4, atol=1e-4)


def test_example_reductions(backend):
    values = rng.integers(0, 1000, 100_000).astype(np.uint32)
    total = backend.uninit_buffer(np.uint32, 1)
    run_pass(backend, lambda p: generated("reduction").SumU32(backend).call(p, len(values), total,
                                                                            backend.init_buffer(values)))
    assert total.read()[0] == values.sum()
    if "subgroups" in backend.features and "atomic_f32" in backend.features:
        floats = rng.random(10_000).astype(np.float32)
        ftotal = backend.uninit_buffer(np.float32, 1)
        run_pass(backend, lambda p: generated("subgroup_sum").SubgroupSum(backend).call(
            p, len(floats), ftotal, backend.init_buffer(floats)))
        np.testing.assert_allclose(ftotal.read()[0], floats.sum(dtype=np.float64), rtol=1e-4)


def test_example_unpack(backend):
    mod = generated("unpack")
    words = rng.integers(0, 2**32, 100, dtype=np.uint64).astype(np.uint32)
    gw = backend.init_buffer(words)
    nibbles, signed = backend.uninit_buffer(np.float32, 800), backend.uninit_buffer(np.int32, 400)
    run_pass(backend, lambda p: [mod.UnpackNibbles(backend).call(p, 100, nibbles, gw, 0.5),
                                 mod.UnpackSignedBytes(backend).call(p, 100, signed, gw)])
    q = (words[:, None] >> (4 * np.arange(8, dtype=np.uint32))) & 15
    np.testing.assert_array_equal(nibbles.read(), ((q.astype(np.int32) - 8) * 0.5).reshape(-1).astype(np.float32))
    np.testing.assert_array_equal(signed.read(), words.view(np.int8).astype(np.int32))
