"""Datasets (TFDS builders prepared to array_record, TF-free) and grain input pipelines."""

from attnzoo.data.paths import DataChecksumError, DataFormatError, DataNotFoundError
from attnzoo.data.pipeline import (
    iterator_state_from_bytes,
    iterator_state_to_bytes,
    make_dataset,
    num_examples,
)
from attnzoo.data.registry import dataset_info, list_datasets, prepare
from attnzoo.data.windows import fit_scaler, make_window_dataset, num_windows

__all__ = [
    "DataChecksumError",
    "DataFormatError",
    "DataNotFoundError",
    "dataset_info",
    "fit_scaler",
    "iterator_state_from_bytes",
    "iterator_state_to_bytes",
    "list_datasets",
    "make_dataset",
    "make_window_dataset",
    "num_examples",
    "num_windows",
    "prepare",
]
