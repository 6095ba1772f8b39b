"""Decoder-only language models."""

from attnzoo.zoo.language import presets  # noqa: F401
