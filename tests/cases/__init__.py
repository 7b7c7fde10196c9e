"""Differential-test cases of every kernel family (`khal_runtime.testing.Case`: inputs, a numpy reference and the
grid), one module per family, each with a list `CASES`. `tests/registry.py` discovers the modules: adding a kernel
family adds a module here, not a line to a central list."""
