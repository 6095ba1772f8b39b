"""Differential attention (DIFF Transformer) and grouped differential attention (Motif-2 GDA).

``out_i = softmax(q1_i k1^T * scale) v - lam_i * softmax(q2_j k2^T * scale) v``: signal head
``i`` subtracts the noise map of noise head ``j = i // (h1 // h2)``. DIFF pairs every signal
head with its own noise head (``h1 == h2``; official code: heads ``2i`` / ``2i + 1`` of one
projection); GDA lets one noise head serve a group of signal heads (Motif-2: 32 signal, 8
noise). The per-head RMSNorm and ``(1 - lambda_init)`` factor belong to the layer, not here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attnzoo import pallas_kernels
from attnzoo.layers.attention import attend, pallas_args
from attnzoo.layers.masks import Mask

__all__ = ["differential_attend"]

IMPLS = ("auto", "reference", "xla", "pallas")


def _auto(mask: Mask | None, d: int, dv: int) -> str:
    lo, hi = pallas_kernels.HEAD_DIMS
    head_axis = mask is not None and mask.leading_shape()[1] != 1
    if jax.default_backend() in pallas_kernels.BACKENDS and lo <= min(d, dv) and max(d, dv) <= hi:
        return "xla" if head_axis else "pallas"
    return "xla"


def differential_attend(
    q1,
    k1,
    q2,
    k2,
    v,
    lam,
    *,
    mask: Mask | None = None,
    scale: float | None = None,
    impl: str = "auto",
) -> jax.Array:
    """Differential attention ``[b, t, h1, dv]`` in ``q1.dtype``.

    Args:
      q1: signal queries ``[b, t, h1, d]``; k1: signal keys ``[b, s, hkv, d]``.
      q2: noise queries ``[b, t, h2, d]`` with ``h1 % h2 == 0``; k2: noise keys like k1.
      v: values ``[b, s, hkv, dv]``, shared by both maps; ``h2 % hkv == 0`` (GQA).
      lam: ``lambda``, a scalar or one per signal head ``[h1]`` (differentiable).
      mask: a :class:`~attnzoo.layers.masks.Mask` applied to both maps, or None.
      scale: logit scale, default ``d ** -0.5``.
      impl: ``"pallas"`` (one fused kernel reading V once; CPU: interpreted), ``"xla"`` /
        ``"reference"`` (two :func:`attend` calls combined), ``"auto"`` (pallas on gpu/tpu
        when it takes the shapes and the mask has no head axis, else xla).
    """
    if impl not in IMPLS:
        raise ValueError(f"unknown differential attention impl {impl!r}; valid: {', '.join(IMPLS)}")
    h1, h2 = q1.shape[2], q2.shape[2]
    if q1.ndim != 4 or q2.ndim != 4 or h1 % h2:
        raise ValueError(
            f"q1 [b, t, h1, d] and q2 [b, t, h2, d] need h1 % h2 == 0; got {q1.shape}, {q2.shape}"
        )
    scale = q1.shape[-1] ** -0.5 if scale is None else scale
    if impl == "auto":
        impl = _auto(mask, q1.shape[-1], v.shape[-1])
    if impl == "pallas":
        return pallas_kernels.differential_attention(
            q1, k1, q2, k2, v, lam, scale=scale, **pallas_args(mask, q1.shape[1], k1.shape[1])
        )
    o1 = attend(q1, k1, v, mask=mask, scale=scale, impl=impl).astype(jnp.float32)
    o2 = attend(q2, k2, v, mask=mask, scale=scale, impl=impl).astype(jnp.float32)
    lam = jnp.broadcast_to(jnp.asarray(lam, jnp.float32), (h1,))[:, None]  # [h1, 1]
    return (o1 - lam * jnp.repeat(o2, h1 // h2, axis=2)).astype(q1.dtype)
