"""Causal self-attention kinds: the shared contract, and the dense kind.

Every kind is ``Kind(in_features, num_heads, *, num_kv_heads=None, head_dim=None,
layer_index=0, window=None, rope_base=10000.0, impl="auto", rngs, **options)`` with
``init_cache(batch_size, max_length)`` and ``__call__(x [b, t, e], *, positions=None,
decode=False, rng=None) -> [b, t, e]``. Always causal; RoPE on q and k; ``window`` (optional)
limits each query to its last ``window`` keys (itself included). Under ``nnx.capture(fn,
MaxLogit, ...)`` a kind sows :class:`MaxLogit` ``"max_logit"`` (float32 ``[num_heads]``, the
max pre-softmax logit per head over this call; stop-gradient; a second ``q.k`` pass, so only
when asked for), and under ``nnx.capture(fn, nnx.Intermediate)`` its auxiliary loss
``"aux_loss"`` if it has one.
``qk_clip(max_logit, tau)`` rescales W_q / W_k so that each head's logits stay ``<= tau``.

Subclasses change the projection layout (:meth:`CausalAttention.projection_heads`,
:meth:`CausalAttention.clip_owners`) and the attention itself
(:meth:`CausalAttention.attend_cached`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attnzoo.layers.attention import attend
from attnzoo.layers.linear import project
from attnzoo.layers.masks import Causal, LocalWindow1D, Mask
from attnzoo.layers.multi_head_attention import check_cache_room
from attnzoo.layers.projections import project_together
from attnzoo.layers.rope import apply_rope

__all__ = ["CausalAttention", "MaxLogit", "capturing", "gqa_owners", "max_logits"]

_LOGIT_CHUNK = 512  # query rows per step of max_logits (bounds its [b, h, c, s] buffer)


class MaxLogit(nnx.Intermediate):
    """The per-head max logit a kind sows when ``nnx.capture`` asks for this type (list it
    before ``nnx.Intermediate``, which would otherwise collect it)."""


def capturing(module: nnx.Module, kind: type[nnx.Variable] = nnx.Intermediate) -> bool:
    """Whether ``module`` runs under ``nnx.capture`` of variables of exactly type ``kind``
    (flax 0.12 sets ``__captures__``): the kinds compute and sow their statistics only then
    (sowing elsewhere mutates the module)."""
    return any(type(v) is kind for v in getattr(module, "__captures__", ()))


def max_logits(q: jax.Array, k: jax.Array, mask: Mask | None, scale: float) -> jax.Array:
    """float32 ``[h]``: per query head, the max of ``scale * q.k`` over the batch and the pairs
    ``mask`` allows. q ``[b, t, h, d]``, k ``[b, s, hkv, d]`` (GQA); stop-gradient."""
    q, k = jax.lax.stop_gradient(q), jax.lax.stop_gradient(k)
    b, t, h, d = q.shape
    s, hkv = k.shape[1], k.shape[2]
    qg = q.reshape(b, t, hkv, h // hkv, d).astype(jnp.float32)
    k_pos = jnp.arange(s, dtype=jnp.int32)[None, :]
    best = jnp.full((hkv, h // hkv), -jnp.inf, jnp.float32)
    for start in range(0, t, _LOGIT_CHUNK):
        rows = slice(start, min(start + _LOGIT_CHUNK, t))
        logits = scale * jnp.einsum("bckgd,bskd->bkgcs", qg[:, rows], k.astype(jnp.float32))
        if mask is not None:
            q_pos = jnp.arange(rows.start, rows.stop, dtype=jnp.int32)[:, None]
            ok = mask.allowed(q_pos, k_pos)  # [B|1, H|1, c, s]
            ok = ok.reshape(ok.shape[0], hkv if ok.shape[1] > 1 else 1, -1, *ok.shape[2:])
            logits = jnp.where(ok, logits, -jnp.inf)
        best = jnp.maximum(best, logits.max(axis=(0, 3, 4)))
    return best.reshape(h)


def gqa_owners(num_heads: int, num_kv_heads: int) -> np.ndarray:
    """bool ``[num_kv_heads, num_heads]``: which query heads read each kv head."""
    group = np.arange(num_heads) // (num_heads // num_kv_heads)
    return group[None, :] == np.arange(num_kv_heads)[:, None]


def _projection(in_features, heads, dim, rngs) -> nnx.LinearGeneral:
    init = nnx.with_partitioning(nnx.initializers.xavier_uniform(), ("embed", "heads", "kv"))
    return nnx.LinearGeneral(in_features, (heads, dim), use_bias=False, kernel_init=init, rngs=rngs)


def _scale_heads(proj: nnx.LinearGeneral, factor: jax.Array) -> None:
    """Multiply each head's slice of ``proj.kernel`` ``[e, heads, d]`` by ``factor[heads]``."""
    kernel = proj.kernel[...]
    proj.kernel[...] = kernel * factor[None, :, None].astype(kernel.dtype)


class CausalAttention(nnx.Module):
    """Dense causal multi-head (GQA) self-attention with RoPE: the ``"dense"`` kind.

    q ``[b, t, h, d]``, k/v ``[b, s, hkv, d]`` (no biases), ``attend`` under
    ``Causal & LocalWindow1D(window - 1, 0)``, out projection ``[h, d] -> e``. Param logical
    axes as in :class:`~attnzoo.layers.MultiHeadAttention`.
    """

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
        num_kv_heads = num_heads if num_kv_heads is None else num_kv_heads
        if num_kv_heads <= 0 or num_heads % num_kv_heads:
            raise ValueError(
                f"num_heads={num_heads} is not a multiple of num_kv_heads={num_kv_heads}"
            )
        if window is not None and (not isinstance(window, int) or window <= 0):
            raise ValueError(f"window must be a positive int or None, got {window!r}")
        self.num_heads, self.num_kv_heads = num_heads, num_kv_heads
        self.head_dim = head_dim or self.default_head_dim(in_features, num_heads)
        self.layer_index, self.window = layer_index, window
        self.rope_base, self.impl = rope_base, impl
        hq, hk, hv, dv = self.projection_heads()
        self.query = _projection(in_features, hq, self.head_dim, rngs)  # kernel [e, hq, d]
        self.key = _projection(in_features, hk, self.head_dim, rngs)  # kernel [e, hk, d]
        self.value = _projection(in_features, hv, dv, rngs)  # kernel [e, hv, dv]
        self.out = nnx.LinearGeneral(
            (num_heads, dv),
            in_features,
            axis=(-2, -1),
            use_bias=False,
            kernel_init=nnx.with_partitioning(
                nnx.initializers.xavier_uniform(), ("heads", "kv", "embed")
            ),
            rngs=rngs,
        )  # kernel [h, dv, e]

    @staticmethod
    def default_head_dim(in_features: int, num_heads: int) -> int:
        if in_features % num_heads:
            raise ValueError(
                f"in_features={in_features} not divisible by num_heads={num_heads}; pass head_dim"
            )
        return in_features // num_heads

    def projection_heads(self) -> tuple[int, int, int, int]:
        """``(query heads, key heads, value heads, value dim)`` of the projections."""
        return self.num_heads, self.num_kv_heads, self.num_kv_heads, self.head_dim

    def clip_owners(self) -> tuple[np.ndarray, np.ndarray]:
        """bool ``[query heads, num_heads]`` / ``[key heads, num_heads]``: the logit heads
        (entries of ``max_logit``) whose logits each projected head enters."""
        return np.eye(self.num_heads, dtype=bool), gqa_owners(self.num_heads, self.num_kv_heads)

    def mask(self, offset: int | jax.Array = 0) -> Mask:
        """``Causal`` (and the sliding window) for queries starting at position ``offset``."""
        causal = Causal(offset)
        if self.window is None:
            return causal
        return causal & LocalWindow1D(self.window - 1, 0, offset)

    def init_cache(self, batch_size: int, max_length: int, dtype=None) -> None:
        """Zeroed ``cached_key`` / ``cached_value`` ``[b, max_length, heads, dim]`` and the
        int32 ``cache_index`` (next slot to write)."""
        dtype = self.key.kernel.dtype if dtype is None else dtype
        _, hk, hv, dv = self.projection_heads()
        self.cached_key = nnx.Cache(jnp.zeros((batch_size, max_length, hk, self.head_dim), dtype))
        self.cached_value = nnx.Cache(jnp.zeros((batch_size, max_length, hv, dv), dtype))
        self.cache_index = nnx.Cache(jnp.array(0, dtype=jnp.int32))

    def write_cache(self, name: str, new: jax.Array, index: jax.Array) -> jax.Array:
        """Write ``new`` ``[b, t, ...]`` into cache ``name`` at ``index``; the whole cache."""
        cache = getattr(self, name)
        full = jax.lax.dynamic_update_slice(
            cache[...], new.astype(cache.dtype), (0, index) + (0,) * (new.ndim - 2)
        )
        cache[...] = full
        return full.astype(new.dtype)

    def __call__(
        self,
        x: jax.Array,
        *,
        positions: jax.Array | None = None,
        decode: bool = False,
        rng: jax.Array | None = None,
    ) -> jax.Array:
        """``x`` ``[b, t, e]`` -> ``[b, t, e]``. ``positions``: RoPE positions ``[b, t]`` or
        ``[t]`` (default ``arange(t)``, + the cache index when decoding). ``decode``: append
        k/v to the cache (``init_cache`` first) and attend over it. ``rng``: a key for the
        kinds that draw randomness in training (None: deterministic, eval)."""
        t = x.shape[1]
        offset = 0
        if decode:
            if not hasattr(self, "cache_index"):
                raise ValueError("decode=True needs a cache: call init_cache(batch, max_len)")
            offset = self.cache_index[...]
            check_cache_room(offset, t, self.cached_key.shape[1])
        if positions is None:
            positions = offset + jnp.arange(t, dtype=jnp.int32)
        q, k, v = project_together(x, (self.query, self.key, self.value))
        q = apply_rope(q, positions, base=self.rope_base)  # [b, t, hq, d]
        k = apply_rope(k, positions, base=self.rope_base)  # [b, t, hk, d]; v [b, t, hv, dv]
        if decode:
            k = self.write_cache("cached_key", k, offset)  # [b, max_len, hk, d]
            v = self.write_cache("cached_value", v, offset)  # [b, max_len, hv, dv]
        out = self.attend_cached(q, k, v, x=x, offset=offset, rng=rng, decode=decode)
        if decode:
            self.cache_index[...] = offset + t
        return project(out, self.out)  # [b, t, e]

    def attend_cached(self, q, k, v, *, x, offset, rng, decode) -> jax.Array:
        """Attention of the new queries ``[b, t, hq, d]`` (at ``offset``) over all keys so far
        ``[b, s, hk, d]`` -> ``[b, t, h, dv]``; ``x`` ``[b, t, e]`` is the layer's input."""
        del x, rng, decode
        mask = self.mask(offset)
        self.sow_max_logit(q, k, mask)
        return attend(q, k, v, mask=mask, impl=self.impl)

    def sow_max_logit(self, q, k, mask: Mask | None) -> None:
        if capturing(self, MaxLogit):
            self.sow(MaxLogit, "max_logit", max_logits(q, k, mask, self.head_dim**-0.5))

    def qk_clip(self, max_logit: jax.Array, tau: float) -> None:
        """QK-Clip: ``gamma = min(1, tau / max_logit)`` per logit head; every projected q and k
        head is scaled by ``sqrt(min gamma)`` over the logit heads it enters. A head's logits
        thus shrink by at least its ``gamma`` (so ``<= tau``): exactly ``gamma`` when q and k
        heads are its own (MHA); a key head shared by a GQA group (or a noise head shared by a
        GDA group) takes the group's smallest ``gamma``, which also shrinks its neighbours."""
        gamma = jnp.minimum(1.0, tau / jnp.maximum(jnp.asarray(max_logit, jnp.float32), 1e-30))
        for proj, owners in zip((self.query, self.key), self.clip_owners(), strict=True):
            head_gamma = jnp.min(jnp.where(jnp.asarray(owners), gamma[None, :], 1.0), axis=1)
            _scale_heads(proj, jnp.sqrt(head_gamma))
