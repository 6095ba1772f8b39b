"""tiny-shakespeare (char-rnn): 1,115,394 characters of Shakespeare, split 90/10.

The raw file `tinyshakespeare.txt` is looked up in `data_dir` if given, else in
`$ATTNZOO_DATA_DIR/text`, then in the download cache; if absent it is fetched from the
char-rnn repository (short timeout) and checked against its sha256. train = the first 90%
of the characters (1,003,854), val = the rest (111,540), as nanoGPT's shakespeare_char.
"""

from __future__ import annotations

import os

import tensorflow_datasets as tfds

from attnzoo.data import paths
from attnzoo.data.fashion_mnist import download_file, sha256
from attnzoo.data.spec import DatasetSpec, TextFacts
from attnzoo.data.text_builder import CHUNK_BYTES, TextBuilder, num_chunks

NAME = "tinyshakespeare"
FILE = "tinyshakespeare.txt"
RAW_SUBDIR = "text"
URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
CHARACTERS = 1115394
FRACTIONS = {"train": 0.9, "val": 0.1}
SPLIT_BYTES = {"train": 1003854, "val": 111540}  # ASCII: one byte per character


def find_raw_file(data_dir: str | os.PathLike[str] | None = None):
    """Path of the verified raw file (downloaded into the cache when absent)."""
    source = paths.raw_data_dir(RAW_SUBDIR, data_dir)
    cache = paths.download_dir(NAME)
    path = next((f / FILE for f in (source, cache) if f is not None and (f / FILE).is_file()), None)
    if path is None:
        path = cache / FILE
        try:
            with paths.file_lock(cache / ".download.lock"):
                if not path.is_file():
                    download_file(URL, path)
        except OSError as e:
            where = source if source is not None else f"${paths.DATA_DIR_ENV}/{RAW_SUBDIR}"
            raise paths.DataNotFoundError(
                f"tinyshakespeare: {FILE} not found and the download from {URL} failed "
                f"({type(e).__name__}: {' '.join(str(e).split())}); put it in {where}/ or "
                "pass --config.data.data_dir=DIR"
            ) from None
    if (digest := sha256(path)) != SHA256:
        raise paths.DataChecksumError(
            f"tinyshakespeare: sha256 mismatch for {path} (got {digest[:12]}…, expected "
            f"{SHA256[:12]}…); replace it with the char-rnn file"
        )
    return path


class AttnzooTinyShakespeare(TextBuilder):
    """tiny-shakespeare, ASCII, 90/10 character split."""

    name = "attnzoo_tinyshakespeare"
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "char-rnn file, 90/10 character split."}
    HOMEPAGE = "https://github.com/karpathy/char-rnn"
    FRACTIONS = FRACTIONS

    def __init__(self, *, raw_dir: str | os.PathLike[str] | None = None, **kwargs):
        self._raw_dir = raw_dir
        super().__init__(**kwargs)

    def load_text(self) -> str:
        text = find_raw_file(self._raw_dir).read_text(encoding="utf-8")
        if len(text) != CHARACTERS:
            raise paths.DataFormatError(
                f"tinyshakespeare: {len(text)} characters, not {CHARACTERS}"
            )
        return text


SPECS = (
    DatasetSpec(
        name="tinyshakespeare",
        builder_cls=AttnzooTinyShakespeare,
        splits={split: num_chunks(n) for split, n in SPLIT_BYTES.items()},
        facts=TextFacts(split_bytes=SPLIT_BYTES, chunk_bytes=CHUNK_BYTES),
        raw_subdir=RAW_SUBDIR,
    ),
)
