"""SPIR-V that naga, wgpu's shader translator, reads: one rewrite of the module after the optimizer.

wgpu-py 0.32 ships wgpu-native 29, whose naga panics (an `Option::unwrap` in `proc/emitter.rs`, across the C API:
the process aborts with exit 134) on a subgroup operation whose operand was computed in another structured
construct, e.g. the sum a loop accumulated, reduced after the loop (gfx-rs/wgpu#8389, fixed by gfx-rs/wgpu#9957,
after wgpu-native 29); on an atomic it refuses the module instead ("used by a statement before it was introduced
into the scope"). naga's SPIR-V front end turns blocks into statements of a tree, and a value used outside the
subtree that computed it needs a spill into a local variable, which `get_expr_handle` makes. The handlers of
`OpGroupNonUniform*` call it after they have closed the block's open run of expressions, which the spill closes a
second time (the panic); the atomics' handler reads its value operand without it (the refusal).

glslang alone never makes that shape: it reads every GLSL variable with an `OpLoad` right before its use. The
optimizer makes it: its SSA passes (`--eliminate-local-multi-store`, then `--ssa-rewrite`, of `-O`; found by
running `-O`'s passes one prefix at a time) turn a loop's variable into an `OpPhi` of the loop header, which the
operation after the loop reads. Leaving both passes out (no single one suffices) keeps every loop variable of every
kernel in memory: 6 % more bytes and 9 % more instructions over the shipped kernels, with the passes after them
(constant propagation, redundancy elimination, if-conversion) blind to those values, to avoid one shape in a few
kernels. Instead `for_naga` keeps the optimizer's output and gives each operand of a subgroup operation or an
atomic that another block computed an `OpCopyObject` in the operation's own block: naga reads the copy like any
other instruction, spilling the value there if it must, and the operation then reads a value of its own block.
"Another block" is wider than naga's "another subtree" (a value of the block before an `if` is still in scope
after it), but needs no construct analysis, and a needless copy costs nothing on the device (naga folds a copy
into the expression it copies). Of the 170 shipped kernels it changes one (`examples.subgroup_sum`, +16 bytes).
The rewrite is a function of the module's bytes: the build stays deterministic.
"""

from __future__ import annotations

from . import spirv_tools

# SPIR-V opcodes (the SPIR-V specification, 3.52)
_OP_FUNCTION_END, _OP_COPY_OBJECT, _OP_LABEL = 56, 83, 248
# The instructions whose operands naga 29 reads without spilling them: every subgroup operation
# (OpGroupNonUniformElect .. OpGroupNonUniformQuadSwap) and every atomic (OpAtomicLoad .. OpAtomicXor, and the
# float atomics OpAtomicFMinEXT, OpAtomicFMaxEXT, OpAtomicFAddEXT)
_READ_WITHOUT_SPILL = frozenset((*range(333, 367), *range(227, 243), 5614, 5615, 6035))


def for_naga(spirv: bytes) -> bytes:
    """The module with every operand of a subgroup operation that is computed in another block copied, with
    `OpCopyObject`, into the operation's block (the module itself, byte for byte, when it has no such operand)."""
    header, instructions = spirv_tools.parse(spirv)
    block_of, type_of = _definitions(instructions)
    bound = header[3]
    copies: dict[tuple[int, int], int] = {}    # (block, value) -> the value's copy in that block
    out: list[tuple[int, ...]] = []
    block = 0
    for instruction in instructions:
        block = instruction.result_id if instruction.opcode == _OP_LABEL else block
        words = instruction.words
        if instruction.opcode in _READ_WITHOUT_SPILL:
            words = list(words)
            for offset in instruction.id_operands:
                value = words[offset]
                if block_of.get(value, block) == block:
                    continue            # a constant, a global or a parameter, or a value of this very block
                if (block, value) not in copies:
                    copies[block, value] = bound
                    out.append((4 << 16 | _OP_COPY_OBJECT, type_of[value], bound, value))
                    bound += 1
                words[offset] = copies[block, value]
        out.append(tuple(words))
    if not copies:
        return spirv
    rewritten = spirv_tools.assemble((*header[:3], bound, *header[4:]), out)
    spirv_tools.validate(rewritten)
    return rewritten


def _definitions(instructions: list[spirv_tools.Instruction]) -> tuple[dict[int, int], dict[int, int]]:
    """For each value computed in a function's block: that block's label, and the value's type."""
    block_of, type_of = {}, {}
    block = 0
    for instruction in instructions:
        if instruction.opcode == _OP_LABEL:
            block = instruction.result_id
        elif instruction.opcode == _OP_FUNCTION_END:
            block = 0
        elif block and instruction.result_id:
            block_of[instruction.result_id] = block
            type_of[instruction.result_id] = instruction.type_id
    return block_of, type_of
