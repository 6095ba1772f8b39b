"""MoH: mixture-of-head attention (SkyworkAI/MoH).

The first ``shared_heads`` heads are always on; each token routes to ``top_k`` of the other
(routed) heads. Gates per token: shared ``softmax(W_s x) * h_s``; routed ``softmax(W_r x)``
kept at the top-k, renormalised over them, times ``top_k``; a 2-way ``softmax(W_m x) * 2``
weighs the two groups. ``out = W_O concat(g_i head_i)``. Balance loss (sown as
``"aux_loss"``, times ``balance_weight``): ``E * sum_i P_i f_i`` over the ``E`` routed heads,
``P_i`` the mean routing probability and ``f_i`` the fraction of tokens routed to head ``i``.
As in the official code every head is computed and the gates zero the unrouted ones. With
zero router weights and every routed head on, all gates are 1: plain multi-head attention.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attnzoo.layers.causal_attention import CausalAttention, capturing

__all__ = ["MixtureOfHeadsAttention", "moh_gates"]


def moh_gates(shared_logits, routed_logits, mix_logits, top_k: int):
    """Head gates ``[..., h_s + E]`` and the balance loss from router logits ``[..., h_s]``,
    ``[..., E]``, ``[..., 2]`` (float32)."""
    h_s, num_routed = shared_logits.shape[-1], routed_logits.shape[-1]
    mix = 2.0 * jax.nn.softmax(mix_logits, axis=-1)  # [..., 2]
    shared = h_s * jax.nn.softmax(shared_logits, axis=-1) * mix[..., :1]
    probs = jax.nn.softmax(routed_logits, axis=-1)  # [..., E]
    kth = jax.lax.top_k(probs, top_k)[0][..., -1:]
    chosen = (probs >= kth).astype(jnp.float32)  # [..., E] (ties may add a head)
    kept = probs * chosen
    routed = top_k * kept / jnp.sum(kept, axis=-1, keepdims=True) * mix[..., 1:]
    axes = tuple(range(probs.ndim - 1))
    balance = num_routed * jnp.sum(probs.mean(axes) * chosen.mean(axes))
    return jnp.concatenate([shared, routed], axis=-1), balance


class MixtureOfHeadsAttention(CausalAttention):
    """MoH causal attention (``"moh"``). Options: ``shared_heads`` (``num_heads // 4``, at
    least 1), ``top_k`` routed heads per token (half the routed heads, at least 1),
    ``balance_weight`` (0.01)."""

    def __init__(
        self, in_features, num_heads, *, shared_heads=None, top_k=None, balance_weight=0.01, **kw
    ):
        shared_heads = max(num_heads // 4, 1) if shared_heads is None else shared_heads
        routed = num_heads - shared_heads
        top_k = max(routed // 2, 1) if top_k is None else top_k
        if not 0 < shared_heads < num_heads or not 0 < top_k <= routed:
            raise ValueError(
                f"MoH needs 0 < shared_heads < num_heads and 0 < top_k <= routed heads; got "
                f"shared_heads={shared_heads}, top_k={top_k}, num_heads={num_heads}"
            )
        self.shared_heads, self.top_k, self.balance_weight = shared_heads, top_k, balance_weight
        super().__init__(in_features, num_heads, **kw)
        rngs = kw["rngs"]
        self.shared_router = nnx.Linear(in_features, shared_heads, use_bias=False, rngs=rngs)
        self.routed_router = nnx.Linear(in_features, routed, use_bias=False, rngs=rngs)
        self.mix_router = nnx.Linear(in_features, 2, use_bias=False, rngs=rngs)

    def attend_cached(self, q, k, v, *, x, offset, rng, decode):
        xf = x.astype(jnp.float32)
        gates, balance = moh_gates(
            self.shared_router(xf), self.routed_router(xf), self.mix_router(xf), self.top_k
        )  # [b, t, h]
        if capturing(self):
            self.sow(nnx.Intermediate, "aux_loss", self.balance_weight * balance)
        out = super().attend_cached(q, k, v, x=x, offset=offset, rng=rng, decode=decode)
        return out * gates[..., None].astype(out.dtype)  # [b, t, h, d]
