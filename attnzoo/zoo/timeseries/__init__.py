"""Time-series forecasting models."""

from attnzoo.zoo.timeseries import dlinear, pathformer  # noqa: F401
