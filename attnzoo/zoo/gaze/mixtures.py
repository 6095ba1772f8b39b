"""Mixture densities of the next fixation: log-normal durations, 2-D Gaussian positions.

Heads output raw parameters; these functions give log-densities (for the point-process
NLL) and samples. Units: durations in seconds, positions in [0, 1] image-side fractions.
"""

import math

import jax
import jax.numpy as jnp

LOG_2PI = math.log(2 * math.pi)  # a Python float: the module may load under a trace


def lognormal_mixture_logpdf(params: jax.Array, duration: jax.Array) -> jax.Array:
    """`params [..., 3K]` = (logits, μ, log σ) of log-duration; `duration [...]` > 0 →
    `log p(duration) = log Σ_k w_k N(log d; μ_k, σ_k) − log d` `[...]`."""
    logits, mu, log_sigma = jnp.split(params, 3, axis=-1)
    z = (jnp.log(duration)[..., None] - mu) / jnp.exp(log_sigma)
    log_normal = -0.5 * (z**2 + LOG_2PI) - log_sigma
    mixed = jax.nn.logsumexp(jax.nn.log_softmax(logits) + log_normal, axis=-1)
    return mixed - jnp.log(duration)


def sample_lognormal_mixture(
    key: jax.Array, params: jax.Array, temperature: float = 1.0
) -> jax.Array:
    """One duration per leading index of `params [..., 3K]` → `[...]`. `temperature` τ
    samples the component from `softmax(logits / τ)` and scales every σ by τ (τ = 1: the
    density itself; τ → 0: the median of the most likely component)."""
    logits, mu, log_sigma = jnp.split(params, 3, axis=-1)
    k_comp, k_noise = jax.random.split(key)
    k = jax.random.categorical(k_comp, logits / temperature)[..., None]
    pick = lambda a: jnp.take_along_axis(a, k, axis=-1)[..., 0]
    noise = temperature * jax.random.normal(k_noise, k.shape[:-1])
    return jnp.exp(pick(mu) + jnp.exp(pick(log_sigma)) * noise)


def _gaussian2d(params: jax.Array):
    """`params [..., 5K]` → (logits, means [..., K, 2] in (0, 1) via tanh, log σ [..., K, 2])."""
    logits, mean, log_sigma = jnp.split(
        params, [params.shape[-1] // 5, 3 * params.shape[-1] // 5], -1
    )
    shape = (*logits.shape, 2)
    return logits, (jnp.tanh(mean.reshape(shape)) + 1) / 2, log_sigma.reshape(shape)


def gaussian2d_mixture_logpdf(params: jax.Array, xy: jax.Array) -> jax.Array:
    """`params [..., 5K]` = (logits, tanh-squashed means, log σ) of K axis-aligned 2-D
    Gaussians; `xy [..., 2]` → `log p(xy)` `[...]`."""
    logits, mean, log_sigma = _gaussian2d(params)
    z = (xy[..., None, :] - mean) / jnp.exp(log_sigma)  # [..., K, 2]
    log_normal = (-0.5 * (z**2 + LOG_2PI) - log_sigma).sum(-1)
    return jax.nn.logsumexp(jax.nn.log_softmax(logits) + log_normal, axis=-1)


def sample_gaussian2d_mixture(
    key: jax.Array, params: jax.Array, temperature: float = 1.0
) -> jax.Array:
    """One position per leading index of `params [..., 5K]` → `[..., 2]` (unclipped);
    `temperature` as in `sample_lognormal_mixture`."""
    logits, mean, log_sigma = _gaussian2d(params)
    k_comp, k_noise = jax.random.split(key)
    k = jax.random.categorical(k_comp, logits / temperature)[..., None, None]
    pick = lambda a: jnp.take_along_axis(a, k, axis=-2)[..., 0, :]
    noise = temperature * jax.random.normal(k_noise, pick(mean).shape)
    return pick(mean) + jnp.exp(pick(log_sigma)) * noise
