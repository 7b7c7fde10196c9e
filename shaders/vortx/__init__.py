"""vortx's kernels: elementwise operations over strided views, reductions and matrix products."""
