"""``attend(impl="xla")`` for masks routed per query row (MoBA): each query attends only the
key blocks listed for it, as matrix products.

``BlockSparse(bq, bk, lists)`` with a small ``bq`` gives every query its own ``k`` key blocks.
Gathering those keys per query turns attention into matrix-vector products (memory bound),
and evaluating the mask over whole rows costs dense attention. Here the (query, slot) pairs
of each (batch, head) row are sorted by key block and packed into tiles of ``tile`` pairs
that share one block, so a tile is one ``[tile, d] x [d, bk]`` product. Each pair keeps a
partial softmax (max, sum, weighted values); the pairs of a query merge by their maxima.
Cost per row: ``(T * k + nb * tile) * bk`` scores instead of ``T * S``; the rest of the
mask (``Causal`` for MoBA) is evaluated on each tile from its ``allowed``.

The math is the reference's (float32 logits, masked softmax, rows with no allowed key
exactly 0, zero gradients there); duplicate and out-of-range list entries count once / not
at all, as ``BlockSparse`` defines.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from attnzoo.layers.blocked_attention import masked_exp
from attnzoo.layers.masks import And, BlockSparse, Mask
from attnzoo.pallas_kernels.tiles import MASK_VALUE

__all__ = ["attend_routed", "routing_of"]

ROW_BYTES = 32 * 2**20  # float32 scores of the rows run together


def routing_of(mask: Mask) -> tuple[BlockSparse, Mask | None] | None:
    """``mask``'s finest-routed ``BlockSparse`` part and the rest (None: nothing else), or
    None when it has no block-sparse part."""
    parts = mask.masks if isinstance(mask, And) else (mask,)
    routed = [m for m in parts if isinstance(m, BlockSparse)]
    if not routed:
        return None
    finest = min(routed, key=lambda m: m.block_q)
    rest = [m for m in parts if m is not finest]
    return finest, (None if not rest else rest[0] if len(rest) == 1 else And(*rest))


def _tile_size(pairs: int, blocks: int) -> int:
    """Pairs per tile: about half the mean pairs per key block, a power of two in [8, 128]."""
    target = max(1, pairs // (2 * blocks))
    return min(128, max(8, 1 << (target.bit_length() - 1)))


def _pack(lists: jax.Array, blocks: int, tile: int) -> tuple[jax.Array, jax.Array]:
    """``lists`` int32 ``[T, k]`` (one row's key blocks per query) -> the query of each packed
    slot ``[n * tile]`` (-1: padding) and the key block of each tile ``[n]``."""
    t, k = lists.shape
    ids = jnp.sort(jnp.where((lists >= 0) & (lists < blocks), lists, blocks), axis=1)
    repeat = jnp.concatenate([jnp.zeros((t, 1), bool), ids[:, 1:] == ids[:, :-1]], axis=1)
    block = jnp.where(repeat, blocks, ids).reshape(t * k)  # `blocks` = unused slot
    order = jnp.argsort(block, stable=True)
    block, query = block[order], order // k
    counts = jnp.bincount(block, length=blocks + 1)[:blocks]
    starts = jnp.cumsum(counts) - counts  # each block's first pair, sorted
    padded = -(-counts // tile) * tile
    tile_starts = jnp.cumsum(padded) - padded  # ... and its first slot, packed
    n = -(-(t * k) // tile) + blocks  # static bound on sum(ceil(counts / tile))
    used = block < blocks
    clipped = jnp.minimum(block, blocks - 1)
    slot = jnp.where(used, tile_starts[clipped] + jnp.arange(t * k) - starts[clipped], n * tile)
    slot_query = jnp.full((n * tile,), -1, jnp.int32).at[slot].set(query, mode="drop")
    tile_block = jnp.zeros((n,), jnp.int32).at[slot // tile].set(clipped, mode="drop")
    return slot_query, tile_block


def _attend_row(q, k, v, lists, row, *, scale, block_k, tile, rest):
    """One (batch, head) row: ``q [T, d]``, ``k [S, d]``, ``v [S, dv]``, ``lists [T, k]``,
    ``row = (batch, head)`` indices for ``rest`` -> float32 ``[T, dv]``."""
    t, s = q.shape[0], k.shape[0]
    blocks = -(-s // block_k)
    slot_query, tile_block = _pack(lists, blocks, tile)
    n = tile_block.shape[0]
    pad = blocks * block_k - s
    kb = jnp.pad(k, ((0, pad), (0, 0))).reshape(blocks, block_k, -1)[tile_block]
    vb = jnp.pad(v, ((0, pad), (0, 0))).reshape(blocks, block_k, -1)[tile_block]
    q_pos = slot_query.reshape(n, tile, 1)
    k_pos = (tile_block[:, None] * block_k + jnp.arange(block_k))[:, None, :]  # [n, 1, bk]
    qs = q[jnp.maximum(slot_query, 0)].reshape(n, tile, -1)
    logits = jnp.einsum("ntd,nsd->nts", qs, kb, preferred_element_type=jnp.float32) * scale
    ok = (q_pos >= 0) & (k_pos < s)
    if rest is not None:
        allowed = rest.allowed(jnp.maximum(q_pos, 0), k_pos)  # [B|1, H|1, n, tile, bk]
        ok &= allowed[tuple(i if d > 1 else 0 for i, d in zip(row, allowed.shape[:2]))]
    m = jax.lax.stop_gradient(jnp.max(jnp.where(ok, logits, MASK_VALUE), axis=-1))  # [n, tile]
    p = masked_exp(logits - m[..., None], ok)
    total, acc = p.sum(-1).reshape(-1), jnp.einsum("nts,nsd->ntd", p, vb.astype(jnp.float32))
    m, acc = m.reshape(-1), acc.reshape(n * tile, -1)
    segment = jnp.where(slot_query >= 0, slot_query, t)  # padding -> a dropped segment
    best = jax.ops.segment_max(m, segment, num_segments=t + 1)[segment]
    w = jnp.exp(m - best)
    denom = jax.ops.segment_sum(w * total, segment, num_segments=t + 1)[:t]
    out = jax.ops.segment_sum(w[:, None] * acc, segment, num_segments=t + 1)[:t]
    return out / jnp.where(denom > 0, denom, 1.0)[:, None]


def attend_routed(q, k, v, scale: float, routed: BlockSparse, rest: Mask | None):
    """Attention under ``routed & rest``: ``q [b, t, hq, d]``, ``k [b, s, hkv, d]``,
    ``v [b, s, hkv, dv]`` -> ``[b, t, hq, dv]`` (GQA: query head ``h`` reads kv head
    ``h // (hq // hkv)``)."""
    b, t, hq, _ = q.shape
    s, hkv, dv = k.shape[1], k.shape[2], v.shape[-1]
    g = hq // hkv
    lists = jnp.repeat(routed.indices.astype(jnp.int32), routed.block_q, axis=2)[:, :, :t]
    lists = jnp.broadcast_to(lists, (b, hq, t, lists.shape[-1]))
    tile = _tile_size(t * lists.shape[-1], -(-s // routed.block_k))
    batch, head = jnp.meshgrid(jnp.arange(b), jnp.arange(hq), indexing="ij")
    rows = (
        q.transpose(0, 2, 1, 3).reshape(b * hq, t, -1),
        jnp.repeat(k.transpose(0, 2, 1, 3), g, axis=1).reshape(b * hq, s, -1),
        jnp.repeat(v.transpose(0, 2, 1, 3), g, axis=1).reshape(b * hq, s, dv),
        lists.reshape(b * hq, t, -1),
        (batch.reshape(-1), head.reshape(-1)),
    )
    unit = jax.checkpoint(
        jax.vmap(
            functools.partial(
                _attend_row, scale=scale, block_k=routed.block_k, tile=tile, rest=rest
            )
        )
    )
    pairs = t * lists.shape[-1] + tile * -(-s // routed.block_k)
    size = max(1, min(b * hq, ROW_BYTES // (pairs * routed.block_k * 4)))
    steps = -(-(b * hq) // size)
    padded = jax.tree.map(
        lambda x: jnp.pad(x, [(0, steps * size - b * hq)] + [(0, 0)] * (x.ndim - 1)), rows
    )
    out = jax.lax.map(
        lambda c: unit(*c), jax.tree.map(lambda x: x.reshape(steps, size, *x.shape[1:]), padded)
    )
    out = out.reshape(steps * size, t, dv)[: b * hq].reshape(b, hq, t, dv)
    return out.transpose(0, 2, 1, 3).astype(q.dtype)
