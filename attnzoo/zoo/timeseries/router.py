"""Pathformer's multi-scale router: noisy top-k gating over patch-size experts
(official `layers/AMS.py`, after Shazeer et al.'s sparsely-gated mixture of experts).

The router reads embedding channel 0 of every value, adds its Fourier seasonality and
multi-kernel trend, mixes the nodes with `Linear(N, 1)`, and maps the length-T series to
expert logits. Training adds Gaussian noise with a learned, input-dependent std
(`softplus(w_noise x) + 0.01`); evaluation uses the clean logits. The gates are a softmax
over the top-k logits only (exactly k non-zero, summing to one). Balance loss:
`0.01 · (cv²(importance) + cv²(load))`, cv² with the unbiased variance; load is the
smooth probability of each expert being in the top k (training, k < E) or the count of
its non-zero gates.
"""

import jax
import jax.numpy as jnp
from flax import nnx

from attnzoo.layers.mlp import torch_dense
from attnzoo.zoo.timeseries.decomposition import MultiKernelTrend, fourier_seasonality


def cv_squared(x: jax.Array) -> jax.Array:
    """Squared coefficient of variation `var(x) / (mean(x)² + 1e-10)` (unbiased var;
    0 for a single value)."""
    if x.shape[0] == 1:
        return jnp.zeros((), jnp.float32)
    x = x.astype(jnp.float32)
    return x.var(ddof=1) / (x.mean() ** 2 + 1e-10)


def top_k_gates(logits: jax.Array, k: int) -> jax.Array:
    """logits `[b, E]` → gates `[b, E]`: softmax over each row's k largest, 0 elsewhere."""
    top_values, top_index = jax.lax.top_k(logits, k)
    rows = jnp.arange(logits.shape[0])[:, None]
    return jnp.zeros_like(logits).at[rows, top_index].set(jax.nn.softmax(top_values, axis=-1))


def prob_in_top_k(clean, noisy, noise_std, k: int) -> jax.Array:
    """`[b, E]`: P(expert e stays in the top k when only its own noise is redrawn):
    Φ((clean - threshold) / std), threshold the k+1-th largest noisy logit for experts
    now in the top k and the k-th largest for the others."""
    top_values, _ = jax.lax.top_k(noisy, min(k + 1, noisy.shape[-1]))
    threshold_in, threshold_out = top_values[:, k : k + 1], top_values[:, k - 1 : k]
    is_in = noisy > threshold_in
    cdf = jax.scipy.stats.norm.cdf
    return jnp.where(
        is_in, cdf((clean - threshold_in) / noise_std), cdf((clean - threshold_out) / noise_std)
    )


class NoisyTopKRouter(nnx.Module):
    """x `[b, T, N, d]` → (gates `[b, E]`, balance loss `[]`)."""

    def __init__(
        self,
        seq_len: int,
        num_nodes: int,
        num_experts: int,
        k: int,
        *,
        seasonality_k: int = 3,
        trend_kernels=(4, 8, 12),
        loss_coef: float = 1e-2,
        rngs: nnx.Rngs,
    ):
        if not 0 < k <= num_experts:
            raise ValueError(f"top-k={k} must be in [1, num_experts={num_experts}]")
        self.k, self.num_experts = k, num_experts
        self.seasonality_k, self.loss_coef = seasonality_k, loss_coef
        self.trend = MultiKernelTrend(trend_kernels, rngs=rngs)
        self.start_linear = torch_dense(num_nodes, 1, rngs=rngs)
        self.w_gate = torch_dense(seq_len, num_experts, rngs=rngs)
        self.w_noise = torch_dense(seq_len, num_experts, rngs=rngs)
        self.noise_rngs = rngs.fork()
        self.deterministic = False  # `model.eval()` sets True: clean logits

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        series = x[..., 0]  # [b, T, N]
        series = series + fourier_seasonality(series, self.seasonality_k) + self.trend(series)
        series = self.start_linear(series)[..., 0]  # [b, T]
        clean = self.w_gate(series)  # [b, E]
        noisy_training = not self.deterministic and self.k < self.num_experts
        if self.deterministic:
            logits = clean
        else:
            noise_std = jax.nn.softplus(self.w_noise(series)) + 1e-2
            noise = jax.random.normal(self.noise_rngs.noise(), clean.shape, clean.dtype)
            logits = clean + noise * noise_std
        gates = top_k_gates(logits, self.k)
        if noisy_training:
            load = prob_in_top_k(clean, logits, noise_std, self.k).sum(0)
        else:
            load = (gates > 0).sum(0).astype(jnp.float32)
        balance = (cv_squared(gates.sum(0)) + cv_squared(load)) * self.loss_coef
        return gates, balance
