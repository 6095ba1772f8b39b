import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attnzoo.layers import layer_norm, rms_norm


def _pair():
    """Our LayerNorm and flax's, with the same random scale and bias."""
    with nnx.use_eager_sharding(False):
        ours = layer_norm(48, rngs=nnx.Rngs(0))
        flax_ln = nnx.LayerNorm(48, epsilon=1e-6, rngs=nnx.Rngs(0))
    k1, k2 = jax.random.split(jax.random.key(1))
    for m in (ours, flax_ln):
        m.scale[...] = 1 + 0.2 * jax.random.normal(k1, (48,))
        m.bias[...] = 0.1 * jax.random.normal(k2, (48,))
    return ours, flax_ln


def test_layer_norm_forward_is_flax_bit_for_bit_and_same_params():
    ours, flax_ln = _pair()
    x = 3 + 2 * jax.random.normal(jax.random.key(2), (4, 5, 48))
    np.testing.assert_array_equal(ours(x), flax_ln(x))
    assert set(nnx.state(ours)) == set(nnx.state(flax_ln)) == {"scale", "bias"}


def test_layer_norm_gradients_match_float64_autodiff():
    ours, _ = _pair()
    x = 3 + 2 * jax.random.normal(jax.random.key(2), (4, 5, 48))
    g = jax.random.normal(jax.random.key(3), x.shape)
    scale, bias = ours.scale[...], ours.bias[...]

    def reference(x, scale, bias):  # the textbook definition, float64
        mean = x.mean(-1, keepdims=True)
        var = ((x - mean) ** 2).mean(-1, keepdims=True)
        return ((x - mean) / jnp.sqrt(var + 1e-6) * scale + bias) * g.astype(jnp.float64)

    with jax.enable_x64():
        args64 = [np.asarray(a, np.float64) for a in (x, scale, bias)]
        want = jax.grad(lambda *a: reference(*a).sum(), argnums=(0, 1, 2))(*args64)
    got_x = jax.grad(lambda x: (ours(x) * g).sum())(x)
    got_params = nnx.grad(lambda m: (m(x) * g).sum())(ours)
    np.testing.assert_allclose(got_x, want[0], atol=2e-5)
    np.testing.assert_allclose(got_params.scale[...], want[1], rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got_params.bias[...], want[2], rtol=1e-5, atol=1e-5)


def test_rms_norm_forward_is_flax_bit_for_bit_and_its_gradients_match_float64_autodiff():
    with nnx.use_eager_sharding(False):
        ours = rms_norm(48, rngs=nnx.Rngs(0))
        flax_rms = nnx.RMSNorm(48, epsilon=1e-6, rngs=nnx.Rngs(0))
    for m in (ours, flax_rms):
        m.scale[...] = 1 + 0.2 * jax.random.normal(jax.random.key(1), (48,))
    x = 1 + 2 * jax.random.normal(jax.random.key(2), (4, 5, 48))
    np.testing.assert_array_equal(ours(x), flax_rms(x))
    assert set(nnx.state(ours)) == set(nnx.state(flax_rms)) == {"scale"}
    g = jax.random.normal(jax.random.key(3), x.shape)

    def reference(x, scale):  # the textbook definition, float64
        return x / jnp.sqrt((x**2).mean(-1, keepdims=True) + 1e-6) * scale * g.astype(jnp.float64)

    with jax.enable_x64():
        args64 = [np.asarray(a, np.float64) for a in (x, ours.scale[...])]
        want = jax.grad(lambda *a: reference(*a).sum(), argnums=(0, 1))(*args64)
    np.testing.assert_allclose(jax.grad(lambda x: (ours(x) * g).sum())(x), want[0], atol=2e-5)
    got_scale = nnx.grad(lambda m: (m(x) * g).sum())(ours).scale[...]
    np.testing.assert_allclose(got_scale, want[1], rtol=1e-5, atol=1e-4)
