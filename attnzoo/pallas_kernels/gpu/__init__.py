"""Pallas Triton kernels (GPU)."""
