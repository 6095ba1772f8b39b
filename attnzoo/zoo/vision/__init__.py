"""Vision models."""

from attnzoo.zoo.vision import biformer, vit  # noqa: F401
