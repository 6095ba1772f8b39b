"""MoBA: mixture of block attention (MoonshotAI/MoBA ``moba_naive.py``).

Keys are split into blocks of ``block_size``; a block's gate key is the mean of its keys (no
parameters). Each query token scores the blocks by ``q . mean_k`` in float32, its own block
always selected and blocks that end after it excluded, and attends (causally) to the tokens
of its ``top_k`` blocks: a ``BlockSparse(1, block_size, indices)`` mask per head for
``attend``. Published settings: block 512, top-3 at 8K context.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attnzoo.layers.attention import attend
from attnzoo.layers.causal_attention import CausalAttention
from attnzoo.layers.masks import BlockSparse, Mask

__all__ = ["MobaAttention", "moba_selection"]


def moba_selection(q: jax.Array, k: jax.Array, offset, block_size: int, top_k: int) -> jax.Array:
    """int32 ``[b, h, t, min(top_k, nb)]``: the key blocks each query selects (-1 = unused).

    q ``[b, t, h, d]`` (query ``i`` at absolute position ``offset + i``), k ``[b, s, hkv, d]``
    (GQA), ``nb = ceil(s / block_size)``.
    """
    b, t, h, d = q.shape
    s, hkv = k.shape[1], k.shape[2]
    nb = -(-s // block_size)
    kf = jnp.pad(k.astype(jnp.float32), ((0, 0), (0, nb * block_size - s), (0, 0), (0, 0)))
    block_keys = kf.reshape(b, nb, block_size, hkv, d).mean(axis=2)  # [b, nb, hkv, d]
    qg = q.astype(jnp.float32).reshape(b, t, hkv, h // hkv, d)
    gate = jnp.einsum("btkgd,bnkd->bkgtn", qg, block_keys).reshape(b, h, t, nb)
    own = (offset + jnp.arange(t)) // block_size  # [t]
    blocks = jnp.arange(nb)
    gate = jnp.where(blocks < own[:, None], gate, -jnp.inf)  # whole past blocks compete
    gate = jnp.where(blocks == own[:, None], jnp.inf, gate)  # own block always in
    value, index = jax.lax.top_k(gate, min(top_k, nb))
    return jnp.where(value > -jnp.inf, index, -1).astype(jnp.int32)


class MobaAttention(CausalAttention):
    """MoBA causal attention (``"moba"``). Options: ``block_size`` (512), ``top_k`` (3).

    Per-token selection makes ``attend``'s routing one query row high; ``impl="xla"`` packs
    each query's selected blocks into shared tiles (:mod:`attnzoo.layers.routed_attention`),
    so memory and FLOPs follow ``t * top_k * block_size``, not ``t * s``. Decoding selects
    over the cache's blocks exactly as the full forward does (past blocks are complete, so
    their means agree). ``max_logit`` covers the selected keys only.
    """

    def __init__(self, in_features, num_heads, *, block_size=512, top_k=3, **kw):
        if min(block_size, top_k) <= 0:
            raise ValueError(f"MoBA needs block_size, top_k > 0, got {block_size}, {top_k}")
        self.block_size, self.top_k = block_size, top_k
        super().__init__(in_features, num_heads, **kw)

    def routed_mask(self, selected: jax.Array, offset) -> Mask:
        """Causal (and window) & the selected blocks, for queries from ``offset`` on."""
        return self.mask(offset) & BlockSparse(1, self.block_size, selected)

    def attend_cached(self, q, k, v, *, x, offset, rng, decode):
        del x, rng, decode
        selected = moba_selection(q, jax.lax.stop_gradient(k), offset, self.block_size, self.top_k)
        mask = self.routed_mask(selected, offset)
        self.sow_max_logit(q, k, mask)
        return attend(q, k, v, mask=mask, impl=self.impl)
