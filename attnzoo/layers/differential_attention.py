"""Differential attention layers: DIFF Transformer and Motif-2 grouped differential attention.

DIFF (microsoft/unilm ``Diff-Transformer/multihead_diffattn.py``): ``h`` heads, each with a
signal and a noise query/key of size ``d`` (default ``e / h / 2``) and one value of ``2d``;
``out_i = (softmax(q1 k1) - lambda * softmax(q2 k2)) v``, per-head RMSNorm over ``2d``
(eps 1e-5, one learnable scale shared by the heads) times ``1 - lambda_init``, then the out
projection. ``lambda = exp(lq1 . lk1) - exp(lq2 . lk2) + lambda_init(layer_index)`` with four
learnable ``[d]`` vectors (init N(0, 0.1)) shared by the layer's heads. GDA (Motif-2): one
noise head serves a group of signal heads (Motif-2: 32 signal, 8 noise). Differences from the
official code: RoPE is rotate-half (ours) instead of interleaved, and the q/k heads are laid
out ``[signal heads | noise heads]`` instead of interleaved pairs (a relabelling of the
projection's columns).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attnzoo.layers.causal_attention import (
    CausalAttention,
    MaxLogit,
    capturing,
    gqa_owners,
    max_logits,
)
from attnzoo.layers.differential import differential_attend

__all__ = ["DifferentialAttention", "GroupedDifferentialAttention", "lambda_init"]


def lambda_init(depth: int) -> float:
    """DIFF's ``lambda_init = 0.8 - 0.6 * exp(-0.3 * depth)`` (``depth``: 0-based layer)."""
    return 0.8 - 0.6 * math.exp(-0.3 * depth)


class DifferentialAttention(CausalAttention):
    """DIFF attention (``"diff"``): ``num_heads`` signal heads, each with its own noise head.

    Options: ``noise_heads`` (default ``num_heads``: DIFF; fewer: GDA, a divisor of
    ``num_heads`` and a multiple of ``num_kv_heads``). ``num_kv_heads`` defaults to
    ``noise_heads``; each kv head holds a signal key, a noise key and a ``2d`` value.
    ``max_logit[i]``: max over signal head ``i``'s map and its noise head's map.
    """

    def __init__(self, in_features, num_heads, *, noise_heads=None, num_kv_heads=None, **kw):
        self.noise_heads = num_heads if noise_heads is None else noise_heads
        if self.noise_heads <= 0 or num_heads % self.noise_heads:
            raise ValueError(
                f"num_heads={num_heads} is not a multiple of noise_heads={self.noise_heads}"
            )
        num_kv_heads = self.noise_heads if num_kv_heads is None else num_kv_heads
        if self.noise_heads % num_kv_heads:
            raise ValueError(
                f"noise_heads={self.noise_heads} is not a multiple of num_kv_heads={num_kv_heads}"
            )
        rngs = kw["rngs"]
        super().__init__(in_features, num_heads, num_kv_heads=num_kv_heads, **kw)
        self.lambda_init = lambda_init(self.layer_index)
        d = self.head_dim
        self.lambda_q1, self.lambda_k1, self.lambda_q2, self.lambda_k2 = (
            nnx.Param(0.1 * jax.random.normal(rngs.params(), (d,))) for _ in range(4)
        )
        self.head_norm = nnx.RMSNorm(2 * d, epsilon=1e-5, rngs=rngs)

    @staticmethod
    def default_head_dim(in_features: int, num_heads: int) -> int:
        if in_features % (2 * num_heads):
            raise ValueError(
                f"in_features={in_features} not divisible by 2 * num_heads={2 * num_heads}; "
                "pass head_dim"
            )
        return in_features // num_heads // 2

    def projection_heads(self):
        h, hkv = self.num_heads, self.num_kv_heads
        return h + self.noise_heads, 2 * hkv, hkv, 2 * self.head_dim

    def clip_owners(self):
        h, hkv = self.num_heads, self.num_kv_heads
        q_owners = np.concatenate([np.eye(h, dtype=bool), gqa_owners(h, self.noise_heads)])
        return q_owners, np.concatenate([gqa_owners(h, hkv)] * 2)

    def lam(self) -> jax.Array:
        """Scalar ``lambda``."""
        return (
            jnp.exp(jnp.sum(self.lambda_q1[...] * self.lambda_k1[...]))
            - jnp.exp(jnp.sum(self.lambda_q2[...] * self.lambda_k2[...]))
            + self.lambda_init
        )

    def attend_cached(self, q, k, v, *, x, offset, rng, decode):
        del x, rng, decode
        h, hkv = self.num_heads, self.num_kv_heads
        q1, q2 = q[:, :, :h], q[:, :, h:]  # [b, t, h, d], [b, t, h2, d]
        k1, k2 = k[:, :, :hkv], k[:, :, hkv:]  # [b, s, hkv, d] each
        mask = self.mask(offset)
        if capturing(self, MaxLogit):
            scale = self.head_dim**-0.5
            noise = jnp.repeat(max_logits(q2, k2, mask, scale), h // self.noise_heads)
            self.sow(
                MaxLogit,
                "max_logit",
                jnp.maximum(max_logits(q1, k1, mask, scale), noise),
            )
        out = differential_attend(q1, k1, q2, k2, v, self.lam(), mask=mask, impl=self.impl)
        return self.head_norm(out) * (1.0 - self.lambda_init)  # [b, t, h, 2d]


class GroupedDifferentialAttention(DifferentialAttention):
    """Grouped differential attention (``"gda"``, Motif-2): ``noise_heads`` defaults to
    ``num_heads // 4`` (Motif-2's 32 signal : 8 noise)."""

    def __init__(self, in_features, num_heads, *, noise_heads=None, **kw):
        noise_heads = max(num_heads // 4, 1) if noise_heads is None else noise_heads
        super().__init__(in_features, num_heads, noise_heads=noise_heads, **kw)
