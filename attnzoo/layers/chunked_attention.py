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

Masks with static block lists (causal, windows) also skip keys: the queries are cut into up
to :data:`BUCKETS` buckets (:func:`query_buckets`), each run over the key range its block
lists span. Causal attention then computes (1 + 1/8) / 2 of the scores. The keys every query
of a bucket sees (causal: those before the bucket) skip the mask's evaluation, and chunks are
sized alike (no chunk mostly padding): fwd + bwd at 8k tokens 0.6-0.65x of full attention.
Below 512 tokens the smaller GEMMs cost more than the skipped keys save, so short sequences
run unbucketed.

The math is the reference's (float32 logits, masked softmax with the row max subtracted,
output in ``q.dtype``, rows with no allowed key exactly 0), except that the softmax
normalisation divides the ``[t, dv]`` output instead of the ``[t, s]`` probabilities:
results agree with ``impl="reference"`` to float32 rounding.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from attnzoo.layers.blocked_attention import masked_exp
from attnzoo.layers.masks import Mask, Pointwise
from attnzoo.pallas_kernels.tiles import MASK_VALUE

__all__ = ["CHUNK_BYTES", "attend_chunked", "query_buckets"]

CHUNK_BYTES = 4 * 2**20  # float32 scores per chunk: a few MB stay in L2/L3
BUCKETS = 8  # query buckets of query_buckets: causal computes (1 + 1/8) / 2 of the scores
MIN_BUCKET_QUERIES = 128  # shorter buckets make GEMMs too small to pay for the skipped keys
MIN_FREE_KEYS = 128  # keys every query of a span sees skip the mask, in multiples of this
MAX_EVALUATED = 2**26  # (query, key) pairs of a span evaluated at trace time to find them
MIN_BUCKETS = 4  # fewer skip too little (at 256 tokens, 2 buckets were slower than none)

Span = tuple[int, int, int, int]


def _attend_rows(q, k, v, values, q_start, *, k_start, scale, g, fn, free=0) -> jax.Array:
    """``q [n, g * t, d]`` (queries ``q_start + [0, t)``), ``k [n, s, d]``, ``v [n, s, dv]``
    (keys ``k_start + [0, s)``), mask operands ``[n|1, g|1, t|1, s|1]`` read by ``fn`` (None:
    no mask) -> float32 ``[n, g * t, dv]``. The first ``free`` keys are allowed for every
    query: the mask is evaluated on the others only."""
    v = v.astype(jnp.float32)

    def scores(k):  # [n, s, d] -> float32 [n, g * t, s]
        return jnp.einsum("ntd,nsd->nts", q, k, preferred_element_type=jnp.float32) * scale

    if fn is None:
        logits = scores(k)
        e = jnp.exp(logits - jax.lax.stop_gradient(jnp.max(logits, axis=-1, keepdims=True)))
        return jnp.einsum("nts,nsd->ntd", e, v) / jnp.sum(e, axis=-1, keepdims=True)
    logits = scores(k[:, free:])
    n, gt, s = logits.shape
    t = gt // g
    ok = fn(q_start + jnp.arange(t)[:, None], k_start + free + jnp.arange(s), *values)
    ok = jnp.broadcast_to(ok, (n, g, t, s)).reshape(n, gt, s)  # [n, g * t, s - free]
    row_max = jnp.max(jnp.where(ok, logits, MASK_VALUE), axis=-1, keepdims=True)
    if free:
        free_logits = scores(k[:, :free])
        row_max = jnp.maximum(row_max, jnp.max(free_logits, axis=-1, keepdims=True))
    row_max = jax.lax.stop_gradient(row_max)
    e = masked_exp(logits - row_max, ok)
    out = jnp.einsum("nts,nsd->ntd", e, v[:, free:])
    denom = jnp.sum(e, axis=-1, keepdims=True)
    if free:
        free_e = jnp.exp(free_logits - row_max)
        out += jnp.einsum("nts,nsd->ntd", free_e, v[:, :free])
        denom += jnp.sum(free_e, axis=-1, keepdims=True)
    return out / jnp.where(denom > 0, denom, 1.0)


def _free_keys(mask: Pointwise, span: Span) -> int:
    """How many of the span's first keys an operand-free ``mask`` allows for all its queries
    (evaluated here, at trace time, for spans of <= :data:`MAX_EVALUATED` pairs): the whole
    span, or a multiple of :data:`MIN_FREE_KEYS` (so the GEMMs keep aligned shapes)."""
    qa, qb, ka, kb = span
    if mask.operands or (qb - qa) * (kb - ka) > MAX_EVALUATED:
        return 0
    with jax.ensure_compile_time_eval():
        ok = np.asarray(mask.fn(np.arange(qa, qb)[:, None], np.arange(ka, kb)))
    every = ok.reshape(-1, ok.shape[-1]).all(axis=0)
    if every.all():
        return kb - ka
    return int(np.argmin(every)) // MIN_FREE_KEYS * MIN_FREE_KEYS


def _operand_rows(op: jax.Array, b: int, hkv: int, g: int) -> jax.Array:
    """Mask operand ``[B|1, H|1, T|1, S|1]`` (H: query heads) -> ``[n|1, g|1, T|1, S|1]``
    with ``n = b * hkv`` rows in the order of the flattened ``(batch, kv head)`` axis."""
    mb, mh = op.shape[:2]
    op = op.reshape(mb, 1, 1, *op.shape[2:]) if mh == 1 else op.reshape(mb, hkv, g, *op.shape[2:])
    if mb == 1 and mh == 1:
        return op.reshape(1, *op.shape[2:])
    op = jnp.broadcast_to(op, (b, hkv, *op.shape[2:]))
    return op.reshape(b * hkv, *op.shape[2:])


def query_buckets(
    mask: Mask, t: int, s: int, *, min_queries: int = MIN_BUCKET_QUERIES
) -> tuple[Span, ...] | None:
    """Static query buckets ``(q_start, q_end, k_start, k_end)``, each with the key range
    that holds every key its queries may see (from ``mask``'s static block lists over
    ~:data:`BUCKETS` query blocks), when they skip >= 1/8 of the ``[t, s]`` scores (causal:
    ~1/2); else None (unknown lists, or nearly full ranges). Buckets hold >= ``min_queries``
    queries, and there are >= :data:`MIN_BUCKETS` of them."""
    nb = max(1, min(BUCKETS, t // min_queries))
    bq, bk = -(-t // nb), -(-s // nb)
    lists = mask.static_block_lists(t, s, bq, bk)
    if nb < MIN_BUCKETS or lists is None or lists.indices.shape[:2] != (1, 1):
        return None
    spans: list[Span] = []
    for i, row in enumerate(lists.indices[0, 0]):
        listed = row[row >= 0]
        q_span = (i * bq, min(t, (i + 1) * bq))
        k_span = (0, 0) if not listed.size else (listed.min() * bk, min(s, (listed.max() + 1) * bk))
        if spans and spans[-1][2:] == k_span:
            spans[-1] = (spans[-1][0], q_span[1], *k_span)
        else:
            spans.append((*q_span, *k_span))
    spans = [tuple(int(x) for x in span) for span in spans]
    work = sum((qb - qa) * (kb - ka) for qa, qb, ka, kb in spans)
    return tuple(spans) if work <= 7 / 8 * t * s else None


def attend_chunked(
    q: jax.Array,
    k: jax.Array,
    v: jax.Array,
    scale: float,
    mask: Pointwise | None = None,
    *,
    buckets: tuple[Span, ...] | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> jax.Array:
    """Attention under ``mask`` (the pointwise form of a mask whose pointwise form is exact;
    None: full attention): ``q [b, t, hq, d]``, ``k [b, s, hkv, d]``, ``v [b, s, hkv, dv]``
    -> ``[b, t, hq, dv]`` (GQA: the ``hq // hkv`` query heads of a kv head share one row).
    ``buckets`` (:func:`query_buckets`): query ranges, each computed over its key range only
    (keys outside it must be masked for those queries); queries of an empty range get 0."""
    b, t, hq, d = q.shape
    s, hkv, dv = k.shape[1], k.shape[2], v.shape[-1]
    g, n = hq // hkv, b * hkv
    qn = q.reshape(b, t, hkv, g, d).transpose(0, 2, 3, 1, 4).reshape(n, g, t, d)
    kn = k.transpose(0, 2, 1, 3).reshape(n, s, d)
    vn = v.transpose(0, 2, 1, 3).reshape(n, s, dv)
    fn = None if mask is None else mask.fn
    operands = () if mask is None else tuple(_operand_rows(o, b, hkv, g) for o in mask.operands)
    parts = []
    for qa, qb, ka, kb in buckets or ((0, t, 0, s),):
        if ka == kb:  # no key allowed: rows with no allowed key are exactly 0
            parts.append(jnp.zeros((n, g, qb - qa, dv), jnp.float32))
            continue
        values = tuple(
            o[:, :, qa:qb] if o.shape[2] > 1 else o for o in operands
        )  # [n|1, g|1, T|1, S|1] -> this bucket's queries and keys
        values = tuple(o[..., ka:kb] if o.shape[3] > 1 else o for o in values)
        free = 0 if mask is None else _free_keys(mask, (qa, qb, ka, kb))
        out = _attend_span(
            qn[:, :, qa:qb], kn[:, ka:kb], vn[:, ka:kb], values, q_start=qa, k_start=ka,
            scale=scale, fn=None if free == kb - ka else fn, free=free, chunk_bytes=chunk_bytes,
        )  # fmt: skip
        parts.append(out)
    out = parts[0] if len(parts) == 1 else jnp.concatenate(parts, axis=2)  # [n, g, t, dv]
    out = out.reshape(b, hkv, g, t, dv).transpose(0, 3, 1, 2, 4)
    return out.reshape(b, t, hq, dv).astype(q.dtype)


def _even_split(total: int, most: int) -> int:
    """Chunk size for ``total`` items in the fewest chunks of <= ``most`` (>= 1), sized alike:
    the last chunk is not mostly padding (s = 3072 keys: 4 chunks of 256 queries, not 341)."""
    chunks = -(-total // max(1, min(total, most)))
    return -(-total // chunks)


def _attend_span(qn, kn, vn, operands, *, q_start, k_start, scale, fn, free, chunk_bytes):
    """``qn [n, g, t, d]`` (queries ``q_start + [0, t)``) over ``kn [n, s, d]``, ``vn [n, s,
    dv]`` (keys ``k_start + [0, s)``, the first ``free`` allowed for every query), mask operands
    ``[n|1, g|1, t|1, s|1]`` -> float32 ``[n, g, t, dv]``, in chunks of rows (and of queries)
    of about ``chunk_bytes`` scores."""
    n, g, t, d = qn.shape
    s, dv = kn.shape[1], vn.shape[-1]
    unit = functools.partial(_attend_rows, k_start=k_start, scale=scale, g=g, fn=fn, free=free)
    unit = jax.checkpoint(unit)
    tq = _even_split(t, chunk_bytes // (g * s * 4))  # queries per chunk of a single row

    def rows(qn, kn, vn, values):  # [m, g, t, d], [m, s, d], [m, s, dv], [m|1, g|1, t|1, s|1]
        m = qn.shape[0]
        if tq == t:
            return unit(qn.reshape(m, g * t, d), kn, vn, values, q_start)
        nt = -(-t // tq)

        def by_query(x):  # [m, g|1, t, ...] -> [nt, m, g|1, tq, ...]
            x = jnp.pad(x, [(0, 0), (0, 0), (0, nt * tq - t)] + [(0, 0)] * (x.ndim - 3))
            return jnp.moveaxis(x.reshape(*x.shape[:2], nt, tq, *x.shape[3:]), 2, 0)

        qc = by_query(qn).reshape(nt, m, g * tq, d)
        vals = tuple(by_query(x) if x.shape[2] > 1 else x for x in values)
        per_chunk = tuple(x for x, y in zip(vals, values, strict=True) if y.shape[2] > 1)

        def chunk(c):
            it = iter(c[2])
            vs = tuple(next(it) if y.shape[2] > 1 else x for x, y in zip(vals, values, strict=True))
            return unit(c[0], kn, vn, vs, q_start + c[1] * tq)

        out = jax.lax.map(chunk, (qc, jnp.arange(nt), per_chunk))  # [nt, m, g * tq, dv]
        out = jnp.moveaxis(out.reshape(nt, m, g, tq, dv), 0, 2).reshape(m, g, nt * tq, dv)
        return out[:, :, :t].reshape(m, g * t, dv)

    size = _even_split(n, chunk_bytes // (g * t * s * 4))  # rows per chunk
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
    return out.reshape(n, g, t, dv)
