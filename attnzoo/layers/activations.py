"""Activations with cheaper gradients on XLA's CPU code (same values as jax.nn's)."""

import jax
import jax.numpy as jnp
import numpy as np

_SQRT_2_OVER_PI = float(np.sqrt(2 / np.pi))


def gelu_exact(x: jax.Array) -> jax.Array:
    """GELU with the exact erf, `x Φ(x)` (PyTorch's default `nn.GELU()`)."""
    return jax.nn.gelu(x, approximate=False)


@jax.custom_vjp
def gelu_tanh(x: jax.Array) -> jax.Array:
    """GELU, tanh approximation: `0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))`.

    The forward is `jax.nn.gelu(x, approximate=True)` (bit for bit). The backward keeps `x`
    and recomputes tanh, where autodiff would store tanh as a second activation-sized
    residual: the forward becomes one fusion writing one array instead of two (the
    MLP's largest elementwise cost on CPU; see benchmarks/README.md). Reverse-mode only
    (`jax.grad`, `jax.vjp`): forward-mode `jax.jvp` does not apply to a custom VJP.
    """
    return jax.nn.gelu(x, approximate=True)


def _gelu_tanh_fwd(x):
    return gelu_tanh(x), x


def _gelu_tanh_bwd(x, g):
    x2 = x * x
    t = jnp.tanh(_SQRT_2_OVER_PI * x * (1 + 0.044715 * x2))
    dt_dx = _SQRT_2_OVER_PI * (1 + 3 * 0.044715 * x2)
    return (g * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * dt_dx),)


gelu_tanh.defvjp(_gelu_tanh_fwd, _gelu_tanh_bwd)
