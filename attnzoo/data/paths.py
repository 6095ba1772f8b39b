"""Where data lives (raw files, prepared TFDS files, downloads), a file lock, data errors.

Resolution order (argument > environment > default):

- prepared TFDS files: `tfds_dir` argument, else `$ATTNZOO_TFDS_DIR`, else
  `<cache>/tensorflow_datasets`;
- raw benchmark files: `data_dir` argument, else `$ATTNZOO_DATA_DIR/<subdir>` where
  `$ATTNZOO_DATA_DIR` is a folder laid out like `../shared/data` (e.g. `images/fashion_mnist`);
- downloads: `<cache>/downloads/<dataset>`;

with `<cache>` = `$ATTNZOO_CACHE`, else `~/.cache/attnzoo`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

DATA_DIR_ENV = "ATTNZOO_DATA_DIR"
TFDS_DIR_ENV = "ATTNZOO_TFDS_DIR"
CACHE_DIR_ENV = "ATTNZOO_CACHE"


class DataNotFoundError(FileNotFoundError):
    """Raw dataset files are absent and could not be downloaded (one-line message)."""


class DataFormatError(ValueError):
    """A raw dataset file is malformed (one-line message naming the file and the problem)."""


class DataChecksumError(ValueError):
    """A raw dataset file does not have the official sha256 (one-line message)."""


def _expand(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.expandvars(os.fspath(path))).expanduser().absolute()


def cache_root() -> Path:
    """`$ATTNZOO_CACHE`, else `~/.cache/attnzoo`."""
    return _expand(os.environ.get(CACHE_DIR_ENV) or "~/.cache/attnzoo")


def tfds_dir(override: str | os.PathLike[str] | None = None) -> Path:
    """The TFDS data dir holding prepared (array_record) datasets."""
    if override:
        return _expand(override)
    if env := os.environ.get(TFDS_DIR_ENV):
        return _expand(env)
    return cache_root() / "tensorflow_datasets"


def raw_data_dir(subdir: str, override: str | os.PathLike[str] | None = None) -> Path | None:
    """The folder holding a dataset's raw files, or None when neither source is set.

    `override` may point at the dataset's folder itself or at a data root laid out like
    `../shared/data` (then `<override>/<subdir>` is used when it exists).
    """
    if override:
        path = _expand(override)
        nested = path / subdir
        return nested if nested.is_dir() else path
    if env := os.environ.get(DATA_DIR_ENV):
        return _expand(env) / subdir
    return None


def download_dir(name: str) -> Path:
    """Where files fetched from the official source are kept."""
    return cache_root() / "downloads" / name


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Exclusive inter-process lock (`fcntl.flock`) held for the duration of the block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
