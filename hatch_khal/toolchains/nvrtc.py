"""CUDA C++ to PTX, in process, through NVRTC (from the pinned `nvidia-cuda-nvrtc-cu12` wheel).

NVRTC needs no GPU or driver. Its PTX `.version` follows the NVRTC release (12.4 writes PTX ISA 8.4, which drivers
from CUDA 12.4 on load), which is why the wheel is pinned. NVRTC's API is documented as safe to call from several
threads at once; each call here creates and destroys its own program.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import re
from ctypes import POINTER, byref, c_char_p, c_int, c_size_t, c_void_p

from . import ToolchainError, declare, installed_file, load_once

_NVRTC_SUCCESS = 0
DEFAULT_OPTIONS = (
    "-std=c++17",
    "--fmad=true",  # NVRTC's default, stated because it changes results: a*b+c contracts to fma
    "-default-device",  # helper functions need no __device__
    # By default NVRTC raises the process's stack rlimit for a compile and restores it after: with compiles in
    # several threads those save/restore pairs interleave, and threads' stacks were sized when they started.
    "--modify-stack-limit=false",
)

# NVRTC's log: "add.cu(12): error: identifier "x" is undefined"
_ERROR_LINE = re.compile(r"^.*?\((\d+)\): (?:catastrophic )?error", re.MULTILINE)


@load_once
def _nvrtc() -> ctypes.CDLL:
    path = installed_file("nvidia-cuda-nvrtc-cu12", "nvidia/cuda_nvrtc/lib/libnvrtc.so.12")
    try:
        # libnvrtc.so.12 finds libnvrtc-builtins.so.12.4 beside itself (its RUNPATH is $ORIGIN).
        library = ctypes.CDLL(str(path))
    except OSError as e:
        raise ToolchainError("nvrtc", f"cannot load {path}: {e}") from None
    declare(library, {
        "nvrtcVersion": (c_int, [POINTER(c_int), POINTER(c_int)]),
        "nvrtcGetErrorString": (c_char_p, [c_int]),
        "nvrtcCreateProgram": (c_int, [POINTER(c_void_p), c_char_p, c_char_p, c_int, c_void_p, c_void_p]),
        "nvrtcCompileProgram": (c_int, [c_void_p, c_int, POINTER(c_char_p)]),
        "nvrtcGetProgramLogSize": (c_int, [c_void_p, POINTER(c_size_t)]),
        "nvrtcGetProgramLog": (c_int, [c_void_p, c_char_p]),
        "nvrtcGetPTXSize": (c_int, [c_void_p, POINTER(c_size_t)]),
        "nvrtcGetPTX": (c_int, [c_void_p, c_char_p]),
        "nvrtcDestroyProgram": (c_int, [POINTER(c_void_p)]),
    })
    return library


@load_once
def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    declare(libc, {"uselocale": (c_void_p, [c_void_p])})
    return libc


@contextlib.contextmanager
def _calling_thread_locale_kept():
    """Restores the calling thread's locale after NVRTC, which leaves the thread on the "C" locale (`uselocale`).

    Python's text I/O asks `nl_langinfo(CODESET)`, which follows the thread's locale: without this, every file
    opened later on that thread without an explicit encoding is read as ASCII.
    """
    libc = _libc()
    before = libc.uselocale(None)  # NULL queries without changing
    try:
        yield
    finally:
        libc.uselocale(before)


def _check(library: ctypes.CDLL, result: int, call: str, log: str = "", source: str | None = None) -> None:
    if result != _NVRTC_SUCCESS:
        summary = f"{call} failed: {library.nvrtcGetErrorString(result).decode()}"
        raise ToolchainError("nvrtc", summary, log, source, (int(n) for n in _ERROR_LINE.findall(log)))


def version() -> str:
    """NVRTC's version as it reports it, "major.minor" (e.g. "12.4")."""
    library = _nvrtc()
    major, minor = c_int(), c_int()
    _check(library, library.nvrtcVersion(byref(major), byref(minor)), "nvrtcVersion")
    return f"{major.value}.{minor.value}"


def _text(library: ctypes.CDLL, program: c_void_p, get_size: str, get: str) -> str:
    size = c_size_t()
    _check(library, getattr(library, get_size)(program, byref(size)), get_size)
    buffer = ctypes.create_string_buffer(size.value)  # the size counts the terminating NUL
    _check(library, getattr(library, get)(program, buffer), get)
    return buffer.value.decode(errors="replace")


def compile_cuda(source: str, *, name: str, arch: str = "compute_75") -> str:
    """PTX text for the CUDA C++ `source`, compiled for the virtual architecture `arch`.

    `name` is the program's name in NVRTC's messages (a kernel's entry point keeps its own name when it is declared
    `extern "C"`). Raises ToolchainError with NVRTC's log and the numbered source when it fails.
    """
    library = _nvrtc()
    arguments = [*DEFAULT_OPTIONS, f"--gpu-architecture={arch}"]
    argv = (c_char_p * len(arguments))(*(argument.encode() for argument in arguments))
    program = c_void_p()
    _check(library, library.nvrtcCreateProgram(byref(program), source.encode(), name.encode(), 0, None, None),
           "nvrtcCreateProgram", source=source)
    try:
        with _calling_thread_locale_kept():
            result = library.nvrtcCompileProgram(program, len(arguments), argv)
        if result != _NVRTC_SUCCESS:
            log = _text(library, program, "nvrtcGetProgramLogSize", "nvrtcGetProgramLog")
            _check(library, result, f"compiling {name} with {' '.join(arguments)}", log, source)
        return _text(library, program, "nvrtcGetPTXSize", "nvrtcGetPTX")
    finally:
        library.nvrtcDestroyProgram(byref(program))
