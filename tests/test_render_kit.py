"""Shared by the tests/test_render*.py modules: a small IR builder (the kernels are in render_kernels_programs.py and
render_kernels_rules.py, catalogued by test_render_kernels.py), and harnesses that compile and run kernels: GLSL on
a WebGPU device through wgpu-py (lavapipe on a machine without a GPU), CUDA through the driver API (ctypes; where a
GPU and its driver are present)."""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hatch_khal import abi
from hatch_khal.render import render_cuda, render_glsl
from khal_runtime import ir

# ---------------------------------------------------------------------------------------------------------------
# Builder: expressions with Python operators, statements as functions, locals inferred from assignments.


class E:
    def __init__(self, node: ir.Expr):
        self.node = node

    @property
    def t(self) -> str:
        return self.node.type

    def _bin(self, op: str, other: Any, swap: bool = False, result: str | None = None) -> E:
        o = lift(other, self.t)
        a, b = (o, self) if swap else (self, o)
        return E(ir.Binary(result or a.t, op, a.node, b.node))

    def __add__(self, o): return self._bin("add", o)
    def __radd__(self, o): return self._bin("add", o, True)
    def __sub__(self, o): return self._bin("sub", o)
    def __rsub__(self, o): return self._bin("sub", o, True)
    def __mul__(self, o): return self._bin("mul", o)
    def __rmul__(self, o): return self._bin("mul", o, True)
    def __truediv__(self, o): return self._bin("div", o)
    def __floordiv__(self, o): return self._bin("floordiv", o)
    def __mod__(self, o): return self._bin("mod", o)
    def __and__(self, o): return self._bin("bit_and", o)
    def __or__(self, o): return self._bin("bit_or", o)
    def __xor__(self, o): return self._bin("bit_xor", o)
    def __lshift__(self, o): return self._bin("shl", o)
    def __rshift__(self, o): return self._bin("shr", o)
    def __lt__(self, o): return self._bin("lt", o, result="bool")
    def __le__(self, o): return self._bin("le", o, result="bool")
    def __gt__(self, o): return self._bin("gt", o, result="bool")
    def __ge__(self, o): return self._bin("ge", o, result="bool")
    def eq(self, o): return self._bin("eq", o, result="bool")
    def ne(self, o): return self._bin("ne", o, result="bool")
    def __neg__(self): return E(ir.Unary(self.t, "neg", self.node))
    def __invert__(self): return E(ir.Unary(self.t, "not" if self.t == "bool" else "bit_not", self.node))
    def cast(self, t): return E(ir.Cast(t, self.node))
    def bitcast(self, t): return E(ir.Bitcast(t, self.node))
    def field(self, t, name): return E(ir.Field(t, self.node, name))


def lift(x: Any, t: str) -> E:
    return x if isinstance(x, E) else E(ir.Const(t, x))


def n(x: Any, t: str = "u32") -> ir.Expr:
    return lift(x, t).node


def const(t, v): return E(ir.Const(t, v))
def var(t, name): return E(ir.Var(t, name))
def param(t, name): return E(ir.Param(t, name))
def builtin(name, dim=0): return E(ir.Builtin("u32", name, dim))
def gid(dim=0): return builtin("global_id", dim)
def lid(dim=0): return builtin("local_id", dim)
def length(name): return E(ir.Len("u32", name))
def intr(t, name, *args): return E(ir.Intrinsic(t, name, [n(a) for a in args]))
def call(t, func, *args): return E(ir.Call(t, func, [n(a) for a in args]))
def select(c, a, b):
    t = (a if isinstance(a, E) else b).t
    return E(ir.Select(t, n(c), n(a, t), n(b, t)))
def land(a, b): return E(ir.Binary("bool", "and", n(a), n(b)))
def lor(a, b): return E(ir.Binary("bool", "or", n(a), n(b)))
def load(space, t, name, *index): return E(ir.Load(t, space, name, [n(i) for i in index]))
def buf(t, name, i): return load("storage", t, name, i)
def atomic(t, op, space, name, index, *args):
    return E(ir.Atomic(t, op, space, name, [n(i) for i in index], [n(a, t) for a in args]))


def assign(name, v): return ir.Assign(name, n(v))
def store(space, name, index, v, t="u32"): return ir.Store(space, name, [n(i) for i in index], n(v, t))
def bstore(name, i, v, t="f32"): return store("storage", name, [i], v, t)
def if_(c, then, orelse=()): return ir.If(n(c), list(then), list(orelse))
def for_(v, start, stop, step, body, t="u32"): return ir.For(v, n(start, t), n(stop, t), n(step, t), list(body))
def while_(c, body): return ir.While(n(c), list(body))
def ret(v=None): return ir.Return(n(v) if v is not None else None)
def do(e): return ir.ExprStmt(n(e))
def barrier(scope="workgroup"): return ir.Barrier(scope)
BREAK, CONTINUE = ir.Break(), ir.Continue()


def infer_locals(body: list, params: tuple = ()) -> dict[str, str]:
    found = {}
    for s in ir.walk(body):
        if isinstance(s, ir.Assign):
            found[s.name] = s.value.type
        elif isinstance(s, ir.For):
            found[s.var] = s.start.type
    return {k: v for k, v in found.items() if k not in params}


def function(name, params, ret_t, body, arrays=None):
    locals_ = {**infer_locals(body, tuple(p for p, _ in params)), **(arrays or {})}
    return ir.Function(name, [ir.Scalar(p, t) for p, t in params], ret_t, locals_, list(body))


def kernel(name, body, buffers, scalars=(), wg=(64, 1, 1), shared=None, arrays=None, structs=None, functions=(),
           template=None) -> ir.Kernel:
    return ir.Kernel(
        name=name, source=f"tests/kernels/{name}.py", line=1, function=name, template=template or {},
        workgroup_size=wg, buffers=[ir.Buffer(b, t, a, i) for i, (b, t, a) in enumerate(buffers)],
        scalars=[ir.Scalar(s, t) for s, t in scalars], structs=structs or {}, shared=shared or {},
        locals={**infer_locals(body), **(arrays or {})}, body=list(body), functions=list(functions))


RW, RO = "read_write", "read"

# ---------------------------------------------------------------------------------------------------------------
# Harness: run a kernel's GLSL on the WebGPU device


@functools.cache
def device():
    wgpu = pytest.importorskip("wgpu")
    try:
        adapter = wgpu.gpu.request_adapter_sync(power_preference="high-performance")
    except RuntimeError as error:       # wgpu-py raises where no Vulkan (or other) driver loads
        pytest.skip(f"no WebGPU adapter: {error}")
    wanted = ["immediates", "shader-f16", "subgroup", "shader-f64", "shader-int64", "shader-float32-atomic"]
    features = [f for f in wanted if f in adapter.features]
    return adapter.request_device_sync(required_features=features,
                                       required_limits={"max-immediate-size": adapter.limits["max-immediate-size"]})


def compiled(k: ir.Kernel, suffix: str) -> Path | None:
    """$KHAL_TEST_ARTIFACTS/<name><suffix>: SPIR-V and PTX compiled elsewhere, for a GPU host without the
    toolchain wheels; None where the variable is not set, or where $KHAL_TEST_ARTIFACTS_WRITE asks to fill the
    folder (on a machine with the toolchains) instead of reading it."""
    folder = os.environ.get("KHAL_TEST_ARTIFACTS")
    if not folder or os.environ.get("KHAL_TEST_ARTIFACTS_WRITE"):
        return None
    return Path(folder) / f"{k.name}{suffix}"


def saved(k: ir.Kernel, suffix: str, data: bytes) -> bytes:
    if os.environ.get("KHAL_TEST_ARTIFACTS_WRITE"):
        folder = Path(os.environ["KHAL_TEST_ARTIFACTS"])
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{k.name}{suffix}").write_bytes(data)
    return data


def spirv(k: ir.Kernel) -> bytes:
    return glsl_to_spirv(render_glsl(k))


def glsl_to_spirv(source: str) -> bytes:
    """Validated SPIR-V of a GLSL source: from $KHAL_TEST_ARTIFACTS (keyed by the source's hash) on a host
    without toolchains, else compiled here (and saved there when $KHAL_TEST_ARTIFACTS_WRITE is set)."""
    name = hashlib.sha256(source.encode()).hexdigest()[:24] + ".spv"
    folder = os.environ.get("KHAL_TEST_ARTIFACTS")
    if folder and not os.environ.get("KHAL_TEST_ARTIFACTS_WRITE"):
        return (Path(folder) / name).read_bytes()
    from hatch_khal.toolchains import glslang, spirv_tools
    code = glslang.compile_glsl(source)
    spirv_tools.validate(code)
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / name).write_bytes(code)
    return code


def pipeline(k: ir.Kernel):
    import wgpu
    dev = device()
    module = dev.create_shader_module(code=spirv(k))
    layout = dev.create_bind_group_layout(entries=[
        {"binding": b.binding, "visibility": wgpu.ShaderStage.COMPUTE, "buffer": {"type": "storage"}}
        for b in k.buffers])
    immediates = abi.push_constants(k)[1]
    pipe = dev.create_compute_pipeline(
        layout=dev.create_pipeline_layout(bind_group_layouts=[layout], immediate_size=immediates),
        compute={"module": module, "entry_point": "main"})
    return pipe, layout, immediates


def pack_values(entries: list[dict], size: int, values: dict[str, Any]) -> bytes:
    args = []
    for e in entries:
        v = values[e["name"]]
        args += [v[f["name"]] for f in e["fields"]] if e["kind"] == "struct" else list(v) if e["kind"] == "grid" \
            else [v]
    return struct.pack(abi.pack_format(entries, size), *args)


def run_webgpu(k: ir.Kernel, arrays: dict[str, np.ndarray], grid: tuple[int, int, int],
               scalars: dict | None = None, physical: tuple[int, int, int] | None = None,
               fold: int = 0) -> dict[str, np.ndarray]:
    """Dispatch `grid` workgroups (or `physical` ones with the fold width `fold`) and read every buffer back."""
    import wgpu
    dev = device()
    pipe, layout, size = pipeline(k)
    gpu = {}
    for b in k.buffers:
        data = np.ascontiguousarray(arrays[b.name], dtype=ir.NUMPY[b.elem])
        gpu[b.name] = dev.create_buffer_with_data(
            data=data.tobytes() + b"\0" * (-data.nbytes % 4),   # f16 buffers: whole words, read back trimmed
            usage=wgpu.BufferUsage.STORAGE | wgpu.BufferUsage.COPY_SRC | wgpu.BufferUsage.COPY_DST)
    group = dev.create_bind_group(layout=layout, entries=[
        {"binding": b.binding, "resource": {"buffer": gpu[b.name], "offset": 0,
                                            "size": arrays[b.name].size * ir.SIZE[b.elem]}} for b in k.buffers])
    entries, _ = abi.push_constants(k)
    data = pack_values(entries, size, {abi.GRID: (*grid, fold), **(scalars or {})})
    encoder = dev.create_command_encoder()
    cpass = encoder.begin_compute_pass()
    cpass.set_pipeline(pipe)
    cpass.set_bind_group(0, group)
    cpass.set_immediates(0, data, 0, len(data))   # wgpu-py 0.32 needs data_size spelled out
    cpass.dispatch_workgroups(*(physical or grid))
    cpass.end()
    dev.queue.submit([encoder.finish()])
    return {b.name: np.frombuffer(dev.queue.read_buffer(gpu[b.name]), dtype=ir.NUMPY[b.elem])[:arrays[b.name].size]
            for b in k.buffers}


def cuda_ptx(k: ir.Kernel) -> str:
    if path := compiled(k, ".ptx"):
        return path.read_text()
    from hatch_khal.toolchains import nvrtc
    return saved(k, ".ptx", nvrtc.compile_cuda(render_cuda(k), name=k.name, arch="compute_75").encode()).decode()


@functools.cache
def cuda_driver() -> ctypes.CDLL:
    """libcuda through ctypes, with the primary context of device 0 current (PyCUDA is not needed for this)."""
    try:
        lib = ctypes.CDLL("libcuda.so.1")
    except OSError:
        pytest.skip("no CUDA driver")
    dev, ctx = ctypes.c_int(), ctypes.c_void_p()
    if lib.cuInit(0) or lib.cuDeviceGet(ctypes.byref(dev), 0):
        pytest.skip("no CUDA device")
    check_cuda(lib, lib.cuDevicePrimaryCtxRetain(ctypes.byref(ctx), dev))
    check_cuda(lib, lib.cuCtxSetCurrent(ctx))
    return lib


def check_cuda(lib: ctypes.CDLL, result: int) -> None:
    if result:
        name = ctypes.c_char_p()
        lib.cuGetErrorName(result, ctypes.byref(name))
        raise RuntimeError(f"CUDA driver error {result}: {name.value}")


def run_cuda(k: ir.Kernel, arrays: dict[str, np.ndarray], grid: tuple[int, int, int],
             scalars: dict | None = None) -> dict[str, np.ndarray]:
    """Launch the PTX of `k` with its arguments packed by `abi.cuda_params`, and read every buffer back."""
    ptx = cuda_ptx(k)               # compiled (and saved, when asked) also where no driver runs it
    lib = cuda_driver()
    module, fn = ctypes.c_void_p(), ctypes.c_void_p()
    check_cuda(lib, lib.cuModuleLoadData(ctypes.byref(module), ptx.encode()))
    check_cuda(lib, lib.cuModuleGetFunction(ctypes.byref(fn), module, k.name.encode()))
    values, host, pointers = dict(scalars or {}), {}, []
    for b in k.buffers:
        host[b.name] = np.ascontiguousarray(arrays[b.name], dtype=ir.NUMPY[b.elem]).copy()
        ptr, nbytes = ctypes.c_uint64(), ctypes.c_size_t(host[b.name].nbytes)
        check_cuda(lib, lib.cuMemAlloc_v2(ctypes.byref(ptr), ctypes.c_size_t(max(nbytes.value, 4))))
        check_cuda(lib, lib.cuMemcpyHtoD_v2(ptr, host[b.name].ctypes.data_as(ctypes.c_void_p), nbytes))
        pointers.append((b.name, ptr, nbytes))
        values[b.name], values[b.name + "_len"] = ptr.value, host[b.name].size
    packed = pack_values(*abi.cuda_params(k), values)
    args, size = ctypes.create_string_buffer(packed, len(packed)), ctypes.c_size_t(len(packed))
    extra = (ctypes.c_void_p * 5)(1, ctypes.cast(args, ctypes.c_void_p), 2,          # CU_LAUNCH_PARAM_BUFFER_*
                                  ctypes.cast(ctypes.byref(size), ctypes.c_void_p), 0)
    check_cuda(lib, lib.cuLaunchKernel(fn, *map(ctypes.c_uint, grid), *map(ctypes.c_uint, k.workgroup_size),
                                       ctypes.c_uint(0), None, None, extra))
    check_cuda(lib, lib.cuCtxSynchronize())
    for name, ptr, nbytes in pointers:
        check_cuda(lib, lib.cuMemcpyDtoH_v2(host[name].ctypes.data_as(ctypes.c_void_p), ptr, nbytes))
        lib.cuMemFree_v2(ptr)
    lib.cuModuleUnload(module)
    return host
