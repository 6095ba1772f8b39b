"""ViT-tiny on scikit-learn digits (8x8 grey, 10 classes): the `make demo` default.

    python -m attnzoo.train --config=vit_tiny_digits --workdir=runs/vit_tiny_digits

Patches of 2x2 (16 tokens + a class token), AdamW with warmup + cosine, light translation
augmentation. Reaches >= 95% test accuracy (360 held-out digits) in under a minute of
training on 2 CPU cores; see benchmarks/README.md for the measured figures.
"""

from attnzoo.configs._common import TINY_VIT, base_config, with_variant
from attnzoo.zoo.vision.vit import PRESETS


def get_config(arg: str | None = None):
    c = base_config()
    c.family = "vision"
    c.model.update(
        name="vit_tiny", **PRESETS["tiny"], patch_size=2, pool="tok", posemb="learn", dropout=0.0
    )
    c.data.update(name="digits", augment=True)
    c.optimizer.update(name="adamw", learning_rate=1e-3, weight_decay=0.05, clip_norm=1.0)
    c.schedule.update(name="warmup_cosine", warmup_steps=30)
    c.train.update(
        steps=300,
        batch_size=128,
        eval_batch_size=360,
        log_every=25,
        eval_every=100,
        checkpoint_every=100,
        label_smoothing=0.1,
    )
    return with_variant(c, "vit_tiny_digits", arg, smoke_model=TINY_VIT)
