"""ViT-tiny on Fashion-MNIST (28x28 grey, 10 classes), 7x7 patches: 16 tokens per image.

    python -m attnzoo.train --config=vit_tiny_fmnist --workdir=runs/vit_tiny_fmnist

ViT-tiny (12 layers, width 192, 3 heads), learned position embeddings, mean pooling, no
augmentation or label smoothing (the run is short enough to underfit, not overfit). At
~0.5 GFLOP per training image (4x the 14x14 patches' 4 tokens) it sees ~2.6 epochs in 14
minutes on 2 CPU cores, too few for AdamW (85.2% in 16 minutes at 2e-3, batch 256). Muon
(lr 1e-2, momentum 0.95) orthogonalises the weight matrices (patch embedding, position
embedding, MLP kernels, the q/k/v/out kernels one matrix per head), AdamW (4e-3, b2 0.95)
trains the norms, every bias and the head (`muon_dimensions`); warmup + cosine, batch 256,
620 steps. Measured on 2 CPU cores: 88.7% test accuracy in 846 s, compile and eval included
(benchmarks/README.md, with the 5-minute runs that chose the optimizer).

Needs the Fashion-MNIST files in `$ATTNZOO_DATA_DIR/images/fashion_mnist/` (or
`--config.data.data_dir=DIR`).
"""

from attnzoo.configs._common import TINY_VIT, base_config, with_variant
from attnzoo.zoo.vision.vit import PRESETS


def get_config(arg: str | None = None):
    c = base_config()
    c.family = "vision"
    c.model.update(
        name="vit_tiny", **PRESETS["tiny"], patch_size=7, pool="gap", posemb="learn", dropout=0.0
    )
    c.data.update(name="fashion_mnist", augment=False)
    c.optimizer.update(
        name="muon",
        learning_rate=0.01,
        adam_learning_rate=4e-3,
        b2=0.95,
        weight_decay=0.05,
        clip_norm=1.0,
    )
    c.schedule.update(name="warmup_cosine", warmup_steps=25)
    c.train.update(
        steps=620,
        batch_size=256,
        eval_batch_size=1000,
        log_every=50,
        eval_every=0,
        checkpoint_every=250,
        label_smoothing=0.0,
    )
    return with_variant(c, "vit_tiny_fmnist", arg, smoke_model=TINY_VIT)
