"""Random stand-ins for ImageNet-256 VAE latents (32×32×4, 1000 classes): shape checks only.

There is no ImageNet or VAE here. Configs of latent-space diffusion models train on these
to check shapes and the training step (smoke runs); there is nothing to learn in them.
Pixels are uniform 0..255 from a fixed seed (after the pipeline's standardisation: mean 0,
variance 1), labels uniform over 1000 classes. Embedded: generated, no files needed.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

from attnzoo.data.image_builder import ImageClassificationBuilder
from attnzoo.data.spec import DatasetSpec, ImageFacts

NAME = "random_latents"
IMAGE_SHAPE = (32, 32, 4)
NUM_CLASSES = 1000
SPLITS = {"train": 256, "test": 64}


class AttnzooRandomLatents(ImageClassificationBuilder):
    """Uniform random uint8 32×32×4 'latents' with uniform labels (seeded)."""

    name = "attnzoo_random_latents"
    VERSION = tfds.core.Version("1.0.0")
    IMAGE_SHAPE = IMAGE_SHAPE
    HOMEPAGE = "https://github.com/facebookresearch/DiT"

    def _split_generators(self, dl_manager):
        del dl_manager  # generated
        return {split: self._generate_examples(split, n) for split, n in SPLITS.items()}

    def _generate_examples(self, split, n):
        rng = np.random.default_rng(list(SPLITS).index(split))
        images = rng.integers(0, 256, (n, *IMAGE_SHAPE), dtype=np.uint8)
        labels = rng.integers(0, NUM_CLASSES, n)
        for i in range(n):
            yield i, {"image": images[i], "label": labels[i], "index": i}


SPECS = (
    DatasetSpec(
        name=NAME,
        builder_cls=AttnzooRandomLatents,
        splits=SPLITS,
        facts=ImageFacts(
            num_classes=NUM_CLASSES,
            image_shape=IMAGE_SHAPE,
            pixel_max=255.0,
            mean=0.5,  # of uniform pixels / 255, exactly: 127.5 / 255
            std=float(np.sqrt((256**2 - 1) / 12) / 255),
        ),
    ),
)
