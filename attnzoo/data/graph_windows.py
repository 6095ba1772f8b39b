"""grain pipelines of traffic windows over a prepared graph-series dataset (GMAN's inputs).

    split rows (raw) → windows with stride 1 inside the split → [slice] → shuffle(seed)
    → repeat → shard [process_index::process_count] → batch          (`windows.batch_windows`)

Window `i` of a split reads its rows `[i, i + P)` and forecasts rows `[i + P, i + P + Q)`
(P = `input_len`, Q = `horizon`). Batches are dicts of numpy arrays:
  inputs: float32 [b, P, N], z-scored with ONE mean/std of every training reading
    (GMAN's scalar scaler; `fit_scalar_scaler`);
  targets: float32 [b, Q, N], raw (original units; 0 = missing reading);
  time: int32 [b, P + Q, 2], (day-of-week, time-of-day step) of every input and output step;
  index: int32 [b], the window's number in its split.
"""

from __future__ import annotations

import functools

import grain
import numpy as np

from attnzoo.data import registry
from attnzoo.data.pipeline import RecordSource
from attnzoo.data.windows import batch_windows, check_request, split_values


def _graph_spec(name: str):
    spec = registry.get_spec(name)
    if spec.kind != "graph_series":
        raise ValueError(f"{name} is a {spec.kind} dataset, not a sensor-graph series")
    return spec


@functools.lru_cache(maxsize=8)
def fit_scalar_scaler(
    name: str, tfds_dir: str | None = None, data_dir: str | None = None
) -> tuple[float, float]:
    """`(mean, std)` of every reading of the train split (zeros included, as GMAN)."""
    _graph_spec(name)
    train = split_values(name, "train", tfds_dir, data_dir).astype(np.float64)
    return float(train.mean()), float(train.std()) or 1.0


def time_features(rows: np.ndarray, steps_per_day: int, first_day_of_week: int) -> np.ndarray:
    """Source rows `[...]` → int32 `[..., 2]`: (day-of-week, Monday = 0; time-of-day step)."""
    rows = np.asarray(rows, np.int64)
    day_of_week = (first_day_of_week + rows // steps_per_day) % 7
    return np.stack([day_of_week, rows % steps_per_day], -1).astype(np.int32)


class GraphWindowSource:
    """Random-access traffic windows of one split (see module docstring)."""

    def __init__(self, raw, scaled, time, input_len: int, horizon: int):
        self.raw, self.scaled, self.time = raw, scaled, time
        self.input_len, self.horizon = input_len, horizon

    def __len__(self) -> int:
        return len(self.raw) - self.input_len - self.horizon + 1

    def __getitem__(self, index) -> dict[str, np.ndarray]:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range [0, {len(self)})")
        mid, end = index + self.input_len, index + self.input_len + self.horizon
        return {
            "inputs": self.scaled[index:mid],
            "targets": self.raw[mid:end],
            "time": self.time[index:end],
            "index": np.int32(index),
        }


def window_source(
    name: str, split: str, tfds_dir: str | None = None, data_dir: str | None = None
) -> GraphWindowSource:
    """Every window of `name[split]` (a plain split name), unbatched."""
    facts = _graph_spec(name).facts
    builder = registry.prepare(name, tfds_dir=tfds_dir, data_dir=data_dir)
    records = RecordSource(builder, split).read_all()
    raw = np.stack([r["values"] for r in records]).astype(np.float32)
    rows = np.array([r["index"] for r in records])
    mean, std = fit_scalar_scaler(name, tfds_dir, data_dir)
    time = time_features(rows, facts.period, facts.first_day_of_week)
    scaled = ((raw - mean) / std).astype(np.float32)
    return GraphWindowSource(raw, scaled, time, facts.input_len, facts.horizon)


def make_graph_window_dataset(
    name: str,
    split: str,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    repeat: bool,
    data_dir: str | None = None,
    tfds_dir: str | None = None,
    process_index: int = 0,
    process_count: int = 1,
    drop_remainder: bool = True,
) -> grain.IterDataset:
    """Batched traffic windows of `name[split]` for this process (arguments as
    `windows.make_window_dataset`; the horizon is the dataset's protocol horizon)."""
    facts = _graph_spec(name).facts
    split, rows = check_request(
        name, split, facts.horizon, batch_size, process_index, process_count
    )
    source = window_source(name, split, tfds_dir, data_dir)
    return batch_windows(
        source,
        rows,
        batch_size,
        shuffle,
        seed,
        repeat,
        process_index,
        process_count,
        drop_remainder,
    )
