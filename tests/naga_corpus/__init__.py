"""Kernels in the shapes that the SPIR-V optimizer turns into what naga (wgpu-native 29) mishandles: subgroup
operations on values built in run-time loops and branches, loops of every kind, shared-memory reductions with
barriers, in f32, f16, i32 and u32. tests/test_naga.py builds them through the real pipeline (front end, GLSL,
glslang, optimizer) and loads each through wgpu in a child process. A shader package, read by the front end only."""
