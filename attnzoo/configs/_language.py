"""Shared recipe of the language-model configs (not a config: the name starts with `_`)."""

import ml_collections

from attnzoo.configs._common import base_config, with_variant

# One layer of width 32 over 16 tokens: compiles in seconds for one-step smoke runs.
SMOKE_LM = {
    "name": "lm_nano",
    "width": 32,
    "depth": 1,
    "num_heads": 2,
    "num_kv_heads": 1,
    "mlp_dim": 64,
}
SMOKE_CONTEXT = 16


def dense_tiny() -> dict:
    """The dense baseline `lm_tiny` (758,912 params) of `lm_tiny_shakespeare`."""
    from attnzoo.zoo.language.presets import SIZES

    return dict(
        name="lm_tiny", **SIZES["tiny"], attention="dense", mlp="swiglu", mlp_dim=344,
        tie_embeddings=True,
    )  # fmt: skip


def language_config(
    dataset: str, *, model: dict, context_len: int, steps: int, batch: int
) -> ml_collections.ConfigDict:
    """Family, data and a warmup-cosine AdamW recipe for a byte-level LM on `dataset`."""
    c = base_config()
    c.family = "language"
    c.model.update(model)
    c.data.update(
        name=dataset,
        train_split="train",
        eval_split="val",
        context_len=context_len,
        tokenizer="byte",
        vocab_size=0,
    )
    c.optimizer.update(
        name="adamw", learning_rate=3e-3, weight_decay=0.1, b1=0.9, b2=0.95, clip_norm=1.0
    )
    c.optimizer.qk_clip = 0.0  # τ of MuonClip's QK-Clip (0 = off)
    c.schedule.update(name="warmup_cosine", warmup_steps=min(100, steps // 10), end_fraction=0.1)
    c.train.update(
        steps=steps,
        batch_size=batch,
        eval_batch_size=64,
        log_every=50,
        eval_every=max(steps // 4, 1),
        checkpoint_every=max(steps // 4, 1),
        keep_checkpoints=1,
    )
    # Keep the checkpoint of lowest validation loss: small texts overfit (tiny-shakespeare's
    # val loss rises after ~1500 steps of `lm_tiny_shakespeare`).
    c.select.update(split=c.data.eval_split, metric="loss", mode="min")
    return c


def finish(c: ml_collections.ConfigDict, name: str, arg: str | None, smoke_model=None):
    """`NAME:smoke`: a one-step run of a one-layer model over 16 tokens (`smoke_model`:
    further model fields of the smoke size)."""
    if arg == "smoke":
        c.data.context_len = SMOKE_CONTEXT
        c.data.vocab_size = min(c.data.vocab_size, 320) if c.data.vocab_size else 0
    return with_variant(c, name, arg, smoke_model={**SMOKE_LM, **(smoke_model or {})})
