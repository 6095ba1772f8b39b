"""Tokenizers of the language family: bytes (default) or a byte-level BPE.

Both map text to int32 ids and back and know how many bytes of UTF-8 text each id stands
for (`token_bytes`, for bits per byte). The BPE is trained with the `tokenizers` library
(byte-level pre-tokenizer, so every string is encodable) and saved as one JSON file.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

TOKENIZER_FILE = "tokenizer.json"
KINDS = ("byte", "bpe")


class ByteTokenizer:
    """UTF-8 bytes as ids 0..255."""

    vocab_size = 256
    fingerprint = "byte"

    def encode(self, text: str) -> np.ndarray:
        return np.frombuffer(text.encode(), np.uint8).astype(np.int32)

    def decode(self, ids) -> str:
        return bytes(np.asarray(ids, np.uint8).tolist()).decode(errors="replace")

    def token_bytes(self) -> np.ndarray:
        """int32 `[vocab_size]`: bytes of text per id."""
        return np.ones(self.vocab_size, np.int32)


class BpeTokenizer:
    """Byte-level BPE (`tokenizers.Tokenizer`), trained by `train`, stored by `save`."""

    def __init__(self, tokenizer):
        self._tokenizer = tokenizer
        self.vocab_size = tokenizer.get_vocab_size()
        self.fingerprint = hashlib.sha256(tokenizer.to_str().encode()).hexdigest()[:16]

    @classmethod
    def train(cls, text: str, vocab_size: int) -> BpeTokenizer:
        """A BPE of at most `vocab_size` ids (the 256 byte symbols first) learned on `text`."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tokenizer.train_from_iterator([text], trainer=trainer)
        return cls(tokenizer)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BpeTokenizer:
        from tokenizers import Tokenizer

        return cls(Tokenizer.from_file(os.fspath(path)))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes the JSON file atomically (temp file + rename)."""
        tmp = f"{path}.tmp"
        self._tokenizer.save(tmp)
        os.replace(tmp, path)

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self._tokenizer.encode(text).ids, np.int32)

    def decode(self, ids) -> str:
        return self._tokenizer.decode(np.asarray(ids).tolist())

    def token_bytes(self) -> np.ndarray:
        """int32 `[vocab_size]`: bytes of text per id (one per byte-level symbol)."""
        lengths = np.zeros(self.vocab_size, np.int32)
        for token, i in self._tokenizer.get_vocab().items():
            lengths[i] = len(token)
        return lengths
