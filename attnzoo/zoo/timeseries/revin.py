"""Reversible instance normalisation (Kim et al., ICLR 2022), without the affine part.

As Pathformer's `RevIN(affine=False, subtract_last=False)`: every series of the batch is
standardised over time with its own mean and biased std (`+ eps` inside the square root);
the forecast is mapped back with the same statistics. The statistics carry no gradient.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp


class RevinStats(NamedTuple):
    mean: jax.Array  # [b, 1, C]
    std: jax.Array  # [b, 1, C]


def revin_normalize(x: jax.Array, eps: float = 1e-5) -> tuple[jax.Array, RevinStats]:
    """x `[b, T, C]` → (`(x - mean) / std`, stats); mean/std over T per (b, C)."""
    mean = jax.lax.stop_gradient(x.mean(axis=1, keepdims=True))
    std = jax.lax.stop_gradient(jnp.sqrt(x.var(axis=1, keepdims=True) + eps))
    return (x - mean) / std, RevinStats(mean, std)


def revin_denormalize(y: jax.Array, stats: RevinStats) -> jax.Array:
    """y `[b, H, C]` in normalised units → original units."""
    return y * stats.std + stats.mean
