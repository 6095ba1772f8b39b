"""Scale-DiT-tiny on Fashion-MNIST padded to 32x32; samples at 64x64 and 128x128.

    python -m attnzoo.train --config=scale_dit_tiny_fmnist --workdir=runs/scale_dit
    python -m attnzoo.sample --workdir=runs/scale_dit --num=16 --resolution=128

The `dit_tiny` backbone on 2x2 patches (16x16 tokens) with the Scale-DiT pathway: local
windows of radius 4 tokens in 4x4-token window-first order, LoRA rank 16. Each training
batch trains half as a plain DiT (the low-res stage) and half anchored on the image
average-pooled to 16x16 at its own random timestep. Sampling above 32x32 runs the two-stage
sampler (32x32, upsample, re-noise to 30% of the steps, denoise anchored on the 32x32
sample). AdamW 1e-3 (`dit_tiny_fmnist`'s earlier optimiser; its Muon is untried on the LoRA
bridge); not yet trained to a measured quality.

Needs the Fashion-MNIST files in `$ATTNZOO_DATA_DIR/images/fashion_mnist/`.
"""

from attnzoo.configs._common import with_variant
from attnzoo.configs._diffusion import TINY_DIT, diffusion_config
from attnzoo.zoo.diffusion.dit import PRESETS


def get_config(arg: str | None = None):
    model = dict(
        name="scale_dit_tiny",
        **PRESETS["tiny"],
        patch_size=2,
        learn_sigma=False,
        radius=4,
        window=4,
        lora_rank=16,
        class_dropout_prob=0.1,
    )
    c = diffusion_config(model, name="fashion_mnist", pad_to=32)
    c.optimizer.learning_rate = 1e-3
    c.train.update(
        steps=6000,
        batch_size=128,
        eval_batch_size=500,
        log_every=100,
        eval_every=0,
        checkpoint_every=500,
        ema_decay=0.999,
    )
    return with_variant(c, "scale_dit_tiny_fmnist", arg, smoke_model=TINY_DIT)
