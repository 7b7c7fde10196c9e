"""The kernels that the tests/test_render*.py modules render, compile and run, built by hand with the IR builder
of test_render_kit.py: whole programs (render_kernels_programs.py) and kernels that pin down rules of the IR
(render_kernels_rules.py); together they use every statement, intrinsic, builtin, memory space and scalar type."""

from __future__ import annotations

from render_kernels_programs import add_assign, f16_math, matmul, reduce_sum, subgroup_scan, unpack_words, wide_math
from render_kernels_rules import (
    atomics,
    conversions,
    declarations,
    division,
    every_intrinsic,
    grid_ids,
    helpers,
    literals,
    loops,
    parameters,
    private_arrays,
    shifts,
)

from hatch_khal.render import render_cuda, render_glsl
from khal_runtime import ir


def catalogue() -> dict[str, ir.Kernel]:
    kernels = [add_assign(), reduce_sum("u32"), reduce_sum("f32"), matmul(), subgroup_scan(), f16_math(),
               unpack_words(), wide_math(), helpers(), loops(), division(), shifts(), grid_ids(), literals(),
               parameters(), private_arrays(), atomics("storage"), atomics("shared"), declarations(),
               conversions()]
    kernels += [every_intrinsic(t) for t in ("i32", "u32", "i64", "u64", "f16", "f32", "f64", "bool")]
    return {k.name: k for k in kernels}


def test_catalogue_round_trips_through_json():
    for k in catalogue().values():
        again = ir.from_json(ir.to_json(k))
        assert render_glsl(again) == render_glsl(k) and render_cuda(again) == render_cuda(k)
