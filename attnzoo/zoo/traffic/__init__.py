"""Traffic forecasting on sensor graphs: GMAN and the linear baseline."""

from attnzoo.zoo.traffic import gman, linear, weights  # noqa: F401
