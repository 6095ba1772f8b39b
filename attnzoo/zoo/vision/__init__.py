"""Vision models."""

from attnzoo.zoo.vision import biformer, vit, weights  # noqa: F401
