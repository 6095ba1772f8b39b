"""Diffusion models: DiT and Scale-DiT."""

from attnzoo.zoo.diffusion import dit, scale_dit, weights  # noqa: F401
