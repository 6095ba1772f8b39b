"""Multi-head attention (NNX): projections, GQA, qk-norm, RoPE, KV cache, weight recording.

The math is :func:`attnzoo.layers.attention.attend`; this layer only projects, positions and
caches. Param logical axes: q/k/v kernels ``("embed", "heads", "kv")``, their biases
``("heads", "kv")``, out kernel ``("heads", "kv", "embed")``, out bias ``("embed",)``,
qk-norm scales ``("kv",)``. Under flax's default eager sharding, build the layer inside
``jax.set_mesh(mesh)`` + ``nnx.logical_axis_rules(rules)`` (params are born sharded), or
within ``nnx.use_eager_sharding(False)`` when no mesh is wanted.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from attnzoo.layers.attention import attend, attention_weights
from attnzoo.layers.linear import project
from attnzoo.layers.masks import Causal, Mask
from attnzoo.layers.projections import project_together
from attnzoo.layers.rope import apply_rope

__all__ = ["MultiHeadAttention", "check_cache_room"]


def check_cache_room(index: jax.Array, t: int, max_length: int) -> None:
    """Raises when writing ``t`` tokens at ``index`` would run past the cache's end
    (``dynamic_update_slice`` would clamp the write and overwrite earlier slots)."""

    def check(index):
        if int(index) + t > max_length:
            raise ValueError(
                f"KV cache overflow: writing {t} token(s) at position {int(index)} runs past "
                f"max_length={max_length}; call init_cache with a larger max_length"
            )

    traced = isinstance(index, jax.core.Tracer)
    if t > max_length or not traced:
        check(0 if traced else index)
    else:  # under jit the index is only known at run time
        jax.debug.callback(check, index)


class MultiHeadAttention(nnx.Module):
    """Multi-head (grouped-query) attention ``[b, t, in_features] -> [b, t, out_features]``.

    Args:
      in_features: embedding size of ``x`` (and of ``context``).
      num_heads: query heads ``h``.
      num_kv_heads: key/value heads ``hkv`` (``h % hkv == 0``); default ``h`` (MHA), 1 = MQA.
      head_dim: per-head size, default ``in_features // num_heads``.
      out_features: default ``in_features``.
      use_bias: biases on the four projections.
      qk_norm: RMSNorm over ``head_dim`` of q and k (after projection, before RoPE).
      use_rope: rotary embedding (rotate-half) on q and k; ``rope_base``, ``rope_fraction``.
      impl: passed to :func:`attend`.
      record_weights: sow the float32 ``[b, h, t, s]`` probabilities as ``nnx.Intermediate``
        ``"attention_weights"``; collect them with ``nnx.capture(fn, nnx.Intermediate)``
        (sowing outside ``nnx.capture`` is deprecated in flax 0.12).
      kernel_init: default ``xavier_uniform`` (fan-in/out of the flattened 2-D kernel).
    """

    def __init__(
        self,
        in_features: int,
        num_heads: int,
        *,
        num_kv_heads: int | None = None,
        head_dim: int | None = None,
        out_features: int | None = None,
        use_bias: bool = True,
        qk_norm: bool = False,
        use_rope: bool = False,
        rope_base: float = 10000.0,
        rope_fraction: float = 1.0,
        impl: str = "auto",
        record_weights: bool = False,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        kernel_init: nnx.Initializer = nnx.initializers.xavier_uniform(),
        bias_init: nnx.Initializer = nnx.initializers.zeros_init(),
        rngs: nnx.Rngs,
    ):
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        if num_heads % num_kv_heads:
            raise ValueError(
                f"num_heads={num_heads} is not a multiple of num_kv_heads={num_kv_heads}"
            )
        if head_dim is None:
            if in_features % num_heads:
                raise ValueError(
                    f"in_features={in_features} not divisible by num_heads={num_heads}; "
                    "pass head_dim"
                )
            head_dim = in_features // num_heads
        out_features = in_features if out_features is None else out_features
        self.num_heads, self.num_kv_heads, self.head_dim = num_heads, num_kv_heads, head_dim
        self.use_rope, self.rope_base, self.rope_fraction = use_rope, rope_base, rope_fraction
        self.impl, self.record_weights, self.dtype = impl, record_weights, dtype

        def proj(heads):
            return nnx.LinearGeneral(
                in_features,
                (heads, head_dim),
                use_bias=use_bias,
                dtype=dtype,
                param_dtype=param_dtype,
                kernel_init=nnx.with_partitioning(kernel_init, ("embed", "heads", "kv")),
                bias_init=nnx.with_partitioning(bias_init, ("heads", "kv")),
                rngs=rngs,
            )

        self.query = proj(num_heads)  # kernel [embed, h, d]
        self.key = proj(num_kv_heads)  # kernel [embed, hkv, d]
        self.value = proj(num_kv_heads)  # kernel [embed, hkv, d]
        self.out = nnx.LinearGeneral(
            (num_heads, head_dim),
            out_features,
            axis=(-2, -1),
            use_bias=use_bias,
            dtype=dtype,
            param_dtype=param_dtype,
            kernel_init=nnx.with_partitioning(kernel_init, ("heads", "kv", "embed")),
            bias_init=nnx.with_partitioning(bias_init, ("embed",)),
            rngs=rngs,
        )  # kernel [h, d, out]
        if qk_norm:

            def norm():
                return nnx.RMSNorm(
                    head_dim,
                    dtype=dtype,
                    param_dtype=param_dtype,
                    scale_init=nnx.with_partitioning(nnx.initializers.ones_init(), ("kv",)),
                    rngs=rngs,
                )

            self.query_norm, self.key_norm = norm(), norm()
        else:
            self.query_norm = self.key_norm = None

    def init_cache(self, batch_size: int, max_length: int, dtype=None) -> None:
        """Create the decoding cache: ``cached_key``/``cached_value`` ``[b, max_len, hkv, d]``
        (zeros) and the scalar int32 ``cache_index`` (next slot to write)."""
        dtype = self.dtype if dtype is None else dtype
        shape = (batch_size, max_length, self.num_kv_heads, self.head_dim)
        self.cached_key = nnx.Cache(jnp.zeros(shape, dtype))
        self.cached_value = nnx.Cache(jnp.zeros(shape, dtype))
        self.cache_index = nnx.Cache(jnp.array(0, dtype=jnp.int32))

    def _project_qkv(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Self-attention q, k, v ``[b, t, h|hkv, d]`` from one matmul."""
        q, k, v = project_together(x, (self.query, self.key, self.value), self.dtype)
        return q, k, v

    def _rope(self, x, positions):
        return apply_rope(x, positions, base=self.rope_base, fraction=self.rope_fraction)

    def __call__(
        self,
        x: jax.Array,
        *,
        context: jax.Array | None = None,
        mask: Mask | None = None,
        positions: jax.Array | None = None,
        context_positions: jax.Array | None = None,
        decode: bool = False,
    ) -> jax.Array:
        """Attend from ``x`` ``[b, t, embed]`` to ``context`` ``[b, s, embed]`` (default ``x``).

        Args:
          mask: a Mask over ``[t, s]``. With ``decode`` it spans ``[t, max_length]`` and is
            combined with the cache's causal mask; keys are cache slots, position masks
            (``Causal``, ``LocalWindow1D``) are shifted to the new tokens' absolute positions,
            array masks keep indexing the new tokens ``0..t-1`` by row.
          positions: int ``[b, t]`` or ``[t]`` for RoPE; default ``arange(t)`` (+ cache index
            when decoding).
          context_positions: RoPE positions of ``context`` keys (default ``arange(s)``).
          decode: write k/v into the cache at ``cache_index``, attend over the cache
            (causal in absolute positions, unwritten slots hidden), advance the index.
            Writing past ``max_length`` raises (``ValueError``; under ``jit`` at run time).

        Returns:
          ``[b, t, out_features]``.
        """
        t = x.shape[1]
        self_attention = context is None
        context = x if self_attention else context
        if self_attention:
            q, k, v = self._project_qkv(x)
        else:
            q = self.query(x)  # [b, t, h, d]
            k = self.key(context)  # [b, s, hkv, d]
            v = self.value(context)  # [b, s, hkv, d]
        if self.query_norm is not None:
            q, k = self.query_norm(q), self.key_norm(k)

        if decode:
            if not self_attention:
                raise ValueError("decode=True supports self-attention only (context=None)")
            if not hasattr(self, "cache_index"):
                raise ValueError("decode=True needs a cache: call init_cache(batch, max_len)")
            index = self.cache_index[...]  # scalar int32
            check_cache_room(index, t, self.cached_key.shape[1])
            if positions is None:
                positions = index + jnp.arange(t, dtype=jnp.int32)
        elif positions is None:
            positions = jnp.arange(t, dtype=jnp.int32)

        if self.use_rope:
            q = self._rope(q, positions)
            if self_attention:
                k = self._rope(k, positions)
            else:
                kv_pos = jnp.arange(k.shape[1]) if context_positions is None else context_positions
                k = self._rope(k, kv_pos)

        if decode:
            start = (0, index, 0, 0)
            k_all = jax.lax.dynamic_update_slice(
                self.cached_key[...], k.astype(self.cached_key.dtype), start
            )  # [b, max_len, hkv, d]
            v_all = jax.lax.dynamic_update_slice(
                self.cached_value[...], v.astype(self.cached_value.dtype), start
            )  # [b, max_len, hkv, d]
            self.cached_key[...] = k_all
            self.cached_value[...] = v_all
            self.cache_index[...] = index + t
            # Query i sits at absolute position index + i: slots beyond it (incl. unwritten
            # ones) are hidden, and position masks (sliding windows) move with it.
            mask = Causal(offset=index) & (None if mask is None else mask.shift_queries(index))
            k, v = k_all.astype(q.dtype), v_all.astype(q.dtype)

        if self.record_weights:
            weights = attention_weights(q, k, mask=mask)  # [b, h, t, s]
            self.sow(nnx.Intermediate, "attention_weights", weights)
        out = attend(q, k, v, mask=mask, impl=self.impl)  # [b, t, h, d]
        return project(out, self.out, self.dtype)  # [b, t, out_features]
