"""NUS scene saliency set (NUS VIP lab, 2015): 500 SUN2012 images × 12 free-viewing
scanpaths, shown for 3 s each (MIT licence).

Raw files under `data_dir`, else `$ATTNZOO_DATA_DIR/gaze/nus_scene`: `stimuli/001.jpg` …
`500.jpg`, `imgInfo.mat` (`imgInfo.size`: `[500, 2]` height, width) and `fixations.mat`
(`fixations`: `[500, 12]` cells of `n × 4` fixations, seconds for onset and duration).
The readme calls the first two columns (x, y), but they are (row, column): read that way
all 43,894 fixations lie inside their image; read as (x, y), 3,357 lie outside.

Protocol: split by image 80/10/10 (400/50/50) with a fixed permutation (seed 0). Each
record is one image: resized to fit `IMAGE_SIZE`² with its aspect kept, placed top-left,
zero-padded; fixations `(x, y, duration_ms)` with x, y divided by the image's longer side
(so `(x, y) · IMAGE_SIZE` is the pixel of the stored image); scanpaths padded to
`MAX_LEN` fixations, `lengths` giving the real count (0 for the few empty ones).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import tensorflow_datasets as tfds

from attnzoo.data import paths
from attnzoo.data.spec import DatasetSpec, ScanpathFacts

RAW_SUBDIR = "gaze/nus_scene"
NUM_IMAGES, VIEWERS, MAX_LEN, IMAGE_SIZE = 500, 12, 16, 128
SPLIT_SIZES = {"train": 400, "val": 50, "test": 50}
SOURCE = "the NUS VIP lab scene saliency release (H. Liang, Q. Zhao; MIT licence)"


def split_images() -> dict[str, np.ndarray]:
    """Split → sorted image numbers (0-based), from a seed-0 permutation of the 500."""
    order = np.random.default_rng(0).permutation(NUM_IMAGES)
    bounds = np.cumsum([0, *SPLIT_SIZES.values()])
    return {s: np.sort(order[a:b]) for s, a, b in zip(SPLIT_SIZES, bounds[:-1], bounds[1:])}


def _load_mat(path: Path, key: str) -> np.ndarray:
    from scipy import io

    if not path.is_file():
        raise paths.DataNotFoundError(
            f"{path}: file not found; put the NUS scene files ({SOURCE}) in a folder and set "
            f"${paths.DATA_DIR_ENV} to its parent root (…/{RAW_SUBDIR}) or pass "
            "--config.data.data_dir=DIR"
        )
    try:
        content = io.loadmat(path)
    except Exception as e:  # scipy raises several types for corrupt files
        raise paths.DataFormatError(f"{path}: not a readable MATLAB file ({e})") from None
    if key not in content:
        raise paths.DataFormatError(f"{path}: no variable {key!r}")
    return content[key]


def read_sizes(path: Path) -> np.ndarray:
    """`imgInfo.mat` → int `[500, 2]` (height, width)."""
    info = _load_mat(path, "imgInfo")
    try:
        sizes = np.asarray(info["size"][0, 0], np.int64)
    except (ValueError, IndexError, KeyError):
        raise paths.DataFormatError(f"{path}: imgInfo has no 'size' field") from None
    if sizes.shape != (NUM_IMAGES, 2) or (sizes <= 0).any():
        raise paths.DataFormatError(f"{path}: size is {sizes.shape}, expected ({NUM_IMAGES}, 2)")
    return sizes


def read_fixations(path: Path, sizes: np.ndarray) -> list[list[np.ndarray]]:
    """`fixations.mat` → `[image][viewer]` float arrays `[n, 3]` of `(x, y, duration_ms)`
    in pixels (the file's (row, column) swapped to (x, y)); checks shape and range."""
    cells = _load_mat(path, "fixations")
    if cells.shape != (NUM_IMAGES, VIEWERS):
        raise paths.DataFormatError(
            f"{path}: fixations is {cells.shape}, expected ({NUM_IMAGES}, {VIEWERS})"
        )
    out = []
    for i in range(NUM_IMAGES):
        row = []
        for v in range(VIEWERS):
            f = np.asarray(cells[i, v], np.float64)
            if f.size == 0:
                f = np.zeros((0, 4))
            where = f"{path}: image {i + 1} viewer {v + 1}"
            if f.ndim != 2 or f.shape[1] != 4 or len(f) > MAX_LEN:
                raise paths.DataFormatError(
                    f"{where}: fixations {f.shape}, expected n × 4 with n <= {MAX_LEN}"
                )
            if not np.isfinite(f).all() or (f[:, 3] <= 0).any():
                raise paths.DataFormatError(f"{where}: a NaN, Inf or non-positive duration")
            height, width = sizes[i]
            if ((f[:, :2] < 0) | (f[:, :2] > [height, width])).any():
                raise paths.DataFormatError(
                    f"{where}: a fixation outside the {width}×{height} image"
                )
            row.append(np.stack([f[:, 1], f[:, 0], f[:, 3] * 1000.0], axis=1))
        out.append(row)
    return out


def load_image(path: Path, size: int) -> np.ndarray:
    """JPEG → uint8 `[size, size, 3]`: longer side resized to `size` (bilinear), aspect
    kept, top-left, zero padding."""
    from PIL import Image

    if not path.is_file():
        raise paths.DataNotFoundError(f"{path}: stimulus image not found")
    try:
        with Image.open(path) as image:
            image.draft("RGB", (size, size))  # JPEG DCT downscaling: fast on big photos
            image = image.convert("RGB")
            scale = size / max(image.size)
            w, h = (max(1, round(s * scale)) for s in image.size)
            pixels = np.asarray(image.resize((w, h), Image.BILINEAR))
    except OSError as e:
        raise paths.DataFormatError(f"{path}: not a readable image ({e})") from None
    canvas = np.zeros((size, size, 3), np.uint8)
    canvas[:h, :w] = pixels
    return canvas


class AttnzooNusScene(tfds.core.GeneratorBasedBuilder):
    """NUS scene scanpaths: one record per image (see module docstring)."""

    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "400/50/50 images; 128² aspect-kept images; (x, y, ms)."}
    url_infos = None

    def __init__(self, *, raw_dir: str | os.PathLike[str] | None = None, **kwargs):
        self._raw_dir = raw_dir
        super().__init__(**kwargs)

    def _info(self) -> tfds.core.DatasetInfo:
        def tensor(shape, dtype):
            return tfds.features.Tensor(shape=shape, dtype=dtype, encoding="bytes")

        return tfds.core.DatasetInfo(
            builder=self,
            description=self.__doc__,
            features=tfds.features.FeaturesDict(
                {
                    "image": tensor((IMAGE_SIZE, IMAGE_SIZE, 3), np.uint8),
                    "fixations": tensor((VIEWERS, MAX_LEN, 3), np.float32),
                    "lengths": tensor((VIEWERS,), np.int32),
                    "size": tensor((2,), np.int32),
                    "index": tfds.features.Tensor(shape=(), dtype=np.int64),
                }
            ),
            homepage="",
            citation=SOURCE,
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        del dl_manager
        folder = paths.raw_data_dir(RAW_SUBDIR, self._raw_dir)
        if folder is None:
            raise paths.DataNotFoundError(
                f"fixations.mat: ${paths.DATA_DIR_ENV} is unset; point it at a folder holding "
                f"{RAW_SUBDIR}/ (e.g. ../shared/data) or pass --config.data.data_dir=DIR"
            )
        sizes = read_sizes(folder / "imgInfo.mat")
        fixations = read_fixations(folder / "fixations.mat", sizes)
        return {
            split: self._generate_examples(folder, sizes, fixations, images)
            for split, images in split_images().items()
        }

    def _generate_examples(self, folder, sizes, fixations, images):
        for i in images:
            height, width = sizes[i]
            padded = np.zeros((VIEWERS, MAX_LEN, 3), np.float32)
            lengths = np.zeros(VIEWERS, np.int32)
            for v, f in enumerate(fixations[i]):
                padded[v, : len(f)] = f / [max(height, width), max(height, width), 1.0]
                lengths[v] = len(f)
            yield (
                int(i),
                {
                    "image": load_image(folder / "stimuli" / f"{i + 1:03d}.jpg", IMAGE_SIZE),
                    "fixations": padded,
                    "lengths": lengths,
                    "size": np.array([height, width], np.int32),
                    "index": int(i),
                },
            )


SPECS = (
    DatasetSpec(
        name="nus_scene",
        builder_cls=AttnzooNusScene,
        splits=dict(SPLIT_SIZES),
        facts=ScanpathFacts(
            image_size=IMAGE_SIZE, viewers=VIEWERS, max_len=MAX_LEN, viewing_ms=3000.0
        ),
        raw_subdir=RAW_SUBDIR,
    ),
)
