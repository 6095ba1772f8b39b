"""Dataset registry: name → TFDS builder and static facts; preparation under a file lock."""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import logging
import os
from collections.abc import Mapping

import tensorflow_datasets as tfds

from attnzoo.data import digits, fashion_mnist, paths


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Static facts about an image-classification dataset.

    Attributes:
      name: registry name.
      builder_cls: TFDS builder writing array_record files with features
        `image` (uint8 [H, W, C]), `label` (int64 []), `index` (int64 []).
      num_classes: number of labels.
      image_shape: (H, W, C).
      splits: split name → number of examples.
      pixel_max: stored pixel value that maps to 1.0.
      mean, std: statistics of the train pixels after dividing by `pixel_max`.
      augment_pad: training augmentation: zero-pad by this many pixels, then crop back to
        (H, W) at a random offset (random translation by up to ±pad).
      augment_flip: training augmentation: flip left-right with probability 1/2.
      raw_subdir: folder of the raw files under `$ATTNZOO_DATA_DIR` (None: embedded data).
    """

    name: str
    builder_cls: type[tfds.core.GeneratorBasedBuilder]
    num_classes: int
    image_shape: tuple[int, int, int]
    splits: Mapping[str, int]
    pixel_max: float
    mean: float
    std: float
    augment_pad: int = 0
    augment_flip: bool = False
    raw_subdir: str | None = None


_REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        DatasetSpec(
            name=digits.NAME,
            builder_cls=digits.AttnzooDigits,
            num_classes=digits.NUM_CLASSES,
            image_shape=digits.IMAGE_SHAPE,
            splits=digits.SPLITS,
            pixel_max=digits.PIXEL_MAX,
            mean=digits.MEAN,
            std=digits.STD,
            augment_pad=1,  # ±1 px translation; no flips (digits are not mirror-symmetric).
        ),
        DatasetSpec(
            name=fashion_mnist.NAME,
            builder_cls=fashion_mnist.AttnzooFashionMnist,
            num_classes=fashion_mnist.NUM_CLASSES,
            image_shape=fashion_mnist.IMAGE_SHAPE,
            splits=fashion_mnist.SPLITS,
            pixel_max=fashion_mnist.PIXEL_MAX,
            mean=fashion_mnist.MEAN,
            std=fashion_mnist.STD,
            augment_pad=2,  # Random 28×28 crop of the image zero-padded to 32×32.
            augment_flip=True,
            raw_subdir=fashion_mnist.RAW_SUBDIR,
        ),
    )
}


def list_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    return sorted(_REGISTRY)


def get_spec(name: str) -> DatasetSpec:
    """The spec of `name`; ValueError naming the known datasets and the closest match."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1)
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
    """`dict(num_classes, image_shape=(H, W, C), splits={split: size}, mean, std)`."""
    spec = get_spec(name)
    return dict(
        num_classes=spec.num_classes,
        image_shape=tuple(spec.image_shape),
        splits=dict(spec.splits),
        mean=spec.mean,
        std=spec.std,
    )


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
