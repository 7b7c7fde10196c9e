"""What the tests of the WebGPU backend (tests/test_webgpu_*.py) share: its devices as fixtures, a random
generator and the hand-written kernels that they dispatch.

The hand-written kernels are GLSL that follows docs/IR.md's ABI, compiled with glslang and put, with a hand-made
manifest, into a temporary package, so that they go through the generated-binding path `Kernel.call`.
"""

from __future__ import annotations

import hashlib
import json
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from hatch_khal import abi
from khal_runtime import BackendError, Kernel
from khal_runtime.backends import webgpu as webgpu_module

rng = np.random.default_rng(11)


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


def sample(dtype, n):
    if np.dtype(dtype).kind == "f":
        return (rng.standard_normal(n) * 100).astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)


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
        "source": "tests/webgpu_kit.py", "line": 1, "template": {},
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
def kernels(tmp_path_factory, request, backend):
    """Binding classes of the hand-written kernels, from a temporary package built the way `khal-gpu build` would
    (one package for each test module, named after it: the runtime caches a package's manifest by its name)."""
    from test_render_kit import glsl_to_spirv
    root = tmp_path_factory.mktemp("webgpu_kernels")
    package = f"khal_webgpu_test_kernels_{request.module.__name__}"
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
