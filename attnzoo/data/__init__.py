"""Datasets (TFDS builders prepared to array_record, TF-free) and grain input pipelines."""

from attnzoo.data.paths import DataChecksumError, DataNotFoundError
from attnzoo.data.pipeline import (
    iterator_state_from_bytes,
    iterator_state_to_bytes,
    make_dataset,
    num_examples,
)
from attnzoo.data.registry import dataset_info, list_datasets, prepare

__all__ = [
    "DataChecksumError",
    "DataNotFoundError",
    "dataset_info",
    "iterator_state_from_bytes",
    "iterator_state_to_bytes",
    "list_datasets",
    "make_dataset",
    "num_examples",
    "prepare",
]
