"""Gaussian diffusion (DDPM, Ho et al. 2020; improved DDPM, Nichol & Dhariwal 2021) as in
facebookresearch/DiT `diffusion/gaussian_diffusion.py`: linear betas, the forward process,
training targets (epsilon or v), the learned-variance VB term, DDPM and DDIM samplers.

Arrays: images `[b, H, W, C]`; timesteps int `[b]` in `[0, T)`. A denoiser is
`fn(x_t, t) -> (eps [b, H, W, C], frac [b, H, W, C] | None)`: the noise prediction and,
for learned variance, the interpolation `v` in [-1, 1] between log beta_t and the log
posterior variance (the model's second half of channels).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

Denoiser = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array | None]]
VARIANCES = ("large", "small", "learned")


@dataclasses.dataclass(frozen=True)
class Schedule:
    """The `T`-step process with betas linear from `beta_start` to `beta_end` (float64
    tables, as in the official code)."""

    num_timesteps: int = 1000
    beta_start: float = 1e-4
    beta_end: float = 0.02

    def __post_init__(self):
        if self.num_timesteps < 2:
            raise ValueError(f"num_timesteps={self.num_timesteps} must be at least 2")
        if not 0 < self.beta_start <= self.beta_end < 1:
            raise ValueError(
                f"need 0 < beta_start <= beta_end < 1, got {self.beta_start}, {self.beta_end}"
            )

    @property
    def betas(self) -> np.ndarray:
        # The official schedule scales by 1000 / T so any T spans the same noise range.
        scale = 1000 / self.num_timesteps
        return np.linspace(scale * self.beta_start, scale * self.beta_end, self.num_timesteps)

    @property
    def alphas_cumprod(self) -> np.ndarray:
        return np.cumprod(1.0 - self.betas)


def _at(table: np.ndarray, t: jax.Array, ndim: int) -> jax.Array:
    """`table[t]` as float32 `[b, 1, ...]` broadcasting against an array of rank `ndim`."""
    return jnp.asarray(table, jnp.float32)[t].reshape((-1,) + (1,) * (ndim - 1))


def q_sample(schedule: Schedule, x0: jax.Array, t: jax.Array, noise: jax.Array) -> jax.Array:
    """`x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) noise`."""
    abar = _at(schedule.alphas_cumprod, t, x0.ndim)
    return jnp.sqrt(abar) * x0 + jnp.sqrt(1.0 - abar) * noise


def v_target(schedule: Schedule, x0, t, noise) -> jax.Array:
    """`v = sqrt(abar) eps - sqrt(1 - abar) x0` (Salimans & Ho, 2022)."""
    abar = _at(schedule.alphas_cumprod, t, x0.ndim)
    return jnp.sqrt(abar) * noise - jnp.sqrt(1.0 - abar) * x0


def eps_from_v(schedule: Schedule, x_t, t, v) -> jax.Array:
    abar = _at(schedule.alphas_cumprod, t, x_t.ndim)
    return jnp.sqrt(abar) * v + jnp.sqrt(1.0 - abar) * x_t


def _x0_from_eps(abar, x_t, eps):
    return (x_t - jnp.sqrt(1.0 - abar) * eps) / jnp.sqrt(abar)


def _posterior(abar, abar_prev, x0, x_t):
    """Mean, variance and clipped log variance of `q(x_prev | x_t, x0)` for the (possibly
    respaced) step with `beta = 1 - abar / abar_prev`."""
    beta = 1.0 - abar / abar_prev
    var = beta * (1.0 - abar_prev) / (1.0 - abar)
    mean = (jnp.sqrt(abar_prev) * beta * x0 + jnp.sqrt(1.0 - beta) * (1.0 - abar_prev) * x_t) / (
        1.0 - abar
    )
    return mean, var, beta


def _log_variance(kind, beta, post_var, post_var1, frac):
    """Model log variance: 'large' = log beta, 'small' = log posterior variance, 'learned'
    = their interpolation by `(frac + 1) / 2`; at the first step (zero posterior variance)
    the posterior variance of the second step `post_var1` stands in, as in the official code."""
    log_post = jnp.log(jnp.where(post_var > 0, post_var, post_var1))
    if kind == "small":
        return log_post
    if kind == "large":
        return jnp.log(jnp.where(post_var > 0, beta, post_var1))
    f = (frac + 1.0) / 2.0
    return f * jnp.log(beta) + (1.0 - f) * log_post


def _normal_kl(mean1, logvar1, mean2, logvar2):
    return 0.5 * (
        -1.0
        + logvar2
        - logvar1
        + jnp.exp(logvar1 - logvar2)
        + (mean1 - mean2) ** 2 * jnp.exp(-logvar2)
    )


def _approx_std_normal_cdf(x):
    return 0.5 * (1.0 + jnp.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x**3)))


def _discretized_gaussian_log_likelihood(x, means, log_scales):
    """Log-likelihood of data `x` in [-1, 1] quantised to 256 levels (ADM's decoder)."""
    centered = x - means
    inv_stdv = jnp.exp(-log_scales)
    cdf_plus = _approx_std_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = _approx_std_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = jnp.log(jnp.maximum(cdf_plus, 1e-12))
    log_one_minus_cdf_min = jnp.log(jnp.maximum(1.0 - cdf_min, 1e-12))
    log_delta = jnp.log(jnp.maximum(cdf_plus - cdf_min, 1e-12))
    return jnp.where(
        x < -0.999, log_cdf_plus, jnp.where(x > 0.999, log_one_minus_cdf_min, log_delta)
    )


def vb_term(schedule: Schedule, x0, x_t, t, eps, frac) -> jax.Array:
    """Per-example VB loss `[b]` in bits/dim of the learned variance (the mean is held fixed:
    `eps` enters with a stopped gradient, as in the official hybrid loss): KL of the true to
    the model posterior, the decoder NLL at `t = 0`."""
    eps = jax.lax.stop_gradient(eps)
    nd = x0.ndim
    abar = _at(schedule.alphas_cumprod, t, nd)
    abar_prev = _at(np.append(1.0, schedule.alphas_cumprod[:-1]), t, nd)
    true_mean, true_var, beta = _posterior(abar, abar_prev, x0, x_t)
    post_var1 = _posterior_variances(schedule)[1]  # replaces the zero variance at t = 0
    true_logvar = jnp.log(jnp.where(true_var > 0, true_var, post_var1))
    model_logvar = _log_variance("learned", beta, true_var, post_var1, frac)
    model_mean, _, _ = _posterior(abar, abar_prev, _x0_from_eps(abar, x_t, eps), x_t)
    axes = tuple(range(1, nd))
    kl = _normal_kl(true_mean, true_logvar, model_mean, model_logvar).mean(axes) / np.log(2.0)
    nll = -_discretized_gaussian_log_likelihood(x0, model_mean, 0.5 * model_logvar)
    nll = nll.mean(axes) / np.log(2.0)
    return jnp.where(t == 0, nll, kl)


def _posterior_variances(schedule: Schedule) -> np.ndarray:
    abar = schedule.alphas_cumprod
    abar_prev = np.append(1.0, abar[:-1])
    return schedule.betas * (1.0 - abar_prev) / (1.0 - abar)


def timesteps(schedule: Schedule, num_steps: int) -> np.ndarray:
    """`num_steps` timesteps evenly spaced over `[0, T)` (rounded), ascending; all `T` when
    `num_steps == T` (the official `space_timesteps` with one section)."""
    if not 1 <= num_steps <= schedule.num_timesteps:
        raise ValueError(f"num_steps={num_steps} must be in [1, {schedule.num_timesteps}]")
    if num_steps == 1:
        return np.array([schedule.num_timesteps - 1])
    return np.round(np.linspace(0, schedule.num_timesteps - 1, num_steps)).astype(np.int32)


def sample(
    denoiser: Denoiser,
    schedule: Schedule,
    noise: jax.Array,
    rng: jax.Array,
    *,
    method: str = "ddim",
    num_steps: int = 50,
    eta: float = 0.0,
    variance: str = "large",
    clip: bool = True,
    start_step: int | None = None,
) -> jax.Array:
    """Runs the reverse process from `noise` = `x_T` `[b, H, W, C]`; returns `x_0`.

    method: "ddpm" (ancestral steps with the model variance `variance` in VARIANCES; the
      respaced betas `1 - abar_t / abar_prev` with fewer steps) or "ddim" (Song et al. 2021,
      `eta` scales the noise: 0 deterministic, 1 the DDPM posterior variance).
    clip: clip predicted `x_0` to [-1, 1] (pixel data). `start_step`: begin at that index of
      the spaced timesteps (SDEdit: `noise` is then a re-noised image at that timestep).
    Deterministic for a given `rng`.
    """
    if method not in ("ddpm", "ddim"):
        raise ValueError(f"unknown sampler {method!r}; choose 'ddpm' or 'ddim'")
    if variance not in VARIANCES:
        raise ValueError(f"unknown variance {variance!r}; choose one of {VARIANCES}")
    steps = timesteps(schedule, num_steps)
    steps = steps if start_step is None else steps[: start_step + 1]
    abar_all = schedule.alphas_cumprod
    abar = abar_all[steps]
    abar_prev = np.append(1.0, abar[:-1])
    # Posterior variance of the second spaced step: the clipped value at the first.
    beta1 = 1.0 - abar[1] / abar[0] if len(steps) > 1 else 1.0 - abar[0]
    post_var1 = beta1 * (1.0 - abar[0]) / (1.0 - abar[1]) if len(steps) > 1 else beta1
    table = jnp.asarray(np.stack([abar, abar_prev], 1), jnp.float32)  # [n, 2]
    b = noise.shape[0]

    def step(x, inputs):
        i, key = inputs
        t = jnp.full((b,), jnp.asarray(steps)[i], jnp.int32)
        a, ap = table[i, 0], table[i, 1]
        eps, frac = denoiser(x, t)
        x0 = _x0_from_eps(a, x, eps)
        if clip:
            x0 = jnp.clip(x0, -1.0, 1.0)
        eps = (x - jnp.sqrt(a) * x0) / jnp.sqrt(1.0 - a)  # consistent with the clipped x0
        z = jax.random.normal(key, x.shape, x.dtype)
        last = (i == 0).astype(x.dtype)
        if method == "ddpm":
            mean, var, beta = _posterior(a, ap, x0, x)
            logvar = _log_variance(variance, beta, var, post_var1, frac)
            return mean + (1.0 - last) * jnp.exp(0.5 * logvar) * z, None
        sigma = eta * jnp.sqrt((1.0 - ap) / (1.0 - a) * (1.0 - a / ap))
        mean = jnp.sqrt(ap) * x0 + jnp.sqrt(jnp.maximum(1.0 - ap - sigma**2, 0.0)) * eps
        return mean + (1.0 - last) * sigma * z, None

    n = len(steps)
    keys = jax.random.split(rng, n)
    order = jnp.arange(n - 1, -1, -1)
    x, _ = jax.lax.scan(step, noise, (order, keys))
    return x
