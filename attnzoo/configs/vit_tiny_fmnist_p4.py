"""ViT-tiny on Fashion-MNIST with 4x4 patches: 49 tokens per image, where attention matters.

    python -m attnzoo.train --config=vit_tiny_fmnist_p4 --workdir=runs/vit_tiny_fmnist_p4

The baseline of `benchmarks/vision.py` (vs `vit_spa_fmnist` and `biformer_tiny_fmnist`):
ViT-tiny (12 layers, width 192, 3 heads), learned position embeddings, mean pooling, AdamW
1e-3, warmup + cosine, batch 128. At 49 tokens a training image costs ~1.6 GFLOP (12x the
4-token `vit_tiny_fmnist`), so `train.steps` was sized from FLOPs for roughly 15 minutes on 2
CPU cores; measured: 24.5 min in all, 80.5% test accuracy (the tag `vit_tiny.fmnist_p4`).

Needs the Fashion-MNIST files in `$ATTNZOO_DATA_DIR/images/fashion_mnist/`.
"""

from attnzoo.configs._common import TINY_VIT, base_config, with_variant
from attnzoo.zoo.vision.vit import PRESETS


def vit_p4_fmnist_config():
    """The shared recipe of `vit_tiny_fmnist_p4` and `vit_spa_fmnist`."""
    c = base_config()
    c.family = "vision"
    c.model.update(
        name="vit_tiny", **PRESETS["tiny"], patch_size=4, pool="gap", posemb="learn", dropout=0.0
    )
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
    return c


def get_config(arg: str | None = None):
    return with_variant(vit_p4_fmnist_config(), "vit_tiny_fmnist_p4", arg, smoke_model=TINY_VIT)
