"""Vision models."""

from attnzoo.zoo.vision import vit  # noqa: F401
