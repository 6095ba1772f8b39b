"""METR-LA graph files (no series here): DCRNN's sensor graph and GMAN's published node2vec
spatial embedding, both over the same 207 sensors as Los-loop, in the same order.

Raw files in `data_dir`, else `$ATTNZOO_DATA_DIR/traffic/metr_la`:
  adj_mx.pkl: pickle (latin1) of `[sensor_ids, id → index, 207×207 Gaussian-kernel adjacency]`;
  SE_METR_node2vec.txt: first line `207 64`, then `index v1 … v64` per sensor.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from attnzoo.data import paths

RAW_SUBDIR = "traffic/metr_la"
NUM_SENSORS = 207


def _file(name: str, data_dir) -> Path:
    folder = paths.raw_data_dir(RAW_SUBDIR, data_dir)
    if folder is None:
        raise paths.DataNotFoundError(
            f"{name}: ${paths.DATA_DIR_ENV} is unset; point it at a folder holding "
            f"{RAW_SUBDIR}/ or pass data_dir"
        )
    path = folder / name
    if not path.is_file():
        raise paths.DataNotFoundError(f"{path}: file not found")
    return path


def load_graph(data_dir: str | os.PathLike[str] | None = None) -> tuple[list[str], np.ndarray]:
    """`(sensor ids, adjacency float32 [207, 207])` of DCRNN's `adj_mx.pkl`."""
    path = _file("adj_mx.pkl", data_dir)
    try:
        with open(path, "rb") as f:
            ids, _, adjacency = pickle.load(f, encoding="latin1")
    except (pickle.UnpicklingError, ValueError, EOFError, TypeError) as e:
        raise paths.DataFormatError(
            f"{path}: not DCRNN's [ids, id_to_index, adj] pickle ({e})"
        ) from None
    adjacency = np.asarray(adjacency, np.float32)
    if adjacency.shape != (NUM_SENSORS, NUM_SENSORS) or len(ids) != NUM_SENSORS:
        raise paths.DataFormatError(
            f"{path}: adjacency {adjacency.shape} / {len(ids)} ids, expected 207×207 / 207"
        )
    return [str(i) for i in ids], adjacency


def load_published_embedding(data_dir: str | os.PathLike[str] | None = None) -> np.ndarray:
    """GMAN's published node2vec embedding, float32 `[207, 64]` in sensor-index order."""
    path = _file("SE_METR_node2vec.txt", data_dir)
    lines = path.read_text().split("\n")
    try:
        n, dim = map(int, lines[0].split())
        rows = [list(map(float, line.split())) for line in lines[1:] if line.strip()]
    except ValueError:
        raise paths.DataFormatError(f"{path}: not a word2vec text file ('N D' then rows)") from None
    if n != NUM_SENSORS or len(rows) != n or any(len(r) != dim + 1 for r in rows):
        raise paths.DataFormatError(f"{path}: expected {NUM_SENSORS} rows of index + {dim} values")
    embedding = np.zeros((n, dim), np.float32)
    for row in rows:
        embedding[int(row[0])] = row[1:]
    return embedding
