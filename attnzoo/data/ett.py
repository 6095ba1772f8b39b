"""ETTh1 / ETTh2 (Zhou et al., Informer, AAAI 2021): hourly electricity-transformer data.

Raw files `ETTh1.csv`, `ETTh2.csv` (header `date,HUFL,HULL,MUFL,MULL,LUFL,LULL,OT`, 17,420
hourly rows) are read from `data_dir`, else `$ATTNZOO_DATA_DIR/ett`. All seven variables
are kept (the papers' multivariate "M" setting; the target `OT` is the last column).

Standard protocol (Informer's `Dataset_ETT_hour`, used by Pathformer and DLinear): the
first 12 / 4 / 4 months of 30 days (8640 / 2880 / 2880 rows) are train / val / test; val
and test also store the 96 rows before them (the lookback of their first window), so a
split of `r` rows yields `r - 96 - horizon + 1` windows with stride 1, exactly the
official loader's count. The z-score is fitted on the train rows only, in the pipeline.
"""

from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from attnzoo.data import paths
from attnzoo.data.series_builder import SeriesBuilder, chronological_rows
from attnzoo.data.spec import DatasetSpec, SeriesFacts

RAW_SUBDIR = "ett"
COLUMNS = ("HUFL", "HULL", "MUFL", "MULL", "LUFL", "LULL", "OT")
INPUT_LEN = 96
MONTH = 30 * 24  # rows (hours) per protocol month
BOUNDS = {
    "train": (0, 12 * MONTH),
    "val": (12 * MONTH, 16 * MONTH),
    "test": (16 * MONTH, 20 * MONTH),
}
SPLIT_ROWS = chronological_rows(BOUNDS, INPUT_LEN)
URL = "https://github.com/zhouhaoyi/ETDataset/tree/main/ETT-small"


def read_csv(path: Path) -> np.ndarray:
    """The seven variables of an ETT CSV as float32 `[rows, 7]`.

    Raises:
      DataNotFoundError: the file does not exist.
      DataFormatError: wrong header, a short or non-numeric row, or fewer rows than the
        protocol needs; the message names the file (and line).
    """
    if not path.is_file():
        raise paths.DataNotFoundError(
            f"{path}: file not found; put the official {path.name} ({URL}) there, set "
            f"${paths.DATA_DIR_ENV} to a folder holding ett/{path.name}, or pass "
            "--config.data.data_dir=DIR"
        )
    rows = []
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or tuple(h.strip() for h in header) != ("date", *COLUMNS):
            raise paths.DataFormatError(f"{path}: header {header} is not date,{','.join(COLUMNS)}")
        for line, row in enumerate(reader, start=2):
            if len(row) != 1 + len(COLUMNS):
                raise paths.DataFormatError(
                    f"{path}: line {line} has {len(row)} fields, expected {1 + len(COLUMNS)}"
                )
            try:
                values = [float(v) for v in row[1:]]
            except ValueError:
                raise paths.DataFormatError(
                    f"{path}: line {line} has a non-numeric value: {row}"
                ) from None
            if not all(map(math.isfinite, values)):
                raise paths.DataFormatError(f"{path}: line {line} has a NaN or Inf value: {row}")
            rows.append(values)
    needed = BOUNDS["test"][1]
    if len(rows) < needed:
        raise paths.DataFormatError(
            f"{path}: {len(rows)} data rows, the 12/4/4-month protocol needs {needed}"
        )
    return np.asarray(rows, np.float32)


class _EttHour(SeriesBuilder):
    FILE: str
    CHANNELS = len(COLUMNS)
    HOMEPAGE = "https://github.com/zhouhaoyi/ETDataset"
    CITATION = "Zhou et al. Informer. AAAI 2021."
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "12/4/4-month split; val/test store their 96-row lookback."}

    def __init__(self, *, raw_dir: str | os.PathLike[str] | None = None, **kwargs):
        """`raw_dir`: folder of the CSV (see module docstring); only read to prepare."""
        self._raw_dir = raw_dir
        super().__init__(**kwargs)

    def load_series(self) -> np.ndarray:
        folder = paths.raw_data_dir(RAW_SUBDIR, self._raw_dir)
        if folder is None:
            raise paths.DataNotFoundError(
                f"{self.FILE}: ${paths.DATA_DIR_ENV} is unset; point it at a folder holding "
                f"ett/{self.FILE} (e.g. ../shared/data) or pass --config.data.data_dir=DIR"
            )
        return read_csv(folder / self.FILE)

    def split_rows(self) -> dict[str, range]:
        return SPLIT_ROWS


class AttnzooEtth1(_EttHour):
    """ETTh1: hourly load and oil temperature of transformer 1, 7 variables."""

    name = "attnzoo_etth1"
    FILE = "ETTh1.csv"


class AttnzooEtth2(_EttHour):
    """ETTh2: hourly load and oil temperature of transformer 2, 7 variables."""

    name = "attnzoo_etth2"
    FILE = "ETTh2.csv"


FACTS = SeriesFacts(columns=COLUMNS, input_len=INPUT_LEN, period=24, frequency="1 hour")
SPECS = tuple(
    DatasetSpec(
        name=name,
        builder_cls=builder,
        splits={split: len(rows) for split, rows in SPLIT_ROWS.items()},
        facts=FACTS,
        raw_subdir=RAW_SUBDIR,
    )
    for name, builder in (("etth1", AttnzooEtth1), ("etth2", AttnzooEtth2))
)
