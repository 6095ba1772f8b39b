"""GMAN's batch norm (official `tf_utils.batch_norm` + `train.py`): batch statistics in
training, zero-debiased moving averages of them at evaluation, with a decay that grows
by steps.

    decay(step) = min(0.99, 1 - 0.5 · 0.5^⌊step / decay_steps⌋)   (0.5, 0.75, ..., 0.99)

The official code feeds the batch mean and (biased) variance to TF's
`ExponentialMovingAverage`, which for tensors keeps a zero-initialised average and divides
it by its total weight (`zero_debias`); here the total weight `1 - Π decay` is tracked
exactly (TF's `1 - decay^n` uses the current decay only: equal while the decay is constant).
So the evaluation statistics follow the recent batches from the first step, which matters
for short runs: a fixed 0.99 decay started at (0, 1) lags by ~100 steps.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx


def bn_decay(step: jax.Array, decay_steps: int) -> jax.Array:
    """The official schedule: 0.5 for `decay_steps` steps, then 1 - 0.25, 1 - 0.125, ...
    capped at 0.99."""
    momentum = 0.5 * 0.5 ** (step // decay_steps).astype(jnp.float32)
    return jnp.minimum(0.99, 1.0 - momentum)


class ScheduledBatchNorm(nnx.Module):
    """`x [..., features]` → normalised over every axis but the last (ε 1e-3, TF's
    default in the official code), then `· scale + bias`.

    Training (`use_running_average=False`): the batch's statistics, and one step of the
    moving averages. Evaluation: the debiased moving averages (mean 0, variance 1 before
    any training step). `model.train()` / `model.eval()` switch the two."""

    def __init__(self, features: int, *, decay_steps: int, epsilon: float = 1e-3):
        if decay_steps < 1:
            raise ValueError(f"decay_steps must be >= 1, got {decay_steps}")
        self.decay_steps, self.epsilon = decay_steps, epsilon
        self.use_running_average = False
        self.scale = nnx.Param(jnp.ones((features,), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((features,), jnp.float32))
        self.mean = nnx.BatchStat(jnp.zeros((features,), jnp.float32))  # weighted sums
        self.var = nnx.BatchStat(jnp.zeros((features,), jnp.float32))
        self.weight = nnx.BatchStat(jnp.zeros((), jnp.float32))  # 1 - Π decay
        self.step = nnx.BatchStat(jnp.zeros((), jnp.int32))

    def statistics(self) -> tuple[jax.Array, jax.Array]:
        """The debiased moving mean and variance `[features]`."""
        w = self.weight[...]
        seen = w > 0
        safe = jnp.where(seen, w, 1.0)
        return (
            jnp.where(seen, self.mean[...] / safe, 0.0),
            jnp.where(seen, self.var[...] / safe, 1.0),
        )

    def __call__(self, x: jax.Array) -> jax.Array:
        axes = tuple(range(x.ndim - 1))
        if self.use_running_average:
            mean, var = self.statistics()
        else:
            mean = jnp.mean(x, axes)
            var = jnp.mean(jnp.square(x - mean), axes)
            decay = bn_decay(self.step[...], self.decay_steps)
            hold = jax.lax.stop_gradient
            self.mean[...] = decay * self.mean[...] + (1 - decay) * hold(mean)
            self.var[...] = decay * self.var[...] + (1 - decay) * hold(var)
            self.weight[...] = decay * self.weight[...] + (1 - decay)
            self.step[...] = self.step[...] + 1
        inv = jax.lax.rsqrt(var + self.epsilon) * self.scale[...]
        return (x - mean) * inv + self.bias[...]
