"""Kernels over quantized weights (int8 values packed in u32 words), for measuring the language's vector loads and
4 x 8-bit dot products against the scalar way of writing the same kernel (`python -m benchmarks.quant_matvec`)."""
