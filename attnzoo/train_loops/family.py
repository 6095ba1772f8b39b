"""The interface through which a model family plugs into the training engine.

A family says how to build its model from the config, what its data looks like, its
training loss and its evaluation metrics. The engine (`trainer.py`) owns everything else:
mesh, sharding, optimizer, the jitted step, checkpoints, logging and evaluation loops.
"""

import abc
import importlib
import os
import pkgutil
import zlib

import jax
import ml_collections
from flax import nnx

from attnzoo import data

ZOO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "zoo")

Metrics = dict[str, jax.Array]


class Family(abc.ABC):
    """Subclass per family; the engine builds one per run from the run's config and
    workdir (None outside a run: the family then writes nothing)."""

    def __init__(self, config: ml_collections.ConfigDict, workdir: str | None = None):
        self.config, self.workdir = config, workdir

    @abc.abstractmethod
    def build_model(self, *, rngs: nnx.Rngs) -> nnx.Module:
        """The model described by `config.model` (and shapes implied by `config.data`)."""

    @abc.abstractmethod
    def loss(self, model: nnx.Module, batch: dict, rng: jax.Array) -> tuple[jax.Array, Metrics]:
        """Scalar training loss and auxiliary scalar metrics for a global `batch`.

        `rng` is this step's key (`step_key(seed, step)`): every random draw of the step
        (dropout, noise, sampling) comes from it, so a resumed run draws the same numbers.
        """

    @abc.abstractmethod
    def eval_metrics(
        self, model: nnx.Module, batch: dict
    ) -> dict[str, tuple[jax.Array, jax.Array]]:
        """`name -> (sum, count)` over the examples where `batch["mask"]` is True; the engine
        reports `sum / count` accumulated over the whole split."""

    def post_update(self, model: nnx.Module, metrics: Metrics) -> Metrics:
        """Runs inside the jitted step after the optimizer update (e.g. MuonClip's QK-Clip
        reading the step's max logits from `metrics`); returns the metrics to log."""
        return metrics

    def summarize(self, metrics: dict[str, float]) -> dict[str, float]:
        """Eval metrics derived from the split-wide means (e.g. perplexity from the loss)."""
        return metrics

    def make_dataset(self, split: str, *, train: bool, process_index: int, process_count: int):
        """Batches of this process as dicts of numpy arrays, leading axis = local batch.

        Training data repeats forever, shuffled and augmented; eval data is every example
        of `split` once, in order (the last batch may be short).
        """
        config, cfg = self.config, self.config.data
        batch_size = config.train.batch_size if train else config.train.eval_batch_size
        return data.make_dataset(
            cfg.name,
            split,
            batch_size=batch_size,
            shuffle=train,
            repeat=train,
            seed=config.seed,
            data_dir=cfg.get("data_dir") or None,
            process_index=process_index,
            process_count=process_count,
            drop_remainder=train,
            augment=train and cfg.get("augment", False),
            resize_to=cfg.get("resize_to", 0),
            pad_to=cfg.get("pad_to", 0),
        )

    def image_shape(self) -> tuple[int, int, int]:
        """`(H, W, C)` of the batches' images: as stored, resized (`data.resize_to`), then
        padded (`data.pad_to`)."""
        cfg = self.config.data
        h, w, c = data.dataset_info(cfg.name)["image_shape"]
        for size in (cfg.get("resize_to", 0), cfg.get("pad_to", 0)):
            h, w = (size, size) if size else (h, w)
        return h, w, c

    def sample(self, model: nnx.Module, out_dir: str, *, split: str, num: int) -> list[str]:
        """Writes `num` samples of the model (forecast plots, generated text, images...)
        for examples of `split` into `out_dir`; returns the written paths."""
        raise NotImplementedError(f"the {self.config.family} family has no sampler yet")


def family_names() -> list[str]:
    """The families: one per model package `attnzoo/zoo/<name>/`, each with its module
    `attnzoo/train_loops/<name>.py` defining `FAMILY` (adding a family edits no list)."""
    return sorted(info.name for info in pkgutil.iter_modules([ZOO_DIR]) if info.ispkg)


def model_kwargs(model_config: ml_collections.ConfigDict) -> dict:
    """`config.model` without its registry `name`: the constructor's keyword arguments."""
    return {k: v for k, v in model_config.to_dict().items() if k != "name"}


def step_key(seed: int, step: jax.Array) -> jax.Array:
    """The PRNG key of training step `step` (0-based): a function of seed and step only."""
    return jax.random.fold_in(jax.random.key(seed), step)


def reseed_streams(model: nnx.Module, rng: jax.Array) -> None:
    """Reseeds every RNG stream a model holds (its dropout layers, noise streams) from the
    step key, each stream's key folded with a hash of its path so layers draw differently.
    For families whose models draw from their own streams rather than an `rngs` argument."""

    def per_stream(path, key, shape):
        key = jax.random.fold_in(key, zlib.crc32("/".join(map(str, path)).encode()))
        return key if not shape else jax.random.split(key, shape)

    nnx.reseed(model, default=rng, policy=per_stream)


def get_family(config: ml_collections.ConfigDict, workdir: str | None = None) -> Family:
    """The family `config.family` of this run in `workdir`."""
    names = family_names()
    if config.family not in names:
        raise ValueError(f"unknown family {config.family!r}; choose one of {', '.join(names)}")
    return importlib.import_module(f"attnzoo.train_loops.{config.family}").FAMILY(config, workdir)
