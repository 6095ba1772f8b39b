"""ViT-tiny on Fashion-MNIST (28x28 grey, 10 classes).

    python -m attnzoo.train --config=vit_tiny_fmnist --workdir=runs/vit_tiny_fmnist

ViT-tiny (12 layers, width 192) on 14x14 patches (4 tokens, mean pooling): at ~130 MFLOP
per training image it sees ~7 epochs in 13 minutes, where 7x7 patches (16 tokens, 4x the
FLOPs) would see fewer than two. AdamW 2e-3, warmup + cosine, batch 512, no augmentation
or label smoothing (the run is short enough to underfit, not overfit). Measured on 2 CPU
cores: 88.4% test accuracy in 835 s, compile and eval included (benchmarks/README.md).

Needs the Fashion-MNIST files in `$ATTNZOO_DATA_DIR/images/fashion_mnist/` (or
`--config.data.data_dir=DIR`).
"""

from attnzoo.configs._common import TINY_VIT, base_config, with_variant
from attnzoo.zoo.vision.vit import PRESETS


def get_config(arg: str | None = None):
    c = base_config()
    c.family = "vision"
    c.model.update(
        name="vit_tiny", **PRESETS["tiny"], patch_size=14, pool="gap", posemb="learn", dropout=0.0
    )
    c.data.update(name="fashion_mnist", augment=False)
    c.optimizer.update(name="adamw", learning_rate=2e-3, weight_decay=0.05, clip_norm=1.0)
    c.schedule.update(name="warmup_cosine", warmup_steps=80)
    c.train.update(
        steps=780,
        batch_size=512,
        eval_batch_size=1000,
        log_every=100,
        eval_every=1000,
        checkpoint_every=500,
        label_smoothing=0.0,
    )
    return with_variant(c, "vit_tiny_fmnist", arg, smoke_model=TINY_VIT)
