"""Shared recipe of the traffic configs (not a config: the name starts with `_`)."""

import ml_collections

from attnzoo import data
from attnzoo.configs._common import base_config, with_variant

# GMAN's official METR recipe (zhengchuanpan/GMAN METR/train.py): Adam 1e-3 decayed ×0.7
# every 5 epochs (and the batch-norm decay schedule on the same steps), batch 16, early
# stopping on val MAE with patience 10; L = 3, K = 8, d = 8 (the paper's best L); node2vec
# p = 2, q = 1, 64-d (METR/node2vec). Two changes, both measured (benchmarks/README.md,
# `traffic.py`): Muon 1e-2 on the matrices (Adam 1e-3, the official rate, on biases and
# batch norm; same schedule), whose first epoch reaches Adam's third; and no day-of-week
# one-hot (`GMAN(day_of_week=False)`): Los-loop is one week, Thursday to Wednesday, so
# the test days (Tuesday, Wednesday) never occur in training and their weights would stay
# at their random init. `--config.optimizer.name=adamw --config.model.day_of_week=True`
# restores the official recipe.
EPOCHS, PATIENCE, BATCH = 100, 10, 16
GMAN = {
    "name": "gman",
    "num_blocks": 3,
    "num_heads": 8,
    "head_dim": 8,
    "graph_mask": False,
    "day_of_week": False,
}
SMOKE_GMAN = {"num_blocks": 1, "num_heads": 2, "head_dim": 4}
NODE2VEC = dict(p=2.0, q=1.0, num_walks=20, walk_length=40, window=5, epochs=1, seed=0)
SMOKE_EMBEDDING = dict(num_walks=1, walk_length=6, window=2, dim=8)  # both methods: dim 8


def traffic_config(dataset: str, embedding: str, *, dim: int = 64) -> ml_collections.ConfigDict:
    """Family, data, epoch-based intervals and val-MAE selection on `dataset`."""
    c = base_config()
    c.family = "traffic"
    c.data.update(name=dataset, eval_split="test")
    c.data.spatial_embedding = ml_collections.ConfigDict(
        {"method": embedding, "dim": dim, **NODE2VEC}
    )
    steps_per_epoch = data.num_windows(dataset, "train", data.dataset_info(dataset)["horizon"])
    steps_per_epoch //= BATCH  # drop_last
    c.train.update(
        steps=EPOCHS * steps_per_epoch,
        batch_size=BATCH,
        eval_batch_size=64,
        log_every=steps_per_epoch,
        eval_every=steps_per_epoch,
        checkpoint_every=steps_per_epoch,
        keep_checkpoints=1,
    )
    c.optimizer.update(name="adamw", learning_rate=1e-3, weight_decay=0.0, clip_norm=0.0)
    c.schedule.update(
        name="step_decay", warmup_steps=0, decay_every=5 * steps_per_epoch, decay_rate=0.7
    )
    c.select.update(split="val", metric="mae", mode="min", patience=PATIENCE)
    return c


def gman_config(dataset: str, embedding: str, name: str, arg: str | None):
    """GMAN with `embedding` ("node2vec", "laplacian", "published") on `dataset`."""
    c = traffic_config(dataset, embedding)
    c.model.update(GMAN, bn_decay_steps=c.schedule.decay_every)
    c.optimizer.update(name="muon", learning_rate=1e-2, adam_learning_rate=1e-3)
    if arg == "smoke":
        c.data.spatial_embedding.update(SMOKE_EMBEDDING)
    return with_variant(c, name, arg, smoke_model=SMOKE_GMAN)
