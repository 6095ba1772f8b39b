"""Diffusion models: DiT and Scale-DiT."""

from attnzoo.zoo.diffusion import dit  # noqa: F401
