"""Gaze scanpath models: TPP-Gaze (neural point process) and OAT (region-token decoder)."""

from attnzoo.zoo.gaze import oat, tpp, weights  # noqa: F401
