import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from attnzoo.layers.linear import Linear, matmul, project


def test_matmul_forward_is_jnp_dot_and_gradients_match_float64():
    x = jax.random.normal(jax.random.key(0), (3, 5, 16))
    w = jax.random.normal(jax.random.key(1), (16, 8))
    g = jax.random.normal(jax.random.key(2), (3, 5, 8))
    np.testing.assert_array_equal(matmul(x, w), jnp.dot(x, w))
    dx, dw = jax.grad(lambda x, w: jnp.sum(matmul(x, w) * g), (0, 1))(x, w)
    x64, w64, g64 = (np.asarray(a, np.float64) for a in (x, w, g))
    np.testing.assert_allclose(dx, g64 @ w64.T, rtol=1e-5, atol=1e-5)  # dy w^T
    np.testing.assert_allclose(dw, x64.reshape(-1, 16).T @ g64.reshape(-1, 8), rtol=1e-5, atol=1e-5)


def test_linear_has_nnx_linear_params_and_forward():
    ours, theirs = Linear(6, 4, rngs=nnx.Rngs(0)), nnx.Linear(6, 4, rngs=nnx.Rngs(0))
    ours.bias[...] = theirs.bias[...] = jnp.arange(4.0)
    x = jax.random.normal(jax.random.key(3), (2, 6))
    assert jax.tree.map(jnp.shape, nnx.state(ours)) == jax.tree.map(jnp.shape, nnx.state(theirs))
    np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-6, atol=1e-6)


def test_project_equals_linear_general_over_head_axes():
    layer = nnx.LinearGeneral((4, 8), 12, axis=(-2, -1), rngs=nnx.Rngs(0))  # kernel [h, d, e]
    layer.bias[...] = jax.random.normal(jax.random.key(4), (12,))
    x = jax.random.normal(jax.random.key(5), (2, 3, 4, 8))
    np.testing.assert_allclose(project(x, layer), layer(x), rtol=1e-5, atol=1e-6)
    assert project(x, layer).shape == (2, 3, 12)
