"""The host API on every backend present: buffers, copies, reads, timing, grids, the Shader class, selection, and
zero-copy exchange with PyTorch on CUDA."""

from __future__ import annotations

import numpy as np
import pytest

import khal_runtime as khal
from khal_runtime.backends import create
from khal_runtime.lang import f32, u32
from shaders._generated.examples.add_assign import AddAssign
from shaders._generated.examples.reduction import SumU32

DTYPES = [np.float16, np.float32, np.float64, np.int32, np.uint32, np.int64, np.uint64]
INDIRECT = khal.DEFAULT_USAGE | khal.BufferUsage.INDIRECT


def add(backend, grid, a, b, timestamps=False):
    encoder = backend.begin_encoding()
    with encoder.begin_pass("add", timestamps=timestamps) as pass_:
        AddAssign(backend).call(pass_, grid, a, b)
    backend.submit(encoder)
    return pass_


@pytest.mark.parametrize("dtype", DTYPES, ids=[np.dtype(d).name for d in DTYPES])
def test_buffers_round_trip(backend, dtype):
    data = (np.arange(1000) * 3 - 500).astype(dtype)
    buf = backend.init_buffer(data)
    assert len(buf) == 1000 and buf.dtype.numpy == np.dtype(dtype).name and buf.writable
    np.testing.assert_array_equal(buf.read(), data)
    buf.write(data[:10][::-1], offset=500)
    expected = data.copy()
    expected[500:510] = data[:10][::-1]
    np.testing.assert_array_equal(backend.read_buffer_async(buf).result(), expected)
    zeros = backend.uninit_buffer(dtype, 8)
    np.testing.assert_array_equal(zeros.read(), np.zeros(8, dtype))


def test_typed_creation_and_errors(backend):
    assert backend.init_buffer([1, 2, 3], dtype=u32).read().dtype == np.uint32
    with pytest.raises(TypeError, match="the array holds float64, not f32"):
        backend.init_buffer(np.zeros(3), dtype=f32)
    with pytest.raises(TypeError, match="buffers cannot hold bool"):
        backend.init_buffer(np.zeros(3, bool))
    buf = backend.init_buffer(np.zeros(4, np.float32))
    with pytest.raises(IndexError, match="3 elements at offset 2 do not fit in a buffer of 4"):
        buf.write(np.ones(3, np.float32), offset=2)
    with pytest.raises(TypeError, match="the data is float64 but"):
        buf.write(np.ones(2))


def test_device_copies(backend):
    a = backend.init_buffer(np.arange(100, dtype=np.float32))
    b = backend.uninit_buffer(f32, 100)
    encoder = backend.begin_encoding()
    encoder.copy_buffer_to_buffer(a, 10, b, 20, 30)
    backend.submit(encoder)
    expected = np.zeros(100, np.float32)
    expected[20:50] = np.arange(10, 40)
    np.testing.assert_array_equal(b.read(), expected)
    with pytest.raises(IndexError, match="out of bounds"):
        backend.begin_encoding().copy_buffer_to_buffer(a, 90, b, 0, 20)


def test_pass_timing(backend):
    n = 1 << 20
    a, b = backend.init_buffer(np.ones(n, np.float32)), backend.init_buffer(np.ones(n, np.float32))
    timed = add(backend, n, a, b, timestamps=True)
    untimed = add(backend, n, a, b)
    backend.synchronize()
    assert untimed.elapsed is None
    assert timed.elapsed is None or 0 < timed.elapsed < 10       # None where the device has no timestamp queries
    if backend.name in ("cuda", "cpu"):
        assert timed.elapsed is not None


def test_grids_in_threads_workgroups_and_indirect(backend):
    n = 1000
    a, b = backend.init_buffer(np.zeros(n, np.float32)), backend.init_buffer(np.ones(n, np.float32))
    add(backend, n, a, b)
    add(backend, khal.workgroups(2), a, b)                      # 2 x 256 threads: the first 512 elements
    counts = backend.init_buffer(np.array([1, 1, 1], np.uint32), usage=INDIRECT)
    add(backend, khal.indirect(counts), a, b)                   # one workgroup: the first 256
    expected = np.ones(n, np.float32) + (np.arange(n) < 512) + (np.arange(n) < 256)
    np.testing.assert_array_equal(a.read(), expected)


def test_more_than_65535_workgroups(backend):
    n = 70_000 * 256                    # 70,000 workgroups of the 256-wide add: WebGPU folds them into z
    a, b = backend.init_buffer(np.zeros(n, np.float32)), backend.init_buffer(np.full(n, 2, np.float32))
    add(backend, n, a, b)
    got = a.read()
    assert got.min() == 2.0 and got.max() == 2.0


def test_atomics_across_many_workgroups(backend):
    values = np.arange(100_000, dtype=np.uint32)
    total, buf = backend.init_buffer(np.zeros(1, np.uint32)), backend.init_buffer(values)
    encoder = backend.begin_encoding()
    with encoder.begin_pass("sum") as pass_:
        SumU32(backend).call(pass_, len(buf), total, buf)
    backend.submit(encoder)
    assert int(total.read()[0]) == int(values.sum()) % 2**32


def test_shader_groups_kernels(backend):
    class Kernels(khal.Shader):
        add_assign: AddAssign
        sum_u32: SumU32

    kernels = Kernels(backend)
    assert isinstance(kernels.add_assign, AddAssign) and kernels.sum_u32.backend is backend
    assert Kernels(backend).add_assign is kernels.add_assign         # from the backend's cache


def test_kernels_load_once_per_backend(monkeypatch):
    backend, other = create("cpu"), create("cpu")
    loads = []
    load = type(backend).load_kernel
    monkeypatch.setattr(type(backend), "load_kernel", lambda self, info, artifact: loads.append(info["id"]) or
                        load(self, info, artifact))
    first = AddAssign(backend)
    assert AddAssign(backend) is first and backend.kernel(AddAssign) is first and loads == [first.name]
    assert AddAssign(other) is not first and AddAssign(other).backend is other and len(loads) == 2
    with pytest.raises(TypeError, match=r"AddAssign\(backend\): expected a khal backend, not 'cpu'"):
        AddAssign("cpu")


def test_selection_and_info(monkeypatch, capsys):
    monkeypatch.setenv("KHAL_BACKEND", "cpu")
    assert khal.backend().name == "cpu"
    with pytest.raises(ValueError, match="unknown backend 'metal'"):
        khal.backend("metal")
    from khal_runtime.__main__ import main
    main([])
    out = capsys.readouterr().out
    assert "cpu     khal IR interpreter" in out
    assert "features: atomic_f32, f16, f64, i64, immediates, int_dot4, subgroups" in out


def test_a_missing_cuda_says_what_is_missing():
    try:
        import pycuda.driver  # noqa: F401
    except ImportError as e:
        with pytest.raises(khal.BackendError, match="PyCUDA is not installed|no NVIDIA driver"):
            create("cuda")
        assert khal.backend().name in ("webgpu", "cpu") or "libcuda" in str(e)
    else:
        pytest.skip("PyCUDA is installed here")


@pytest.mark.cuda
@pytest.mark.gpu
def test_cuda_buffers_exchange_memory_with_torch():
    torch = pytest.importorskip("torch")
    from conftest import get_backend
    backend = get_backend("cuda")
    buf = backend.init_buffer(np.arange(10, dtype=np.float32))
    backend.synchronize()
    view = torch.as_tensor(buf, device="cuda")                  # through __cuda_array_interface__, no copy
    view += 1
    torch.cuda.synchronize()
    np.testing.assert_array_equal(buf.read(), np.arange(10, dtype=np.float32) + 1)
    tensor = torch.arange(10, dtype=torch.float32, device="cuda")
    wrapped = backend.wrap_cuda_array(tensor)
    torch.cuda.synchronize()
    add(backend, 10, wrapped, buf)
    backend.synchronize()
    np.testing.assert_array_equal(tensor.cpu().numpy(), np.arange(10) * 2 + 1)
    with pytest.raises(AttributeError, match="not in CUDA memory"):
        _ = khal.backend("cpu").init_buffer(np.zeros(1, np.float32)).__cuda_array_interface__


def test_odd_f16_storage_buffers_are_refused_on_webgpu(backend):
    halves = backend.init_buffer(np.zeros(4, np.float16))
    if backend.name != "webgpu":
        backend.init_buffer(np.zeros(3, np.float16))
        assert len(halves.prefix(3)) == 3
        return
    with pytest.raises(khal.BackendError, match=r"a storage buffer of f16 on webgpu needs an even length, not 3: "
                                                r"webgpu binds whole 4-byte words, so a kernel would see len\(\) = 4"):
        backend.init_buffer(np.zeros(3, np.float16))
    with pytest.raises(khal.BackendError, match="a view of the first 3 elements of f16 on webgpu needs an even length"):
        halves.prefix(3)
    assert len(halves.prefix(2)) == 2
    backend.init_buffer(np.zeros(3, np.float16), usage=khal.BufferUsage.COPY_SRC | khal.BufferUsage.COPY_DST)


LENGTHS = """
from khal_runtime.lang import MutBuf, f32, global_id, kernel, u32


@kernel(workgroup_size=(64,))
def mark(a: MutBuf[f32], seen: MutBuf[u32]):
    i = global_id().x
    if i < len(a):
        a[i] = 7.0
    if i == 0:
        seen[0] = len(a)
"""


def run(backend, *dispatches):
    """Record (kernel, grid, *args) dispatches in one pass and submit them."""
    encoder = backend.begin_encoding()
    with encoder.begin_pass() as pass_:
        for kernel, grid, *args in dispatches:
            kernel.call(pass_, grid, *args)
    backend.submit(encoder)


def test_a_kernel_sees_the_length_of_a_prefix_not_of_its_allocation(backend, shader_package):
    import importlib
    mark = importlib.import_module(f"{shader_package({'lengths': LENGTHS})}.lengths").Mark(backend)
    allocation = backend.init_buffer(np.zeros(100, np.float32))
    short = allocation.prefix(37)
    seen = [backend.init_buffer(np.zeros(1, np.uint32)) for _ in range(3)]
    run(backend, (mark, 100, short, seen[0]))               # 100 threads; `if i < len(a)` stops them at 37
    assert (allocation.read() == np.where(np.arange(100) < 37, 7, 0)).all() and short.read().shape == (37,)
    # one allocation bound with two lengths in one pass: two bindings, each of its own size
    run(backend, (mark, 100, allocation.prefix(50), seen[1]), (mark, 100, allocation, seen[2]))
    assert [int(s.read()[0]) for s in seen] == [37, 50, 100] and (allocation.read() == 7).all()


def test_prefixes_of_one_allocation_are_the_same_memory(backend):
    allocation = backend.init_buffer(np.arange(10, dtype=np.float32))
    head = allocation.prefix(4)
    head.write(np.full(2, -1, np.float32), offset=2)
    np.testing.assert_array_equal(allocation.read()[:5], [0, 1, -1, -1, 4])
    assert isinstance(head.read_only().prefix(2), khal.ReadOnlyBuffer) and not head.read_only().prefix(2).writable
    with pytest.raises(khal.KernelArgumentError, match="arguments 'a' and 'b' are the same buffer"):
        run(backend, (AddAssign(backend), 4, head, allocation.read_only()))
    with pytest.raises(ValueError, match="prefix: 11 is not a length between 0 and 10"):
        allocation.prefix(11)



# A program that runs a kernel on every backend present, directly and through vortx, and says which ran and which
# modules of the compiler it imported.
STANDALONE = """
import json
import sys

import numpy as np

import khal_runtime as khal
import vortx as vx
from shaders._generated.examples.add_assign import AddAssign

ran = []
for kind in ("cpu", "webgpu", "cuda"):
    try:
        backend = khal.backend(kind)
    except khal.BackendError:
        continue
    a, b = backend.init_buffer(np.ones(300, np.float32)), backend.init_buffer(np.arange(300, dtype=np.float32))
    encoder = backend.begin_encoding()
    with encoder.begin_pass() as pass_:
        AddAssign(backend).call(pass_, len(a), a, b)
    backend.submit(encoder)
    assert a.read()[299] == 300
    assert (vx.ones(5, device=vx.device(kind)) + 1).sum().item() == 10
    ran.append(kind)
print(json.dumps({"ran": ran, "compiler": sorted(m for m in sys.modules if m.split(".")[0] == "hatch_khal")}))
"""


def test_running_kernels_imports_nothing_of_the_compiler():
    import json
    import subprocess
    import sys
    from pathlib import Path
    done = subprocess.run([sys.executable, "-c", STANDALONE], capture_output=True, text=True, timeout=300,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    present = [kind for kind, found in khal.available().items() if not isinstance(found, str)]
    assert sorted(result["ran"]) == sorted(present) and "cpu" in present
    assert result["compiler"] == [], f"running kernels on {', '.join(present)} imported {result['compiler']}"
