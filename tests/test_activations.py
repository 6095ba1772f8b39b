import jax
import jax.numpy as jnp
import numpy as np

from attnzoo.layers import gelu_tanh


def _gelu_tanh_grad_f64(x: np.ndarray) -> np.ndarray:
    """d/dx of 0.5 x (1 + tanh(c (x + 0.044715 x^3))), c = sqrt(2/pi), in float64."""
    c = np.sqrt(2 / np.pi)
    t = np.tanh(c * (x + 0.044715 * x**3))
    return 0.5 * (1 + t) + 0.5 * x * (1 - t**2) * c * (1 + 3 * 0.044715 * x**2)


def test_gelu_tanh_forward_is_jax_gelu_bit_for_bit():
    x = jnp.linspace(-9.0, 9.0, 4001, dtype=jnp.float32)
    np.testing.assert_array_equal(gelu_tanh(x), jax.nn.gelu(x, approximate=True))


def test_gelu_tanh_gradient_matches_the_formula_in_float64():
    x = np.linspace(-9.0, 9.0, 4001).astype(np.float32)
    ours = jax.jit(jax.grad(lambda v: gelu_tanh(v).sum()))(x)
    autodiff = jax.grad(lambda v: jax.nn.gelu(v, approximate=True).sum())(x)
    want = _gelu_tanh_grad_f64(x.astype(np.float64))
    # float32 rounding of tanh/exp differs between XLA's optimisation levels (the tests
    # compile at level 0): both stay within 1e-5 of the float64 formula, a wrong
    # derivative term is off by 1e-2 or more
    np.testing.assert_allclose(ours, want, atol=1e-5)
    np.testing.assert_allclose(autodiff, want, atol=1e-5)
    g = jnp.full_like(x, 3.0)
    (scaled,) = jax.vjp(gelu_tanh, x)[1](g)
    np.testing.assert_allclose(scaled, 3.0 * want, atol=3e-5)
