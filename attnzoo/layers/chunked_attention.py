"""``attend(impl="xla")`` for dense and nearly dense masks: attention in cache-sized chunks.

Many attention layers in the zoo run a large batch of short sequences: GMAN's spatial
attention is 384 x 8 (batch x heads) rows of 207 x 207 scores, its temporal attention 53k
rows of 12 x 12 (causal), a language model 64 rows of 256 x 256 (causal), a ViT on 4 x 4
patches 384 rows of 49 x 49. Materialised at once, their scores are hundreds of MB, so every
softmax pass (and autodiff's several in the backward) streams them through main memory. Here
the flattened ``batch x kv-heads`` axis is cut into chunks whose ``[g * t, s]`` float32
scores fit in about :data:`CHUNK_BYTES`, and a ``lax.map`` runs each chunk start to finish in
cache; the chunk body is rematerialised, so the backward recomputes a chunk's scores instead
of reading all of them back from memory. A mask is evaluated inside the chunk from its
pointwise form (:class:`~attnzoo.layers.masks.Pointwise`), never as a dense ``[T, S]`` array
unless an operand is one. Measured on the project's 2-core CPU (fwd + bwd): GMAN's spatial
attention 3.3x faster than the materialised reference, a 2k-token sequence 2.2x
(benchmarks/README.md).

The math is the reference's (float32 logits, masked softmax with the row max subtracted,
output in ``q.dtype``, rows with no allowed key exactly 0), except that the softmax
normalisation divides the ``[t, dv]`` output instead of the ``[t, s]`` probabilities:
results agree with ``impl="reference"`` to float32 rounding.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from attnzoo.layers.blocked_attention import masked_exp
from attnzoo.layers.masks import Pointwise
from attnzoo.pallas_kernels.tiles import MASK_VALUE

__all__ = ["CHUNK_BYTES", "attend_chunked"]

CHUNK_BYTES = 4 * 2**20  # float32 scores per chunk: a few MB stay in L2/L3


def _attend_rows(q, k, v, values, q_start, *, scale, g, fn) -> jax.Array:
    """``q [n, g * t, d]`` (queries ``q_start + [0, t)``), ``k [n, s, d]``, ``v [n, s, dv]``,
    mask operands ``[n|1, g|1, t|1, s|1]`` read by ``fn`` (None: no mask) -> float32
    ``[n, g * t, dv]``."""
    logits = jnp.einsum("ntd,nsd->nts", q, k, preferred_element_type=jnp.float32) * scale
    if fn is None:
        e = jnp.exp(logits - jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True)))
    else:
        n, gt, s = logits.shape
        t = gt // g
        ok = fn(q_start + jnp.arange(t)[:, None], jnp.arange(s), *values)  # [n|1, g|1, t, s]
        ok = jnp.broadcast_to(ok, (n, g, t, s)).reshape(n, gt, s)
        row_max = jnp.max(jnp.where(ok, logits, MASK_VALUE), axis=-1, keepdims=True)
        e = masked_exp(logits - jax.lax.stop_gradient(row_max), ok)
    out = jnp.einsum("nts,nsd->ntd", e, v.astype(jnp.float32))
    denom = jnp.sum(e, axis=-1, keepdims=True)
    return out / (denom if fn is None else jnp.where(denom > 0, denom, 1.0))


def _operand_rows(op: jax.Array, b: int, hkv: int, g: int) -> jax.Array:
    """Mask operand ``[B|1, H|1, T|1, S|1]`` (H: query heads) -> ``[n|1, g|1, T|1, S|1]``
    with ``n = b * hkv`` rows in the order of the flattened ``(batch, kv head)`` axis."""
    mb, mh = op.shape[:2]
    op = op.reshape(mb, 1, 1, *op.shape[2:]) if mh == 1 else op.reshape(mb, hkv, g, *op.shape[2:])
    if mb == 1 and mh == 1:
        return op.reshape(1, *op.shape[2:])
    op = jnp.broadcast_to(op, (b, hkv, *op.shape[2:]))
    return op.reshape(b * hkv, *op.shape[2:])


def attend_chunked(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    scale: float,
    mask: Pointwise | None = None,
    *,
    chunk_bytes: int = CHUNK_BYTES,
) -> jax.Array:
    """Attention under ``mask`` (the pointwise form of a mask whose pointwise form is exact;
    None: full attention): ``q [b, t, hq, d]``, ``k [b, s, hkv, d]``, ``v [b, s, hkv, dv]``
    -> ``[b, t, hq, dv]`` (GQA: the ``hq // hkv`` query heads of a kv head share one row)."""
    b, t, hq, d = q.shape
    s, hkv, dv = k.shape[1], k.shape[2], v.shape[-1]
    g, n = hq // hkv, b * hkv
    qn = q.reshape(b, t, hkv, g, d).transpose(0, 2, 3, 1, 4).reshape(n, g * t, d)
    kn = k.transpose(0, 2, 1, 3).reshape(n, s, d)
    vn = v.transpose(0, 2, 1, 3).reshape(n, s, dv)
    fn = None if mask is None else mask.fn
    operands = () if mask is None else tuple(_operand_rows(o, b, hkv, g) for o in mask.operands)
    unit = jax.checkpoint(functools.partial(_attend_rows, scale=scale, g=g, fn=fn))
    tq = max(1, min(t, chunk_bytes // (g * s * 4)))  # queries per chunk of a single row

    def rows(qn, kn, vn, values):  # [m, g * t, d], [m, s, d], [m, s, dv], [m|1, g|1, t|1, s|1]
        if tq == t:
            return unit(qn, kn, vn, values, 0)
        m, nt = qn.shape[0], -(-t // tq)

        def by_query(x):  # [m, g|1, t, ...] -> [nt, m, g|1, tq, ...]
            x = jnp.pad(x, [(0, 0), (0, 0), (0, nt * tq - t)] + [(0, 0)] * (x.ndim - 3))
            return jnp.moveaxis(x.reshape(*x.shape[:2], nt, tq, *x.shape[3:]), 2, 0)

        qc = by_query(qn.reshape(m, g, t, d)).reshape(nt, m, g * tq, d)
        vals = tuple(by_query(x) if x.shape[2] > 1 else x for x in values)
        per_chunk = tuple(x for x, y in zip(vals, values, strict=True) if y.shape[2] > 1)

        def chunk(c):
            it = iter(c[2])
            vs = tuple(next(it) if y.shape[2] > 1 else x for x, y in zip(vals, values, strict=True))
            return unit(c[0], kn, vn, vs, c[1] * tq)

        out = jax.lax.map(chunk, (qc, jnp.arange(nt), per_chunk))  # [nt, m, g * tq, dv]
        out = jnp.moveaxis(out.reshape(nt, m, g, tq, dv), 0, 2).reshape(m, g, nt * tq, dv)
        return out[:, :, :t].reshape(m, g * t, dv)

    size = max(1, min(n, chunk_bytes // (g * t * s * 4)))  # rows per chunk
    if size == n:
        out = rows(qn, kn, vn, operands)
    else:
        steps = -(-n // size)

        def split(x):
            pad = [(0, steps * size - n)] + [(0, 0)] * (x.ndim - 1)
            return jnp.pad(x, pad).reshape(steps, size, *x.shape[1:])

        per_row = tuple(split(o) for o in operands if o.shape[0] > 1)  # chunked with q, k, v

        def body(c):
            it = iter(c[3])
            return rows(*c[:3], tuple(next(it) if o.shape[0] > 1 else o for o in operands))

        out = jax.lax.map(body, (split(qn), split(kn), split(vn), per_row))
        out = out.reshape(steps * size, g * t, dv)[:n]
    out = out.reshape(b, hkv, g, t, dv).transpose(0, 3, 1, 2, 4)
    return out.reshape(b, t, hq, dv).astype(q.dtype)
