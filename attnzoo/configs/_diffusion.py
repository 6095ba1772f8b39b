"""Shared recipe of the diffusion configs (not a config: the name starts with `_`)."""

import ml_collections

from attnzoo.configs._common import base_config

# A DiT small enough for one-step smoke runs.
TINY_DIT = {"hidden_size": 32, "depth": 1, "num_heads": 2, "patch_size": 4}


def diffusion_config(model: dict, **data) -> ml_collections.ConfigDict:
    """DDPM (1000 steps, linear betas 1e-4..0.02, epsilon prediction), DDIM sampling (50
    steps, eta 0) with classifier-free guidance 4; AdamW without weight decay (official DiT)."""
    c = base_config()
    c.family = "diffusion"
    c.model.update(model)
    c.data.update(data)
    c.diffusion = ml_collections.ConfigDict(
        {
            "num_timesteps": 1000,
            "beta_start": 1e-4,
            "beta_end": 0.02,
            "prediction": "eps",
            "sampler": "ddim",
            "sample_steps": 50,
            "eta": 0.0,
            "guidance": 4.0,
            "clip": True,
            "low_res_factor": 2,
            "renoise_fraction": 0.3,
        }
    )
    c.optimizer.update(name="adamw", learning_rate=1e-4, weight_decay=0.0, clip_norm=1.0)
    c.schedule.update(name="warmup_cosine", warmup_steps=100)
    c.train.ema_decay = 0.9999
    return c
