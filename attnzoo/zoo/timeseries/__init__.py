"""Time-series forecasting models."""

from attnzoo.zoo.timeseries import dlinear, pathformer, weights  # noqa: F401
