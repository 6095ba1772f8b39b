"""grain pipelines over a prepared scanpath dataset (`ScanpathFacts`, e.g. `nus_scene`).

    records (one per image) → one example per non-empty (image, viewer) scanpath
    → [slice] → shuffle(seed) → repeat → [mirror half at random (seed)]
    → shard [process_index::process_count] → batch

Batches are dicts of numpy arrays:
  image: float32 [b, S, S, 3], `(pixel / 255 - 0.5) / 0.25`;
  fixations: float32 [b, L, 3], `(x, y, duration_ms)`, x, y in [0, 1] of the image side S;
  valid: bool [b, L], True on real fixations (a prefix);
  index: int32 [b], the image number; viewer: int32 [b];
  width: float32 [b], the image content's width in units of S (1 for landscape images,
    < 1 for portrait ones: the right of the canvas is padding).
Like `pipeline.make_dataset`, a batch is a pure function of (seed, position).
"""

from __future__ import annotations

import functools

import grain
import numpy as np

from attnzoo.data import registry
from attnzoo.data.pipeline import RecordSource, parse_split


def _scanpath_spec(name: str):
    spec = registry.get_spec(name)
    if spec.kind != "scanpath":
        raise ValueError(f"{name} is a {spec.kind} dataset, not a scanpath dataset")
    return spec


@functools.lru_cache(maxsize=8)
def load_split(
    name: str, split: str, tfds_dir: str | None = None, data_dir: str | None = None
) -> dict[str, np.ndarray]:
    """Every record of `name[split]` stacked: `image` uint8 [n, S, S, 3], `fixations`
    [n, V, L, 3], `lengths` [n, V], `size` [n, 2] (original height, width), `index` [n]."""
    spec = _scanpath_spec(name)
    split, rows = parse_split(split)
    registry.check_split(spec, split)
    builder = registry.prepare(name, tfds_dir=tfds_dir, data_dir=data_dir)
    records = RecordSource(builder, split).read_all()[rows]
    if not records:
        raise ValueError(f"{name}[{split}] slice {rows} selects no images")
    return {key: np.stack([r[key] for r in records]) for key in records[0]}


def human_scanpaths(records: dict, i: int) -> list[np.ndarray]:
    """The non-empty human scanpaths of image `i` of `load_split(...)`, each `[n, 3]`
    `(x, y, duration_ms)` in pixels of the original image."""
    longer = records["size"][i].max()
    return [
        records["fixations"][i, v, :n] * [longer, longer, 1.0]
        for v, n in enumerate(records["lengths"][i])
        if n > 0
    ]


class ScanpathSource:
    """Random access to the non-empty (image, viewer) scanpaths of `load_split` records."""

    def __init__(self, records: dict):
        self.records = records
        self.pairs = np.argwhere(records["lengths"] > 0)  # [n, 2] (record, viewer)

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index) -> dict[str, np.ndarray]:
        r, v = self.pairs[int(index)]
        n = self.records["lengths"][r, v]
        height, width = self.records["size"][r]
        return {
            "image": self.records["image"][r],
            "fixations": self.records["fixations"][r, v],
            "valid": np.arange(self.records["fixations"].shape[2]) < n,
            "index": np.int32(self.records["index"][r]),
            "viewer": np.int32(v),
            "width": np.float32(width / max(height, width)),
        }


def normalize_images(images: np.ndarray) -> np.ndarray:
    """uint8 images → float32 `(pixel / 255 - 0.5) / 0.25`."""
    return (np.asarray(images, np.float32) / 255.0 - 0.5) / 0.25


class _Normalize(grain.transforms.Map):
    def map(self, element: dict) -> dict:
        return {**element, "image": normalize_images(element["image"])}


def mirror(element: dict) -> dict:
    """The example mirrored left–right: the image content (the left `width · S` columns;
    the padding stays on the right) and the fixations' x (`width - x`, real ones only)."""
    image, fixations = element["image"].copy(), element["fixations"].copy()
    columns = max(1, round(float(element["width"]) * image.shape[1]))
    image[:, :columns] = image[:, :columns][:, ::-1]
    valid = element["valid"]
    fixations[valid, 0] = element["width"] - fixations[valid, 0]
    return {**element, "image": image, "fixations": fixations}


class _RandomMirror(grain.transforms.RandomMap):
    def random_map(self, element: dict, rng: np.random.Generator) -> dict:
        return mirror(element) if rng.random() < 0.5 else element


def make_scanpath_dataset(
    name: str,
    split: str,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int,
    repeat: bool,
    data_dir: str | None = None,
    tfds_dir: str | None = None,
    process_index: int = 0,
    process_count: int = 1,
    drop_remainder: bool = True,
    mirror_half: bool = False,
) -> grain.IterDataset:
    """Batched scanpaths of `name[split]` for this process (arguments as
    `pipeline.make_dataset`; a `[start:stop]` slice selects images); `mirror_half`: each
    example mirrored left–right with probability 1/2 (drawn from `seed` and its position)."""
    if not 0 <= process_index < process_count:
        raise ValueError(f"process_index={process_index} not in [0, {process_count})")
    if batch_size <= 0 or batch_size % process_count:
        raise ValueError(
            f"batch_size={batch_size} must be a positive multiple of process_count={process_count}"
        )
    source = ScanpathSource(load_split(name, split, tfds_dir, data_dir))
    ds = grain.MapDataset.source(source).seed(seed)
    if shuffle:
        ds = ds.shuffle()
    if repeat:
        ds = ds.repeat()
    if mirror_half:  # before sharding: the draws follow the global position
        ds = ds.random_map(_RandomMirror(), seed=seed)
    ds = ds[process_index::process_count]
    ds = ds.batch(batch_size // process_count, drop_remainder=drop_remainder).map(_Normalize())
    return ds.to_iter_dataset(grain.ReadOptions(num_threads=0, prefetch_buffer_size=0))
