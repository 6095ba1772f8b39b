"""Pathformer pieces against the official definitions (numpy re-derivations), DLinear,
forecasting metrics and baselines."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from scipy.stats import norm

import attnzoo
from attnzoo.eval import forecasting
from attnzoo.zoo.timeseries import decomposition, router
from attnzoo.zoo.timeseries.revin import revin_denormalize, revin_normalize

RNG = np.random.default_rng(0)


def test_revin_round_trip_and_statistics():
    x = jnp.asarray(RNG.normal(3.0, 2.0, (4, 96, 7)), jnp.float32)
    normed, stats = revin_normalize(x)
    mean = np.asarray(x).mean(1, keepdims=True)
    std = np.sqrt(np.asarray(x).var(1, keepdims=True) + 1e-5)  # biased var + eps
    np.testing.assert_allclose(normed, (np.asarray(x) - mean) / std, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(revin_denormalize(normed, stats), x, rtol=1e-5, atol=1e-5)


def test_decomposition_recovers_sine_and_trend():
    t = np.arange(96)
    sine = np.sin(2 * np.pi * 8 * t / 96)  # period 12
    trend = 0.05 * t
    x = jnp.asarray((sine + trend)[None, :, None], jnp.float32)
    # A moving average over exactly one period cancels the sine: the trend is left
    # (shifted by half a step: the official even-kernel window is [t-6, t+5]).
    ma = np.asarray(decomposition.moving_average(x, 12))[0, :, 0]
    np.testing.assert_allclose(ma[6:-5], 0.05 * (t[6:-5] - 0.5), atol=1e-5)
    # The learned mix: a large bias on kernel 12 selects it.
    with nnx.use_eager_sharding(False):  # unsharded params, with or without a mesh
        mixer = decomposition.MultiKernelTrend((4, 8, 12), rngs=nnx.Rngs(0))
    mixer.mix.kernel[...] = jnp.zeros((1, 3))
    mixer.mix.bias[...] = jnp.array([0.0, 0.0, 50.0])
    np.testing.assert_allclose(np.asarray(mixer(x))[0, :, 0], ma, atol=1e-5)
    # Top-1 Fourier seasonality of the detrended series is the sine.
    seasonal = decomposition.fourier_seasonality(jnp.asarray(sine[None, :, None], jnp.float32), 1)
    np.testing.assert_allclose(np.asarray(seasonal)[0, :, 0], sine, atol=1e-4)


def test_fourier_seasonality_matches_numpy_topk():
    x = RNG.normal(size=(2, 96, 3)).astype(np.float32)
    got = np.asarray(decomposition.fourier_seasonality(jnp.asarray(x), 3))
    spec = np.fft.rfft(x, axis=1)[:, 1:-1]
    freqs = np.fft.rfftfreq(96)[1:-1]
    want = np.zeros_like(x)
    for b in range(2):
        for c in range(3):
            for j in np.argsort(-np.abs(spec[b, :, c]))[:3]:
                amp, phase = np.abs(spec[b, j, c]) / 96, np.angle(spec[b, j, c])
                t = np.arange(96)
                want[b, :, c] += 2 * amp * np.cos(2 * np.pi * freqs[j] * t + phase)
    np.testing.assert_allclose(got, want, atol=1e-4)


def make_router(k=2, experts=4):
    with nnx.use_eager_sharding(False):
        return router.NoisyTopKRouter(96, 7, experts, k, rngs=nnx.Rngs(1))


def test_noisy_top_k_gates_are_k_sparse_and_sum_to_one():
    x = jnp.asarray(RNG.normal(size=(16, 96, 7, 4)), jnp.float32)
    route = nnx.jit(lambda r, x: r(x))
    for k in (1, 2, 3):
        r = make_router(k)
        for deterministic in (False, True):
            r.deterministic = deterministic
            gates, balance = route(r, x)
            assert ((np.asarray(gates) > 0).sum(1) == k).all()
            np.testing.assert_allclose(np.asarray(gates).sum(1), 1.0, rtol=1e-6)
            assert np.isfinite(balance) and balance >= 0


def test_top_k_gates_is_softmax_over_top_k():
    logits = jnp.array([[1.0, 3.0, 2.0, -1.0]])
    gates = np.asarray(router.top_k_gates(logits, 2))[0]
    e = np.exp([3.0, 2.0]) / np.exp([3.0, 2.0]).sum()
    np.testing.assert_allclose(gates, [0.0, e[0], e[1], 0.0], rtol=1e-6)


def test_balance_loss_is_zero_for_uniform_gates():
    assert float(router.cv_squared(jnp.full((4,), 2.5))) == 0.0
    r = make_router(k=4)  # k = E: the loss of equal logits is exactly zero
    r.w_gate.kernel[...] = jnp.zeros_like(r.w_gate.kernel[...])
    r.w_gate.bias[...] = jnp.zeros_like(r.w_gate.bias[...])
    r.deterministic = True
    gates, balance = r(jnp.asarray(RNG.normal(size=(8, 96, 7, 4)), jnp.float32))
    np.testing.assert_allclose(gates, 0.25)
    assert float(balance) == 0.0
    # Uneven importance: 0.01 * var_unbiased / mean².
    x = np.array([1.0, 2.0, 3.0, 6.0])
    np.testing.assert_allclose(
        router.cv_squared(jnp.asarray(x)), x.var(ddof=1) / x.mean() ** 2, rtol=1e-5
    )


def test_prob_in_top_k_matches_the_official_formula():
    clean = RNG.normal(size=(5, 4)).astype(np.float32)
    std = np.abs(RNG.normal(size=(5, 4))).astype(np.float32) + 0.1
    noisy = clean + std * RNG.normal(size=(5, 4)).astype(np.float32)
    k = 2
    got = np.asarray(router.prob_in_top_k(clean, noisy, std, k))
    top = -np.sort(-noisy, axis=1)
    want = np.where(
        noisy > top[:, [k]],
        norm.cdf((clean - top[:, [k]]) / std),
        norm.cdf((clean - top[:, [k - 1]]) / std),
    )
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_pathformer_parameter_count_matches_the_official_model():
    model = nnx.eval_shape(
        lambda: attnzoo.create_model("pathformer", input_len=96, horizon=96, channels=7)
    )
    count = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(nnx.state(model, nnx.Param)))
    unused = 3 * (96 * 96 + 96) + 12 * (2 * 2 * 4 + 1)  # end_MLP; BatchNorms, scale
    assert count + unused == 438_482  # the official ETTh1 model (MODELS.md)


def test_pathformer_forward_shapes_and_eval_is_deterministic():
    model = attnzoo.create_model(
        "pathformer", input_len=96, horizon=24, channels=3, d_ff=8, patch_sizes=((32, 48),), k=1
    )
    x = jnp.asarray(RNG.normal(size=(4, 96, 3)), jnp.float32)
    model.eval()
    forward = nnx.jit(lambda m, x: (m(x), m.route(x)))  # one compile, not op by op
    (y1, _), gates = forward(model, x)
    (y2, _), _ = forward(model, x)
    assert y1.shape == (4, 24, 3) and np.isfinite(y1).all()
    np.testing.assert_array_equal(y1, y2)
    assert len(gates) == 1 and gates[0].shape == (4, 2)


def test_log_space_aggregation_is_the_official_combine():
    y = RNG.normal(size=(3, 2, 5)).astype(np.float32)
    g = np.array([[0.3, 0.7], [1.0, 0.0], [0.0, 1.0]], np.float32)  # [b, E]
    got = jax.nn.logsumexp(jnp.asarray(y).transpose(1, 0, 2), axis=0, b=g.T[:, :, None])
    want = np.log((g[:, :, None] * np.exp(y)).sum(1))
    np.testing.assert_allclose(got, want, rtol=1e-5)


def test_dlinear_is_the_two_linear_maps():
    model = attnzoo.create_model("dlinear", input_len=96, horizon=12, channels=2)
    x = RNG.normal(size=(3, 96, 2)).astype(np.float32)
    pad = np.concatenate([np.repeat(x[:, :1], 12, 1), x, np.repeat(x[:, -1:], 12, 1)], 1)
    trend = np.stack([pad[:, i : i + 25].mean(1) for i in range(96)], 1)
    ws, bs = np.asarray(model.seasonal.kernel[...]), np.asarray(model.seasonal.bias[...])
    wt, bt = np.asarray(model.trend.kernel[...]), np.asarray(model.trend.bias[...])
    want = np.einsum("btc,th->bhc", x - trend, ws) + bs[:, None]
    want += np.einsum("btc,th->bhc", trend, wt) + bt[:, None]
    got, aux = model(jnp.asarray(x))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    assert float(aux) == 0.0


def test_forecast_errors_and_baselines():
    pred = RNG.normal(size=(4, 6, 2)).astype(np.float32)
    target = RNG.normal(size=(4, 6, 2)).astype(np.float32)
    mask = np.array([True, True, True, False])
    sums = forecasting.forecast_errors(jnp.asarray(pred), jnp.asarray(target), jnp.asarray(mask))
    err = pred[:3] - target[:3]
    np.testing.assert_allclose(sums["mse"][0] / sums["mse"][1], (err**2).mean(), rtol=1e-5)
    np.testing.assert_allclose(sums["mae"][0] / sums["mae"][1], np.abs(err).mean(), rtol=1e-5)
    inputs = np.arange(10, dtype=np.float32).reshape(1, 10, 1)
    np.testing.assert_array_equal(forecasting.repeat_last(inputs, 3)[0, :, 0], [9, 9, 9])
    np.testing.assert_array_equal(
        forecasting.seasonal_naive(inputs, 7, 3)[0, :, 0], [7, 8, 9, 7, 8, 9, 7]
    )
    with pytest.raises(ValueError, match="period"):
        forecasting.seasonal_naive(inputs, 3, 11)
    batch = {"inputs": inputs, "targets": np.full((1, 3, 1), 10.0, np.float32)}
    got = forecasting.baseline_metrics([batch], horizon=3, period=2)
    assert got["repeat_last"] == {"mse": 1.0, "mae": 1.0}
    np.testing.assert_allclose(got["seasonal_naive"]["mae"], (2 + 1 + 2) / 3)


def test_seasonality_of_a_constant_series_has_finite_gradients():
    grad = jax.grad(lambda x: decomposition.fourier_seasonality(x, 3).sum())(
        jnp.ones((1, 96, 2), jnp.float32)
    )
    assert np.isfinite(np.asarray(grad)).all()
