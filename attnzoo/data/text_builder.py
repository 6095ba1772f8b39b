"""TF-free TFDS builder of a text corpus split by characters, stored as byte chunks.

Each split's text is UTF-8 encoded and cut into records of `CHUNK_BYTES` bytes:
`{bytes: uint8 [CHUNK_BYTES] (zero-padded at the end), length: int64 [] (valid bytes)}`,
in order, so a split's text is the concatenation of its records. A subclass gives the whole
text (`load_text`); `split_by_characters` cuts it into consecutive parts.
"""

from __future__ import annotations

import numpy as np
import tensorflow_datasets as tfds

CHUNK_BYTES = 4096


def split_by_characters(text: str, fractions: dict[str, float]) -> dict[str, str]:
    """Consecutive parts of `text`: the first `int(f * len(text))` characters for the first
    split, and so on; the last split takes the rest."""
    parts, start = {}, 0
    names = list(fractions)
    for i, name in enumerate(names):
        stop = len(text) if i == len(names) - 1 else start + int(fractions[name] * len(text))
        parts[name], start = text[start:stop], stop
    return parts


def num_chunks(num_bytes: int) -> int:
    return -(-num_bytes // CHUNK_BYTES)


class TextBuilder(tfds.core.GeneratorBasedBuilder):
    """Subclasses set `HOMEPAGE`, `FRACTIONS` (split → fraction of characters), `load_text`."""

    HOMEPAGE: str
    FRACTIONS: dict[str, float]
    CITATION: str = ""
    url_infos = None  # No download-manager checksums (see ImageClassificationBuilder).

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "bytes": tfds.features.Tensor(
                        shape=(CHUNK_BYTES,), dtype=np.uint8, encoding="bytes"
                    ),
                    "length": tfds.features.Tensor(shape=(), dtype=np.int64),
                }
            ),
            homepage=self.HOMEPAGE,
            citation=self.CITATION,
            disable_shuffling=True,
        )

    def load_text(self) -> str:
        """The whole corpus."""
        raise NotImplementedError

    def _split_generators(self, dl_manager):
        del dl_manager  # The subclass finds its text itself.
        parts = split_by_characters(self.load_text(), self.FRACTIONS)
        return {split: self._generate_examples(text.encode()) for split, text in parts.items()}

    def _generate_examples(self, data: bytes):
        for i in range(num_chunks(len(data))):
            chunk = np.zeros(CHUNK_BYTES, np.uint8)
            piece = np.frombuffer(data[i * CHUNK_BYTES : (i + 1) * CHUNK_BYTES], np.uint8)
            chunk[: len(piece)] = piece
            yield i, {"bytes": chunk, "length": len(piece)}
