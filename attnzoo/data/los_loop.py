"""Los-loop (T-GCN's copy of 207 METR-LA loop detectors): traffic speed on a sensor graph.

Raw files in `data_dir`, else `$ATTNZOO_DATA_DIR/traffic/los_loop`:
  los_speed.csv: header = 207 sensor ids, then 2,016 rows of speeds (mph), one per
    5-minute step (7 days from Thursday 2012-03-01 00:00); a 0 is a missing reading.
  los_adj.csv: 207×207 weighted adjacency (no header), same sensor order.

Protocol (GMAN's `METR/utils.py` loadData): chronological 70 / 10 / 20 % split of the
steps (train = round(0.7 T), test = round(0.2 T), val = the rest), windows of 12 steps in
→ 12 out taken inside each split (no window crosses a split boundary), z-score with one
mean/std over every training reading (the official scalar scaler), fitted in the pipeline.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from attnzoo.data import paths
from attnzoo.data.series_builder import SeriesBuilder
from attnzoo.data.spec import DatasetSpec, GraphSeriesFacts

RAW_SUBDIR = "traffic/los_loop"
SPEED_FILE = "los_speed.csv"
ADJACENCY_FILE = "los_adj.csv"
NUM_SENSORS = 207
NUM_STEPS = 2016
STEPS_PER_DAY = 288  # 5-minute steps
THURSDAY = 3  # 2012-03-01, Monday = 0 (pandas' dayofweek, as GMAN's TE)
TRAIN_STEPS = round(0.7 * NUM_STEPS)
TEST_STEPS = round(0.2 * NUM_STEPS)
SPLIT_ROWS = {
    "train": range(0, TRAIN_STEPS),
    "val": range(TRAIN_STEPS, NUM_STEPS - TEST_STEPS),
    "test": range(NUM_STEPS - TEST_STEPS, NUM_STEPS),
}
URL = "https://github.com/lehaifeng/T-GCN/tree/master/data"


def raw_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The folder of the raw files (DataNotFoundError when no source is set)."""
    folder = paths.raw_data_dir(RAW_SUBDIR, override)
    if folder is None:
        raise paths.DataNotFoundError(
            f"{SPEED_FILE}: ${paths.DATA_DIR_ENV} is unset; point it at a folder holding "
            f"{RAW_SUBDIR}/ (e.g. ../shared/data) or pass --config.data.data_dir=DIR"
        )
    return folder


def _numeric_rows(path: Path, width: int, skip_header: bool) -> tuple[list[str] | None, list]:
    if not path.is_file():
        raise paths.DataNotFoundError(
            f"{path}: file not found; put the T-GCN {path.name} ({URL}) there, set "
            f"${paths.DATA_DIR_ENV} to a folder holding {RAW_SUBDIR}/{path.name}, or pass "
            "--config.data.data_dir=DIR"
        )
    rows = []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None) if skip_header else None
        if skip_header and (header is None or len(header) != width):
            raise paths.DataFormatError(
                f"{path}: header has {0 if header is None else len(header)} sensor ids, "
                f"expected {width}"
            )
        for line, row in enumerate(reader, start=2 if skip_header else 1):
            if len(row) != width:
                raise paths.DataFormatError(
                    f"{path}: line {line} has {len(row)} fields, expected {width}"
                )
            try:
                values = [float(v) for v in row]
            except ValueError:
                raise paths.DataFormatError(
                    f"{path}: line {line} has a non-numeric value"
                ) from None
            if not all(map(math.isfinite, values)):
                raise paths.DataFormatError(f"{path}: line {line} has a NaN or Inf value")
            rows.append(values)
    return header, rows


def read_speeds(path: Path) -> tuple[tuple[str, ...], np.ndarray]:
    """`(sensor ids, speeds float32 [2016, 207])` of `los_speed.csv` (one-line errors)."""
    header, rows = _numeric_rows(path, NUM_SENSORS, skip_header=True)
    if len(rows) != NUM_STEPS:
        raise paths.DataFormatError(f"{path}: {len(rows)} data rows, expected {NUM_STEPS}")
    speeds = np.asarray(rows, np.float32)
    if (speeds < 0).any():
        raise paths.DataFormatError(f"{path}: negative speed at row {np.argwhere(speeds < 0)[0]}")
    return tuple(h.strip() for h in header), speeds


def read_adjacency(path: Path) -> np.ndarray:
    """The weighted adjacency float32 `[207, 207]` of `los_adj.csv` (one-line errors)."""
    _, rows = _numeric_rows(path, NUM_SENSORS, skip_header=False)
    if len(rows) != NUM_SENSORS:
        raise paths.DataFormatError(f"{path}: {len(rows)} rows, expected {NUM_SENSORS}")
    adjacency = np.asarray(rows, np.float32)
    if (adjacency < 0).any():
        raise paths.DataFormatError(f"{path}: negative edge weight")
    return adjacency


def load_adjacency(data_dir: str | os.PathLike[str] | None = None) -> np.ndarray:
    """Los-loop's adjacency from `data_dir` or `$ATTNZOO_DATA_DIR` (see module docstring)."""
    return read_adjacency(raw_dir(data_dir) / ADJACENCY_FILE)


class AttnzooLosLoop(SeriesBuilder):
    """Los-loop: 5-minute speeds (mph) of 207 Los Angeles loop detectors, 7 days."""

    name = "attnzoo_los_loop"
    CHANNELS = NUM_SENSORS
    HOMEPAGE = URL
    CITATION = "Zhao et al. T-GCN. IEEE T-ITS 2019; Zheng et al. GMAN. AAAI 2020."
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "GMAN's 70/10/20 chronological split, disjoint splits."}

    def __init__(self, *, raw_dir: str | os.PathLike[str] | None = None, **kwargs):
        """`raw_dir`: folder of the CSVs (see module docstring); only read to prepare."""
        self._raw_dir = raw_dir
        super().__init__(**kwargs)

    def load_series(self) -> np.ndarray:
        return read_speeds(raw_dir(self._raw_dir) / SPEED_FILE)[1]

    def split_rows(self) -> dict[str, range]:
        return SPLIT_ROWS


SENSOR_IDS = tuple(f"s{i}" for i in range(NUM_SENSORS))  # column names; the CSV has the ids
FACTS = GraphSeriesFacts(
    columns=SENSOR_IDS,
    input_len=12,
    period=STEPS_PER_DAY,
    frequency="5 minutes",
    adjacency_file=ADJACENCY_FILE,
    horizon=12,
    first_day_of_week=THURSDAY,
)
SPECS = (
    DatasetSpec(
        name="los_loop",
        builder_cls=AttnzooLosLoop,
        splits={split: len(rows) for split, rows in SPLIT_ROWS.items()},
        facts=FACTS,
        raw_subdir=RAW_SUBDIR,
    ),
)
