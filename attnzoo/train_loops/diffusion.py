"""Diffusion: DDPM training of DiT-style denoisers, DDPM/DDIM sampling with classifier-free
guidance.

Config (`config.diffusion`): `num_timesteps` (1000), `beta_start`/`beta_end` (linear),
`prediction` ("eps" or "v"), sampling defaults `sampler` ("ddim"/"ddpm"), `sample_steps`,
`eta`, `guidance` (classifier-free scale; 1 = none), `clip` (clip predicted x0 to [-1, 1]);
for Scale-DiT `low_res_factor` (training: the low-res branch sees the image average-pooled
by it) and `renoise_fraction` (two-stage sampling restarts at that fraction of the steps).
Batches: `image` float32 `[b, H, W, C]` as the image pipeline makes it (standardised; mapped
back to [-1, 1] here), `label` int32 `[b]`.

Every random number of a training step (timesteps, noise, label dropout) comes from the
step key, so a resumed run draws the same numbers.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attnzoo import data
from attnzoo.train_loops import gaussian_diffusion as gd
from attnzoo.train_loops.family import Family, model_kwargs
from attnzoo.zoo.diffusion.scale_dit import ScaleDiT
from attnzoo.zoo.registry import create_model


def avg_pool(x: jax.Array, factor: int) -> jax.Array:
    """`[b, H, W, C]` -> `[b, H/f, W/f, C]` by averaging `f x f` blocks."""
    b, h, w, c = x.shape
    return x.reshape(b, h // factor, factor, w // factor, factor, c).mean((2, 4))


class DiffusionFamily(Family):
    """DiT / Scale-DiT denoisers on images or latents (see module docstring)."""

    def __init__(self, config, workdir=None):
        super().__init__(config, workdir)
        cfg = config.diffusion
        self.schedule = gd.Schedule(cfg.num_timesteps, cfg.beta_start, cfg.beta_end)
        if cfg.prediction not in ("eps", "v"):
            raise ValueError(f"diffusion.prediction={cfg.prediction!r} must be 'eps' or 'v'")

    # ------------------------------------------------------------------ data
    def data_shape(self) -> tuple[tuple[int, int, int], int]:
        """`((H, W, C), num_classes)` of the training data (after resizing and padding)."""
        return self.image_shape(), data.dataset_info(self.config.data.name)["num_classes"]

    def to_model_space(self, images: jax.Array) -> jax.Array:
        """Pipeline images (standardised pixels) -> [-1, 1]."""
        info = data.dataset_info(self.config.data.name)
        return (images * info["std"] + info["mean"]) * 2.0 - 1.0

    # ----------------------------------------------------------------- model
    def build_model(self, *, rngs: nnx.Rngs) -> nnx.Module:
        (h, w, c), classes = self.data_shape()
        if h != w:
            raise ValueError(f"DiT needs square inputs, got {h}x{w}")
        kwargs = dict(input_size=h, in_channels=c, num_classes=classes)
        kwargs.update(model_kwargs(self.config.model))
        return create_model(self.config.model.name, rngs=rngs, **kwargs)

    def _forward(self, model, x0, x_t, t, y, rng, label_rng):
        """The model output; Scale-DiT: the first half of the batch as a plain DiT (the
        low-res stage), the second anchored on its pooled image noised at its own `t_low`."""
        if not isinstance(model, ScaleDiT):
            return model(x_t, t, y, rng=label_rng)
        half = x0.shape[0] // 2
        k_t, k_noise = jax.random.split(rng)
        x_low = avg_pool(x0[half:], self.config.diffusion.low_res_factor)
        t_low = jax.random.randint(k_t, (x_low.shape[0],), 0, self.schedule.num_timesteps)
        x_low = gd.q_sample(self.schedule, x_low, t_low, jax.random.normal(k_noise, x_low.shape))
        y1, y2 = (None, None) if y is None else (y[:half], y[half:])
        plain = model(x_t[:half], t[:half], y1, rng=label_rng)
        joint = model(x_t[half:], t[half:], y2, x_low=x_low, t_low=t_low, rng=label_rng)
        return jnp.concatenate([plain, joint])

    def _per_example_loss(self, model, x0, labels, rng, *, train: bool):
        k_t, k_noise, k_label, k_low = jax.random.split(rng, 4)
        b = x0.shape[0]
        t = jax.random.randint(k_t, (b,), 0, self.schedule.num_timesteps)
        noise = jax.random.normal(k_noise, x0.shape, x0.dtype)
        x_t = gd.q_sample(self.schedule, x0, t, noise)
        y = labels if model.num_classes else None
        out = self._forward(model, x0, x_t, t, y, k_low, k_label if train else None)
        c = x0.shape[-1]
        pred = out[..., :c]
        if self.config.diffusion.prediction == "v":
            target = gd.v_target(self.schedule, x0, t, noise)
        else:
            target = noise
        axes = tuple(range(1, x0.ndim))
        mse = ((pred - target) ** 2).mean(axes)  # [b]
        if not model.learn_sigma:
            return mse, mse
        eps = (
            pred
            if self.config.diffusion.prediction == "eps"
            else gd.eps_from_v(self.schedule, x_t, t, pred)
        )
        vb = gd.vb_term(self.schedule, x0, x_t, t, eps, out[..., c:])
        return mse + vb, mse

    def loss(self, model, batch, rng):
        x0 = self.to_model_space(batch["image"])
        loss, mse = self._per_example_loss(model, x0, batch["label"], rng, train=True)
        return loss.mean(), {"mse": mse.mean()}

    def eval_metrics(self, model, batch):
        x0 = self.to_model_space(batch["image"])
        rng = jax.random.key(self.config.seed)  # the same draws at every evaluation
        loss, mse = self._per_example_loss(model, x0, batch["label"], rng, train=False)
        mask = batch["mask"].astype(jnp.float32)
        count = mask.sum()
        return {"loss": ((loss * mask).sum(), count), "mse": ((mse * mask).sum(), count)}

    # -------------------------------------------------------------- sampling
    def denoiser(self, model, labels: jax.Array | None, guidance: float, **extra) -> gd.Denoiser:
        """`fn(x_t, t) -> (eps, frac)` of `model` for `labels` (and `extra` model inputs such
        as Scale-DiT's `x_low`, `t_low`), classifier-free guided: `eps_u + guidance (eps_c -
        eps_u)` on every noise channel (the official `forward_with_cfg` guides only the first
        three); the variance comes from the conditional half."""
        pred_v = self.config.diffusion.prediction == "v"

        def split(out, x, t):
            c = x.shape[-1]
            pred = out[..., :c]
            eps = gd.eps_from_v(self.schedule, x, t, pred) if pred_v else pred
            return eps, (out[..., c:] if model.learn_sigma else None)

        if labels is None or guidance == 1.0:
            return lambda x, t: split(model(x, t, labels, **extra), x, t)
        null = jnp.full_like(labels, model.null_class)
        doubled = {k: jnp.concatenate([v, v]) for k, v in extra.items()}

        def guided(x, t):
            twice = jnp.concatenate([x, x]), jnp.concatenate([t, t])
            out = model(*twice, jnp.concatenate([labels, null]), **doubled)
            cond, uncond = jnp.split(out, 2)
            eps_c, frac = split(cond, x, t)
            eps_u, _ = split(uncond, x, t)
            return eps_u + guidance * (eps_c - eps_u), frac

        return guided

    def generate(
        self,
        model,
        labels: np.ndarray | None,
        *,
        num: int,
        seed: int = 0,
        guidance: float | None = None,
        resolution: int | None = None,
    ) -> np.ndarray:
        """`num` samples `[num, R, R, C]` in [-1, 1] (R: `resolution`, default the training
        size), class-conditional on `labels` `[num]` when the model is."""
        cfg = self.config.diffusion
        (h, _, c), _ = self.data_shape()
        size = resolution or h
        if size % model.patch_size:
            raise ValueError(
                f"resolution {size} is not a multiple of the patch size {model.patch_size}"
            )
        if not model.num_classes:
            if guidance is not None:
                raise ValueError(
                    "guidance needs a class-conditional model; this one is unconditional"
                )
            labels, guidance = None, 1.0
        guidance = cfg.guidance if guidance is None else float(guidance)
        if guidance != 1.0:
            model.null_class  # noqa: B018  (raises when the model has no null class)
        key_noise, key_steps = jax.random.split(jax.random.key(seed))
        noise = jax.random.normal(key_noise, (num, size, size, c))
        y = None if labels is None else jnp.asarray(labels, jnp.int32)
        if not isinstance(model, ScaleDiT) or size == h:
            return np.asarray(self._run_sampler(model, noise, y, key_steps, guidance))
        # Two stages: the training size, upsampled, re-noised to a late step, denoised at
        # `size` anchored on the clean low-res image (t_low = 0).
        if size % h:
            raise ValueError(f"Scale-DiT samples at multiples of {h}, got {size}")
        low = jnp.asarray(self.generate(model, labels, num=num, seed=seed, guidance=guidance))
        start = int(round(cfg.renoise_fraction * (cfg.sample_steps - 1)))
        t_start = jnp.full((num,), gd.timesteps(self.schedule, cfg.sample_steps)[start])
        up = jax.image.resize(low, noise.shape, "bilinear")
        x = gd.q_sample(self.schedule, up, t_start, noise)
        extra = dict(x_low=low, t_low=jnp.zeros((num,), jnp.int32))
        return np.asarray(self._run_sampler(model, x, y, key_steps, guidance, start, **extra))

    def _run_sampler(self, model, x, labels, key, guidance, start=None, **extra):
        cfg = self.config.diffusion

        @nnx.jit
        def run(model, x, labels, key, extra):
            return gd.sample(
                self.denoiser(model, labels, guidance, **extra),
                self.schedule,
                x,
                key,
                method=cfg.sampler,
                num_steps=cfg.sample_steps,
                eta=cfg.eta,
                variance="learned" if model.learn_sigma else "large",
                clip=cfg.clip,
                start_step=start,
            )

        return run(model, x, labels, key, extra)

    def sample(self, model, out_dir, *, split, num, seed=0, guidance=None, resolution=None):
        """A PNG grid of `num` samples (labels cycling over the classes, one row per class
        when conditional) and the raw samples as `samples.npz`."""
        from attnzoo.eval.diffusion import save_grid

        _, classes = self.data_shape()
        labels = np.arange(num) % classes if model.num_classes else None
        images = self.generate(
            model, labels, num=num, seed=seed, guidance=guidance, resolution=resolution
        )
        npz = os.path.join(out_dir, "samples.npz")
        np.savez(npz, images=images, labels=labels if labels is not None else np.zeros(0))
        png = os.path.join(out_dir, "grid.png")
        save_grid(images, png, columns=classes if model.num_classes else None)
        return [png, npz]


FAMILY = DiffusionFamily
