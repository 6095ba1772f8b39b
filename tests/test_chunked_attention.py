"""Attention in cache-sized chunks (`attend(impl="xla")` without a mask or with a nearly
dense one) equals the materialised reference, values and gradients, however the rows and
queries are cut."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from attnzoo.layers import chunked_attention
from attnzoo.layers.attention import attend
from attnzoo.layers.chunked_attention import attend_chunked, query_buckets
from attnzoo.layers.masks import Causal, LocalWindow1D
from tests.test_attend import _max_intermediate, _xla_cases, qkv


def _normal(shape, seed):
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape), jnp.float32)


@pytest.mark.parametrize(
    "b,t,s,hq,hkv,dv,chunk_bytes",
    [
        (3, 7, 11, 4, 2, 5, 4 * 7 * 2 * 11 * 3),  # 3 of the 6 (b, kv-head) rows per chunk
        (5, 9, 9, 3, 1, 8, 4 * 9 * 3 * 9 * 2),  # 5 rows in chunks of 2: the last is padding
        (2, 6, 6, 2, 2, 4, 1),  # one row per chunk
        (2, 6, 6, 2, 2, 4, 2**20),  # all rows in one chunk: no map
    ],
)
def test_chunked_equals_reference(b, t, s, hq, hkv, dv, chunk_bytes):
    q, k = _normal((b, t, hq, 8), 0), _normal((b, s, hkv, 8), 1)
    v, cot = _normal((b, s, hkv, dv), 2), _normal((b, t, hq, dv), 3)
    scale = 0.3

    def loss(fn):
        return jax.jit(jax.value_and_grad(lambda *x: (fn(*x) * cot).sum(), argnums=(0, 1, 2)))

    chunked = loss(lambda q, k, v: attend_chunked(q, k, v, scale, chunk_bytes=chunk_bytes))
    reference = loss(lambda q, k, v: attend(q, k, v, scale=scale, impl="reference"))
    (got, got_grads), (want, want_grads) = chunked(q, k, v), reference(q, k, v)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for g, w in zip(got_grads, want_grads, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    out = attend_chunked(q, k, v, scale, chunk_bytes=chunk_bytes)
    np.testing.assert_allclose(out, attend(q, k, v, scale=scale, impl="reference"), atol=2e-6)


def test_chunks_bound_the_largest_intermediate():
    """The [t, s] scores of 64 rows of 32 x 32 never exist at once: 8 rows per chunk."""
    q = _normal((16, 32, 4, 8), 0)
    grad = jax.grad(lambda q: attend_chunked(q, q, q, 1.0, chunk_bytes=32768).sum())
    # sub-jaxprs (the map body) included; 64 * 32 * 32 = the materialised scores
    assert _max_intermediate(jax.make_jaxpr(grad)(q)) < 64 * 32 * 32
    assert attend(q, q, q).dtype == jnp.float32  # the default path runs


def test_bf16_output_dtype_and_float32_math():
    q = _normal((2, 5, 2, 8), 0).astype(jnp.bfloat16)
    out = attend_chunked(q, q, q, 8**-0.5, chunk_bytes=1)
    want = attend(q, q, q, impl="reference")
    assert out.dtype == jnp.bfloat16
    np.testing.assert_allclose(out.astype(jnp.float32), want.astype(jnp.float32), atol=1e-2)


# The masks of test_attend's xla cases whose pointwise form is exact (not block-sparse).
_MASKED = [n for n, case in _xla_cases().items() if case[2].block_multiple() is None]


@pytest.mark.parametrize("cut", ["whole", "rows", "queries"])
@pytest.mark.parametrize("name", _MASKED)
def test_masked_chunks_equal_reference(name, cut):
    """Masks evaluated inside each chunk from their pointwise form (operands per batch, per
    head, traced offsets): all rows at once, 3 rows per chunk, or a row's queries cut in 7s
    (40 = 5 x 7 + 5: the last query chunk padded)."""
    t, s, _, hkv = _xla_cases()[name]
    g = 4 // hkv
    chunk_bytes = {"whole": 2**30, "rows": 3 * g * t * s * 4, "queries": 7 * g * s * 4}[cut]
    _assert_case_matches_reference(name, chunk_bytes=chunk_bytes)


def _assert_case_matches_reference(name, **options):
    """`attend_chunked(..., **options)` on xla case `name` against the materialised reference:
    values and the gradients of q, k, v."""
    t, s, mask, hkv = _xla_cases()[name]
    q, k, v = qkv(t=t, s=s, hkv=hkv, seed=hkv)
    cot = _normal((2, t, 4, 8), 3)
    pointwise = mask.pointwise()

    def loss(fn):
        return jax.jit(jax.value_and_grad(lambda *x: (fn(*x) * cot).sum(), argnums=(0, 1, 2)))

    chunked = loss(lambda q, k, v: attend_chunked(q, k, v, 0.3, pointwise, **options))
    reference = loss(lambda q, k, v: attend(q, k, v, mask=mask, scale=0.3, impl="reference"))
    (got, got_grads), (want, want_grads) = chunked(q, k, v), reference(q, k, v)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for g_, w in zip(got_grads, want_grads, strict=True):
        np.testing.assert_allclose(g_, w, rtol=1e-5, atol=1e-5)


def test_long_rows_are_cut_by_queries():
    """One 512 x 512 causal row (1 MB of scores) in 64 KB chunks: no intermediate holds more
    than a chunk of queries' scores, forward or backward."""
    q = _normal((1, 512, 1, 8), 0)
    mask = Causal().pointwise()
    grad = jax.grad(lambda q: attend_chunked(q, q, q, 1.0, mask, chunk_bytes=65536).sum())
    assert _max_intermediate(jax.make_jaxpr(grad)(q)) <= 65536 // 4


def _buckets(name):  # buckets of >= 5 queries: the test sequences are short
    t, s, mask, _ = _xla_cases()[name]
    return query_buckets(mask, t, s, min_queries=5)


# Masks with static block lists and keys to skip (not traced offsets, segments, dense arrays).
_BUCKETED = [name for name in _MASKED if _buckets(name) is not None]


def test_bucketed_cases_cover_the_positional_masks():
    assert {"local", "local_t_ne_s", "causal", "causal_local", "local2d"} <= set(_BUCKETED)


@pytest.mark.parametrize("cut", ["whole", "queries"])
@pytest.mark.parametrize("name", _BUCKETED)
def test_query_buckets_equal_reference(name, cut):
    """Each query bucket over its key range only: the same values and gradients as the
    reference, also where a bucket's keys are cut by queries."""
    t, s, _, hkv = _xla_cases()[name]
    buckets = _buckets(name)
    assert sum((qb - qa) * (kb - ka) for qa, qb, ka, kb in buckets) <= 7 / 8 * t * s
    chunk_bytes = {"whole": 2**30, "queries": 3 * (4 // hkv) * s * 4}[cut]
    _assert_case_matches_reference(name, buckets=buckets, chunk_bytes=chunk_bytes)


@pytest.mark.parametrize("name", _BUCKETED)
def test_keys_every_query_sees_skip_the_mask(name, monkeypatch):
    """A bucket's first keys allowed for all its queries (causal: those before the bucket)
    are computed without the mask: the same values and gradients as the reference."""
    monkeypatch.setattr(chunked_attention, "MIN_FREE_KEYS", 1)
    t, s, _, hkv = _xla_cases()[name]
    _assert_case_matches_reference(name, buckets=_buckets(name), chunk_bytes=3 * (4 // hkv) * s * 4)


def test_free_keys_of_causal_and_window_spans():
    causal, window = Causal().pointwise(), LocalWindow1D(64, 0).pointwise()
    assert chunked_attention._free_keys(causal, (384, 512, 0, 512)) == 384
    assert chunked_attention._free_keys(causal, (0, 128, 0, 128)) == 0  # key 0 only: too few
    assert chunked_attention._free_keys(window, (512, 640, 448, 640)) == 0
    assert chunked_attention._free_keys(LocalWindow1D(9, 9).pointwise(), (0, 8, 0, 8)) == 8


def test_causal_buckets_skip_the_upper_triangle():
    """Causal at 1024 tokens: 8 buckets of 128 queries, bucket i over keys [0, 128 (i + 1)):
    (1 + 1/8) / 2 of the scores. A query range with no allowed key gets an empty key range
    (its output is 0); short sequences and full-width masks are not bucketed."""
    assert query_buckets(Causal(), 1024, 1024) == tuple(
        (128 * i, 128 * (i + 1), 0, 128 * (i + 1)) for i in range(8)
    )
    assert query_buckets(Causal(-600), 1024, 1024)[0] == (0, 512, 0, 0)
    assert query_buckets(Causal(), 256, 256) is None  # 2 buckets: slower than none here
    assert query_buckets(LocalWindow1D(2000, 2000), 1024, 1024) is None
    q = _normal((1, 1024, 2, 8), 0)
    out = attend(q, q, q, mask=Causal(-600), impl="xla")
    np.testing.assert_array_equal(out[:, :600], 0.0)
    causal = jax.make_jaxpr(lambda q: attend(q, q, q, mask=Causal(), impl="xla"))(q)
    assert _max_intermediate(causal) <= 2 * 128 * 1024  # one bucket's [2 rows, 128, 1024]
