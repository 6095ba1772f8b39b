"""TF-free TFDS builder of multivariate time series, one record per time step.

Records `{values: float32 [C] (raw, unscaled), index: int64 [] (row in the source)}` in
time order. A subclass gives the whole series (`load_series`) and the row range of every
split (`split_rows`); splits after the first start `input_len` rows early (the lookback of
their first window), so overlapping rows are stored once per split that needs them.
Scaling is not stored: the pipeline fits it on the train split (`windows.fit_scaler`).
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds


class SeriesBuilder(tfds.core.GeneratorBasedBuilder):
    """Subclasses set `CHANNELS`, `HOMEPAGE` (and `CITATION`), `load_series`, `split_rows`."""

    CHANNELS: int
    HOMEPAGE: str
    CITATION: str = ""
    url_infos = None  # No download-manager checksums (see ImageClassificationBuilder).

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "values": tfds.features.Tensor(
                        shape=(self.CHANNELS,), dtype=np.float32, encoding="bytes"
                    ),
                    "index": tfds.features.Tensor(shape=(), dtype=np.int64),
                }
            ),
            homepage=self.HOMEPAGE,
            citation=self.CITATION,
            disable_shuffling=True,
        )

    def load_series(self) -> np.ndarray:
        """The whole series, float32 `[T, CHANNELS]`."""
        raise NotImplementedError

    def split_rows(self) -> dict[str, range]:
        """Split name → the source rows it stores."""
        raise NotImplementedError

    def _split_generators(self, dl_manager):
        del dl_manager  # The subclass finds its data itself.
        series = self.load_series()
        return {
            split: self._generate_examples(series, rows)
            for split, rows in self.split_rows().items()
        }

    def _generate_examples(self, series, rows):
        for i in rows:
            yield i, {"values": series[i], "index": i}


def chronological_rows(bounds: dict[str, tuple[int, int]], input_len: int) -> dict[str, range]:
    """`{split: (start, stop)}` of disjoint consecutive parts → stored rows, each split but
    the one starting at row 0 extended `input_len` rows back (its first window's lookback)."""
    return {
        split: range(start - input_len if start else 0, stop)
        for split, (start, stop) in bounds.items()
    }
