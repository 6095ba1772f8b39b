"""Fine-tune ViT-tiny from Fashion-MNIST (28x28, a 7x7 patch grid) to sklearn digits.

    python -m attnzoo.train --config=vit_tiny_fmnist_to_digits --workdir=runs/ft_digits

Starts from the tag `vit_tiny.fmnist_p4` (its file in `$ATTNZOO_CACHE/vit_tiny.fmnist_p4/`;
produce it with `vit_tiny_fmnist_p4` + `python -m attnzoo.export`). The 8x8 digits are
upsampled bilinearly to 32x32 (`data.resize_to`), near the scale the source's 4x4 patches
saw on garments: the patch stem and the encoder load as they are, the learned position
table is resampled bilinearly from the 7x7 to the 8x8 token grid, and the classifier is
reset (`init_from.skip`). 60 steps of 128 (5 epochs of the 1437 training digits) at AdamW
5e-4; `benchmarks/finetune.py` compares it with the same run from scratch: measured 73.9%
test accuracy from the tag vs 41.7% from scratch. At the digits' own 8x8 (a 2x2 grid) the
tag loses to scratch (88.6% vs 97.8%): garment features only transfer at their own scale
(benchmarks/README.md). `:smoke` drops `init_from` (CI has no weights cache;
tests/test_pretrained.py runs it from a tiny tag).
"""

from attnzoo.configs._common import TINY_VIT, base_config, with_variant
from attnzoo.zoo.vision.vit import PRESETS


def get_config(arg: str | None = None):
    c = base_config()
    c.family = "vision"
    c.model.update(
        name="vit_tiny", **PRESETS["tiny"], patch_size=4, pool="gap", posemb="learn", dropout=0.0
    )
    c.data.update(name="digits", augment=False, resize_to=32)
    c.optimizer.update(name="adamw", learning_rate=5e-4, weight_decay=0.05, clip_norm=1.0)
    c.schedule.update(name="warmup_cosine", warmup_steps=6)
    c.train.update(
        steps=60,
        batch_size=128,
        eval_batch_size=360,
        log_every=10,
        eval_every=0,
        checkpoint_every=60,
        label_smoothing=0.0,
    )
    c.init_from.update(path="vit_tiny.fmnist_p4", skip=(r"^head/",))
    if arg == "smoke":
        c.init_from.path = ""
    return with_variant(c, "vit_tiny_fmnist_to_digits", arg, smoke_model=TINY_VIT)
