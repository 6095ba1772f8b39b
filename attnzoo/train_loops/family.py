"""The interface through which a model family plugs into the training engine.

A family says how to build its model from the config, what its data looks like, its
training loss and its evaluation metrics. The engine (`trainer.py`) owns everything else:
mesh, sharding, optimizer, the jitted step, checkpoints, logging and evaluation loops.
"""

import abc
import importlib

import jax
import ml_collections
from flax import nnx

from attnzoo import data

# family name -> module under attnzoo.train_loops defining `FAMILY` (a Family subclass)
FAMILIES = ("vision",)

Metrics = dict[str, jax.Array]


class Family(abc.ABC):
    """Subclass per family; the engine builds one per run from the run's config."""

    def __init__(self, config: ml_collections.ConfigDict):
        self.config = config

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
        )


def step_key(seed: int, step: jax.Array) -> jax.Array:
    """The PRNG key of training step `step` (0-based): a function of seed and step only."""
    return jax.random.fold_in(jax.random.key(seed), step)


def get_family(config: ml_collections.ConfigDict) -> Family:
    """The family `config.family` of this run."""
    if config.family not in FAMILIES:
        raise ValueError(f"unknown family {config.family!r}; choose one of {', '.join(FAMILIES)}")
    return importlib.import_module(f"attnzoo.train_loops.{config.family}").FAMILY(config)
