"""PolyNorm and the gated MLPs against their definitions in numpy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from attnzoo.layers.gated_mlp import GatedMlp, PolyNorm, polynorm


def np_norm(z):
    return z / np.sqrt(np.mean(z**2, -1, keepdims=True) + 1e-6)


def test_polynorm_definition():
    x = np.random.default_rng(0).standard_normal((3, 5, 8))
    norm = PolyNorm()
    norm.weight[...] = jnp.asarray([0.5, -0.25, 2.0])
    norm.bias[...] = jnp.asarray(0.1)
    want = 0.5 * np_norm(x**3) - 0.25 * np_norm(x**2) + 2.0 * np_norm(x) + 0.1
    np.testing.assert_allclose(norm(jnp.asarray(x, jnp.float32)), want, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(PolyNorm().weight[...], [1 / 3] * 3)


def test_polynorm_gradient_equals_autodiff_of_the_definition():
    """The closed-form backward (x, weights, bias) against jax's autodiff of the formula."""
    rng = np.random.default_rng(2)
    x, cot = (jnp.asarray(rng.standard_normal((4, 6, 16)), jnp.float32) for _ in range(2))
    w, b = jnp.asarray([0.5, -0.25, 2.0]), jnp.asarray(0.1)

    def definition(x, w, b):
        n = lambda z: z * jax.lax.rsqrt(jnp.mean(z * z, -1, keepdims=True) + 1e-6)  # noqa: E731
        return w[0] * n(x**3) + w[1] * n(x**2) + w[2] * n(x) + b

    def grads(f):
        return jax.vjp(f, x, w, b)[1](cot)

    got = grads(lambda x, w, b: polynorm(x, w, b, 1e-6))
    for g, want in zip(got, grads(definition), strict=True):
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("gate", ["swiglu", "polynorm"])
def test_gated_mlp_definition(gate):
    with nnx.use_eager_sharding(False):
        mlp = GatedMlp(8, 12, gate=gate, rngs=nnx.Rngs(0))
    x = np.random.default_rng(1).standard_normal((2, 3, 8))
    g = x @ np.asarray(mlp.gate.kernel[...])
    if gate == "swiglu":
        act = g / (1 + np.exp(-g))
    else:
        act = (np_norm(g**3) + np_norm(g**2) + np_norm(g)) / 3
    want = (act * (x @ np.asarray(mlp.up.kernel[...]))) @ np.asarray(mlp.down.kernel[...])
    np.testing.assert_allclose(mlp(jnp.asarray(x, jnp.float32)), want, rtol=1e-4, atol=1e-5)


def test_unknown_gate_is_one_line():
    with pytest.raises(ValueError, match="unknown MLP gate 'relu'; choose one of swiglu, polynorm"):
        GatedMlp(8, 12, gate="relu", rngs=nnx.Rngs(0))
