"""Rotary position embedding (RoPE; Su et al. 2021, "RoFormer").

Convention: *rotate-half* (GPT-NeoX / LLaMA in HF layout). Of the first ``r`` channels
(``r = 2 * floor(fraction * d / 2)``), channel ``i`` pairs with channel ``i + r/2`` and the
pair ``(x_i, x_{i + r/2})`` is rotated by ``angle = position * base ** (-2i / r)``::

    y_i       = x_i cos(angle) - x_{i+r/2} sin(angle)
    y_{i+r/2} = x_{i+r/2} cos(angle) + x_i sin(angle)

Channels ``>= r`` pass through unchanged (partial RoPE, as in GPT-NeoX ``rotary_pct``).
``<rope(q, m), rope(k, n)>`` depends on positions only through ``m - n``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["apply_rope", "rope_frequencies", "rotary_dim"]


def rotary_dim(head_dim: int, fraction: float = 1.0) -> int:
    """Number of rotated channels: the even number ``2 * floor(fraction * head_dim / 2)``."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"RoPE fraction must be in (0, 1], got {fraction}")
    return 2 * int(fraction * head_dim // 2)


def rope_frequencies(rot_dim: int, base: float = 10000.0) -> jax.Array:
    """float32 ``[rot_dim // 2]`` inverse frequencies ``base ** (-2i / rot_dim)``."""
    if rot_dim % 2:
        raise ValueError(f"rotary dim must be even, got {rot_dim}")
    return base ** (-jnp.arange(0, rot_dim, 2, dtype=jnp.float32) / rot_dim)


def apply_rope(
    x: jax.Array, positions: jax.Array, *, base: float = 10000.0, fraction: float = 1.0
) -> jax.Array:
    """Rotate ``x`` ``[b, t, h, d]`` by integer ``positions`` ``[b, t]`` or ``[t]``.

    Computed in float32, returned in ``x.dtype``.
    """
    if x.ndim != 4:
        raise ValueError(f"apply_rope expects x [b, t, h, d], got shape {x.shape}")
    positions = jnp.asarray(positions)
    if positions.ndim not in (1, 2) or positions.shape[-1] != x.shape[1]:
        raise ValueError(
            f"positions must be [t] or [b, t] with t={x.shape[1]}, got shape {positions.shape}"
        )
    r = rotary_dim(x.shape[-1], fraction)
    if r == 0:
        return x
    half = r // 2
    pos = positions.astype(jnp.float32).reshape(-1, x.shape[1])  # [b|1, t]
    angle = pos[:, :, None, None] * rope_frequencies(r, base)  # [b|1, t, 1, r/2]
    cos, sin = jnp.cos(angle), jnp.sin(angle)
    xf = x.astype(jnp.float32)
    x1, x2, rest = xf[..., :half], xf[..., half:r], xf[..., r:]  # [b, t, h, r/2] each
    out = jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin, rest], axis=-1)
    return out.astype(x.dtype)
