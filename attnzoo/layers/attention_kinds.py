"""Causal self-attention kinds by name (the contract every kind follows).

`Kind(in_features, num_heads, *, num_kv_heads=None, head_dim=None, layer_index=0,
window=None, rope_base=10000.0, impl="auto", rngs, **kind_options)` with `init_cache`,
`__call__(x [b, t, e], *, positions=None, decode=False, rng=None) -> [b, t, e]`, sowing
`nnx.Intermediate` "max_logit" `[num_heads]` and `qk_clip(max_logit, tau)` (MuonClip).

Interim registry holding only `dense` until the attention-variant layers land.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attnzoo.layers.masks import Causal, LocalWindow1D
from attnzoo.layers.multi_head_attention import MultiHeadAttention
from attnzoo.layers.rope import apply_rope

__all__ = ["ATTENTION_KINDS", "DenseCausalAttention", "attention_kind"]


class DenseCausalAttention(MultiHeadAttention):
    """Causal (optionally sliding-window) GQA self-attention with RoPE, no biases."""

    def __init__(
        self,
        in_features: int,
        num_heads: int,
        *,
        num_kv_heads: int | None = None,
        head_dim: int | None = None,
        layer_index: int = 0,
        window: int | None = None,
        rope_base: float = 10000.0,
        impl: str = "auto",
        rngs: nnx.Rngs,
    ):
        del layer_index
        super().__init__(
            in_features,
            num_heads,
            num_kv_heads=num_kv_heads,
            head_dim=head_dim,
            use_bias=False,
            use_rope=True,
            rope_base=rope_base,
            impl=impl,
            rngs=rngs,
        )
        self.window = window

    def __call__(self, x, *, positions=None, decode=False, rng=None):
        del rng
        t = x.shape[1]
        q, k, _ = self._project_qkv(x)
        if positions is None:
            start = self.cache_index[...] if decode else 0
            positions = start + jnp.arange(t, dtype=jnp.int32)
        q, k = (
            apply_rope(q, positions, base=self.rope_base),
            apply_rope(k, positions, base=self.rope_base),
        )
        self.sow(nnx.Intermediate, "max_logit", _max_causal_logit(q, k, positions))
        window = LocalWindow1D(self.window - 1, 0) if self.window else None
        mask = window if decode else Causal() & window
        return super().__call__(x, mask=mask, positions=positions, decode=decode)

    def qk_clip(self, max_logit: jax.Array, tau: float) -> None:
        """Scales W_q and W_k of every head with `max_logit > tau` by `sqrt(tau / max_logit)`."""
        gamma = jnp.minimum(1.0, tau / jnp.maximum(max_logit, 1e-30))  # [h]
        group = self.num_heads // self.num_kv_heads
        # A kv head shared by a group takes sqrt of the group's smallest gamma; each query
        # head the rest, so head i's logits scale by exactly gamma_i.
        kv_root = jnp.sqrt(gamma.reshape(self.num_kv_heads, group).min(-1))  # [hkv]
        q_scale = gamma / jnp.repeat(kv_root, group)  # [h]
        self.query.kernel[...] = self.query.kernel[...] * q_scale[None, :, None]
        self.key.kernel[...] = self.key.kernel[...] * kv_root[None, :, None]


def _max_causal_logit(q, k, positions) -> jax.Array:
    """Per query head, the largest pre-softmax logit `q·k/sqrt(d)` over visible pairs (the
    new tokens among themselves): float32 `[h]`."""
    h, hkv = q.shape[2], k.shape[2]
    k = jnp.repeat(k, h // hkv, axis=2)
    logits = jnp.einsum("bthd,bshd->bhts", q, k, preferred_element_type=jnp.float32)
    logits = logits / jnp.sqrt(q.shape[-1]).astype(jnp.float32)
    t = q.shape[1]
    visible = jnp.arange(t)[None, :] <= jnp.arange(t)[:, None]
    return jnp.where(visible, logits, -jnp.inf).max(axis=(0, 2, 3))


ATTENTION_KINDS = {"dense": DenseCausalAttention}


def attention_kind(name: str) -> type[nnx.Module]:
    """The attention class registered as `name`; ValueError listing the known kinds."""
    if name not in ATTENTION_KINDS:
        raise ValueError(
            f"unknown attention kind {name!r}; choose one of {', '.join(ATTENTION_KINDS)}"
        )
    return ATTENTION_KINDS[name]
