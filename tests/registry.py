"""The registry of every kernel in the shader package: each package's cases (`khal_runtime.testing.Case`: inputs,
a numpy reference, the grid). `tests/test_differential.py` runs them all on every backend present, and checks that
every kernel of the manifest has a case here."""

from shaders.examples.cases import CASES as EXAMPLES

REGISTRY = [*EXAMPLES]
