"""ViT-tiny + Select-and-Pack on Fashion-MNIST, 4x4 patches (49 tokens).

    python -m attnzoo.train --config=vit_spa_fmnist --workdir=runs/vit_spa_fmnist

`vit_tiny_fmnist_p4`'s recipe with Select-and-Pack on blocks 2-11 (the first two see every
token, so the gates score contextualised tokens): containers of 98 tokens (two images),
slots for 60% of the batch's tokens, Gumbel temperature 1, and the selection BCE (weight
0.01, the paper's) against the foreground map of each image (a patch is foreground when
most of its pixels are not background). `kept_fraction` is logged for train and eval.
Measured against `vit_tiny_fmnist_p4`, 15 minutes each on 2 CPU cores: 76.9% vs 76.4% test
accuracy, 1.31x the images/s, 46% of tokens kept (benchmarks/README.md).
"""

from attnzoo.configs._common import TINY_VIT, with_variant
from attnzoo.configs.vit_tiny_fmnist_p4 import vit_p4_fmnist_config

SPA = dict(spa_blocks=tuple(range(2, 12)), spa_container_len=98, spa_capacity=0.6, spa_tau=1.0)


def get_config(arg: str | None = None):
    c = vit_p4_fmnist_config()
    c.model.update(SPA)
    c.train.spa_bce_weight = 0.01
    smoke = {**TINY_VIT, "spa_blocks": (0,), "spa_container_len": 98, "spa_capacity": 0.6}
    return with_variant(c, "vit_spa_fmnist", arg, smoke_model=smoke)
