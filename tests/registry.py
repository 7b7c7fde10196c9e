"""The registry of every kernel in the shader package: each package's cases (`khal_runtime.testing.Case`: inputs,
a numpy reference, the grid). `tests/test_differential.py` runs them all on every backend present, and checks that
every kernel of the manifest has a case here."""

from shaders.examples.cases import CASES as EXAMPLES
from shaders.vortx.cases_elementwise import CASES as VORTX_ELEMENTWISE
from shaders.vortx.cases_gemm import CASES as VORTX_GEMM
from shaders.vortx.cases_reduce import CASES as VORTX_REDUCE
from shaders.vortx.cases_transpose import CASES as VORTX_TRANSPOSE

REGISTRY = [*EXAMPLES, *VORTX_ELEMENTWISE, *VORTX_REDUCE, *VORTX_GEMM, *VORTX_TRANSPOSE]
