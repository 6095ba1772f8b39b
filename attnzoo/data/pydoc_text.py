"""Python's own documentation topics (`pydoc_data.topics`): the embedded text corpus.

The 79 help topics of the running Python, joined in sorted-key order with blank lines
(465,126 characters on Python 3.11), split 90/10 by characters into train/val. Ships with
Python, so the language demo needs no download.
"""

from __future__ import annotations

import tensorflow_datasets as tfds

from attnzoo.data.spec import DatasetSpec, TextFacts
from attnzoo.data.text_builder import CHUNK_BYTES, TextBuilder, num_chunks, split_by_characters

FRACTIONS = {"train": 0.9, "val": 0.1}


def load_pydoc_text() -> str:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics))


class AttnzooPydocText(TextBuilder):
    """Python pydoc help topics, UTF-8, 90/10 character split."""

    name = "attnzoo_pydoc_text"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Topics in sorted-key order, 90/10 character split."}
    HOMEPAGE = "https://docs.python.org/3/library/pydoc.html"
    FRACTIONS = FRACTIONS

    def load_text(self) -> str:
        return load_pydoc_text()


_SPLIT_BYTES = {
    split: len(text.encode())
    for split, text in split_by_characters(load_pydoc_text(), FRACTIONS).items()
}

SPECS = (
    DatasetSpec(
        name="pydoc_text",
        builder_cls=AttnzooPydocText,
        splits={split: num_chunks(n) for split, n in _SPLIT_BYTES.items()},
        facts=TextFacts(split_bytes=_SPLIT_BYTES, chunk_bytes=CHUNK_BYTES),
    ),
)
