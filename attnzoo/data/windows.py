"""grain pipelines of forecasting windows over a prepared series dataset.

    split rows (raw) → z-score with the train split's mean/std → windows with stride 1
    → [slice] → shuffle(seed) → repeat → shard [process_index::process_count] → batch

Window `i` of a split of `r` rows reads rows `[i, i + input_len)` and forecasts rows
`[i + input_len, i + input_len + horizon)`; there are `r - input_len - horizon + 1`.
Batches are dicts of numpy arrays:
  inputs: float32 [b, input_len, C]; targets: float32 [b, horizon, C] (both scaled);
  index: int32 [b], the window's number in its split.
Like `pipeline.make_dataset`, a batch is a pure function of (seed, position), so the
iterator state is `{"next_index": int}`.
"""

from __future__ import annotations

import functools

import grain
import numpy as np

from attnzoo.data import registry
from attnzoo.data.pipeline import RecordSource, parse_split


def split_values(name: str, split: str, tfds_dir: str | None, data_dir: str | None) -> np.ndarray:
    builder = registry.prepare(name, tfds_dir=tfds_dir, data_dir=data_dir)
    return np.stack([row["values"] for row in RecordSource(builder, split).read_all()])


@functools.lru_cache(maxsize=16)
def fit_scaler(
    name: str, tfds_dir: str | None = None, data_dir: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """`(mean, std)`, float32 `[C]`, of the train split only (population std, as
    scikit-learn's `StandardScaler`; a constant channel gets std 1)."""
    train = split_values(name, "train", tfds_dir, data_dir).astype(np.float64)
    std = train.std(0)
    return train.mean(0).astype(np.float32), np.where(std > 0, std, 1.0).astype(np.float32)


def num_windows(name: str, split: str, horizon: int) -> int:
    """Windows of `name[split]` at this horizon (before any `[start:stop]` slice)."""
    spec = _series_spec(name)
    split, rows = parse_split(split)
    registry.check_split(spec, split)
    count = spec.splits[split] - spec.facts.input_len - horizon + 1
    if count <= 0:
        raise ValueError(
            f"{name}[{split}] has {spec.splits[split]} rows: too few for input "
            f"{spec.facts.input_len} + horizon {horizon}"
        )
    return len(range(count)[rows])


class WindowSource:
    """Random-access windows of a scaled `[rows, C]` series (see module docstring)."""

    def __init__(self, values: np.ndarray, input_len: int, horizon: int):
        self.values, self.input_len, self.horizon = values, input_len, horizon

    def __len__(self) -> int:
        return len(self.values) - self.input_len - self.horizon + 1

    def __getitem__(self, index) -> dict[str, np.ndarray]:
        index = int(index)
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range [0, {len(self)})")
        end = index + self.input_len
        return {
            "inputs": self.values[index:end],
            "targets": self.values[end : end + self.horizon],
            "index": np.int32(index),
        }


def _series_spec(name: str):
    spec = registry.get_spec(name)
    if spec.kind not in ("series", "graph_series"):
        raise ValueError(f"{name} is a {spec.kind} dataset, not a time series")
    return spec


def make_window_dataset(
    name: str,
    split: str,
    *,
    horizon: int,
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
    """Batched windows of `name[split]` for this process (arguments as
    `pipeline.make_dataset`; `horizon`: forecast length; the input length is the dataset's
    `input_len`)."""
    spec = _series_spec(name)
    split, rows = check_request(name, split, horizon, batch_size, process_index, process_count)
    mean, std = fit_scaler(name, tfds_dir, data_dir)
    values = (split_values(name, split, tfds_dir, data_dir) - mean) / std
    source = WindowSource(values.astype(np.float32), spec.facts.input_len, horizon)
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


def check_request(name, split, horizon, batch_size, process_index, process_count):
    """Validates a window request (arguments as `make_window_dataset`); returns
    `(split name, slice of its windows)`."""
    num_windows(name, split, horizon)  # validates split and horizon
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} not in [0, {process_count})")
    if batch_size <= 0 or batch_size % process_count:
        raise ValueError(
            f"batch_size={batch_size} must be a positive multiple of process_count={process_count}"
        )
    return parse_split(split)


def batch_windows(
    source,
    rows: slice,
    batch_size,
    shuffle,
    seed,
    repeat,
    process_index,
    process_count,
    drop_remainder,
) -> grain.IterDataset:
    """A random-access window source → the batched, sharded grain dataset of this process
    (arguments as `make_window_dataset`)."""
    ds = grain.MapDataset.source(source)[rows].seed(seed)
    if shuffle:
        ds = ds.shuffle()
    if repeat:
        ds = ds.repeat()
    ds = ds[process_index::process_count]
    ds = ds.batch(batch_size // process_count, drop_remainder=drop_remainder)
    return ds.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
