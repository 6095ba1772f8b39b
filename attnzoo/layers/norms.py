"""Normalisation layers whose params carry logical axis names."""

import jax.numpy as jnp
from flax import nnx


def layer_norm(
    features: int, *, eps: float = 1e-6, dtype=jnp.float32, rngs: nnx.Rngs
) -> nnx.LayerNorm:
    """LayerNorm over the last axis; scale/bias partitioned along `"embed"`."""
    return nnx.LayerNorm(
        features,
        epsilon=eps,
        dtype=dtype,
        scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), ("embed",)),
        bias_init=nnx.with_partitioning(nnx.initializers.zeros_init(), ("embed",)),
        rngs=rngs,
    )


def rms_norm(features: int, *, eps: float = 1e-6, dtype=jnp.float32, rngs: nnx.Rngs) -> nnx.RMSNorm:
    """RMSNorm over the last axis; scale partitioned along `"embed"`."""
    return nnx.RMSNorm(
        features,
        epsilon=eps,
        dtype=dtype,
        scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), ("embed",)),
        rngs=rngs,
    )
