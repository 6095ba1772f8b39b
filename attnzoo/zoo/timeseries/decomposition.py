"""Series decomposition used by Pathformer's router (official `utils/Other.py`).

* Seasonality: the sum of the top-k Fourier components of each series (rFFT over time,
  DC and — for even length — Nyquist bins dropped, k largest magnitudes kept), rebuilt
  over the input length (`FourierLayer(pred_len=0)`).
* Trend: moving averages with several kernels (replicate padding, output length = input
  length), mixed per value by a softmax over kernels of a learned `Linear(1, n_kernels)`
  of the value (`series_decomp_multi`). DLinear uses the single-kernel moving average.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from attnzoo.layers.mlp import torch_dense


def moving_average(x: jax.Array, kernel: int) -> jax.Array:
    """Moving average over axis 1 of x `[b, T, ...]`, same length: the series is padded
    by repeating its first value `kernel - 1 - (kernel - 1) // 2` times and its last
    `(kernel - 1) // 2` times (the official padding, asymmetric for even kernels)."""
    front, end = kernel - 1 - (kernel - 1) // 2, (kernel - 1) // 2
    padded = jnp.concatenate(
        [jnp.repeat(x[:, :1], front, axis=1), x, jnp.repeat(x[:, -1:], end, axis=1)], axis=1
    )
    csum = jnp.cumsum(padded, axis=1, dtype=jnp.float32)
    csum = jnp.concatenate([jnp.zeros_like(csum[:, :1]), csum], axis=1)
    return ((csum[:, kernel:] - csum[:, :-kernel]) / kernel).astype(x.dtype)


def fourier_seasonality(x: jax.Array, k: int) -> jax.Array:
    """x `[b, T, C]` → the sum of its `k` strongest non-constant Fourier components `[b, T, C]`:
    `Σ_j 2 |X_j| / T · cos(2π f_j t + ∠X_j)` over the top-k bins j (per b and C)."""
    t = x.shape[1]
    spectrum = jnp.fft.rfft(x.astype(jnp.float32), axis=1)  # [b, F, C]
    freqs = jnp.fft.rfftfreq(t)
    stop = -1 if t % 2 == 0 else None  # drop DC and, for even T, Nyquist
    spectrum, freqs = spectrum[:, 1:stop], freqs[1:stop]
    magnitude = jax.lax.stop_gradient(jnp.abs(spectrum))  # only ranks the bins
    _, top = jax.lax.top_k(jnp.moveaxis(magnitude, 1, -1), k)  # [b, C, k]
    top = jnp.moveaxis(top, -1, 1)  # [b, k, C]
    coef = jnp.take_along_axis(spectrum, top, axis=1)  # [b, k, C]
    # |X| and ∠X at X = 0 (a constant series) have NaN gradients: take 0 there (PyTorch's
    # subgradient of abs), through a dummy 1 that keeps the untaken branch finite.
    nonzero = jnp.take_along_axis(magnitude, top, axis=1) > 0
    safe = jnp.where(nonzero, coef, 1.0)
    amplitude = jnp.where(nonzero, jnp.abs(safe), 0.0)
    phase = jnp.where(nonzero, jnp.angle(safe), 0.0)
    f = freqs[top]  # [b, k, C]
    steps = jnp.arange(t, dtype=jnp.float32)[None, :, None, None]  # [1, T, 1, 1]
    waves = jnp.cos(2 * jnp.pi * f[:, None] * steps + phase[:, None])  # [b, T, k, C]
    # A component and its conjugate each contribute |X_j| / T: together 2 |X_j| / T.
    return (2 * amplitude[:, None] / t * waves).sum(axis=2).astype(x.dtype)


class MultiKernelTrend(nnx.Module):
    """Trend of x `[b, T, C]`: moving averages (kernels e.g. 4, 8, 12) mixed per value by
    `softmax(Linear(1, n_kernels)(x))`."""

    def __init__(self, kernels=(4, 8, 12), *, rngs: nnx.Rngs):
        self.kernels = tuple(kernels)
        self.mix = torch_dense(1, len(self.kernels), rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        averages = jnp.stack([moving_average(x, k) for k in self.kernels], axis=-1)
        weights = jax.nn.softmax(self.mix(x[..., None]), axis=-1)  # [b, T, C, n_kernels]
        return (averages * weights).sum(-1)
