"""Select and Pack Attention (SPA; "Context-Aware Token Selection and Packing").

A cheap linear gate scores every token; a hard Gumbel-softmax over (keep, drop) with logits
``(s, 0)`` (so the keep probability is the sigmoid gate ``sigmoid(s)``) selects tokens, with
a straight-through gradient to the gate. The selected tokens of the *whole batch* are
packed into fixed-length containers (``container_len`` tokens, images never split, only the
tail of each container padded) and the wrapped block runs on the containers under a
``Segments`` mask, so a token attends only within its own image. Unselected tokens bypass
the block; results are unpacked to their positions.

Choices where the paper is silent (no official code): the straight-through form
``x + m * (block(x) - x)`` with ``m = hard + y - stop_gradient(y)`` (forward value exactly
``block(x)`` on kept tokens, so keeping every token reproduces the plain block); greedy
in-order packing; images that do not fit in ``capacity * b * n`` container slots bypass
the block (reported through the kept fraction). ViT has one scale, so the gate has no
previous-scale score to max with.
"""

import math

import jax
import jax.numpy as jnp
from flax import nnx

from attnzoo.layers.masks import Segments
from attnzoo.layers.mlp import dense


def gumbel_select(logits: jax.Array, rng: jax.Array | None, *, tau: float = 1.0):
    """Hard keep/drop per token from gate logits ``[b, n]``.

    Returns ``(keep, gate)``: bool ``[b, n]`` and float ``[b, n]`` equal to ``keep`` in value
    with the straight-through gradient of the relaxed sample. ``rng=None`` (eval) keeps
    ``sigmoid(logits) > 0.5`` without noise.
    """
    if rng is None:
        keep = logits > 0
        return keep, keep.astype(logits.dtype)
    g = jax.random.gumbel(rng, (2, *logits.shape), logits.dtype)
    soft = jax.nn.sigmoid((logits + g[0] - g[1]) / tau)  # softmax over (s + g0, 0 + g1)
    keep = soft > 0.5
    return keep, keep.astype(soft.dtype) + (soft - jax.lax.stop_gradient(soft))


def pack_slots(keep: jax.Array, container_len: int, num_containers: int) -> jax.Array:
    """int32 ``[b, n]``: the container slot of each kept token (``-1``: not placed).

    Images are placed in order; an image starts a new container when its kept tokens do not
    fit in the current one's free tail; images past the last container are not placed.
    """
    counts = keep.sum(1, dtype=jnp.int32)  # [b]

    def place(carry, k):
        container, fill = carry
        new = fill + k > container_len
        container, fill = container + new, jnp.where(new, 0, fill)
        return (container, fill + k), (container * container_len + fill, container)

    _, (start, container) = jax.lax.scan(place, (jnp.int32(0), jnp.int32(0)), counts)
    rank = jnp.cumsum(keep, axis=1, dtype=jnp.int32) - 1  # [b, n]
    placed = keep & (container < num_containers)[:, None]
    return jnp.where(placed, start[:, None] + rank, -1)


def pack(x: jax.Array, slots: jax.Array, container_len: int, num_containers: int):
    """``x`` ``[b, n, c]`` -> containers ``[nc, L, c]`` and segment ids ``[nc, L]`` (the image
    index; ``-1`` on padding)."""
    b, n, c = x.shape
    size = container_len * num_containers
    where = jnp.where(slots >= 0, slots, size).reshape(-1)  # out of range -> dropped
    packed = jnp.zeros((size, c), x.dtype).at[where].set(x.reshape(b * n, c), mode="drop")
    image = jnp.broadcast_to(jnp.arange(b, dtype=jnp.int32)[:, None], (b, n)).reshape(-1)
    ids = jnp.full((size,), -1, jnp.int32).at[where].set(image, mode="drop")
    return packed.reshape(num_containers, container_len, c), ids.reshape(num_containers, -1)


def unpack(packed: jax.Array, slots: jax.Array, x: jax.Array) -> jax.Array:
    """Containers ``[nc, L, c]`` back to ``[b, n, c]``; tokens without a slot take ``x``."""
    flat = packed.reshape(-1, packed.shape[-1])
    return jnp.where((slots >= 0)[..., None], flat[jnp.maximum(slots, 0)], x)


class SelectAndPack(nnx.Module):
    """Wraps a token block (``block(x, mask=..., rngs=...)``, ``[b, n, c] -> [b, n, c]``)
    with SPA token selection.

    Args:
      block: the wrapped block; width: token channels ``c``.
      container_len: tokens per container (``>= n``, the tokens of one image).
      capacity: container slots as a fraction of ``b * n`` (1.0 never drops a kept token).
      tau: Gumbel-softmax temperature.
      record: sow ``nnx.Intermediate`` ``"spa_gate_logits"`` ``[b, n]`` and ``"spa_placed"``
        (bool ``[b, n]``, tokens that went through the block) for losses, metrics and plots;
        call the model inside ``nnx.capture(fn, nnx.Intermediate)`` then.
    """

    def __init__(
        self,
        block: nnx.Module,
        width: int,
        *,
        container_len: int,
        capacity: float = 1.0,
        tau: float = 1.0,
        record: bool = True,
        dtype=jnp.float32,
        rngs: nnx.Rngs,
    ):
        if not 0 < capacity <= 1:
            raise ValueError(f"SPA capacity must be in (0, 1], got {capacity}")
        self.block, self.container_len, self.capacity = block, container_len, capacity
        self.tau, self.record = tau, record
        self.gate = dense(width, 1, ("embed", None), dtype=dtype, rngs=rngs)

    def __call__(self, x: jax.Array, *, rngs: nnx.Rngs | None = None) -> jax.Array:
        b, n, _ = x.shape
        if n > self.container_len:
            raise ValueError(f"SPA container_len={self.container_len} < {n} tokens per image")
        logits = self.gate(x)[..., 0].astype(jnp.float32)  # [b, n]
        keep, gate = gumbel_select(logits, None if rngs is None else rngs["select"](), tau=self.tau)
        num_containers = math.ceil(self.capacity * b * n / self.container_len)
        slots = pack_slots(keep, self.container_len, num_containers)  # [b, n]
        packed, ids = pack(x, slots, self.container_len, num_containers)  # [nc, L, c], [nc, L]
        out = self.block(packed, mask=Segments(ids), rngs=rngs)  # [nc, L, c]
        y = unpack(out, slots, x)  # [b, n, c]
        if self.record:
            self.sow(nnx.Intermediate, "spa_gate_logits", logits)
            self.sow(nnx.Intermediate, "spa_placed", slots >= 0)
        return x + gate[..., None].astype(x.dtype) * (y - x)
