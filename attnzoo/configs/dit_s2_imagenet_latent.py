"""DiT-S/2 on 32x32x4 latents (ImageNet 256 through the SD VAE), 1000 classes, learned sigma.

    python -m attnzoo.train --config=dit_s2_imagenet_latent:smoke --workdir=runs/dit_s2

The official DiT-S/2 recipe (AdamW 1e-4 constant, no weight decay, batch 256, EMA 0.9999,
hybrid MSE + VB loss). There is no ImageNet or VAE here: the data is `random_latents`
(random uniform latents and labels of the right shapes), so this config checks shapes
and the training step only (smoke runs); it learns nothing meaningful.
Embedded data: runs anywhere, no files needed.
"""

from attnzoo.configs._common import with_variant
from attnzoo.configs._diffusion import TINY_DIT, diffusion_config
from attnzoo.zoo.diffusion.dit import PRESETS


def get_config(arg: str | None = None):
    model = dict(name="dit_s2", **PRESETS["s2"], patch_size=2, learn_sigma=True)
    c = diffusion_config(model, name="random_latents")
    c.model.class_dropout_prob = 0.1
    c.diffusion.clip = False
    c.schedule.update(name="constant", warmup_steps=0)
    c.train.update(
        steps=400_000,
        batch_size=256,
        eval_batch_size=256,
        log_every=100,
        checkpoint_every=50_000,
        eval_every=0,
    )
    return with_variant(c, "dit_s2_imagenet_latent", arg, smoke_model=TINY_DIT)
