"""The linear traffic baseline: one `Linear(P → Q)` over each sensor's z-scored history,
shared by every sensor (DLinear's `individual=False` linear map, without decomposition)."""

import jax
from flax import nnx

from attnzoo.layers.mlp import torch_dense
from attnzoo.zoo.registry import register


class LinearForecaster(nnx.Module):
    """(inputs `[b, P, N]` z-scored, time: unused) → forecast `[b, Q, N]` in original units."""

    def __init__(self, *, input_len: int, horizon: int, mean: float, std: float, rngs: nnx.Rngs):
        self.mean, self.std = float(mean), float(std)
        self.linear = torch_dense(input_len, horizon, rngs=rngs)

    def __call__(self, inputs: jax.Array, time: jax.Array) -> jax.Array:
        del time
        out = self.linear(inputs.transpose(0, 2, 1)).transpose(0, 2, 1)  # [b, Q, N]
        return out * self.std + self.mean


@register("traffic_linear")
def traffic_linear(*, rngs: nnx.Rngs, **kwargs) -> LinearForecaster:
    return LinearForecaster(rngs=rngs, **kwargs)
