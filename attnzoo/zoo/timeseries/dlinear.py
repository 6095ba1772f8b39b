"""DLinear (Zeng et al., AAAI 2023, "Are Transformers Effective for Time Series
Forecasting?"): a moving-average (kernel 25) split of each input series into trend and
remainder, each mapped to the horizon by one `Linear(T → horizon)` shared across
variables (the official `individual=False`); forecast = sum of the two."""

import jax
import jax.numpy as jnp
from flax import nnx

from attnzoo.layers.mlp import torch_dense
from attnzoo.zoo.registry import register
from attnzoo.zoo.timeseries.decomposition import moving_average


class DLinear(nnx.Module):
    """x `[b, T, N]` → (forecast `[b, horizon, N]`, 0: no auxiliary loss)."""

    def __init__(
        self, *, input_len: int, horizon: int, channels: int, kernel: int = 25, rngs: nnx.Rngs
    ):
        del channels  # shared across variables
        self.kernel = kernel
        self.seasonal = torch_dense(input_len, horizon, rngs=rngs)
        self.trend = torch_dense(input_len, horizon, rngs=rngs)

    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        trend = moving_average(x, self.kernel)
        out = self.seasonal((x - trend).transpose(0, 2, 1)) + self.trend(trend.transpose(0, 2, 1))
        return out.transpose(0, 2, 1), jnp.zeros((), jnp.float32)


@register("dlinear")
def dlinear(*, rngs: nnx.Rngs, **kwargs) -> DLinear:
    return DLinear(rngs=rngs, **kwargs)
