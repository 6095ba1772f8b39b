"""Traffic family: GMAN's attention masks, masked metrics, baselines, graph embeddings."""

import numpy as np
import pytest
from flax import nnx

from attnzoo.eval import traffic as metrics
from attnzoo.graph import (
    laplacian_eigenvectors,
    neighbourhood_preservation,
    node2vec,
    node2vec_walks,
    spatial_embedding,
)
from attnzoo.layers.masks import Causal, Dense
from attnzoo.zoo.traffic.batch_norm import ScheduledBatchNorm
from attnzoo.zoo.traffic.gman import GMAN, STAttBlock

B, T, N, D = 2, 5, 6, 8


@pytest.fixture(scope="module")
def block():
    return STAttBlock(D, 2, 4, bn_decay_steps=2, rngs=nnx.Rngs(0))


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, T, N, 2 * D)).astype(np.float32)


def test_temporal_attention_never_sees_the_future(block):
    block.eval()
    h = _inputs().transpose(0, 2, 1, 3)  # [b, N, T, 2D]
    out = block.temporal(h, h, h, mask=Causal(), impl="reference")
    for t in range(1, T):
        changed = h.copy()
        changed[:, :, t:] += 5.0
        new = block.temporal(changed, changed, changed, mask=Causal(), impl="reference")
        np.testing.assert_allclose(new[:, :, :t], out[:, :, :t], rtol=1e-5, atol=1e-5)
        assert not np.allclose(new[:, :, t:], out[:, :, t:])


def test_spatial_attention_respects_the_graph_mask(block):
    block.eval()
    adjacency = np.eye(N, dtype=bool) | np.eye(N, k=1, dtype=bool) | np.eye(N, k=-1, dtype=bool)
    h = _inputs()
    mask = Dense(adjacency)
    out = block.spatial(h, h, h, mask=mask, impl="reference")
    changed = h.copy()
    changed[:, :, 0] += 5.0  # node 0: a neighbour of nodes 0 and 1 only
    new = block.spatial(changed, changed, changed, mask=mask, impl="reference")
    np.testing.assert_allclose(new[:, :, 2:], out[:, :, 2:], rtol=1e-5, atol=1e-5)
    assert not np.allclose(new[:, :, :2], out[:, :, :2])
    full = block.spatial(changed, changed, changed, mask=None, impl="reference")
    assert not np.allclose(full[:, :, 2:], out[:, :, 2:])  # without the mask, all nodes see it
    weights = np.asarray(block.spatial.weights(h, h, mask=mask, impl="reference"))
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-5)  # [b, T, N, K, N]
    assert np.all(weights[..., ~adjacency[:, None, :].repeat(2, 1)] == 0)


def test_day_of_week_can_be_left_out_of_the_temporal_embedding():
    kwargs = dict(
        spatial_embedding=np.eye(N, 4, dtype=np.float32),
        input_len=3,
        horizon=2,
        steps_per_day=24,
        mean=0.0,
        std=1.0,
        num_blocks=1,
        num_heads=2,
        head_dim=4,
        rngs=nnx.Rngs(0),
    )
    time = np.stack([np.arange(5) % 7, np.arange(5) + 3], -1)[None]  # [1, P+Q, 2]
    other_day = time.copy()
    other_day[..., 0] = (other_day[..., 0] + 3) % 7
    with_day, without = GMAN(**kwargs), GMAN(**kwargs, day_of_week=False)
    with_day.eval(), without.eval()
    assert without.te_fc.linears[0].kernel.shape == (24, 8)
    np.testing.assert_array_equal(without.st_embedding(time), without.st_embedding(other_day))
    assert not np.allclose(with_day.st_embedding(time), with_day.st_embedding(other_day))


def test_batch_norm_keeps_debiased_moving_statistics_on_the_official_decay_schedule():
    """Decay 0.5 for `decay_steps` steps, then 0.75 (official `1 - 0.5 · 0.5^k`); the
    evaluation mean is the moving average divided by its total weight (TF zero_debias)."""
    bn = ScheduledBatchNorm(1, decay_steps=2)
    np.testing.assert_allclose(bn.statistics(), ([0.0], [1.0]))  # before any step
    batches = [np.array([[1.0], [3.0]]), np.array([[5.0], [5.0]]), np.array([[0.0], [4.0]])]
    for x in batches:  # means 2, 5, 2; biased variances 1, 0, 4
        out = bn(x.astype(np.float32))
    np.testing.assert_allclose(out, [[-2.0 / np.sqrt(4.001)], [2.0 / np.sqrt(4.001)]], rtol=1e-6)
    # Weights of the three batches: 0.5·0.5·0.75, 0.5·0.75, 0.25; total 1 - 0.5·0.5·0.75.
    w = np.array([0.1875, 0.375, 0.25]) / 0.8125
    mean, var = bn.statistics()
    np.testing.assert_allclose(mean, [w @ [2.0, 5.0, 2.0]], rtol=1e-6)
    np.testing.assert_allclose(var, [w @ [1.0, 0.0, 4.0]], rtol=1e-6)
    bn.eval()
    np.testing.assert_allclose(
        bn(np.array([[7.0]], np.float32)), [(7.0 - mean) / np.sqrt(var + 1e-3)], rtol=1e-6
    )


def test_masked_metrics_ignore_zeros():
    # Kept readings: 10 → 12 (err 2), 20 → 17 (err 3), 5 → 5 (err 0); zeros are missing.
    target = np.zeros((1, 12, 2), np.float32)
    pred = np.full((1, 12, 2), 99.0, np.float32)
    target[0, 2] = [10.0, 0.0]
    pred[0, 2] = [12.0, 3.0]
    target[0, 5] = [20.0, 5.0]
    pred[0, 5] = [17.0, 5.0]
    out = metrics.summarize(metrics.masked_sums(pred, target))
    assert out["mae"] == pytest.approx(5 / 3)
    assert out["rmse"] == pytest.approx(np.sqrt(13 / 3))
    assert out["mape"] == pytest.approx(100 * (0.2 + 0.15 + 0.0) / 3)
    assert out["mae_15min"] == pytest.approx(2.0)  # step 3: only 10 → 12 counts
    assert out["mape_30min"] == pytest.approx(100 * 0.15 / 2)
    assert out["mae_60min"] == 0.0  # no reading at step 12
    windows = np.array([False])
    assert metrics.summarize(metrics.masked_sums(pred, target, windows))["mae"] == 0.0


def test_baselines():
    last = np.array([[1.0, 2.0]])
    np.testing.assert_array_equal(metrics.last_value(last, 3), [[[1, 2]] * 3])
    values = np.array([[10, 0], [20, 4], [30, 6], [0, 8]], np.float32)  # 2 days of 2 steps
    table = metrics.fit_historical_average(values, np.array([0, 1, 0, 1]), period=2)
    np.testing.assert_allclose(table, [[20, 6], [20, 6]])  # zeros excluded
    np.testing.assert_allclose(
        metrics.historical_average(table, np.array([[1, 0]]))[0], table[[1, 0]]
    )


def test_walks_follow_the_graph_and_the_pq_bias():
    # Edges 0-1, 0-2, 1-2, 1-3. Having come 0 → 1, node2vec weighs the next node by 1/p
    # (back to 0), 1 (2: also a neighbour of 0), 1/q (3: two hops from 0).
    a = np.zeros((4, 4), np.float32)
    for i, j in ((0, 1), (0, 2), (1, 2), (1, 3)):
        a[i, j] = a[j, i] = 1.0
    p, q = 2.0, 0.5
    walks = node2vec_walks(a, num_walks=6000, walk_length=3, p=p, q=q, seed=0)
    assert (a[walks[:, :-1], walks[:, 1:]] > 0).all()  # every step is an edge
    after = walks[(walks[:, 0] == 0) & (walks[:, 1] == 1), 2]
    expected = np.array([1 / p, 0, 1, 1 / q])
    expected /= expected.sum()
    observed = np.bincount(after, minlength=4) / len(after)
    sigma = np.sqrt(expected * (1 - expected) / len(after))
    assert np.all(np.abs(observed - expected) <= 4 * sigma + 1e-12), (observed, expected)


def test_laplacian_eigenvectors_of_a_ring_are_the_fourier_modes():
    n = 10
    a = np.zeros((n, n))
    a[np.arange(n), (np.arange(n) + 1) % n] = a[(np.arange(n) + 1) % n, np.arange(n)] = 1
    vectors = laplacian_eigenvectors(a, 4).astype(np.float64)
    j = np.arange(n)
    for k, cols in ((1, slice(0, 2)), (2, slice(2, 4))):
        # Eigenvalue 1 - cos(2πk/n), twice: the span of cos and sin at frequency k.
        analytic = np.stack([np.cos(2 * np.pi * k * j / n), np.sin(2 * np.pi * k * j / n)], 1)
        analytic /= np.linalg.norm(analytic, axis=0)
        ours = vectors[:, cols]
        np.testing.assert_allclose(ours @ ours.T, analytic @ analytic.T, atol=1e-5)
        laplacian = np.eye(n) - a / 2
        np.testing.assert_allclose(
            laplacian @ ours, (1 - np.cos(2 * np.pi * k / n)) * ours, atol=1e-5
        )


def test_node2vec_preserves_neighbourhoods_and_embeddings_are_cached(tmp_path):
    # Two 5-cliques joined by one edge: neighbours must be nearest in the embedding.
    a = np.zeros((10, 10), np.float32)
    a[:5, :5] = a[5:, 5:] = 1.0
    np.fill_diagonal(a, 0.0)
    a[4, 5] = a[5, 4] = 1.0
    e = node2vec(
        a, dim=8, p=1.0, q=1.0, num_walks=20, walk_length=10, window=3, epochs=3, batch_size=256
    )
    assert neighbourhood_preservation(e, a) > 0.75
    assert neighbourhood_preservation(np.random.default_rng(0).normal(size=(10, 8)), a) < 0.75
    first = spatial_embedding(a, "laplacian", dim=3, cache_dir=tmp_path)
    (cached,) = tmp_path.glob("laplacian-*.npy")
    np.save(cached, first + 1)  # a second call reads the cache, not recomputes
    np.testing.assert_array_equal(
        spatial_embedding(a, "laplacian", dim=3, cache_dir=tmp_path), first + 1
    )
    spatial_embedding(a + np.eye(10), "laplacian", dim=3, cache_dir=tmp_path)  # another graph
    assert len(list(tmp_path.glob("laplacian-*.npy"))) == 2
