"""scikit-learn's handwritten digits (UCI optdigits test set) as a TF-free TFDS builder.

`sklearn.datasets.load_digits()`: 1797 grey images of 8×8 pixels, each pixel a count in
0..16 (number of "on" pixels of a 4×4 block of the original 32×32 bitmap), 10 classes. The
data ships inside scikit-learn, so this is the embedded default dataset (no files needed).

Stored features (one record per image, in `load_digits` order within a split):
  image: uint8 [8, 8, 1], the raw 0..16 counts (not rescaled; the pipeline divides by 16);
  label: int64 [], 0..9;
  index: int64 [], row of the image in `load_digits()`.

Splits: there is no official split. We use a fixed stratified split,
`sklearn.model_selection.train_test_split(arange(1797), test_size=360, stratify=target,
random_state=0)`: train 1437 / test 360 (≈80/20, class proportions kept).
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from attnzoo.data.image_builder import ImageClassificationBuilder
from attnzoo.data.spec import DatasetSpec, ImageFacts

NAME = "digits"
NUM_CLASSES = 10
IMAGE_SHAPE = (8, 8, 1)
SPLITS = {"train": 1437, "test": 360}
PIXEL_MAX = 16.0
# Mean/std of train pixels after dividing by PIXEL_MAX (tests recompute them).
MEAN = 0.3054
STD = 0.3761
SPLIT_SEED = 0


def split_indices() -> dict[str, np.ndarray]:
    """Sorted `load_digits` row indices of each split (the fixed, seeded, stratified split)."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    target = load_digits().target
    train, test = train_test_split(
        np.arange(len(target)),
        test_size=SPLITS["test"],
        stratify=target,
        random_state=SPLIT_SEED,
    )
    return {"train": np.sort(train), "test": np.sort(test)}


class AttnzooDigits(ImageClassificationBuilder):
    """scikit-learn digits, 8×8×1 uint8 (0..16), stratified 1437/360 split."""

    name = "attnzoo_digits"
    VERSION = tfds.core.Version("1.0.0")
    IMAGE_SHAPE = IMAGE_SHAPE
    HOMEPAGE = "https://archive.ics.uci.edu/dataset/80"
    RELEASE_NOTES = {"1.0.0": "Stratified 1437/360 split with random_state=0."}

    def _split_generators(self, dl_manager):
        del dl_manager  # The data ships with scikit-learn.
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = digits.images.astype(np.uint8)[..., None]  # Exact: values are 0..16.
        labels = digits.target.astype(np.int64)
        return {
            split: self._generate_examples(images, labels, idx)
            for split, idx in split_indices().items()
        }

    def _generate_examples(self, images, labels, indices):
        for i in indices:
            i = int(i)
            yield i, {"image": images[i], "label": labels[i], "index": i}


SPECS = (
    DatasetSpec(
        name=NAME,
        builder_cls=AttnzooDigits,
        splits=SPLITS,
        facts=ImageFacts(
            num_classes=NUM_CLASSES,
            image_shape=IMAGE_SHAPE,
            pixel_max=PIXEL_MAX,
            mean=MEAN,
            std=STD,
            augment_pad=1,  # ±1 px translation; no flips (digits are not mirror-symmetric).
        ),
    ),
)
