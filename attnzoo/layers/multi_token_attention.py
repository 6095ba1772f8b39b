"""MTA: multi-token attention (Golovneva et al. 2025; facebookresearch/RAM ``projects/mta``).

Before the softmax, the logits ``[b, h, t, s]`` (masked ones zeroed) go through a per-head
2-D convolution over (query, key) with a ``query_kernel x key_kernel`` kernel: queries padded
causally (``query_kernel - 1`` rows above), keys on both sides, so logit ``(i, j)`` mixes
``(i - a, j + c)`` for ``0 <= a < query_kernel``, ``|c| <= key_kernel // 2`` (masked pairs
contribute 0, so no future leaks in). Then a linear mix over heads, the mask again, softmax.
Kernels start as identities (``K[h, -1, key_kernel // 2] = 1``, head mix ``I``): at init the
layer is plain attention. Options as in the repo: ``head_norm`` (per-head RMSNorm of the
output, eps 1e-5) and ``output_gate`` (``sigmoid(w . o + b)`` per head), both on in its
configs, off by default here (they change the init); the post-softmax convolutions of the
repo's largest configs are not included. Logits are materialised (as in the official
non-Triton path). ``max_logit`` is of ``q . k`` before the convolution.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attnzoo.layers.causal_attention import CausalAttention

__all__ = ["MultiTokenAttention"]

_NEG = -1e30


class MultiTokenAttention(CausalAttention):
    """MTA causal attention (``"mta"``). Options: ``query_kernel`` (6), ``key_kernel`` (11,
    odd), ``head_norm`` (False), ``output_gate`` (False)."""

    def __init__(
        self,
        in_features,
        num_heads,
        *,
        query_kernel=6,
        key_kernel=11,
        head_norm=False,
        output_gate=False,
        **kw,
    ):
        if query_kernel <= 0 or key_kernel <= 0 or key_kernel % 2 == 0:
            raise ValueError(
                f"MTA needs query_kernel > 0 and an odd key_kernel > 0, got {query_kernel}, "
                f"{key_kernel}"
            )
        self.query_kernel, self.key_kernel = query_kernel, key_kernel
        super().__init__(in_features, num_heads, **kw)
        rngs, d = kw["rngs"], self.head_dim
        kernel = jnp.zeros((num_heads, query_kernel, key_kernel))
        self.conv_kernel = nnx.Param(kernel.at[:, -1, key_kernel // 2].set(1.0))
        self.head_mix = nnx.Param(jnp.eye(num_heads))  # [h_out, h_in]
        self.head_norm = nnx.RMSNorm(d, epsilon=1e-5, rngs=rngs) if head_norm else None
        self.output_gate = nnx.Linear(d, 1, rngs=rngs) if output_gate else None

    def init_cache(self, batch_size, max_length, dtype=None):
        """Also caches the queries (``query_kernel - 1`` zero rows first): the convolution
        reads the logits of the previous queries."""
        super().init_cache(batch_size, max_length, dtype)
        shape = (batch_size, self.query_kernel - 1 + max_length, self.num_heads, self.head_dim)
        self.cached_query = nnx.Cache(jnp.zeros(shape, self.cached_key.dtype))

    def attend_cached(self, q, k, v, *, x, offset, rng, decode):
        del x, rng
        b, t, h, d = q.shape
        pad = self.query_kernel - 1
        self.sow_max_logit(q, k, self.mask(offset))
        if decode:  # the new queries and the ``pad`` before them (zeros before position 0)
            full = self.write_cache("cached_query", q, offset + pad)
            q = jax.lax.dynamic_slice(full, (0, offset, 0, 0), (b, pad + t, h, d))
        else:
            q = jnp.pad(q, ((0, 0), (pad, 0), (0, 0), (0, 0)))
        s, hkv = k.shape[1], k.shape[2]
        qg = q.astype(jnp.float32).reshape(b, pad + t, hkv, h // hkv, d)
        logits = jnp.einsum("btkgd,bskd->bkgts", qg, k.astype(jnp.float32)) * d**-0.5
        logits = logits.reshape(b, h, pad + t, s)
        q_pos = jnp.arange(pad + t)[:, None]
        allowed = self.mask(offset - pad).allowed(q_pos, jnp.arange(s)[None, :])  # rows < 0: none
        logits = jnp.where(allowed, logits, 0.0)
        half = self.key_kernel // 2
        logits = jax.lax.conv_general_dilated(
            logits,
            self.conv_kernel[...][:, None],  # [h, 1, cq, ck]
            window_strides=(1, 1),
            padding=((0, 0), (half, half)),
            feature_group_count=h,
            dimension_numbers=("NCHW", "OIHW", "NCHW"),
        )  # [b, h, t, s]
        logits = jnp.einsum("gh,bhts->bgts", self.head_mix[...], logits)
        probs = jax.nn.softmax(jnp.where(allowed[:, :, pad:], logits, _NEG), axis=-1)
        vg = jnp.repeat(v.astype(jnp.float32), h // hkv, axis=2)  # [b, s, h, dv]
        out = jnp.einsum("bhts,bshd->bthd", probs, vg).astype(v.dtype)  # [b, t, h, dv]
        if self.head_norm is not None:
            out = self.head_norm(out)
        if self.output_gate is not None:
            out = out * jax.nn.sigmoid(self.output_gate(out))
        return out
