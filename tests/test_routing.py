"""Bi-level routing attention and window-first token order."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attnzoo.layers.attention import attend
from attnzoo.layers.masks import Dense
from attnzoo.layers.routing import (
    BiLevelRoutingAttention,
    bra_gather_reference,
    route,
    routed_attention,
)
from attnzoo.layers.token_order import (
    from_window_first,
    to_window_first,
    window_first_permutation,
)


@pytest.fixture(autouse=True)
def _no_eager_sharding():
    with nnx.use_eager_sharding(False):
        yield


GRID, N_WIN = (8, 12), 4  # 4x4 regions of 2x3 tokens
WINDOW = (GRID[0] // N_WIN, GRID[1] // N_WIN)


def test_window_first_order():
    perm = window_first_permutation((4, 6), (2, 3))
    # window 0 = rows 0-1, cols 0-2 of the row-major 4x6 grid; window 1 = cols 3-5
    np.testing.assert_array_equal(perm[:12], [0, 1, 2, 6, 7, 8, 3, 4, 5, 9, 10, 11])
    x = jax.random.normal(jax.random.key(0), (2, 24, 5))
    wf = to_window_first(x, (4, 6), (2, 3))
    np.testing.assert_array_equal(wf, x[:, perm])
    np.testing.assert_array_equal(from_window_first(wf, (4, 6), (2, 3)), x)
    with pytest.raises(ValueError, match="must be a multiple of the window"):
        window_first_permutation((4, 6), (3, 3))


def _qkv(b=2, h=2, d=8):
    n = GRID[0] * GRID[1]
    keys = jax.random.split(jax.random.key(1), 3)
    return [jax.random.normal(kk, (b, n, h, d)) for kk in keys]  # row-major tokens


def _routed_dense_mask(indices: np.ndarray) -> np.ndarray:
    """bool [b, n, n] over row-major tokens, built from the region ids directly."""
    ys, xs = np.divmod(np.arange(GRID[0] * GRID[1]), GRID[1])
    region = (ys // WINDOW[0]) * N_WIN + xs // WINDOW[1]  # row-major region id per token
    sel = indices[:, region]  # [b, n, topk]: routed regions of each query's region
    return (sel[:, :, None, :] == region[None, None, :, None]).any(-1)


@pytest.mark.parametrize("impl", ["xla", "reference"])
@pytest.mark.parametrize("topk", [1, 3])
def test_bra_equals_dense_attention_on_routed_regions(impl, topk):
    q, k, v = _qkv()
    scale = 16**-0.5  # qk_dim = h * d = 16
    wf = [to_window_first(t, GRID, WINDOW) for t in (q, k, v)]
    b, n = q.shape[:2]
    indices = route(
        wf[0].reshape(b, n, -1), wf[1].reshape(b, n, -1), n_regions=N_WIN**2, topk=topk, scale=scale
    )
    assert indices.shape == (b, N_WIN**2, topk)
    rt = WINDOW[0] * WINDOW[1]
    out = routed_attention(*wf, indices, region_tokens=rt, scale=scale, impl=impl)
    out = from_window_first(out, GRID, WINDOW)
    mask = Dense(jnp.asarray(_routed_dense_mask(np.asarray(indices)))[:, None])
    expected = attend(q, k, v, mask=mask, scale=scale, impl="reference")
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    gathered = bra_gather_reference(*wf, indices, region_tokens=rt, scale=scale)
    np.testing.assert_allclose(from_window_first(gathered, GRID, WINDOW), expected, atol=1e-5)


def test_route_picks_the_top_regions_by_mean_affinity():
    q, k, _ = _qkv(b=1, h=1, d=4)
    wf_q, wf_k = (to_window_first(t, GRID, WINDOW)[..., 0, :] for t in (q, k))
    indices = route(wf_q, wf_k, n_regions=16, topk=2, scale=0.5)
    q_r = np.asarray(wf_q).reshape(1, 16, -1, 4).mean(2)
    k_r = np.asarray(wf_k).reshape(1, 16, -1, 4).mean(2)
    best = np.argsort(-(0.5 * q_r @ k_r.transpose(0, 2, 1)), axis=-1)[..., :2]
    np.testing.assert_array_equal(np.sort(indices, -1), np.sort(best, -1))


def test_topk_all_regions_equals_full_attention():
    bra = BiLevelRoutingAttention(
        16, 2, n_win=N_WIN, topk=N_WIN**2, side_dwconv=0, rngs=nnx.Rngs(0)
    )
    x = jax.random.normal(jax.random.key(2), (2, *GRID, 16))
    q, k, v = jnp.split(bra.qkv(x).reshape(2, -1, 48), 3, axis=-1)
    full = attend(*(t.reshape(2, -1, 2, 8) for t in (q, k, v)), scale=16**-0.5, impl="reference")
    expected = bra.out(full.reshape(2, *GRID, 16))
    np.testing.assert_allclose(bra(x), expected, rtol=1e-5, atol=1e-5)


def test_bra_module_with_lce_matches_its_definition():
    dim, heads = 16, 4
    bra = BiLevelRoutingAttention(dim, heads, n_win=N_WIN, topk=2, impl="xla", rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(3), (2, *GRID, dim))
    out = bra(x)
    assert out.shape == x.shape
    # independent composition: official gather path on permuted tokens + conv on v
    b, n = 2, GRID[0] * GRID[1]
    perm = window_first_permutation(GRID, WINDOW)
    q, k, v = jnp.split(bra.qkv(x).reshape(b, n, 3 * dim), 3, axis=-1)
    q, k, v = q[:, perm], k[:, perm], v[:, perm]
    indices = route(q, k, n_regions=N_WIN**2, topk=2, scale=dim**-0.5)
    att = bra_gather_reference(
        *(t.reshape(b, n, heads, -1) for t in (q, k, v)), indices, region_tokens=6, scale=dim**-0.5
    ).reshape(b, n, dim)
    att = jnp.zeros_like(att).at[:, perm].set(att).reshape(b, *GRID, dim)
    v_map = bra.qkv(x)[..., 2 * dim :]
    kernel = bra.lepe.kernel[...]  # [5, 5, 1, dim]
    lce = (
        jax.lax.conv_general_dilated(
            v_map,
            kernel,
            (1, 1),
            ((2, 2), (2, 2)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=dim,
        )
        + bra.lepe.bias[...]
    )
    assert lce.shape == x.shape
    np.testing.assert_allclose(out, bra.out(att + lce), rtol=1e-5, atol=1e-5)


def test_routing_is_detached_and_grads_are_finite():
    bra = BiLevelRoutingAttention(16, 2, n_win=N_WIN, topk=2, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(4), (1, *GRID, 16))
    grads = nnx.grad(lambda m: m(x).sum())(bra)
    assert all(bool(jnp.isfinite(g).all()) for g in jax.tree.leaves(grads))
    q = jax.random.normal(jax.random.key(5), (1, 96, 16))
    g = jax.grad(lambda q: route(q, q, n_regions=16, topk=2, scale=1.0).astype(jnp.float32).sum())
    np.testing.assert_array_equal(g(q), 0.0)


def test_bad_grid_is_rejected():
    bra = BiLevelRoutingAttention(16, 2, n_win=3, topk=2, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="not divisible into 3x3 regions"):
        bra(jnp.zeros((1, 8, 8, 16)))
