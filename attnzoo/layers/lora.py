"""Low-rank adapters (LoRA, Hu et al. 2022)."""

import jax
import jax.numpy as jnp
from flax import nnx


class LoRA(nnx.Module):
    """The low-rank update `[..., in] -> [..., out]`: `(alpha / rank) * x A B`, A `[in, r]`
    ~ N(0, 1/r) (PEFT's default is kaiming-uniform; any non-zero A works), B `[r, out]`
    zero, so an adapter starts as a no-op."""

    def __init__(self, in_features: int, out_features: int, rank: int, *, alpha=None, rngs):
        if rank < 1:
            raise ValueError(f"LoRA rank={rank} must be >= 1")
        self.scale = (alpha if alpha is not None else rank) / rank
        init = nnx.initializers.normal(rank**-0.5)
        self.down = nnx.Param(
            init(rngs.params(), (in_features, rank)), out_sharding=("embed", None)
        )
        self.up = nnx.Param(jnp.zeros((rank, out_features)), out_sharding=(None, "embed"))

    def __call__(self, x: jax.Array) -> jax.Array:
        return self.scale * (x @ self.down[...]) @ self.up[...]
