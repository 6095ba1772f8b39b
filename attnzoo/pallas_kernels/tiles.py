"""Per-tile flash-attention math shared by the GPU and TPU kernels.

A tile is ``bq`` query rows against ``bk`` keys. Logits and softmax statistics are float32;
masked logits take the large finite :data:`MASK_VALUE` and masked probabilities are zeroed, so
a row with no allowed key has output 0 and zero gradients.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

MASK_VALUE = -0.7 * float(np.finfo(np.float32).max)


def dot(a, b, trans_a: bool = False, trans_b: bool = False):
    """f32 ``a @ b`` of 2-D tiles, either side optionally transposed (no copy)."""
    dims = (((0 if trans_a else 1,), (1 if trans_b else 0,)), ((), ()))
    return jax.lax.dot_general(a, b, dims, preferred_element_type=jnp.float32)


def tile_allowed(fn, values, q0, k0, shape, q_len, kv_len):
    """bool ``[bq, bk]`` for the tile whose first query/key positions are ``q0`` / ``k0``.

    ``values``: the mask operands read on this tile (``[bq|1, bk|1]`` each).
    """
    q_pos = q0 + jax.lax.broadcasted_iota(jnp.int32, shape, 0)
    k_pos = k0 + jax.lax.broadcasted_iota(jnp.int32, shape, 1)
    inside = (q_pos < q_len) & (k_pos < kv_len)  # padding is never attended
    return inside & fn(q_pos, k_pos, *values)


def logits(q, k, scale):
    """f32 ``[bq, bk]`` = ``q k^T * scale`` for q ``[bq, d]``, k ``[bk, d]``."""
    return dot(q, k, trans_b=True) * scale


def online_softmax_step(s, allowed, v, m, row_sum, acc):
    """Fold one key tile into the running max ``m``, ``row_sum`` ``[bq, 1]`` and ``acc``."""
    s = jnp.where(allowed, s, MASK_VALUE)
    m_new = jnp.maximum(m, jnp.max(s, axis=1, keepdims=True))
    p = jnp.where(allowed, jnp.exp(s - m_new), 0.0)
    alpha = jnp.exp(m - m_new)
    sum_new = alpha * row_sum + jnp.sum(p, axis=1, keepdims=True)
    acc_new = alpha * acc + dot(p.astype(v.dtype), v)
    return m_new, sum_new, acc_new


def finish(m, row_sum, acc):
    """Normalised output ``[bq, dv]`` (0 for empty rows) and log-sum-exp ``[bq, 1]``."""
    nonempty = row_sum > 0
    safe_sum = jnp.where(nonempty, row_sum, 1.0)
    out = acc / safe_sum
    lse = jnp.where(nonempty, m + jnp.log(safe_sum), 0.0)
    return out, lse


def probs_and_dlogits(q, k, v, do, lse, delta, allowed, scale):
    """Recomputed probabilities ``p`` and logit gradients ``ds`` (before ``scale``), ``[bq, bk]``.

    ``lse``, ``delta`` ``[bq, 1]``: the forward log-sum-exp and ``rowsum(do * out)``.
    """
    p = jnp.where(allowed, jnp.exp(logits(q, k, scale) - lse), 0.0)
    dp = dot(do, v, trans_b=True)
    return p, p * (dp - delta)
