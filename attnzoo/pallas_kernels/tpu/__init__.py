"""Pallas Mosaic kernels (TPU)."""
