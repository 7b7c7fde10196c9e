"""The benchmarks, run from the repository root: `python -m benchmarks.build` (build times),
`python -m benchmarks.runtime` (dispatch overhead and bandwidth against raw wgpu-py and PyCUDA, the interpreter
against numpy), `python -m benchmarks.vortx_ops` (vortx's operations against a device copy, torch and numpy).
Each prints its figures as ratios against a baseline measured in the same run, with the device named."""
