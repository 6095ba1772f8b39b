"""Dataset registry: name → `DatasetSpec` (discovered from the data modules); preparation
under a file lock."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import importlib
import logging
import os
import pkgutil

import tensorflow_datasets as tfds

from attnzoo.data import paths
from attnzoo.data.spec import DatasetSpec


@functools.cache
def _registry() -> dict[str, DatasetSpec]:
    """Every `SPECS` entry of the modules of `attnzoo.data` (adding a dataset = one module),
    discovered on first use."""
    specs = {}
    for info in pkgutil.iter_modules([os.path.dirname(__file__)]):
        module = importlib.import_module(f"attnzoo.data.{info.name}")
        for spec in getattr(module, "SPECS", ()):
            if spec.name in specs:
                raise ValueError(f"dataset {spec.name!r} is registered twice")
            specs[spec.name] = spec
    return specs


def list_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    return sorted(_registry())


def get_spec(name: str) -> DatasetSpec:
    """The spec of `name`; ValueError naming the known datasets and the closest match."""
    try:
        return _registry()[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(_registry()), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(
            f"Unknown dataset {name!r}; known: {', '.join(list_datasets())}.{hint}"
        ) from None


def check_split(spec: DatasetSpec, split: str) -> None:
    if split not in spec.splits:
        raise ValueError(
            f"Unknown split {split!r} of dataset {spec.name!r}; known: {', '.join(spec.splits)}"
        )


def dataset_info(name: str) -> dict:
    """`dict(kind, splits={split: records}, **facts)`: e.g. `num_classes, image_shape,
    mean, std` of an image dataset, `columns, channels, input_len, period` of a series."""
    spec = get_spec(name)
    facts = dataclasses.asdict(spec.facts)
    if spec.kind in ("series", "graph_series"):
        facts["channels"] = spec.facts.channels
    return dict(kind=spec.kind, splits=dict(spec.splits), **facts)


@contextlib.contextmanager
def _quiet_absl():
    """Hides TFDS's warnings about the empty folder of a dataset not prepared yet."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def prepare(
    name: str,
    *,
    tfds_dir: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
) -> tfds.core.DatasetBuilder:
    """The prepared TFDS builder of `name`; prepares it first if needed (once, locked).

    `tfds_dir`: TFDS data dir (see `paths.tfds_dir`); `data_dir`: raw files, only read
    while preparing datasets that need them. Concurrent callers (e.g. the processes of a
    multi-process run) serialise on `fcntl.flock` of `<tfds_dir>/<builder>.lock`; the
    first prepares, the others then find the prepared files.
    """
    spec = get_spec(name)
    root = paths.tfds_dir(tfds_dir)
    kwargs = {"raw_dir": data_dir} if spec.raw_subdir is not None else {}

    def make() -> tfds.core.DatasetBuilder:
        return spec.builder_cls(data_dir=os.fspath(root), file_format="array_record", **kwargs)

    with _quiet_absl():
        builder = make()
        if builder.is_prepared():
            return builder
    with paths.file_lock(root / f"{builder.name}.lock"), _quiet_absl():
        builder = make()  # Another process may have prepared it while we waited.
        if not builder.is_prepared():
            print(f"preparing dataset {name} in {root} (once)", flush=True)
            tfds.disable_progress_bar()
            builder.download_and_prepare()
    return builder
