"""The strided layout of up to three rank-4 tensors (NCHW) that an elementwise kernel reads and writes.

A tensor of lower rank has leading dimensions of size 1. A view is an offset and a stride per dimension, in
elements; broadcasting is a stride of 0. The output's shape is the shape of the operation; the inputs follow it
through their own strides.
"""

from khal_runtime.lang import struct, u32


@struct
class Strided:
    d0: u32         # the output's shape
    d1: u32
    d2: u32
    d3: u32
    o_off: u32      # the output: offset and strides
    o_s0: u32
    o_s1: u32
    o_s2: u32
    o_s3: u32
    a_off: u32      # the first input
    a_s0: u32
    a_s1: u32
    a_s2: u32
    a_s3: u32
    b_off: u32      # the second input (unused by unary operations)
    b_s0: u32
    b_s1: u32
    b_s2: u32
    b_s3: u32


def at(lay: Strided, i: u32, off: u32, s0: u32, s1: u32, s2: u32, s3: u32) -> u32:
    """The position, in a view with this offset and these strides, of the i-th element of the output's shape."""
    w = i % lay.d3
    r = i // lay.d3
    h = r % lay.d2
    r = r // lay.d2
    return off + (r // lay.d1) * s0 + (r % lay.d1) * s1 + h * s2 + w * s3


# One helper per tensor: inlined, the three share their divisions (the compilers eliminate the repeats).
def out_at(lay: Strided, i: u32) -> u32:
    return at(lay, i, lay.o_off, lay.o_s0, lay.o_s1, lay.o_s2, lay.o_s3)


def a_at(lay: Strided, i: u32) -> u32:
    return at(lay, i, lay.a_off, lay.a_s0, lay.a_s1, lay.a_s2, lay.a_s3)


def b_at(lay: Strided, i: u32) -> u32:
    return at(lay, i, lay.b_off, lay.b_s0, lay.b_s1, lay.b_s2, lay.b_s3)
