"""Fashion-MNIST (Xiao, Rasul & Vollgraf, 2017) from the four official IDX files, TF-free.

60,000 train / 10,000 test grey images of 28×28 pixels (0..255), 10 clothing classes.
Raw files (`*-ubyte.gz`, checked against the official sha256 below) are looked up in
`data_dir` if given, else in `$ATTNZOO_DATA_DIR/images/fashion_mnist`, then in the download
cache `~/.cache/attnzoo/downloads/fashion_mnist`; missing ones are fetched from Zalando's
official URL into that cache (short timeout). IDX is parsed with numpy: a big-endian
header (magic `0x0000080N`, N = number of dimensions, then N uint32 sizes) followed by the
uint8 payload.

Stored features (one record per image, in file order):
  image: uint8 [28, 28, 1] (0..255); label: int64 []; index: int64 [] (position in the file).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from attnzoo.data import paths
from attnzoo.data.image_builder import ImageClassificationBuilder
from attnzoo.data.spec import DatasetSpec, ImageFacts

NAME = "fashion_mnist"
NUM_CLASSES = 10
IMAGE_SHAPE = (28, 28, 1)
SPLITS = {"train": 60000, "test": 10000}
PIXEL_MAX = 255.0
# Mean/std of train pixels after dividing by PIXEL_MAX (tests recompute them).
MEAN = 0.2860
STD = 0.3530
CLASS_NAMES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip

RAW_SUBDIR = "images/fashion_mnist"
URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
DOWNLOAD_TIMEOUT_S = 10.0
_SHA256SUMS = """
b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7  train-images-idx3-ubyte.gz
0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056  train-labels-idx1-ubyte.gz
cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa  t10k-images-idx3-ubyte.gz
8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05  t10k-labels-idx1-ubyte.gz
"""  # `sha256sum` output of the official files.
SHA256 = {fname: digest for digest, fname in map(str.split, _SHA256SUMS.strip().splitlines())}
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_file(url: str, dest: Path, timeout: float = DOWNLOAD_TIMEOUT_S) -> None:
    """Fetch `url` into `dest` atomically (temp file + rename); raises OSError on failure."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.")
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as r:
            shutil.copyfileobj(r, out)
        os.replace(tmp, dest)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def find_raw_files(data_dir: str | os.PathLike[str] | None = None) -> dict[str, Path]:
    """Paths of the four verified raw files; downloads missing ones into the cache.

    Raises:
      DataNotFoundError: files absent and not downloadable (message names them and where
        to put them).
      DataChecksumError: a file's sha256 differs from the official one.
    """
    source = paths.raw_data_dir(RAW_SUBDIR, data_dir)
    cache = paths.download_dir(NAME)
    found, missing = {}, []
    for fname in SHA256:
        for folder in (source, cache):
            if folder is not None and (folder / fname).is_file():
                found[fname] = folder / fname
                break
        else:
            missing.append(fname)

    if missing:
        try:
            with paths.file_lock(cache / ".download.lock"):
                for fname in missing:
                    if not (cache / fname).is_file():
                        download_file(URL + fname, cache / fname)
                    found[fname] = cache / fname
        except OSError as e:
            where = (
                f"{source}/"
                if source is not None
                else f"${paths.DATA_DIR_ENV}/{RAW_SUBDIR}/ (${paths.DATA_DIR_ENV} is unset)"
            )
            reason = " ".join(str(e).split())  # Keep the message on one line.
            raise paths.DataNotFoundError(
                f"fashion_mnist: missing {', '.join(missing)}; download from {URL} failed "
                f"({type(e).__name__}: {reason}); put the official files in {where} "
                "or pass --config.data.data_dir=DIR"
            ) from None

    for fname, path in found.items():
        if (digest := sha256(path)) != SHA256[fname]:
            raise paths.DataChecksumError(
                f"fashion_mnist: sha256 mismatch for {path} (got {digest[:12]}…, expected "
                f"{SHA256[fname][:12]}…); replace it with the official file"
            )
    return found


def read_idx(path: Path) -> np.ndarray:
    """Parse a gzipped IDX file of unsigned bytes into an array of its declared shape."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = data[0:2], data[2], data[3]
    if zero != b"\0\0" or dtype_code != 0x08:
        raise ValueError(f"{path}: not an IDX file of unsigned bytes (magic {data[:4].hex()})")
    shape = tuple(np.frombuffer(data, dtype=">u4", count=ndim, offset=4).astype(int))
    payload = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if payload.size != np.prod(shape):
        raise ValueError(f"{path}: {payload.size} bytes of data for declared shape {shape}")
    return payload.reshape(shape)


class AttnzooFashionMnist(ImageClassificationBuilder):
    """Fashion-MNIST, 28×28×1 uint8, official 60k/10k split, read from the IDX files."""

    name = "attnzoo_fashion_mnist"
    VERSION = tfds.core.Version("1.0.0")
    IMAGE_SHAPE = IMAGE_SHAPE
    HOMEPAGE = "https://github.com/zalandoresearch/fashion-mnist"
    CITATION = "Xiao, Rasul, Vollgraf. Fashion-MNIST. arXiv:1708.07747, 2017."
    RELEASE_NOTES = {"1.0.0": "Official IDX files, file order, uint8 0..255."}

    def __init__(self, *, raw_dir: str | os.PathLike[str] | None = None, **kwargs):
        """`raw_dir`: where the raw files are (see `find_raw_files`); only read to prepare."""
        self._raw_dir = raw_dir
        super().__init__(**kwargs)

    def _split_generators(self, dl_manager):
        del dl_manager  # Raw files are found/downloaded and verified by find_raw_files.
        files = find_raw_files(self._raw_dir)
        return {
            split: self._generate_examples(files[images], files[labels], SPLITS[split])
            for split, (images, labels) in FILES.items()
        }

    def _generate_examples(self, images_path, labels_path, expected):
        images, labels = read_idx(images_path), read_idx(labels_path)
        if images.shape != (expected, *IMAGE_SHAPE[:2]) or labels.shape != (expected,):
            raise ValueError(f"fashion_mnist: unexpected shapes {images.shape}, {labels.shape}")
        images = images[..., None]
        labels = labels.astype(np.int64)
        for i in range(expected):
            yield i, {"image": images[i], "label": labels[i], "index": i}


SPECS = (
    DatasetSpec(
        name=NAME,
        builder_cls=AttnzooFashionMnist,
        splits=SPLITS,
        facts=ImageFacts(
            num_classes=NUM_CLASSES,
            image_shape=IMAGE_SHAPE,
            pixel_max=PIXEL_MAX,
            mean=MEAN,
            std=STD,
            augment_pad=2,  # Random 28×28 crop of the image zero-padded to 32×32.
            augment_flip=True,
        ),
        raw_subdir=RAW_SUBDIR,
    ),
)
