"""Mauna Loa weekly atmospheric CO2 (statsmodels' `co2` dataset): the embedded series.

2,284 weekly means (ppm), March 1958 – December 2001, shipped inside statsmodels, so the
time-series demo runs without any download. The 59 missing weeks are filled by linear
interpolation between their neighbours. Splits mirror ETT's 12/4/4 proportions: the first
60 / 20 / 20 % of the weeks (1370 / 457 / 457) are train / val / test, val and test
storing their 96-week lookback as well; yearly period of 52 weeks.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from attnzoo.data.series_builder import SeriesBuilder, chronological_rows
from attnzoo.data.spec import DatasetSpec, SeriesFacts

WEEKS = 2284
INPUT_LEN = 96
BOUNDS = {"train": (0, 1370), "val": (1370, 1827), "test": (1827, WEEKS)}
SPLIT_ROWS = chronological_rows(BOUNDS, INPUT_LEN)


def load_co2() -> np.ndarray:
    """The weekly series, gaps linearly interpolated: float32 `[2284, 1]`."""
    from statsmodels.datasets import co2

    values = co2.load().data["co2"].to_numpy(np.float64, copy=True)
    missing = np.isnan(values)
    weeks = np.arange(len(values))
    values[missing] = np.interp(weeks[missing], weeks[~missing], values[~missing])
    return values.astype(np.float32)[:, None]


class AttnzooCo2(SeriesBuilder):
    """Mauna Loa weekly CO2 (ppm), 1 variable, from statsmodels."""

    name = "attnzoo_co2"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Gaps interpolated; 60/20/20 chronological split."}
    CHANNELS = 1
    HOMEPAGE = "https://www.statsmodels.org/stable/datasets/generated/co2.html"

    def load_series(self) -> np.ndarray:
        return load_co2()

    def split_rows(self) -> dict[str, range]:
        return SPLIT_ROWS


SPECS = (
    DatasetSpec(
        name="co2",
        builder_cls=AttnzooCo2,
        splits={split: len(rows) for split, rows in SPLIT_ROWS.items()},
        facts=SeriesFacts(columns=("co2",), input_len=INPUT_LEN, period=52, frequency="1 week"),
    ),
)
