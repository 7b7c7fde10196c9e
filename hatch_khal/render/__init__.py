"""Renderers from the khal IR to target source: GLSL 450 compute (-> SPIR-V, WebGPU) and CUDA C++ (-> PTX).

    from hatch_khal.render import render_glsl, render_cuda
    glsl_text = render_glsl(kernel)      # kernel: khal_runtime.ir.Kernel
    cuda_text = render_cuda(kernel)

Both print through one `printer.Printer` (statements; its expressions are `expressions.ExpressionPrinter`), with
the shared tables and `Target` of `common.py`; `glsl.py` and `cuda.py` hold each target's tables and file layout. The
parameter layouts they follow are `hatch_khal.abi`'s.
"""

from .cuda import render_cuda
from .glsl import render_glsl

__all__ = ["render_cuda", "render_glsl"]
