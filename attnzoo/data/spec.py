"""`DatasetSpec`: the static facts of a registered dataset, whatever its kind.

A data module (`attnzoo/data/<dataset>.py`) declares `SPECS = (DatasetSpec(...), ...)`; the
registry discovers them. The kind-specific facts live in `facts`: `ImageFacts` for image
classification, `SeriesFacts` for multivariate time series, `GraphSeriesFacts` for sensor
series on a graph, `ScanpathFacts` for eye-tracking scanpaths, `TextFacts` for text (other
kinds add their own).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import tensorflow_datasets as tfds


@dataclasses.dataclass(frozen=True)
class ImageFacts:
    """Image classification.

    Attributes:
      num_classes: number of labels.
      image_shape: (H, W, C).
      pixel_max: stored pixel value that maps to 1.0.
      mean, std: statistics of the train pixels after dividing by `pixel_max`.
      augment_pad: training augmentation: zero-pad by this many pixels, then crop back to
        (H, W) at a random offset (random translation by up to ±pad).
      augment_flip: training augmentation: flip left-right with probability 1/2.
    """

    num_classes: int
    image_shape: tuple[int, int, int]
    pixel_max: float
    mean: float
    std: float
    augment_pad: int = 0
    augment_flip: bool = False


@dataclasses.dataclass(frozen=True)
class SeriesFacts:
    """Multivariate time series stored one record per time step (see `series_builder`).

    Attributes:
      columns: names of the `channels` variables, in storage order.
      input_len: lookback length of the forecasting protocol; every split but the first
        starts with the `input_len` rows that precede it, so its first window forecasts
        its first own row (as the official ETT loaders do).
      period: seasonal period in steps (24 for hourly data: daily), for seasonal naive.
      frequency: sampling interval in words ("1 hour", "1 week").
    """

    columns: tuple[str, ...]
    input_len: int
    period: int
    frequency: str

    @property
    def channels(self) -> int:
        return len(self.columns)


@dataclasses.dataclass(frozen=True)
class ScanpathFacts:
    """Free-viewing scanpaths: one record per image with every viewer's fixations.

    Attributes:
      image_size: side S of the stored square images (resized, aspect kept, padded).
      viewers: scanpath slots per image (empty slots have length 0).
      max_len: fixation slots per scanpath (padded; a mask marks the real ones).
      viewing_ms: how long each image was shown.
    """

    image_size: int
    viewers: int
    max_len: int
    viewing_ms: float


@dataclasses.dataclass(frozen=True)
class TextFacts:
    """UTF-8 text stored as fixed-size byte chunks (see `text_builder`).

    Attributes:
      split_bytes: split name → bytes of its text (the split's records hold exactly these).
      chunk_bytes: bytes per stored record (the last record of a split is zero-padded).
    """

    split_bytes: Mapping[str, int]
    chunk_bytes: int


@dataclasses.dataclass(frozen=True)
class GraphSeriesFacts(SeriesFacts):
    """A series with one channel per graph node (traffic sensors), zeros = missing.

    Attributes (besides `SeriesFacts`; `columns` are the node ids):
      adjacency_file: the `[N, N]` weighted adjacency CSV, in `raw_subdir`.
      horizon: forecast length of the protocol (steps).
      first_day_of_week: weekday of row 0 (Monday = 0); row 0 starts at midnight, so row
        `i` is at time-of-day `i % period` (`period`: steps per day).
    """

    adjacency_file: str = ""
    horizon: int = 0
    first_day_of_week: int = 0


KINDS = {
    ImageFacts: "image",
    SeriesFacts: "series",
    GraphSeriesFacts: "graph_series",
    ScanpathFacts: "scanpath",
    TextFacts: "text",
}


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset.

    Attributes:
      name: registry name.
      builder_cls: TFDS builder writing array_record files (features depend on the kind).
      splits: split name → number of stored records.
      facts: `ImageFacts`, `SeriesFacts`, `GraphSeriesFacts`, `ScanpathFacts` or `TextFacts`.
      raw_subdir: folder of the raw files under `$ATTNZOO_DATA_DIR` (None: embedded data).
    """

    name: str
    builder_cls: type[tfds.core.GeneratorBasedBuilder]
    splits: Mapping[str, int]
    facts: ImageFacts | SeriesFacts | GraphSeriesFacts | ScanpathFacts | TextFacts
    raw_subdir: str | None = None

    @property
    def kind(self) -> str:
        """The facts' kind: "image", "series", "graph_series", "scanpath" or "text"."""
        return KINDS[type(self.facts)]
