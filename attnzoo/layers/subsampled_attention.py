"""SSA: stochastically subsampled self-attention ("Information Pathways", Hussain et al. 2023).

In training (an ``rng`` given) each query block of ``block_size`` tokens attends to a random,
locally biased subset of the key blocks: its own and the ``local_blocks - 1`` before it
always, plus ``random_blocks`` drawn uniformly without replacement from the older ones (per
batch row and head, fresh each call), causal inside: a ``BlockSparse`` mask, so the cost
follows the subset. Without an ``rng`` (eval, decoding) it is dense causal attention. No
official code exists; the block granularity is our choice (it lets ``attend`` skip the
dropped blocks).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attnzoo.layers.attention import attend
from attnzoo.layers.causal_attention import CausalAttention
from attnzoo.layers.masks import BlockSparse

__all__ = ["SubsampledAttention", "subsampled_blocks"]


def subsampled_blocks(rng, batch, heads, num_blocks, local_blocks, random_blocks) -> jax.Array:
    """int32 ``[batch, heads, num_blocks, local + random]``: key blocks per query block (-1 =
    none): blocks ``n - local + 1 .. n`` and ``random_blocks`` random older ones."""
    n = jnp.arange(num_blocks)[:, None]
    local = n - jnp.arange(local_blocks)[None, :]  # [nb, local]
    local = jnp.broadcast_to(jnp.where(local >= 0, local, -1), (batch, heads, *local.shape))
    if random_blocks == 0:
        return local.astype(jnp.int32)
    older = jnp.arange(num_blocks)[None, :] <= n - local_blocks  # [nb, nb]
    score = jax.random.uniform(rng, (batch, heads, num_blocks, num_blocks))
    value, index = jax.lax.top_k(jnp.where(older, score, -1.0), min(random_blocks, num_blocks))
    far = jnp.where(value >= 0, index, -1)
    return jnp.concatenate([local, far], axis=-1).astype(jnp.int32)


class SubsampledAttention(CausalAttention):
    """SSA causal attention (``"ssa"``). Options: ``block_size`` (64), ``local_blocks`` (2),
    ``random_blocks`` (2)."""

    def __init__(
        self, in_features, num_heads, *, block_size=64, local_blocks=2, random_blocks=2, **kw
    ):
        if block_size <= 0 or local_blocks <= 0 or random_blocks < 0:
            raise ValueError(
                f"SSA needs block_size, local_blocks > 0 and random_blocks >= 0, got "
                f"{block_size}, {local_blocks}, {random_blocks}"
            )
        self.block_size = block_size
        self.local_blocks, self.random_blocks = local_blocks, random_blocks
        super().__init__(in_features, num_heads, **kw)

    def attend_cached(self, q, k, v, *, x, offset, rng, decode):
        if rng is None or decode:
            return super().attend_cached(q, k, v, x=x, offset=offset, rng=rng, decode=decode)
        b, t, h, _ = q.shape
        nb = -(-t // self.block_size)
        blocks = subsampled_blocks(rng, b, h, nb, self.local_blocks, self.random_blocks)
        mask = self.mask(offset) & BlockSparse(self.block_size, self.block_size, blocks)
        self.sow_max_logit(q, k, mask)
        return attend(q, k, v, mask=mask, impl=self.impl)
