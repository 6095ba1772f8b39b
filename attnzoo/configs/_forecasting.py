"""Shared recipe of the forecasting configs (not a config: the name starts with `_`)."""

import ml_collections

from attnzoo import data
from attnzoo.configs._common import base_config, with_variant

# Official run scripts (decisionintelligence/pathformer scripts/multivariate/ETTh*.sh):
# (dataset, horizon) -> model settings and batch size; every run: lr 5e-4, Adam,
# one-cycle (pct_start 0.4), 30 epochs, early stopping on val MAE with patience 10.
DEFAULT_PATCHES = ((16, 12, 8, 32), (12, 8, 6, 4), (8, 6, 4, 2))
PATHFORMER_RECIPES = {
    ("etth1", 96): dict(k=3, residual=True, d_model=4, batch=128),
    ("etth1", 192): dict(k=3, residual=True, d_model=4, batch=128),
    ("etth1", 336): dict(
        k=3,
        residual=False,
        d_model=4,
        batch=512,
        patch_sizes=((16, 12, 8, 32), (12, 8, 6, 16), (8, 6, 4, 16)),
    ),
    ("etth1", 720): dict(k=2, residual=False, d_model=4, batch=512),
    ("etth2", 96): dict(k=2, residual=False, d_model=4, batch=512),
    ("etth2", 192): dict(k=2, residual=False, d_model=8, batch=512),
    ("etth2", 336): dict(k=2, residual=False, d_model=4, batch=512),
    ("etth2", 720): dict(
        k=3,
        residual=False,
        d_model=16,
        batch=512,
        patch_sizes=((16, 12, 8, 32), (12, 8, 6, 32), (8, 6, 16, 12)),
    ),
}
# One layer of two experts (k = 1: the noisy load path runs), fast to compile; one
# horizon for every smoke run, so runs that differ only in data share compiled programs.
SMOKE_PATHFORMER = {
    "d_model": 4,
    "d_ff": 8,
    "patch_sizes": ((32, 48),),
    "k": 1,
    "residual": True,
}
SMOKE_HORIZON = 24


def forecasting_config(
    dataset: str, horizon: int, *, batch: int, epochs: int, patience: int
) -> ml_collections.ConfigDict:
    """Family, data, epoch-based intervals and val-MAE selection for `dataset` at `horizon`."""
    c = base_config()
    c.family = "timeseries"
    c.data.update(name=dataset, horizon=horizon, eval_split="test")
    steps_per_epoch = data.num_windows(dataset, "train", horizon) // batch  # drop_last
    c.train.update(
        steps=epochs * steps_per_epoch,
        batch_size=batch,
        eval_batch_size=512,
        log_every=steps_per_epoch,
        eval_every=steps_per_epoch,
        checkpoint_every=steps_per_epoch,
        keep_checkpoints=1,
        loss="l1",
    )
    c.select.update(split="val", metric="mae", mode="min", patience=patience)
    return c


def pathformer_config(
    dataset: str,
    horizon: int,
    name: str,
    arg: str | None,
    *,
    recipe_of: tuple[str, int] | None = None,
    epochs: int = 30,
    patience: int = 10,
):
    """The official Pathformer recipe for `dataset` at `horizon` (input 96); `recipe_of`:
    the (dataset, horizon) whose model and batch to use instead (fine-tuning keeps the
    pretrained architecture)."""
    recipe = dict(PATHFORMER_RECIPES[recipe_of or (dataset, horizon)])
    batch = recipe.pop("batch")
    c = forecasting_config(dataset, horizon, batch=batch, epochs=epochs, patience=patience)
    c.model.update(
        {"name": "pathformer", "d_ff": 64, "patch_sizes": DEFAULT_PATCHES, "revin": True, **recipe}
    )
    c.optimizer.update(name="adamw", learning_rate=5e-4, weight_decay=0.0, clip_norm=0.0)
    c.schedule.update(name="one_cycle", pct_start=0.4, div_factor=25.0, final_div_factor=1e4)
    if arg == "smoke":
        c.data.horizon = SMOKE_HORIZON
    return with_variant(c, name, arg, smoke_model=SMOKE_PATHFORMER)
