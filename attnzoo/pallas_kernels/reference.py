"""Pure-jnp oracles for the kernels: the same arguments, dense math.

The kernels compute attention over the pairs that the mask's pointwise function allows
*and* that lie in a listed (query block, key block) tile; these references materialise exactly
that set, so a kernel is checked against its definition, not against itself.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from attnzoo.pallas_kernels.tiles import MASK_VALUE


def _read(op, q_pos, k_pos):
    """Operand ``[B|1, H|1, T|1, S|1]`` at ``q_pos [T, 1]``, ``k_pos [1, S]``."""
    qi = q_pos if op.shape[2] > 1 else jnp.zeros_like(q_pos)
    ki = k_pos if op.shape[3] > 1 else jnp.zeros_like(k_pos)
    return op[:, :, qi, ki]  # [B|1, H|1, T, S]


def allowed_pairs(fn, operands, lists, q_len, kv_len, block_q, block_k):
    """bool ``[B|1, H|1, T, S]``: pairs the mask allows inside the listed tiles."""
    q_pos = jnp.arange(q_len, dtype=jnp.int32)[:, None]
    k_pos = jnp.arange(kv_len, dtype=jnp.int32)[None, :]
    ok = fn(q_pos, k_pos, *(_read(op, q_pos, k_pos) for op in operands))
    nk = -(-kv_len // block_k)
    listed = lists.matrix(nk)  # [B, H, nq, nk]
    listed = jnp.repeat(jnp.repeat(listed, block_q, axis=-2), block_k, axis=-1)
    return jnp.broadcast_to(ok, (*jnp.shape(ok)[:-2], q_len, kv_len)) & listed[..., :q_len, :kv_len]


def _heads(x, hkv):
    """``[B|1, H|1, ...]`` over query heads -> ``[B|1, hkv|1, g|1, ...]``."""
    return x[:, :, None] if x.shape[1] == 1 else x.reshape(x.shape[0], hkv, -1, *x.shape[2:])


def flash_attention(q, k, v, *, fn, operands, lists, scale, block_q, block_k):
    """``[b, t, hq, dv]`` in ``q.dtype``; rows with no allowed key are 0."""
    b, t, hq, d = q.shape
    s, hkv = k.shape[1], k.shape[2]
    allowed = _heads(allowed_pairs(fn, operands, lists, t, s, block_q, block_k), hkv)
    qg = q.reshape(b, t, hkv, hq // hkv, d)
    logits = jnp.einsum("btkgd,bskd->bkgts", qg, k, preferred_element_type=jnp.float32) * scale
    logits = jnp.where(allowed, logits, MASK_VALUE)
    m = jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True))
    p = jnp.where(allowed, jnp.exp(logits - m), 0.0)
    denom = jnp.sum(p, axis=-1, keepdims=True)
    p = p / jnp.where(denom > 0, denom, 1.0)
    out = jnp.einsum("bkgts,bskd->btkgd", p, v.astype(jnp.float32))
    return out.reshape(b, t, hq, v.shape[-1]).astype(q.dtype)
