"""Shared recipe of the gaze configs (not a config: the name starts with `_`)."""

import ml_collections

from attnzoo.configs._common import base_config, with_variant


def gaze_config(name: str, arg: str | None, model: dict, smoke_model: dict):
    """NUS scene scanpaths: AdamW 3e-4, warmup + cosine, 2000 steps of 64 (~30 epochs of
    the ~4.3k train scanpaths), best checkpoint by validation NLL; `data.mirror=True`
    mirrors half the training scanpaths left–right; `:smoke` evaluates on 2 images per
    split (24 scanpaths) to stay fast."""
    c = base_config()
    c.family = "gaze"
    c.model.update(model)
    c.data.update(name="nus_scene", eval_split="test", mirror=False)
    c.optimizer.update(name="adamw", learning_rate=3e-4, weight_decay=0.01, clip_norm=1.0)
    c.schedule.update(name="warmup_cosine", warmup_steps=100)
    c.train.update(
        steps=2000,
        batch_size=64,
        eval_batch_size=256,
        log_every=50,
        eval_every=200,
        checkpoint_every=200,
        keep_checkpoints=1,
    )
    c.select.update(split="val", metric="nll", mode="min", patience=0)
    c.sample = ml_collections.ConfigDict({"beam_size": 0, "temperature": 1.0})
    c = with_variant(c, name, arg, smoke_model=smoke_model)
    if arg == "smoke":
        c.data.eval_split, c.select.split = "test[:2]", "val[:2]"
    return c
