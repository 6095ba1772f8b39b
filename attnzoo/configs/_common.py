"""Defaults every config starts from (not a config itself: the name starts with `_`)."""

import ml_collections

from attnzoo.configs import ConfigError
from attnzoo.train_loops.partitioning import DEFAULT_RULES


def base_config() -> ml_collections.ConfigDict:
    c = ml_collections.ConfigDict()
    c.family = ""
    c.seed = 0
    c.model = ml_collections.ConfigDict({"name": ""})
    c.data = ml_collections.ConfigDict(
        {"name": "", "train_split": "train", "eval_split": "test", "data_dir": "", "augment": False}
    )
    c.optimizer = ml_collections.ConfigDict(
        {
            "name": "adamw",
            "learning_rate": 1e-3,
            "weight_decay": 0.05,
            "b1": 0.9,
            "b2": 0.999,
            "eps": 1e-8,
            "clip_norm": 1.0,
            "adam_learning_rate": 0.0,  # muon: peak lr of its AdamW params (0: learning_rate)
        }
    )
    c.schedule = ml_collections.ConfigDict(
        {"name": "warmup_cosine", "warmup_steps": 100, "end_fraction": 0.0}
    )
    c.train = ml_collections.ConfigDict(
        {
            "steps": 1000,
            "batch_size": 128,
            "eval_batch_size": 512,
            "log_every": 50,
            "eval_every": 0,
            "checkpoint_every": 500,
            "keep_checkpoints": 2,
            "label_smoothing": 0.0,
        }
    )
    c.mesh = ml_collections.ConfigDict(
        {"shape": (-1, 1, 1), "axes": ("data", "fsdp", "model"), "rules": DEFAULT_RULES}
    )
    # `into`: a submodule path to load into ("backbone": a zoo ViT into the gaze model)
    c.init_from = ml_collections.ConfigDict({"path": "", "skip": (), "into": ""})
    # Best checkpoint by a validation metric and early stopping (train_loops/selection.py).
    c.select = ml_collections.ConfigDict({"split": "", "metric": "", "mode": "min", "patience": 0})
    return c


# A ViT small enough for one-step smoke runs.
TINY_VIT = {"width": 32, "depth": 1, "num_heads": 2, "mlp_dim": 64}


def with_variant(
    c: ml_collections.ConfigDict, name: str, arg: str | None, *, smoke_model: dict
) -> ml_collections.ConfigDict:
    """Applies `NAME:arg`: `smoke` shrinks the run to one step of a tiny model
    (`smoke_model` overrides `c.model`) for tests; no arg keeps the full config."""
    if arg == "smoke":
        c.model.update(smoke_model)
        return smoke(c)
    if arg:
        raise ConfigError(f"unknown argument {arg!r} for config {name}; use 'smoke' or none")
    return c


def smoke(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """Shrinks a config to a one-step run at tiny size, for tests."""
    c.train.update(
        steps=1, batch_size=16, eval_batch_size=64, log_every=1, eval_every=0, checkpoint_every=1
    )
    c.schedule.warmup_steps = 0
    c.data.eval_split = f"{c.data.eval_split}[:64]"
    if c.select.split:
        c.select.split = f"{c.select.split}[:64]"
    return c
