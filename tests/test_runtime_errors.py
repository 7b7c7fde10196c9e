"""Calls that must fail before anything reaches the device, and what they say."""

from __future__ import annotations

import importlib
import shutil
import sys

import numpy as np
import pytest

import khal_runtime as khal
from khal_runtime.backends.cpu import CpuBackend
from khal_runtime.interpreter import KernelExecutionError
from shaders._generated.examples.add_assign import AddAssign
from shaders._generated.examples.matmul import MatmulShape, MatmulTiled
from shaders._generated.examples.unpack import UnpackNibbles


def dispatch(backend, kernel, grid, *args, **kwargs):
    encoder = backend.begin_encoding()
    with encoder.begin_pass("test") as pass_:
        kernel.call(pass_, grid, *args, **kwargs)
    backend.submit(encoder)


@pytest.fixture
def cpu():
    return CpuBackend()


def floats(backend, n, **kw):
    return backend.init_buffer(np.arange(n, dtype=np.float32), **kw)


def test_wrong_element_type(cpu):
    a, b = floats(cpu, 8), cpu.init_buffer(np.arange(8, dtype=np.uint32))
    with pytest.raises(khal.KernelArgumentError, match=r"examples.add_assign.add_assign: argument 'b' must hold "
                                                       r"f32, but the buffer holds u32"):
        dispatch(cpu, AddAssign(cpu), 8, a, b)


def test_read_only_buffer_where_the_kernel_writes(cpu):
    a, b = floats(cpu, 8), floats(cpu, 8)
    with pytest.raises(khal.KernelArgumentError, match="the kernel writes argument 'a', but a read-only buffer"):
        dispatch(cpu, AddAssign(cpu), 8, a.read_only(), b)
    dispatch(cpu, AddAssign(cpu), 8, a, b.read_only())          # reading through a read-only view is fine
    assert a.read().tolist() == [2.0 * i for i in range(8)]


def test_missing_usage_flag(cpu):
    a = floats(cpu, 8)
    b = floats(cpu, 8, usage=khal.BufferUsage.COPY_SRC | khal.BufferUsage.COPY_DST)
    with pytest.raises(khal.KernelArgumentError, match="argument 'b' lacks the usage flag STORAGE"):
        dispatch(cpu, AddAssign(cpu), 8, a, b)
    c = floats(cpu, 8, usage=khal.BufferUsage.STORAGE)
    with pytest.raises(khal.BackendError, match="lacks the usage flag COPY_SRC"):
        c.read()


def test_too_small_buffer(cpu):
    a, b = floats(cpu, 8), floats(cpu, 5)
    with pytest.raises(khal.KernelArgumentError, match=r"requirement `len\(b\) >= len\(a\)` "
                                                       r"\(shaders/examples/add_assign.py:\d+\) does not hold for "
                                                       r"these arguments: len\(a\)=8, len\(b\)=5"):
        dispatch(cpu, AddAssign(cpu), 8, a, b)


def test_requirement_on_struct_fields_given_as_a_dict(cpu):
    c, a, b = floats(cpu, 4), floats(cpu, 6), floats(cpu, 6)
    with pytest.raises(khal.KernelArgumentError, match=r"and len\(c\) >= shape.m \* shape.n`"):
        dispatch(cpu, MatmulTiled(cpu), (3, 2), c, a, b, {"m": 2, "k": 3, "n": 3})
    dispatch(cpu, MatmulTiled(cpu), (2, 2), c, a, b, MatmulShape(m=2, k=3, n=2))


def test_buffer_of_another_backend(cpu):
    other = CpuBackend()
    a, b = floats(cpu, 8), floats(other, 8)
    with pytest.raises(khal.KernelArgumentError, match="argument 'b' lives on <khal cpu backend.*, but the kernel "
                                                       "runs on"):
        dispatch(cpu, AddAssign(cpu), 8, a, b)
    with pytest.raises(khal.KernelArgumentError, match="the kernel was loaded on .* but the pass belongs to"):
        dispatch(other, AddAssign(cpu), 8, a, a)


def test_scalar_and_call_shape_errors(cpu):
    c, a, b = floats(cpu, 4), floats(cpu, 4), floats(cpu, 4)
    kernel = MatmulTiled(cpu)
    with pytest.raises(khal.KernelArgumentError, match=r"argument 'shape.m' = -1 is out of the range of u32"):
        dispatch(cpu, kernel, 4, c, a, b, MatmulShape(m=-1, k=2, n=2))
    with pytest.raises(khal.KernelArgumentError, match="missing argument shape"):
        dispatch(cpu, kernel, 4, c, a, b)
    with pytest.raises(khal.KernelArgumentError, match="no parameter named 'd'"):
        dispatch(cpu, kernel, 4, c, a, b, d=1)
    with pytest.raises(khal.KernelArgumentError, match="argument 'grid' must be a thread count"):
        dispatch(cpu, kernel, "many", c, a, b, MatmulShape(2, 2, 1))
    with pytest.raises(khal.KernelArgumentError, match="an empty buffer"):
        dispatch(cpu, AddAssign(cpu), 1, cpu.init_buffer(np.zeros(0, np.float32)), a)


@pytest.mark.parametrize("grid", [-5, (4, -1), -5.0, True, khal.workgroups(-1), khal.workgroups(1, 2.5)],
                         ids=["threads", "tuple", "float", "bool", "workgroups", "fractional"])
def test_a_grid_that_counts_nothing_sensible_is_refused(cpu, grid):
    a = floats(cpu, 8)
    with pytest.raises(khal.KernelArgumentError, match=r"examples.add_assign.add_assign: argument 'grid'"):
        dispatch(cpu, AddAssign(cpu), grid, a, floats(cpu, 8))
    assert a.read().tolist() == list(range(8))                  # nothing ran
    counts = cpu.init_buffer(np.ones(3, np.uint32), usage=khal.DEFAULT_USAGE | khal.BufferUsage.INDIRECT)
    with pytest.raises(khal.KernelArgumentError, match="argument 'grid': an indirect grid needs .* at offset -1"):
        dispatch(cpu, AddAssign(cpu), khal.indirect(counts, -1), a, floats(cpu, 8))
    dispatch(cpu, AddAssign(cpu), 0, a, floats(cpu, 8))                # no threads at all is a grid
    assert a.read().tolist() == list(range(8))


@pytest.mark.parametrize("value", ["0.5", None, [0.5], True, np.array([0.5]), 1j])
def test_a_float_scalar_must_be_a_number(cpu, value):
    out, words = floats(cpu, 8), cpu.init_buffer(np.zeros(1, np.uint32))
    with pytest.raises(khal.KernelArgumentError, match=r"unpack_nibbles: argument 'scale' must be a number \(f32\), "
                                                       r"not "):
        dispatch(cpu, UnpackNibbles(cpu), 1, out, words, value)


@pytest.mark.parametrize("value", [2, 0.5, np.float32(0.5), np.float64(2), np.int32(2), np.array(0.5)],
                         ids=["int", "float", "f32", "f64", "i32", "0-d"])
def test_numbers_of_every_kind_are_float_scalars(cpu, value):
    out, words = floats(cpu, 8), cpu.init_buffer(np.array([0x76543210], np.uint32))
    dispatch(cpu, UnpackNibbles(cpu), 1, out, words, value)
    np.testing.assert_array_equal(out.read(), (np.arange(8) - 8) * np.float32(value))


def test_tampered_artifact_is_refused(cpu, tmp_path, monkeypatch):
    copy = tmp_path / "tampered" / "_generated"
    shutil.copytree(importlib.resources.files("shaders._generated"), copy)
    (tmp_path / "tampered" / "__init__.py").write_text("")
    ir = copy / "kernels" / "examples.add_assign.add_assign.kir.json"
    ir.write_text(ir.read_text().replace('"add"', '"sub"'))
    monkeypatch.syspath_prepend(str(tmp_path))

    class Tampered(AddAssign):
        PACKAGE = "tampered._generated"

    with pytest.raises(khal.ArtifactError, match=r"the ir artifact of kernel examples.add_assign.add_assign "
                                                 r"\(tampered._generated/kernels/examples.add_assign.add_assign"
                                                 r".kir.json\) does not match the manifest"):
        Tampered(cpu)
    sys.modules.pop("tampered", None)


OUT_OF_BOUNDS = """
from khal_runtime.lang import Buf, MutBuf, f32, global_id, kernel


@kernel(workgroup_size=(64,))
def shifted(out: MutBuf[f32], x: Buf[f32]):
    i = global_id().x
    if i < len(out):
        out[i] = x[i + 1]
"""


def test_out_of_bounds_read_on_cpu_names_kernel_buffer_index_and_line(cpu, shader_package):
    package = shader_package({"oob": OUT_OF_BOUNDS}, targets=("cpu",))
    Shifted = importlib.import_module(f"{package}.oob").Shifted
    out, x = floats(cpu, 10), floats(cpu, 10)
    with pytest.raises(KernelExecutionError) as caught:
        dispatch(cpu, Shifted(cpu), 10, out, x)
    message = str(caught.value)
    line = OUT_OF_BOUNDS.splitlines().index("        out[i] = x[i + 1]") + 1
    assert "kernel 'shifted'" in message and f"/oob.py:{line}:" in message
    assert "read of buffer 'x' out of bounds: index 10, length 10" in message
    assert "local_index 9" in message


def test_a_buffer_bound_twice_where_the_kernel_writes(cpu):
    a = floats(cpu, 8)
    with pytest.raises(khal.KernelArgumentError, match="arguments 'a' and 'b' are the same buffer, and the kernel "
                                                       "writes one of them"):
        dispatch(cpu, AddAssign(cpu), 8, a, a.read_only())
