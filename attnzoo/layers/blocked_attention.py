"""``attend(impl="xla")``: pure-jnp attention whose cost follows the mask's block lists.

Every mask lists, per query block, the key blocks holding an allowed pair. The listed
(query block, key block) tiles are gathered into one flat batch of ``P`` tiles, the mask is
evaluated on each tile through its pointwise form, and a softmax runs across the tiles of each
query block (segment max / sum). Time and memory grow with ``P``, not with ``T x S``: causal
attention costs about half of full attention, a local window its width, routed block-sparse
attention its top-k. Static lists (positional masks) give exactly the allowed tiles; traced
lists (``BlockSparse``, traced ``Causal`` offsets, array masks) use every slot and mask the
padding.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from attnzoo.layers.masks import LocalWindow1D, LocalWindow2D, Mask
from attnzoo.pallas_kernels.block_lists import is_concrete
from attnzoo.pallas_kernels.tiles import MASK_VALUE

__all__ = [
    "attend_blocked",
    "group_heads",
    "masked_exp",
    "pad_axis1",
    "tile_fraction",
    "xla_blocks",
]

_MAX_BLOCK = 512  # dense-ish masks: few, large tiles
_MAX_LOCAL_BLOCK = 128  # local windows: tiles about the window's size
_MIN_BLOCK = 16


def group_heads(x: jax.Array, hkv: int) -> jax.Array:
    """``[B, H|1, ...]`` over query heads -> ``[B, hkv|1, g|1, ...]``."""
    if x.shape[1] == 1:
        return x[:, :, None]
    return x.reshape(x.shape[0], hkv, x.shape[1] // hkv, *x.shape[2:])


def pad_axis1(x: jax.Array, before: int, after: int) -> jax.Array:
    pad = [(0, 0)] * x.ndim
    pad[1] = (before, after)
    return jnp.pad(x, pad)


def _pow2_ceil(n: int) -> int:
    return 1 << max(n - 1, 0).bit_length()


def _natural_block(mask: Mask) -> int | None:
    """Tokens in the mask's smallest local unit: a 1-D window's width, a 2-D window-first
    window's area, a row-major grid's row (None: no local structure)."""
    sizes = []
    for m in getattr(mask, "masks", (mask,)):
        if isinstance(m, LocalWindow1D):
            sizes.append(m.left + m.right + 1)
        elif isinstance(m, LocalWindow2D):
            sizes.append(m.grid[1] if m.window is None else m.window[0] * m.window[1])
    return min(sizes) if sizes else None


def xla_blocks(mask: Mask, t: int, s: int) -> tuple[int, int]:
    """Tiles for the xla path: a ``BlockSparse`` mask's own blocks; ~the local window for
    local masks (16..128); else 512 (shrunk for short sequences)."""
    multiple = mask.block_multiple()
    if multiple is not None:
        return int(multiple[0]), int(multiple[1])
    width = _natural_block(mask)
    block = (
        _MAX_BLOCK if width is None else min(_MAX_LOCAL_BLOCK, max(_MIN_BLOCK, _pow2_ceil(width)))
    )
    return min(block, _pow2_ceil(t)), min(block, _pow2_ceil(s))


def tile_fraction(mask: Mask, t: int, s: int) -> float:
    """The share of the ``[T, S]`` tiles :func:`attend_blocked` visits for ``mask`` (static;
    an upper bound when the lists are traced)."""
    bq, bk = xla_blocks(mask, t, s)
    nq, nk = -(-t // bq), -(-s // bk)
    lists = mask.static_block_lists(t, s, bq, bk)
    if lists is None:
        return min(mask.max_k_bound(t, s, bq, bk), nk) / nk
    return float(np.sum(lists.counts)) / (nq * nk)


@jax.custom_vjp
def masked_exp(x, ok):
    """``where(ok, exp(x), 0)`` whose backward keeps only the result (one tile-sized buffer)."""
    return jnp.where(ok, jnp.exp(x), 0.0)


def masked_exp_fwd(x, ok):
    p = masked_exp(x, ok)
    return p, p


def masked_exp_bwd(p, g):
    return g * p, None


masked_exp.defvjp(masked_exp_fwd, masked_exp_bwd)


def _tile_list(lists, nq: int):
    """Flat tiles: query-block ids ``[P]`` (numpy, sorted), key-block ids ``[B|1, H|1, P]``
    (-1 = unused slot)."""
    idx = lists.indices
    if is_concrete(idx) and idx.shape[:2] == (1, 1):
        idx, counts = np.asarray(idx)[0, 0], np.asarray(lists.counts)[0, 0]
        q_ids = np.repeat(np.arange(nq), counts)
        k_ids = np.concatenate([row[:c] for row, c in zip(idx, counts, strict=True)] + [[]])
        if q_ids.size == 0:  # nothing allowed anywhere: one masked tile keeps shapes valid
            return np.zeros(1, np.int64), np.full((1, 1, 1), -1, np.int32)
        return q_ids, k_ids.astype(np.int32)[None, None]
    mb, mh, _, kk = idx.shape
    return np.repeat(np.arange(nq), kk), idx.reshape(mb, mh, nq * kk)


def _read(op, q_pos, k_pos, t, s):
    """Operand ``[B|1, H|1, T|1, S|1]`` read at ``q_pos`` ``[1, 1, P, bq, 1]`` and ``k_pos``
    ``[M, N, P, 1, bk]``."""
    bi = jnp.arange(op.shape[0])[:, None, None, None, None]
    hi = jnp.arange(op.shape[1])[None, :, None, None, None]
    qi = jnp.clip(q_pos, 0, t - 1) if op.shape[2] > 1 else 0
    ki = jnp.clip(k_pos, 0, s - 1) if op.shape[3] > 1 else 0
    return op[bi, hi, qi, ki]


def attend_blocked(q, k, v, mask: Mask, scale: float) -> jax.Array:
    """``[b, t, hq, dv]``; same math as the reference, over the mask's listed tiles only."""
    b, t, hq, d = q.shape
    s, hkv, dv = k.shape[1], k.shape[2], v.shape[-1]
    g = hq // hkv
    bq, bk = xla_blocks(mask, t, s)
    nq, nk = -(-t // bq), -(-s // bk)
    q_ids, k_ids = _tile_list(mask.tile_lists(t, s, bq, bk), nq)  # [P], [M, N, P]
    mb, mh, p_len = k_ids.shape
    safe = jnp.clip(k_ids, 0, nk - 1)

    qb = pad_axis1(q, 0, nq * bq - t).reshape(b, nq, bq, hkv, g, d)[:, q_ids]
    kb = pad_axis1(k, 0, nk * bk - s).reshape(b, nk, bk, hkv, d)
    vb = pad_axis1(v, 0, nk * bk - s).reshape(b, nk, bk, hkv, dv).astype(jnp.float32)
    if mh == 1:  # one key list for all heads: [b, P, bk, hkv, e]
        sel = jnp.broadcast_to(safe[:, 0], (b, p_len))
        kt, vt = (x[jnp.arange(b)[:, None], sel] for x in (kb, vb))
        logits = jnp.einsum("bpqkgd,bpskd->bkgpqs", qb, kt, preferred_element_type=jnp.float32)
    else:  # per query head: [b, hkv, g, P, bk, e]
        sel = jnp.broadcast_to(safe, (b, hq, p_len)).reshape(b, hkv, g, p_len)
        bi = jnp.arange(b)[:, None, None, None]
        hi = jnp.arange(hkv)[None, :, None, None]
        kt, vt = (x.transpose(0, 3, 1, 2, 4)[bi, hi, sel] for x in (kb, vb))
        logits = jnp.einsum("bpqkgd,bkgpsd->bkgpqs", qb, kt, preferred_element_type=jnp.float32)
    logits = logits * scale  # [b, hkv, g, P, bq, bk]

    pw = mask.pointwise()
    q_pos = (q_ids[:, None, None] * bq + np.arange(bq)[:, None])[None, None]  # [1, 1, P, bq, 1]
    k_pos = safe[..., None, None] * bk + jnp.arange(bk)  # [M, N, P, 1, bk]
    values = [_read(op, q_pos, k_pos, t, s) for op in pw.operands]
    ok = pw.fn(q_pos, k_pos, *values) & (k_ids >= 0)[..., None, None]
    ok = ok & (k_pos < s) & (q_pos < t)  # [B|1, H|1, P, bq, bk]
    ok = group_heads(jnp.broadcast_to(ok, (*ok.shape[:2], p_len, bq, bk)), hkv)

    tile_max = jnp.max(jnp.where(ok, logits, MASK_VALUE), axis=-1)  # [b, hkv, g, P, bq]
    row_max = jax.ops.segment_max(jnp.moveaxis(tile_max, 3, 0), q_ids, nq, indices_are_sorted=True)
    row_max = jnp.moveaxis(jax.lax.stop_gradient(row_max)[q_ids], 0, 3)[..., None]
    p = masked_exp(logits - row_max, ok)  # [b, hkv, g, P, bq, bk]
    denom = jax.ops.segment_sum(
        jnp.moveaxis(p.sum(-1), 3, 0), q_ids, nq, indices_are_sorted=True
    )  # [nq, b, hkv, g, bq]
    if mh == 1:
        tile_out = jnp.einsum("bkgpqs,bpskd->pbqkgd", p, vt)
    else:
        tile_out = jnp.einsum("bkgpqs,bkgpsd->pbqkgd", p, vt)
    out = jax.ops.segment_sum(
        tile_out, q_ids, nq, indices_are_sorted=True
    )  # [nq, b, bq, hkv, g, dv]
    denom = denom.transpose(0, 1, 4, 2, 3)[..., None]  # [nq, b, bq, hkv, g, 1]
    out = out / jnp.where(denom > 0, denom, 1.0)
    return out.transpose(1, 0, 2, 3, 4, 5).reshape(b, nq * bq, hq, dv)[:, :t].astype(q.dtype)
