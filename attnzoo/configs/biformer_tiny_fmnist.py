"""BiFormer-tiny on Fashion-MNIST (28x28 grey, 10 classes).

    python -m attnzoo.train --config=biformer_tiny_fmnist --workdir=runs/biformer_tiny_fmnist

`biformer_tiny`: stem stride 2 (14x14 tokens), stage 1 routes 7x7 regions of 2x2 tokens
(top-4), stage 2 7x7 regions of one token (top-16), stage 3 full attention with LePE at
4x4; widths 64/128/256, two blocks per stage. AdamW 1e-3, weight decay 0.05, warmup +
cosine, batch 128. In `benchmarks/vision.py`'s 15 minutes on 2 CPU cores: 86.6% test accuracy
(335 steps) vs ViT-tiny's 76.4% on 4x4 patches (benchmarks/README.md).
"""

from attnzoo.configs._common import base_config, with_variant
from attnzoo.zoo.vision.biformer import PRESETS

SMOKE = {"depths": (1, 1, 1), "widths": (16, 32, 64), "head_dim": 8}


def get_config(arg: str | None = None):
    c = base_config()
    c.family = "vision"
    c.model.update(name="biformer_tiny", **PRESETS["tiny"], head_dim=32, n_win=7, mlp_ratio=3)
    c.data.update(name="fashion_mnist", augment=False)
    c.optimizer.update(name="adamw", learning_rate=1e-3, weight_decay=0.05, clip_norm=1.0)
    c.schedule.update(name="warmup_cosine", warmup_steps=60)
    c.train.update(
        steps=600,
        batch_size=128,
        eval_batch_size=1000,
        log_every=50,
        eval_every=0,
        checkpoint_every=200,
        label_smoothing=0.0,
    )
    return with_variant(c, "biformer_tiny_fmnist", arg, smoke_model=SMOKE)
