"""Decoder-only language models."""

from attnzoo.zoo.language import presets, weights  # noqa: F401
